"""Files the operator attaches in the send form: checked, kept on disk until sent, sent from the disk.

A file is judged by its bytes (the browser's Content-Type is not asked):
JPEG/PNG/WebP go as photos, video as video, a recording as voice, anything
else as a document with its name; programs and scripts are refused by name
and by content. Limits are WhatsApp's: photos, video and voice 16 MB,
documents 100 MB.

The file waits under the portal's folder (``OLCHAT_UPLOADS_PATH/<portal>/<form
key>``) from the moment it arrives until its send is settled: the red-zone
question, a double click or a retry after a lost answer find it there by the
form's key and never need it again from the browser. A sent file is deleted;
one whose send failed before WhatsApp had it moves to the form's new key, so
«Отправить» once more sends it; one nobody comes back for is swept after
KEEP.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app

from ..gateway.base import DOCUMENT, IMAGE, VIDEO, VOICE
from ..media import PHOTO_TYPES, executable, guess_type, remove_quietly, safe_name, sniff

MB = 1024 * 1024
LIMITS = {IMAGE: 16 * MB, VIDEO: 16 * MB, VOICE: 16 * MB, DOCUMENT: 100 * MB}
# The upload route's own body limit: the largest file and the form's few fields around it.
UPLOAD_BODY_LIMIT = LIMITS[DOCUMENT] + MB
KEEP = 3600  # seconds an attached file waits for its form to come back
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Recordings a browser makes (MediaRecorder): WebM/Opus (Chromium, Firefox), Ogg, MP4 (Safari), WAV.
_VOICE_TYPES = {"video/webm": "audio/webm", "audio/ogg": "audio/ogg", "audio/mp4": "audio/mp4",
                "video/mp4": "audio/mp4", "audio/wav": "audio/wav", "audio/mpeg": "audio/mpeg"}


class FileRefused(Exception):
    """An attached file we do not send; ``reason`` is an i18n key, ``args`` fill its text."""

    def __init__(self, reason: str, **args):
        super().__init__(reason)
        self.reason, self.args_ = reason, args


@dataclass(frozen=True)
class Held:
    """An attached file waiting for its send."""

    key: str
    name: str
    mime: str
    kind: str
    size: int
    user_id: str


def valid_key(key: str) -> bool:
    return bool(key) and bool(_KEY.match(key))


def inspect(stream: BinaryIO, name: str, *, voice: bool) -> tuple[str, str, str, int]:
    """Judge an attached file by its bytes: (MIME type, kind, file name, size), or raise FileRefused."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    head = stream.read(64)
    stream.seek(0)
    if size == 0:
        raise FileRefused("file_empty")
    if executable(name, head):
        raise FileRefused("file_executable")
    found = sniff(head)
    if voice:
        mime = _VOICE_TYPES.get(found or "")
        if mime is None:
            raise FileRefused("voice_unreadable")
        kind = VOICE
        name = "voice" + {"audio/webm": ".webm", "audio/ogg": ".ogg", "audio/mp4": ".m4a",
                          "audio/wav": ".wav", "audio/mpeg": ".mp3"}[mime]
    else:
        mime = found or guess_type(name)
        kind = IMAGE if mime in PHOTO_TYPES else VIDEO if found and found.startswith("video/") else DOCUMENT
        name = safe_name(name, mime)
    if size > LIMITS[kind]:
        raise FileRefused("file_too_large_photo" if kind in (IMAGE, VIDEO, VOICE) else "file_too_large_doc",
                          n=LIMITS[kind] // MB)
    return mime, kind, name, size


# ---------------------------------------------------------------- the portal's waiting files


def _folder(portal_id: int) -> Path:
    folder = Path(current_app.config["OLCHAT_UPLOADS_PATH"]) / str(int(portal_id))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def hold(portal_id: int, user_id: str, key: str, stream: BinaryIO, *, name: str, mime: str, kind: str,
         size: int) -> Held:
    """Keep the file for the form ``key``; a file already kept for that key stays (same form, same file)."""
    folder = _folder(portal_id)
    sweep(folder)
    existing = held(portal_id, key, user_id)
    if existing is not None:
        return existing
    info = Held(key=key, name=name, mime=mime, kind=kind, size=size, user_id=user_id)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".in-", delete=False) as part:
        stream.seek(0)
        shutil.copyfileobj(stream, part, MB)
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".in-", suffix=".json", delete=False) as about:
        json.dump(asdict(info), about, ensure_ascii=False)
    os.replace(about.name, folder / f"{key}.json")
    try:
        # A link, not a rename: of two requests with one key (a double click) the first file wins.
        os.link(part.name, folder / key)
    except FileExistsError:
        pass
    finally:
        remove_quietly(part.name)
    return held(portal_id, key, user_id) or info


def held(portal_id: int, key: str, user_id: str) -> Held | None:
    """The file waiting for form ``key`` of this portal and user, or None."""
    if not valid_key(key):
        return None
    folder = Path(current_app.config["OLCHAT_UPLOADS_PATH"]) / str(int(portal_id))
    try:
        info = Held(**json.loads((folder / f"{key}.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if info.user_id != user_id or not (folder / key).is_file():
        return None
    return info


def open_held(portal_id: int, info: Held) -> BinaryIO:
    return open(_folder(portal_id) / info.key, "rb")


def release(portal_id: int, key: str) -> None:
    """Forget the file of form ``key`` (sent, or its send settled otherwise)."""
    folder = _folder(portal_id)
    remove_quietly(folder / key)
    remove_quietly(folder / f"{key}.json")


def move(portal_id: int, info: Held, new_key: str) -> Held:
    """Let the file wait for the form's next key (its send failed before WhatsApp had it)."""
    folder = _folder(portal_id)
    moved = Held(**dict(asdict(info), key=new_key))
    (folder / f"{new_key}.json").write_text(json.dumps(asdict(moved), ensure_ascii=False))
    os.replace(folder / info.key, folder / new_key)
    remove_quietly(folder / f"{info.key}.json")
    return moved


def sweep(folder: Path) -> None:
    """Delete files whose form never came back (closed after the red-zone question, a lost frame)."""
    # "Now" as the file system stamps files: a file's age is then right even where the process clock is
    # not the file system's (a moved test clock made this delete a file being written by another request).
    with tempfile.TemporaryFile(dir=folder, prefix=".now-") as probe:
        limit = os.fstat(probe.fileno()).st_mtime - KEEP
    for entry in os.scandir(folder):
        try:
            if entry.stat().st_mtime < limit:
                remove_quietly(entry.path)
        except FileNotFoundError:
            pass

"""Files, for the widget and the Open Lines bridge alike: what a file is, and how we hand one out.

- what WhatsApp gets a file as (:func:`kind_of`), judged from the bytes (:func:`sniff`), never from
  what a browser or a link claims;
- which files we never carry (:func:`executable`: by extension and by content);
- signed links of our own (:func:`link_box`, one key per purpose) and the one way a file leaves
  our origin (:func:`file_answer`): sandboxed, never sniffed, inline only for types a browser shows
  without running anything.
"""
from __future__ import annotations

import io
import mimetypes
import os
from typing import BinaryIO
from urllib.parse import quote

from flask import Response, current_app, send_file

from .crypto import Box
from .gateway.base import DOCUMENT, IMAGE, VIDEO, VOICE

# A file in memory up to this size, on disk beyond: a big one is never held twice.
SPOOL = 1 << 20
# Images WhatsApp shows as photos; other images go as documents (a GIF or SVG would not render).
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
# What a browser may show inline from our origin: pictures and players, nothing that runs or renders markup.
_INLINE = ("image/jpeg", "image/png", "image/webp", "image/gif")

# Programs and scripts (Windows, macOS, Linux, Android, Java, Office macros' hosts): never sent to a client.
EXECUTABLE_EXTENSIONS = frozenset("""
    exe com bat cmd msi msp mst scr pif cpl dll sys drv ocx gadget application appref-ms lnk inf reg
    js jse vbs vbe vb wsf wsh wsc ws hta ps1 ps1xml ps2 psc1 psm1 msc msh msh1 msh2 jar apk apks aab xapk
    dex ipa appx appxbundle msix msixbundle sh bash zsh csh ksh run elf so dylib app pkg dmg command
    scpt workflow deb rpm py pyc pyw pl rb php
""".split())


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes of a file say, or None when they say nothing we know."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand.startswith(b"3g"):
            return "video/3gpp"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM or Matroska
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None


def executable(name: str, head: bytes) -> bool:
    """Tell whether a file is a program or script, by any of its extensions or by its first bytes."""
    parts = (name or "").lower().strip().rstrip(". ").split(".")
    if any(part.strip() in EXECUTABLE_EXTENSIONS for part in parts[1:]):
        return True  # "счёт.pdf.exe" as much as "setup.exe", and "run.sh.txt" too: a disguise is a reason
    return head.startswith((
        b"MZ",                                  # Windows PE (exe, dll, scr, msi stubs)
        b"\x7fELF",                             # Linux, Android native
        b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",  # Mach-O
        b"\xca\xfe\xba\xbe",                    # Mach-O universal, Java class
        b"#!",                                  # a script for an interpreter
        b"dex\n",                               # Android bytecode
    ))


def kind_of(mime: str) -> str:
    """How WhatsApp gets a file: a photo, a voice message, a video, or a document."""
    mime = (mime or "").split(";")[0].strip().lower()
    if mime in PHOTO_TYPES:
        return IMAGE
    if mime.startswith("audio/"):
        return VOICE
    if mime.startswith("video/"):
        return VIDEO
    return DOCUMENT


def guess_type(name: str) -> str:
    """The MIME type a file name suggests (for documents whose bytes say nothing)."""
    return mimetypes.guess_type(name or "")[0] or "application/octet-stream"


def safe_name(name: str | None, mime: str) -> str:
    """A file name without paths or control characters; made up from the type when there is none."""
    name = "".join(ch for ch in (name or "") if ch.isprintable()).replace("/", "_").replace("\\", "_").strip()
    if name:
        return name[:200]
    kind = mime.split("/")[0] if mime.split("/")[0] in ("image", "audio", "video") else "file"
    return kind + (mimetypes.guess_extension(mime) or ".bin")


def link_box(purpose: str) -> Box:
    """The key of one kind of signed link: a token of one purpose is never accepted as another."""
    return Box(current_app.config["OLCHAT_SECRET_KEY"], purpose)


def shows_inline(mime: str) -> bool:
    mime = (mime or "").lower()
    return mime in _INLINE or mime.startswith(("audio/", "video/"))


def file_answer(file: BinaryIO | bytes | str, mime: str, name: str, *, inline: bool = False,
                max_age: int = 0) -> Response:
    """Hand out a file: sandboxed, never sniffed; inline only where it is a picture or a player's media.

    ``file`` may be a path of a temporary file: it is opened and unlinked at once (the open file
    is read to the end all the same), and its known size lets ranges be answered (a player seeks).
    """
    inline = inline and shows_inline(mime)
    body = io.BytesIO(file) if isinstance(file, (bytes, bytearray)) else file
    answer = send_file(body, mimetype=mime if inline else (mime or "application/octet-stream"),
                       as_attachment=not inline, download_name=name or "file", conditional=True,
                       max_age=max_age, etag=False)
    if isinstance(file, str):
        remove_quietly(file)
    answer.headers["Content-Disposition"] = (f"{'inline' if inline else 'attachment'}; "
                                             f"filename*=UTF-8''{quote(name or 'file')}")
    # A client's HTML or SVG must never run on our origin, whatever it is called.
    answer.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; frame-ancestors 'none'"
    answer.headers["X-Content-Type-Options"] = "nosniff"
    answer.headers["Cache-Control"] = f"private, max-age={max_age}" if max_age else "private, no-store"
    return answer


def remove_quietly(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

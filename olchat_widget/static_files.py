"""Static files under fingerprinted URLs, cached for a year and sent compressed.

``url_for('static', filename='widget.js')`` gives ``/static/widget.<hash>.js``,
the hash being the first 12 hex digits of the file's SHA-256, computed when the
app starts (no build step; in debug mode again when a file changes). That URL is
immutable: its answer carries ``Cache-Control: public, max-age=31536000,
immutable``, so a warm card open asks for no static file at all. Any other name
for the same file (the plain name, an old or unknown hash left in a page cached
before a deploy) gets the current content with ``no-cache`` and an ETag: it
still works, it is revalidated, it is never pinned.

Why our own small view and not WhiteNoise: WhiteNoise sits outside Flask (our
security headers would not reach its answers), wants hashed copies and .gz/.br
files written beside the originals by a build step, and pins immutable files for
ten years rather than one. Why memory and not the instance folder: the files are
~75 KB (about 25 KB more compressed), a copy per worker costs nothing, and nothing
is written to disk, so there is no stale copy to clean up after a deploy and no
need for a writable instance folder. Compression happens once per process per
file content (``_compressed``, keyed by the hash), on the first request that
asks for it, so creating an app (each test does) stays cheap.
"""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, abort, current_app, request

try:  # brotli is a dependency (setup.cfg); without it the files go out gzipped only
    import brotli
except ImportError:  # pragma: no cover - depends on the installation
    brotli = None

KEY = "olchat_static"
YEAR = 31_536_000
IMMUTABLE = f"public, max-age={YEAR}, immutable"
_FINGERPRINTED = re.compile(r"^(?P<stem>.+)\.(?P<hash>[0-9a-f]{12})(?P<suffix>\.[^./]+)?$")


@dataclass(frozen=True)
class StaticFile:
    name: str          # the path under static/, e.g. "vendor/htmx-2.0.11.min.js"
    digest: str        # 12 hex digits of the content's SHA-256
    data: bytes
    mimetype: str

    @property
    def fingerprinted(self) -> str:
        path = Path(self.name)
        return str(path.with_name(f"{path.stem}.{self.digest}{path.suffix}"))


def init_static(app: Flask) -> None:
    """Serve app.static_folder through ``serve_static`` and fingerprint ``url_for('static')``."""
    index_static(app)
    app.view_functions["static"] = serve_static
    app.url_defaults(_fingerprint_url)
    if app.debug:  # a developer's edit shows on the next page load, without a restart
        app.before_request(_reindex_when_changed)


def index_static(app: Flask) -> None:
    """Read every file under the static folder and hash it (again, when called again)."""
    root = Path(app.static_folder)
    stamp = _stamp(root)  # before reading: an edit made meanwhile is seen on the next check
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            name = path.relative_to(root).as_posix()
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:12]
            mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            files[name] = StaticFile(name, digest, data, mimetype)
    app.extensions[KEY] = files
    app.extensions[KEY + "_stamp"] = stamp


def _stamp(root: Path) -> tuple:
    return tuple((p.as_posix(), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*")) if p.is_file())


def _reindex_when_changed() -> None:
    app = current_app._get_current_object()
    if _stamp(Path(app.static_folder)) != app.extensions[KEY + "_stamp"]:
        index_static(app)


def _fingerprint_url(endpoint: str, values: dict) -> None:
    if endpoint != "static":
        return
    file = current_app.extensions[KEY].get(values.get("filename", ""))
    if file is not None:
        values["filename"] = file.fingerprinted


def _lookup(filename: str) -> tuple[StaticFile | None, bool]:
    """The file a requested name stands for, and whether the name carries its current hash."""
    files = current_app.extensions[KEY]
    if filename in files:
        return files[filename], False
    path = Path(filename)
    match = _FINGERPRINTED.match(path.name)
    if match is None:
        return None, False
    original = str(path.with_name(match["stem"] + (match["suffix"] or "")))
    file = files.get(original)
    if file is None:
        return None, False
    return file, file.digest == match["hash"]


_compressed: dict[tuple[str, str], bytes | None] = {}
_compress_lock = threading.Lock()
_MIN_SIZE = 256  # below this a compressed answer is not worth the header


def _compress(file: StaticFile, coding: str) -> bytes | None:
    """The file compressed with ``coding``, or None when that does not make it smaller."""
    key = (file.digest, coding)
    if key not in _compressed:
        with _compress_lock:
            if key not in _compressed:
                if coding == "br":
                    body = brotli.compress(file.data, quality=11)
                else:  # mtime=0: the same bytes (and ETag) in every process
                    body = gzip.compress(file.data, compresslevel=9, mtime=0)
                _compressed[key] = body if len(body) < len(file.data) else None
    return _compressed[key]


def _codings() -> list[str]:
    """Content codings the client accepts, best first (brotli is smaller than gzip)."""
    offered = ("br", "gzip") if brotli is not None else ("gzip",)
    accepted = request.accept_encodings
    return [coding for coding in offered if accepted[coding] > 0]


def serve_static(filename: str) -> Response:
    file, current = _lookup(filename)
    if file is None:
        abort(404)
    body, coding = file.data, None
    if len(file.data) >= _MIN_SIZE:
        for candidate in _codings():
            compressed = _compress(file, candidate)
            if compressed is not None:
                body, coding = compressed, candidate
                break
    response = Response(body, mimetype=file.mimetype)
    if coding:
        response.headers["Content-Encoding"] = coding
    # Caches must keep the gzip, brotli and plain answers apart.
    response.vary.add("Accept-Encoding")
    response.set_etag(f"{file.digest}-{coding or 'identity'}")
    if current:
        response.headers["Cache-Control"] = IMMUTABLE
    else:
        response.headers["Cache-Control"] = "no-cache"
    # 304 for a matching If-None-Match; HEAD keeps the headers and drops the body (werkzeug).
    return response.make_conditional(request)

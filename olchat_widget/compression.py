"""Compressed answers for the widget's own fragments that carry no secret (issue 12, point 11).

A cold card open must transfer ≤ 45 KB in all; the phone rows and the widget body are most of the
HTML, and they compress to about a third. Only views marked ``@compressed`` are compressed.

Why this is safe from BREACH: compression leaks, through the size of a response, whether text an
attacker put into it matches other text of the same response; repeated over many requests that
recovers a secret byte by byte. It needs a secret in the body beside attacker-chosen text. The
marked fragments (the widget's start, body and refresh, its lines, phones and phone rows, a created
chat's row) hold what the operator sees on screen: the card's phones, owners, regions, times, the
lines and their states, chat ids — attacker-influenced (a lead's name comes from a web form), but no
credential: the widget token travels only in the ``X-OLChat-Token`` request header and never in a
body, and there is no CSRF token or key in these fragments. What does carry a secret or private
text is never marked: the token answers (/debug/token, /b24/token), the settings page (gateway and
webhook keys), the send form (its one-use key), history (messages) and the frame pages. Whoever
marks another view must keep it that way.
"""
from __future__ import annotations

import functools
import gzip

from flask import Response, make_response, request

try:  # brotli is a dependency (setup.cfg); without it the answers go out gzipped only
    import brotli
except ImportError:  # pragma: no cover - depends on the installation
    brotli = None

MIN_SIZE = 512  # below this the saving does not pay for the work
BROTLI_QUALITY = 5  # a fragment is made per request: fast, and within a few % of the best size
GZIP_LEVEL = 6


def compressed(view):
    """Send the view's answer compressed when the client accepts brotli or gzip (see the module docstring)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        return compress(make_response(view(*args, **kwargs)))

    return wrapper


def _coding() -> str | None:
    accepted = request.accept_encodings
    if brotli is not None and accepted["br"] > 0:
        return "br"
    if accepted["gzip"] > 0:
        return "gzip"
    return None


def compress(response: Response) -> Response:
    """``response`` with its body compressed, when that is possible and worth it."""
    response.vary.add("Accept-Encoding")  # caches keep the compressed and plain answers apart
    if (response.direct_passthrough or response.is_streamed or "Content-Encoding" in response.headers
            or request.method == "HEAD"):
        return response
    data = response.get_data()
    coding = _coding() if len(data) >= MIN_SIZE else None
    if coding is None:
        return response
    if coding == "br":
        body = brotli.compress(data, quality=BROTLI_QUALITY)
    else:  # mtime=0: the same answer gives the same bytes
        body = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    response.set_data(body)  # also sets Content-Length
    response.headers["Content-Encoding"] = coding
    return response

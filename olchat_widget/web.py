"""Small helpers every blueprint uses: page vs fragment, card parameters, security headers."""
from __future__ import annotations

import json

from flask import Response, abort, current_app, g, make_response, render_template, request

from .crm.base import entity_type_from_code
from .i18n import t
from .inputs import loads_json, parse_id


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def fragment(template: str, code: int = 200, trigger: dict | None = None, **context) -> Response:
    """Render an htmx fragment with HTTP status ``code``; ``trigger`` becomes an HX-Trigger header."""
    response = make_response(render_template(template, t=t, **context), code)
    if trigger:
        response.headers["HX-Trigger"] = json.dumps(trigger, ensure_ascii=True)
    return response


def page(template: str, code: int = 200, **context) -> Response:
    return make_response(render_template(template, t=t, **context), code)


def card_args() -> tuple[int, int]:
    """Return (entity type id, entity id) from the request; 400 unless both are Bitrix24 ids."""
    source = request.values
    entity_type = entity_type_from_code(source.get("entity_type", ""))
    entity_id = parse_id(source.get("entity_id", ""))
    if entity_type is None or entity_type <= 0 or entity_id is None:
        abort(400)
    return entity_type, entity_id


def json_body():
    """The request's JSON body, or None when there is none or it is not JSON (broken, bad UTF-8, too deep).

    A body over MAX_CONTENT_LENGTH raises 413 here, before anything is parsed.
    """
    if not request.is_json:
        return None
    return loads_json(request.get_data(cache=True))


def refuse_nul_values() -> None:
    """400 for a query or form value with a NUL character.

    No person types one, and PostgreSQL cannot store one in a text column: let
    it reach a query and the answer would be a 500 instead of this 400.
    """
    values = list(request.args.values())
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += request.form.values()
    if any("\x00" in value for value in values):
        abort(400)


def frame_ancestors() -> str:
    """The origins allowed to frame our pages: the portal's own, or only ourselves."""
    portal = getattr(g, "frame_portal", None) or getattr(g, "portal", None)
    if portal is not None and portal.kind != "demo":
        return f"'self' {portal.origin}"
    return "'self'"


# Scripts come from us and from Bitrix24's BX24.js (templates/widget/shell.html, b24/install.html);
# nothing inline runs anywhere: no <script> blocks, no on* attributes, no style attributes
# (htmx's own indicator style is off via htmx-config; its CSS is in widget.css). The favicon is a data: URL.
# media-src blob: only for <audio> (the send form's preview of a voice recording, never fetched).
CSP = ("default-src 'self'; script-src 'self' https://api.bitrix24.com; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'")


def add_security_headers(response: Response) -> Response:
    # frame-ancestors replaces X-Frame-Options, which cannot name a portal's origin.
    response.headers.pop("X-Frame-Options", None)
    # A file we hand out sets its own, stricter policy (media.file_answer: a sandbox): it stays.
    if "sandbox" not in response.headers.get("Content-Security-Policy", ""):
        response.headers["Content-Security-Policy"] = f"{CSP}; frame-ancestors {frame_ancestors()}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.vary.add("HX-Request")
    if request.path.startswith(("/widget", "/app", "/admin", "/b24", "/auth", "/debug/token")):
        response.headers.setdefault("Cache-Control", "no-store")
    return response

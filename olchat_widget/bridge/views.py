"""The addresses WAHA posts its webhooks to: the deployment's own server, or a portal's own."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, g, request

from ..auth import admin_required
from ..crypto import secrets_box
from ..inputs import loads_json
from ..gateway.base import GatewayError
from ..gateway.registry import deployment_members
from ..widget.service import portal_lines
from ..jobs import enqueue
from ..models import GatewayServer, Portal, WebhookKey, db
from . import connector, inbound, statuses

bp = Blueprint("bridge", __name__)

MAX_WEBHOOK = 1 << 20  # WAHA's envelopes are small; media come by URL, never inline


@bp.post("/waha/webhook")
def deployment_webhook():
    """A webhook of the deployment's WAHA (OLCHAT_WAHA_URL), for the portals in OLCHAT_WAHA_PORTALS."""
    key = current_app.config["OLCHAT_WAHA_WEBHOOK_KEY"]
    envelope = _envelope(key)
    members = deployment_members()
    portal_ids = db.session.scalars(db.select(Portal.id).where(Portal.member_id.in_(members),
                                                               Portal.kind == "bitrix")).all() if members else []
    return _accept(envelope, portal_ids, own_server=False)


@bp.post("/waha/webhook/<int:server_id>")
def server_webhook(server_id: int):
    """A webhook of a portal's own WAHA server, signed with the key generated for that server."""
    server = db.session.get(GatewayServer, server_id)
    stored = db.session.scalar(db.select(WebhookKey).filter_by(server_id=server_id, portal_id=server.portal_id)
                               ) if server else None
    key = secrets_box(current_app).open(stored.key_enc) if stored else None
    if not key:
        abort(401)  # unknown server, or one we gave no key: nobody may post for it
    envelope = _envelope(key)
    return _accept(envelope, [server.portal_id], own_server=True)


def _envelope(key: str | None) -> dict:
    """The webhook's JSON, once its signature is checked (when the receiver has a key)."""
    raw = request.get_data(cache=False)
    if len(raw) > MAX_WEBHOOK:
        abort(413)
    if key and not inbound.signature_ok(raw, key, request.headers.get("X-Webhook-Hmac")):
        abort(401)
    envelope = loads_json(raw)
    if not isinstance(envelope, dict):
        abort(400)
    return envelope


def _accept(envelope: dict, portal_ids: list[int], *, own_server: bool) -> tuple[dict, int]:
    # Ids, not Portal rows: each commit below would expire the rows and reload them one by one.
    event = envelope.get("event")
    if event == "message.ack":
        statuses.accept_ack(envelope, portal_ids)
    elif event == "session.status":
        statuses.accept_session_status(envelope, portal_ids, own_server=own_server)
    else:
        for chat in inbound.accept(envelope, portal_ids):
            enqueue("deliver_inbound", *chat)
        payload = envelope.get("payload")
        if isinstance(payload, dict) and payload.get("fromMe"):
            from ..widget import live

            # Open histories of the chat look again (widget/live.py); a client's message moved
            # the counter already, with its row.
            live.note_webhook(envelope, portal_ids)
    return {"ok": True}, 200


# ---------------------------------------------------------------- the connector page's form (in b24.connector_page)


@bp.get("/bridge/connector")
@admin_required
def connector_form():
    openline = _openline_arg()
    return _connector_fragment(openline)


@bp.post("/bridge/connector")
@admin_required
def connect_line():
    """«Подключить»: this WhatsApp line now serves this Open Line."""
    openline = _openline_arg()
    line_id = request.form.get("line", "")
    lines = {line.id: line for line in portal_lines(g.portal, fresh=True)}
    if line_id not in lines:
        return _connector_fragment(openline, error="line", status=422)
    try:
        webhook_error = connector.connect(g.portal, line_id, openline, lines[line_id].name)
    except connector.LineTaken:
        return _connector_fragment(openline, error="taken", status=409)
    except connector.ConnectorError:
        return _connector_fragment(openline, error="bitrix", status=503)
    return _connector_fragment(openline, webhook_error=webhook_error)


@bp.post("/bridge/connector/disconnect")
@admin_required
def disconnect_line():
    """«Отключить»: the Open Line stops receiving this WhatsApp line."""
    openline = _openline_arg()
    try:
        connector.disconnect(g.portal, openline)
    except connector.ConnectorError:
        return _connector_fragment(openline, error="bitrix", status=503)
    return _connector_fragment(openline)


def _openline_arg() -> str:
    openline = request.values.get("openline", "")
    if not (openline.isdigit() and openline.isascii() and 0 < len(openline) <= 12):
        abort(400)
    return openline


def _connector_fragment(openline: str, *, error: str | None = None, status: int = 200,
                        webhook_error: str | None = None):
    from ..web import fragment

    try:
        lines = portal_lines(g.portal)
    except GatewayError:
        lines = []
    bindings = {b.line_id: b.openline_id for b in connector.bindings(g.portal.id)}
    bound = next((line_id for line_id, ol in bindings.items() if ol == openline), None)
    return fragment("bridge/_connector.html", status, openline=openline, lines=lines, bound=bound,
                    bindings=bindings, error=error,
                    webhook_error=webhook_error)

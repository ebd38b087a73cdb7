"""Where WAHA posts a portal's events, and setting that on WAHA's sessions.

A portal's own server posts to ``/waha/webhook/<server id>``, signed with a key
generated once for that server (WebhookKey, encrypted at rest); the
deployment's WAHA posts to ``/waha/webhook`` with OLCHAT_WAHA_WEBHOOK_KEY.
When an admin chooses lines or binds one to an Open Line, the app sets the
session's webhook through WAHA's API; the settings page shows the same URL,
key and events, for an admin whose WAHA we cannot configure.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import current_app, url_for
from sqlalchemy.exc import IntegrityError

from ..crypto import secrets_box
from ..gateway.base import GatewayError
from ..gateway.registry import deployment_members
from ..models import GatewayServer, Portal, PortalLine, WebhookKey, db

# message.any brings the client's messages and our own sends' echoes; never "message" too
# (every message would then arrive twice).
EVENTS = ("message.any", "message.ack", "session.status")
RETRIES = {"policy": "exponential", "delaySeconds": 2, "attempts": 10}


@dataclass(frozen=True)
class Receiver:
    """Our webhook for one WAHA server: the URL, the HMAC key (None: unsigned), the server it is for."""

    url: str
    key: str | None
    server: GatewayServer | None  # None: the deployment's WAHA

    def hook(self) -> dict:
        """The session webhook as WAHA's config.webhooks[] item."""
        hook = {"url": self.url, "events": list(EVENTS), "retries": dict(RETRIES)}
        if self.key:
            hook["hmac"] = {"key": self.key}
        return hook


def server_key(server: GatewayServer) -> str:
    """The server's webhook key, generated on first use (one per server, kept across requests and workers)."""
    box = secrets_box(current_app)
    row = db.session.scalar(db.select(WebhookKey).filter_by(server_id=server.id))
    if row is not None and row.portal_id != server.portal_id:
        # Left behind by a server of another portal that had this id: never hand its key on.
        db.session.delete(row)
        db.session.commit()
        row = None
    if row is None:
        db.session.add(WebhookKey(portal_id=server.portal_id, server_id=server.id,
                                  key_enc=box.seal(secrets.token_urlsafe(32))))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()  # another request generated it first: use that one
        row = db.session.scalar(db.select(WebhookKey).filter_by(server_id=server.id))
    key = box.open(row.key_enc)
    if key is None:  # sealed with another encryption key: a key nobody can use, make a new one
        return regenerate_key(server)
    return key


def regenerate_key(server: GatewayServer) -> str:
    """A new key for the server: webhooks signed with the old one are refused from now on."""
    key = secrets.token_urlsafe(32)
    sealed = secrets_box(current_app).seal(key)
    row = db.session.scalar(db.select(WebhookKey).filter_by(server_id=server.id))
    if row is None:
        db.session.add(WebhookKey(portal_id=server.portal_id, server_id=server.id, key_enc=sealed))
    else:
        row.key_enc = sealed
    db.session.commit()
    return key


def own_server(portal_id: int) -> GatewayServer | None:
    return db.session.scalar(db.select(GatewayServer).filter_by(portal_id=portal_id).order_by(GatewayServer.id))


def receiver_for(portal: Portal) -> Receiver | None:
    """Where the WAHA serving ``portal`` should post its events (None: no WAHA serves it)."""
    server = own_server(portal.id)
    if server is not None:
        return Receiver(url_for("bridge.server_webhook", server_id=server.id, _external=True),
                        server_key(server), server)
    cfg = current_app.config
    if cfg["OLCHAT_GATEWAY"] == "waha" and cfg["OLCHAT_WAHA_URL"] and portal.member_id in deployment_members():
        return Receiver(url_for("bridge.deployment_webhook", _external=True),
                        cfg["OLCHAT_WAHA_WEBHOOK_KEY"] or None, None)
    return None


def set_line_webhooks(portal: Portal, line_ids) -> str | None:
    """Set our webhook on each of the portal's sessions ``line_ids``; None, or why WAHA could not be told.

    The reason is one of the gateway's stable codes (unauthorized,
    gateway_unavailable, not_found…), for the admin to read; the lines stay
    chosen either way, and the admin can paste the webhook by hand.
    """
    from ..gateway.egress import policy_from_config
    from ..gateway.waha import WahaGateway

    line_ids = [line for line in dict.fromkeys(line_ids) if line]
    receiver = receiver_for(portal)
    if receiver is None or not line_ids:
        return None
    cfg = current_app.config
    if receiver.server is None:
        if not cfg["OLCHAT_WAHA_SESSION_WEBHOOKS"]:
            return None  # the deployment's WAHA posts through its global WHATSAPP_HOOK_* settings instead
        gateway = WahaGateway(cfg["OLCHAT_WAHA_URL"], cfg["OLCHAT_WAHA_API_KEY"] or None,
                              connect_timeout=cfg["OLCHAT_GATEWAY_CONNECT_TIMEOUT"],
                              read_timeout=cfg["OLCHAT_GATEWAY_READ_TIMEOUT"])
    else:
        server = receiver.server
        api_key = secrets_box(current_app).open(server.api_key_enc) if server.api_key_enc else None
        # A URL a portal admin chose: through the outbound policy, like every call to it.
        gateway = WahaGateway(server.base_url, api_key, connect_timeout=cfg["OLCHAT_GATEWAY_CONNECT_TIMEOUT"],
                              read_timeout=cfg["OLCHAT_GATEWAY_READ_TIMEOUT"], policy=policy_from_config(cfg))
    try:
        for line_id in line_ids:
            gateway.set_webhook(line_id, receiver.hook())
    except GatewayError as exc:
        current_app.logger.warning("webhook of portal %s not set on WAHA: %s", portal.id, exc.reason)
        return exc.reason
    finally:
        gateway.close()
    return None


def set_portal_webhooks(portal: Portal) -> str | None:
    """Set our webhook on every line of the portal's own server (after the admin chose them)."""
    server = own_server(portal.id)
    if server is None:
        return None
    lines = db.session.scalars(db.select(PortalLine.line_id).filter_by(portal_id=portal.id,
                                                                        server_id=server.id)).all()
    return set_line_webhooks(portal, lines)

"""Which gateway serves a portal: its own WAHA server, the deployment's, the demo, or none.

A portal gets exactly the WhatsApp lines meant for it: the server its admin
connected; else the deployment's own WAHA when the deployment lists the
portal in OLCHAT_WAHA_PORTALS (the embedded demo portal may use it too, for
trying a WAHA on the debug page); else, for the demo portal only, the demo
gateway; else no lines at all.
"""
from __future__ import annotations

from flask import current_app

from ..crypto import secrets_box
from ..models import GatewayServer, PortalLine, Portal, db
from .base import Gateway, NoLines
from .egress import EgressPolicy, policy_from_config

NO_LINES = NoLines()


def _split(names: str) -> list[str]:
    return [n.strip() for n in (names or "").split(",") if n.strip()]


def build_gateway(portal: Portal) -> Gateway:
    """Return the (cached) gateway of ``portal``."""
    from ..runtime import runtime

    rt = runtime()
    cfg = current_app.config
    server = db.session.scalar(db.select(GatewayServer).filter_by(portal_id=portal.id).order_by(GatewayServer.id))
    if server is not None:
        lines = db.session.scalars(db.select(PortalLine).filter_by(portal_id=portal.id, server_id=server.id)).all()
        sessions = tuple(sorted(line.line_id for line in lines))
        names = {line.line_id: line.name for line in lines}
        fingerprint = ("own", server.id, server.base_url, server.api_key_enc, sessions, tuple(sorted(names.items())))
        api_key = secrets_box(current_app).open(server.api_key_enc) if server.api_key_enc else None
        # A portal that connected a server but chose no sessions has no lines yet.
        return _cached(rt, portal, fingerprint,
                       lambda: _waha(rt, server.base_url, api_key, sessions or ("\0none",), names,
                                     policy=policy_from_config(cfg)))
    # The deployment's own server is the operator's choice: no outbound policy for it.
    if cfg["OLCHAT_GATEWAY"] == "waha" and cfg["OLCHAT_WAHA_URL"] and _deployment_serves(portal):
        sessions = tuple(_split(cfg["OLCHAT_WAHA_SESSIONS"]))
        fingerprint = ("deployment", cfg["OLCHAT_WAHA_URL"], sessions)
        return _cached(rt, portal, fingerprint,
                       lambda: _waha(rt, cfg["OLCHAT_WAHA_URL"], cfg["OLCHAT_WAHA_API_KEY"] or None, sessions, {}))
    if portal.kind == "demo":
        return rt.demo_gateway
    return NO_LINES


def deployment_members() -> list[str]:
    """Member ids of the Bitrix24 portals the deployment's own WAHA serves (OLCHAT_WAHA_PORTALS)."""
    return _split(current_app.config["OLCHAT_WAHA_PORTALS"])


def _deployment_serves(portal) -> bool:
    """Tell whether the deployment's own WAHA is meant for ``portal``."""
    return portal.kind == "demo" or portal.member_id in deployment_members()


def _cached(rt, portal, fingerprint, make) -> Gateway:
    key = (portal.id, fingerprint)
    with rt.lock:
        gateway = rt.gateways.get(key)
        if gateway is None:
            # Settings changed: drop the portal's older gateways so their sessions close.
            for old in [k for k in rt.gateways if k[0] == portal.id]:
                rt.gateways.pop(old)
            gateway = rt.gateways[key] = make()
    return gateway


def _waha(rt, base_url: str, api_key: str | None, sessions, names, *, policy: EgressPolicy | None = None) -> Gateway:
    """Build a WAHA gateway behind its server's breaker; ``policy`` for a URL a portal admin chose."""
    from .breaker import BreakerGateway, breaker_for
    from .waha import WahaGateway

    cfg = current_app.config
    waha = WahaGateway(base_url, api_key, sessions=list(sessions) or None, names=names,
                       connect_timeout=cfg["OLCHAT_GATEWAY_CONNECT_TIMEOUT"],
                       read_timeout=cfg["OLCHAT_GATEWAY_READ_TIMEOUT"], policy=policy)
    # One breaker per server: when a WAHA is down, every portal on it fails fast.
    breaker = breaker_for(rt.breakers, base_url, failure_threshold=cfg["OLCHAT_BREAKER_FAILURES"],
                          cool_down=cfg["OLCHAT_BREAKER_COOL_DOWN"])
    return BreakerGateway(waha, breaker)

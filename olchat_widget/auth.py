"""Who is asking: the widget token and the ``@widget_required`` guard.

The widget frame gets Bitrix24 auth from its parent window (BX24.getAuth),
trades it once for a short-lived widget token, and sends that token in the
``X-OLChat-Token`` header with every request. No cookie is involved, so the
widget works where third-party cookies are blocked (B5). The tenant
(``member_id``) is taken from the verified token and from nowhere else.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import current_app, g, request

from .crypto import Box
from .models import Portal, db

TOKEN_HEADER = "X-OLChat-Token"


@dataclass(frozen=True)
class PortalRef:
    """What a request needs to know of its portal; a snapshot, safe to cache between requests."""

    id: int
    member_id: str
    domain: str
    kind: str
    locale: str

    @property
    def origin(self) -> str:
        # http only for local test portals (OLCHAT_B24_SCHEME), like every REST call.
        return f"{current_app.config['OLCHAT_B24_SCHEME']}://{self.domain}"

    @classmethod
    def of(cls, portal: Portal) -> "PortalRef":
        return cls(portal.id, portal.member_id, portal.domain, portal.kind, portal.locale or "ru")


@dataclass(frozen=True)
class WidgetUser:
    id: str
    name: str
    is_admin: bool = False


class AuthError(Exception):
    """The request carries no usable widget token (reason: no_auth | expired)."""

    def __init__(self, reason: str = "no_auth"):
        super().__init__(reason)
        self.reason = reason


class AdminRequired(Exception):
    pass


def _box() -> Box:
    # Built once per app: deriving the key on every request costs more than checking the token.
    box = current_app.extensions.get("olchat_token_box")
    if box is None:
        box = current_app.extensions["olchat_token_box"] = Box(current_app.config["OLCHAT_SECRET_KEY"], "widget-token")
    return box


def issue_token(portal: Portal, user: WidgetUser, *, b24_token: str | None = None, locale: str = "ru") -> str:
    """Return a widget token for ``user`` of ``portal``.

    The user's own Bitrix24 access token rides inside (encrypted), so CRM
    calls run with the user's rights, not the app's.
    """
    claims = {"m": portal.member_id, "u": user.id, "n": user.name, "a": user.is_admin, "l": locale}
    if b24_token:
        claims["b"] = b24_token
    return _box().seal_json(claims)


def read_token(token: str) -> dict:
    """Return the claims of a valid token; raise AuthError otherwise."""
    claims = _box().open_json(token, ttl=current_app.config["OLCHAT_TOKEN_TTL"])
    if claims is None:
        # Forged and expired look the same to Fernet; the client renews either way.
        raise AuthError("expired")
    return claims


def authenticate() -> None:
    """Verify the request's token and set g.portal, g.user, g.locale, g.b24_token."""
    token = request.headers.get(TOKEN_HEADER, "")
    if not token:
        raise AuthError("no_auth")
    claims = read_token(token)
    portal = portal_ref(str(claims.get("m", "")))
    if portal is None:
        # The portal uninstalled the app since the token was issued.
        raise AuthError("no_auth")
    if portal.kind == "demo" and not current_app.config["OLCHAT_DEBUG_PAGE"]:
        # Every init-db creates the demo portal; in production nobody may act as it.
        raise AuthError("no_auth")
    g.portal = portal
    g.user = WidgetUser(str(claims.get("u", "")), str(claims.get("n", "")), bool(claims.get("a")))
    g.locale = claims.get("l") or portal.locale or "ru"
    g.b24_token = claims.get("b")


def portal_ref(member_id: str) -> PortalRef | None:
    """Return the installed portal ``member_id``, from a short process cache.

    Every widget request needs it; an uninstall reaches other workers within
    the cache's 30 seconds (tokens themselves live longer than that anyway).
    """
    from .runtime import runtime

    cache = runtime().portals
    ref = cache.get(member_id)
    if ref is None:
        portal = db.session.scalar(db.select(Portal).filter_by(member_id=member_id))
        if portal is None:
            return None
        ref = PortalRef.of(portal)
        cache.set(member_id, ref)
    return ref


def widget_required(view):
    """Let the view run only for a request with a valid widget token."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        authenticate()
        return view(*args, **kwargs)

    return wrapped


def admin_required(view):
    """Let the view run only for a portal administrator."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        authenticate()
        if not g.user.is_admin:
            raise AdminRequired()
        return view(*args, **kwargs)

    return wrapped

"""Installed portals: storing what Bitrix24 hands us, registering the widget, trusting users.

Nothing here trusts a domain taken from a request. A first install is
verified by exchanging its refresh token at the OAuth server (configured URL,
our client secret): the server's answer names the portal's real member_id and
domain. Every later call goes to the stored domain only.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, g, url_for
from sqlalchemy import delete

from ..crypto import secrets_box
from ..jobs import IN_WORKER
from ..auth import PortalRef
from ..models import (MessageTemplate, TemplateUse, TimelineRecord, RestBucket, BridgeMessage, ChatActivity, ChatDelivery,
                      CachedCard, CardAccess, Chat, OpenLineBinding, WebhookKey, CheckClaim, GatewayServer, LineDay, NumberCheck, OutgoingMessage, Portal,
                      PortalLine, Settings, TokenVerdict, UserPreference, db, get_or_create, utcnow)
from .client import (B24Client, B24Error, B24Overload, B24QueryLimit, B24Unavailable, domain_of_endpoint,
                     refresh_tokens)

USER_TYPE_ID = "olchatwidget"
VERDICT_TTL = 300  # seconds a checked user token is trusted without asking Bitrix24 again
FIELD_TITLE = "OLChat WhatsApp — статусы и чаты"
CARD_PLACEMENTS = ("CRM_LEAD_DETAIL_ACTIVITY", "CRM_DEAL_DETAIL_ACTIVITY", "CRM_CONTACT_DETAIL_ACTIVITY",
                   "CRM_COMPANY_DETAIL_ACTIVITY")

# Tables that hold a portal's data; all of it goes when the portal uninstalls.
PORTAL_TABLES = (TimelineRecord, TemplateUse, MessageTemplate, RestBucket, BridgeMessage, ChatActivity, ChatDelivery, OpenLineBinding, WebhookKey, OutgoingMessage, Chat, NumberCheck, CheckClaim, LineDay, UserPreference, PortalLine,
                 GatewayServer, Settings, CachedCard, CardAccess, TokenVerdict)


class InstallError(Exception):
    """The install could not be verified or completed; ``reason`` says which."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason


def _cfg(name: str):
    return current_app.config[name]


def _timeout() -> float:
    return float(_cfg("OLCHAT_B24_TIMEOUT"))


# ---------------------------------------------------------------- install


def install_from_refresh_token(refresh_token: str, *, application_token: str | None = None,
                               locale: str | None = None) -> Portal:
    """Store (or update) the portal that ``refresh_token`` belongs to, as the OAuth server says.

    Every employee's browser holds a refresh token of this app (BX24.getAuth),
    so a refresh token alone proves only "someone of that portal". It installs
    a portal we do not know yet; for a portal we know, only a portal
    administrator's token re-installs (replaces the app token pair and the
    application token that guards uninstall) — anyone else gets 'not_admin'
    and nothing changes.
    """
    if not refresh_token:
        raise InstallError("no_auth", "no refresh token")
    try:
        answer = refresh_tokens(_cfg("OLCHAT_B24_OAUTH_URL"), _cfg("OLCHAT_B24_CLIENT_ID"),
                                _cfg("OLCHAT_B24_CLIENT_SECRET"), refresh_token, timeout=_timeout())
    except B24Unavailable as exc:
        raise InstallError("unavailable", str(exc)) from exc
    except B24Error as exc:
        raise InstallError("no_auth", str(exc)) from exc
    member_id = str(answer.get("member_id") or "")
    # The answer's "domain" is the OAuth server's own; the portal is in client_endpoint.
    domain = domain_of_endpoint(str(answer.get("client_endpoint") or "")) or ""
    if not member_id or not domain:
        raise InstallError("no_auth", "the OAuth server named no portal")
    portal = db.session.scalar(db.select(Portal).filter_by(member_id=member_id))
    if portal is not None and portal.kind != "bitrix":
        raise InstallError("no_auth", "member_id of a portal that is not a Bitrix24 install")
    if portal is not None:
        _require_admin(domain, str(answer.get("access_token") or ""))
    if portal is None:
        portal = Portal(member_id=member_id, domain=domain, kind="bitrix")
        db.session.add(portal)
    portal.domain = domain
    store_tokens(portal, answer)
    if application_token:
        portal.application_token_enc = seal(application_token)
    if locale in ("ru", "en"):
        portal.locale = locale
    portal.client_endpoint = answer.get("client_endpoint")
    db.session.commit()
    _forget_portal(member_id)
    return portal


def _require_admin(domain: str, access_token: str) -> None:
    """Raise InstallError('not_admin') unless the token's user administers the portal."""
    client = B24Client(domain, access_token, scheme=_cfg("OLCHAT_B24_SCHEME"),
                       connect_timeout=min(3.05, _timeout()), read_timeout=_timeout(), retry_pauses=())
    try:
        me = client.call("profile", {})
    except (B24Unavailable, B24QueryLimit, B24Overload) as exc:
        raise InstallError("unavailable", str(exc)) from exc
    except B24Error as exc:
        raise InstallError("no_auth", str(exc)) from exc
    if not isinstance(me, dict) or me.get("ADMIN") not in (True, 1, "1", "Y", "true"):
        raise InstallError("not_admin", "the installing user is not a portal administrator")


def seal(value: str | None) -> str | None:
    """Encrypt a token for the database (None stays None)."""
    return secrets_box(current_app).seal(value) if value else None


def unseal(value: str | None) -> str | None:
    """Decrypt a stored token; None when absent or not ours (a plain value of an older version)."""
    return secrets_box(current_app).open(value) if value else None


def access_token_of(portal: Portal) -> str:
    return unseal(portal.access_token_enc) or ""


def application_token_matches(portal: Portal, application_token: str) -> bool:
    stored = unseal(portal.application_token_enc)
    return bool(stored) and bool(application_token) and hmac.compare_digest(stored, application_token)


def store_tokens(portal: Portal, answer: dict) -> None:
    portal.access_token_enc = seal(str(answer.get("access_token") or "")) or None
    try:
        expires_in = int(answer.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600
    portal.access_expires_at = utcnow() + timedelta(seconds=max(60, min(expires_in, 24 * 3600)))
    if answer.get("refresh_token"):
        portal.refresh_token_enc = seal(str(answer["refresh_token"]))


def seal_plain_tokens() -> int:
    """Encrypt tokens an older version stored in plain text; return how many portals changed (init-db)."""
    changed = 0
    for portal in db.session.scalars(db.select(Portal).filter_by(kind="bitrix")):
        touched = False
        for name in ("access_token_enc", "application_token_enc"):
            value = getattr(portal, name)
            if value and unseal(value) is None:
                setattr(portal, name, seal(value))
                touched = True
        changed += touched
    db.session.commit()
    return changed


def app_client(portal: Portal) -> B24Client:
    """A REST client with the portal's app token, renewed on expiry (one renewal at a time)."""
    if portal.kind == "demo":
        # No Bitrix24 behind the demo portal: its Open Lines live in our database.
        from ..bridge.demo_openlines import DemoOpenLines

        return DemoOpenLines(portal.id)

    failed_token = access_token_of(portal)

    def renew() -> str:
        return renew_app_token(portal.id, failed_token)

    from ..runtime import http_session

    before = None
    if g.get(IN_WORKER):
        # A queue consumer: wait for room in the portal's bucket, shared with every other consumer.
        from .bucket import buckets_of

        buckets, portal_id = buckets_of(current_app), portal.id
        before = lambda: buckets.take(portal_id, wait=True)  # noqa: E731
    return B24Client(portal.domain, failed_token, scheme=_cfg("OLCHAT_B24_SCHEME"),
                     read_timeout=_timeout(), on_expired=renew, session=http_session(("b24", portal.id)),
                     before_request=before)


def renew_app_token(portal_id: int, failed_token: str) -> str:
    """Refresh the portal's app token pair after ``failed_token`` expired; return the new access token.

    Each refresh makes the old refresh token useless, so two workers must not
    refresh one portal at once: the row is locked (FOR UPDATE on PostgreSQL;
    SQLite serialises writers), and when the stored token is no longer the one
    that failed, another worker has renewed it already and that one is used.

    If saving the new pair fails (database locked or gone), the pair is kept in
    this worker's memory and used and saved again on the next renewal: the old
    refresh token is dead at Bitrix24 already, so dropping the pair would lock
    the app out of the portal until it is reinstalled.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from ..runtime import runtime

    unsaved = runtime().unsaved_tokens  # portal id -> the newest pair this worker could not save
    with runtime().renew_lock:
        db.session.rollback()
        kept = unsaved.get(portal_id)
        portal = db.session.scalar(db.select(Portal).filter_by(id=portal_id).with_for_update())
        if portal is None:
            unsaved.pop(portal_id, None)
            raise InstallError("no_auth", "portal is gone")
        current = access_token_of(portal)
        if kept is None and current and current != failed_token:
            db.session.commit()
            return current
        if kept is not None and kept.get("access_token") != failed_token:
            answer = kept  # still good: only saving it is left to do
        else:
            refresh = kept.get("refresh_token") if kept else unseal(portal.refresh_token_enc)
            answer = refresh_tokens(_cfg("OLCHAT_B24_OAUTH_URL"), _cfg("OLCHAT_B24_CLIENT_ID"),
                                    _cfg("OLCHAT_B24_CLIENT_SECRET"), refresh or "", timeout=_timeout())
        store_tokens(portal, answer)
        try:
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
            unsaved[portal_id] = answer
            # The portal id only: the exception text could carry the tokens.
            current_app.logger.warning("portal %s: the renewed app token pair could not be saved; kept in memory "
                                       "and saved on the next renewal", portal_id)
        else:
            unsaved.pop(portal_id, None)
        return str(answer.get("access_token") or "")


def register_widget(portal: Portal) -> None:
    """Register the field type and the card placements; safe to run again (re-install)."""
    try:
        _register_widget(portal)
    except B24Error as exc:
        # Whatever Bitrix24 answered, the admin gets the install page with the reason, not a 500.
        raise InstallError("unavailable" if isinstance(exc, (B24Unavailable, B24QueryLimit, B24Overload))
                           else "register", f"{type(exc).__name__}: {exc}") from exc


def _register_widget(portal: Portal) -> None:
    client = app_client(portal)
    handler = url_for("b24.widget_handler", _external=True)
    app_page = url_for("b24.app_page", _external=True)
    existing = client.call("userfieldtype.list", {}) or []
    if isinstance(existing, dict):
        existing = list(existing.values())
    field = {"USER_TYPE_ID": USER_TYPE_ID, "HANDLER": handler, "TITLE": FIELD_TITLE,
             "DESCRIPTION": "Статусы WhatsApp, регион, оператор и время клиента; чаты и отправка сообщений",
             "OPTIONS": {"height": 360}}
    known = {str(item.get("USER_TYPE_ID")) for item in existing if isinstance(item, dict)}
    # userfieldtype.add/update are refused inside a batch: call them on their own.
    try:
        client.call("userfieldtype.update" if USER_TYPE_ID in known else "userfieldtype.add", field)
    except B24Error as exc:
        raise InstallError("register", f"userfieldtype: {exc}") from exc
    commands: dict = {}
    for placement in CARD_PLACEMENTS:
        # Unbind, then bind: a re-install never leaves two handlers in one place.
        commands[f"unbind_{placement}"] = ("placement.unbind", {"PLACEMENT": placement, "HANDLER": app_page})
        commands[f"bind_{placement}"] = ("placement.bind", {"PLACEMENT": placement, "HANDLER": app_page,
                                                             "TITLE": "WhatsApp (OLChat)"})
    commands["uninstall_event"] = ("event.bind", {"event": "ONAPPUNINSTALL",
                                                  "handler": url_for("b24.events", _external=True)})
    from ..bridge.connector import registration_commands

    # The Open Lines connector and its events (re-registering the same ID updates it).
    commands.update(registration_commands())
    result = client.batch(commands, halt=False)
    errors = {k: v for k, v in (result.errors or {}).items()
              if not k.startswith(("unbind_", "uninstall_event"))}
    if "connector" not in errors and result.get("connector") is False:
        errors["connector"] = "imconnector.register answered false"
    if errors:
        raise InstallError("register", "; ".join(f"{k}: {v}" for k, v in errors.items()))
    portal.installed = True
    db.session.commit()


def uninstall(member_id: str, application_token: str) -> bool:
    """Delete everything of the portal, if ``application_token`` is the one it installed with."""
    portal = db.session.scalar(db.select(Portal).filter_by(member_id=member_id))
    if portal is None or portal.kind != "bitrix" or not application_token_matches(portal, application_token):
        return False
    for table in PORTAL_TABLES:
        db.session.execute(delete(table).where(table.portal_id == portal.id))
    db.session.delete(portal)
    db.session.commit()
    _forget_portal(member_id)
    return True


def _forget_portal(member_id: str) -> None:
    from ..runtime import runtime

    runtime().portals.pop(member_id)


# ---------------------------------------------------------------- users


@dataclass(frozen=True)
class VerifiedUser:
    portal_id: int
    member_id: str
    user_id: str
    name: str
    is_admin: bool


def verify_user(member_id: str, domain: str, access_token: str, expires_in: int,
                card: tuple[int, int] | None = None) -> VerifiedUser:
    """Check a token a user's browser handed us (BX24.getAuth) against the stored portal.

    Raises InstallError('no_auth') for an unknown portal, a domain that is not
    the stored one, or a token Bitrix24 refuses; InstallError('unavailable')
    when Bitrix24 cannot be asked or is over its limits. The verdict is kept
    for the token's life, for every worker.

    ``card`` (entity type, id) rides in the same batch: the user's first look
    at a card costs one request to the portal, not two, which is what keeps 50
    operators opening cards at once inside the portal's 2-requests-a-second limit.
    """
    portal = db.session.scalar(db.select(Portal).filter_by(member_id=member_id))
    if portal is None or portal.kind != "bitrix":
        raise InstallError("no_auth", "unknown portal")
    if domain and domain.lower() != portal.domain.lower():
        raise InstallError("no_auth", "domain differs from the installed portal")
    token_hash = hashlib.sha256(f"{portal.id}:{access_token}".encode()).hexdigest()
    known = _known_verdict(portal.id, token_hash)
    if known is not None:
        return known
    from ..crm.bitrix import BitrixCrm
    from ..runtime import http_session

    client = B24Client(portal.domain, access_token, scheme=_cfg("OLCHAT_B24_SCHEME"),
                       connect_timeout=min(3.05, _timeout()), read_timeout=_timeout(),
                       session=http_session(("b24", portal.id)), retry_pauses=())
    crm = BitrixCrm(client)
    commands = {"me": ("profile", None), "app": ("app.info", None)}
    wants_card = card is not None and card[0] > 0 and card[1] > 0
    if wants_card:
        commands.update(crm.plan(*card))
    try:
        result = client.batch(commands)
        me = result.unwrap("me") or {}
        app_info = result.unwrap("app") or {}
    except (B24Unavailable, B24QueryLimit, B24Overload) as exc:
        raise InstallError("unavailable", str(exc)) from exc
    except B24Error as exc:
        raise InstallError("no_auth", str(exc)) from exc
    if not is_our_app(app_info):
        # A token of another app installed on the same portal proves nothing about ours.
        raise InstallError("no_auth", "the token belongs to another application")
    if not isinstance(me, dict) or not me.get("ID"):
        raise InstallError("no_auth", "Bitrix24 named no user")
    name = " ".join(str(p) for p in (me.get("NAME"), me.get("LAST_NAME")) if p).strip()
    user = VerifiedUser(portal.id, portal.member_id, str(me["ID"]), name, bool(me.get("ADMIN")))
    # Kept for the token's life but at most VERDICT_TTL: an admin demoted in Bitrix24
    # stops being one here within minutes, whatever lifetime the client claims.
    ttl = max(min(expires_in, VERDICT_TTL), 0) or VERDICT_TTL
    _remember_verdict(portal.id, token_hash, user, ttl)
    if wants_card:
        from ..crm.base import CrmError
        from ..widget.service import remember_card

        try:
            # Read with this user's token: it is also this user's verdict for the card.
            remember_card(PortalRef.of(portal), crm.card_from(card[0], card[1], result), reader=user.user_id)
        except CrmError:
            pass  # no rights, deleted...: the widget's own request will say so
    return user


def is_our_app(app_info) -> bool:
    """Tell whether ``app.info`` describes this application (its CODE; a local app's is its client id)."""
    if not isinstance(app_info, dict):
        return False
    expected = _cfg("OLCHAT_B24_APP_CODE") or _cfg("OLCHAT_B24_CLIENT_ID")
    return bool(expected) and hmac.compare_digest(str(app_info.get("CODE") or ""), str(expected))


def _known_verdict(portal_id: int, token_hash: str) -> VerifiedUser | None:
    from ..runtime import runtime

    verdicts = runtime().verdicts
    hit = verdicts.get(token_hash)
    if hit is not None and hit[0] > utcnow():
        return hit[1]
    row = db.session.scalar(db.select(TokenVerdict).filter_by(portal_id=portal_id, token_hash=token_hash))
    if row is None or row.expires_at <= utcnow():
        return None
    portal = db.session.get(Portal, portal_id)
    user = VerifiedUser(portal_id, portal.member_id, row.user_id, row.user_name, row.is_admin)
    verdicts.set(token_hash, (row.expires_at, user))
    return user


def _remember_verdict(portal_id: int, token_hash: str, user: VerifiedUser, ttl: int) -> None:
    from ..runtime import runtime

    until = utcnow() + timedelta(seconds=ttl)
    runtime().verdicts.set(token_hash, (until, user))
    # Expired verdicts of the portal go as new ones come: the table stays small.
    db.session.execute(delete(TokenVerdict).where(TokenVerdict.portal_id == portal_id,
                                                  TokenVerdict.expires_at <= utcnow()))
    row = get_or_create(TokenVerdict, {"user_id": user.user_id, "user_name": user.name, "is_admin": user.is_admin,
                                       "expires_at": until}, portal_id=portal_id, token_hash=token_hash)
    row.expires_at = until
    db.session.commit()

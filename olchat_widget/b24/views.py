"""The addresses an admin registers in Bitrix24: install page, events, field handler, app page."""
from __future__ import annotations

import json

from flask import Blueprint, current_app, g, request

from ..auth import PortalRef, WidgetUser, issue_token
from ..crm.base import entity_type_from_code
from ..models import Portal, db
from ..web import page
from . import portal as portals

bp = Blueprint("b24", __name__, url_prefix="/b24")


def _placement_options() -> dict:
    raw = request.form.get("PLACEMENT_OPTIONS") or "{}"
    try:
        options = json.loads(raw)
    except ValueError:
        return {}
    return options if isinstance(options, dict) else {}


def _lang() -> str:
    lang = (request.args.get("LANG") or request.form.get("LANG") or "").lower()
    return lang if lang in ("ru", "en") else current_app.config["OLCHAT_LOCALE"]


def _frame_portal() -> None:
    """Let the portal named in the query frame the page, if we know it (frame-ancestors)."""
    domain = (request.args.get("DOMAIN") or "").strip().lower()
    if domain:
        portal = db.session.scalar(db.select(Portal).filter_by(domain=domain))
        if portal is not None:
            g.frame_portal = PortalRef.of(portal)


_INSTALL_STATUS = {"no_auth": 401, "not_admin": 403, "unavailable": 503}


@bp.post("/install")
def install():
    """The app's install page (DEFAULT placement during installation)."""
    _frame_portal()
    g.locale = _lang()
    try:
        portal = portals.install_from_refresh_token(request.form.get("REFRESH_ID", ""),
                                                    application_token=request.form.get("APPLICATION_TOKEN"),
                                                    locale=_lang())
        g.frame_portal = PortalRef.of(portal)
        portals.register_widget(portal)
    except portals.InstallError as exc:
        db.session.rollback()
        # The reason only: the detail may quote Bitrix24's answer, which can carry tokens.
        current_app.logger.warning("install failed: %s", exc.reason)
        return page("b24/install.html", _INSTALL_STATUS.get(exc.reason, 200), ok=False, reason=exc.reason,
                    locale=g.locale)
    return page("b24/install.html", ok=True, reason=None, locale=g.locale)


@bp.post("/events")
def events():
    """ONAPPINSTALL stores the portal; ONAPPUNINSTALL (checked by application_token) removes it."""
    event = (request.form.get("event") or "").upper()
    auth = {key[5:-1]: value for key, value in request.form.items() if key.startswith("auth[")}
    if event == "ONAPPINSTALL":
        try:
            portal = portals.install_from_refresh_token(auth.get("refresh_token", ""),
                                                        application_token=auth.get("application_token"))
        except portals.InstallError as exc:
            db.session.rollback()
            return {"result": False, "error": exc.reason}, _INSTALL_STATUS.get(exc.reason, 503)
        return {"result": True, "member_id": portal.member_id}
    if event == "ONIMCONNECTORMESSAGEADD":
        return _operator_wrote(auth, request.form)
    if event in ("ONIMCONNECTORLINEDELETE", "ONIMCONNECTORSTATUSDELETE"):
        return _connector_removed(auth, request.form)
    if event == "ONAPPUNINSTALL":
        if portals.uninstall(auth.get("member_id", ""), auth.get("application_token", "")):
            return {"result": True}
        return {"result": False, "error": "application_token does not match"}, 403
    return {"result": False, "error": "unknown event"}, 400


def _event_portal(auth: dict):
    """The portal an app event is for, when its application token is the one stored at install."""
    portal = db.session.scalar(db.select(Portal).filter_by(member_id=auth.get("member_id", ""), kind="bitrix"))
    if portal is None or not portals.application_token_matches(portal, auth.get("application_token", "")):
        return None
    return portal


def _operator_wrote(auth: dict, form):
    """An operator answered in the Open Line: store it, queue the WhatsApp send, answer at once."""
    from ..bridge import outbound
    from ..bridge.connector import connector_id
    from ..jobs import enqueue

    portal = _event_portal(auth)
    if portal is None:
        return {"result": False, "error": "application_token does not match"}, 403
    connector, line, messages = outbound.parse_event(form)
    if connector != connector_id():
        return {"result": True}  # another connector's event: not ours to send
    for row_id in outbound.accept(portal, line, messages):
        enqueue("deliver_outbound", row_id)
    return {"result": True}


def _connector_removed(auth: dict, form):
    """An admin removed our connector from an Open Line in Bitrix24: that line is unbound here too."""
    from ..bridge.connector import connector_id, forget_openline

    portal = _event_portal(auth)
    if portal is None:
        return {"result": False, "error": "application_token does not match"}, 403
    # These two events spell their keys in lower case (data[connector], data[line]).
    data = {k.lower(): v for k, v in form.items()}
    if data.get("data[connector]") == connector_id() and data.get("data[line]", "").isdigit():
        forget_openline(portal.id, data["data[line]"])
    return {"result": True}


@bp.post("/token")
def token():
    """Trade the user's Bitrix24 auth (from BX24.getAuth) for a short-lived widget token."""
    data = request.get_json(silent=True) or {}
    access_token = str(data.get("access_token") or "")
    member_id = str(data.get("member_id") or "")
    if not access_token or not member_id:
        return {"error": "no_auth"}, 401
    card = None
    try:
        card = (int(data.get("entity_type") or 0), int(data.get("entity_id") or 0))
    except (TypeError, ValueError):
        card = None
    try:
        user = portals.verify_user(member_id, str(data.get("domain") or ""), access_token,
                                   int(data.get("expires_in") or 0), card=card)
    except portals.InstallError as exc:
        # unavailable: Bitrix24's side is down — the message names that cause.
        return {"error": exc.reason}, 401 if exc.reason == "no_auth" else 503
    portal = db.session.get(Portal, user.portal_id)
    lang = data.get("lang") if data.get("lang") in ("ru", "en") else portal.locale
    widget_token = issue_token(portal, WidgetUser(user.user_id, user.name, user.is_admin),
                               b24_token=access_token, locale=lang)
    return {"token": widget_token, "expires_in": current_app.config["OLCHAT_TOKEN_TTL"]}


@bp.post("/widget")
def widget_handler():
    """The user-field handler: the widget's frame inside a CRM card (view and edit mode)."""
    _frame_portal()
    options = _placement_options()
    entity_data = options.get("ENTITY_DATA") if isinstance(options.get("ENTITY_DATA"), dict) else {}
    entity_type = entity_data.get("entityTypeId") or entity_type_from_code(str(options.get("ENTITY_ID") or ""))
    try:
        entity_type = int(entity_type or 0)
        entity_id = int(options.get("ENTITY_VALUE_ID") or entity_data.get("entityId") or 0)
    except (TypeError, ValueError):
        entity_type, entity_id = 0, 0
    mode = "edit" if str(options.get("MODE", "view")).lower() == "edit" else "view"
    g.locale = _lang()
    return page("widget/shell.html", mode="bitrix", view="widget" if entity_type else "none",
                entity_type=entity_type, entity_id=entity_id, placement_mode=mode, member_id="", locale=g.locale)


@bp.post("/app")
def app_page():
    """The app page: a card's chat view from the card's activity placement or «Открыть приложение»."""
    _frame_portal()
    options = _placement_options()
    g.locale = _lang()
    placement = (request.form.get("PLACEMENT") or "").upper()
    phone, line = str(options.get("phone") or ""), str(options.get("line") or "")
    entity_type = entity_type_from_code(str(options.get("entity_type") or "")) or 0
    try:
        entity_id = int(options.get("entity_id") or options.get("ID") or 0)
    except (TypeError, ValueError):
        entity_id = 0
    if placement.startswith("CRM_") and placement.endswith("_DETAIL_ACTIVITY"):
        entity_type = entity_type_from_code(placement[: -len("_DETAIL_ACTIVITY")]) or 0
    if phone and line and entity_type:
        view = "chat"
    elif entity_type and entity_id:
        view = "card"
    else:
        view = "settings"
    return page("widget/shell.html", mode="bitrix", view=view, entity_type=entity_type, entity_id=entity_id,
                placement_mode="view", member_id="", phone=phone, line=line, locale=g.locale)

"""The addresses an admin registers in Bitrix24: install page, events, field handler, app page."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, g, request

from ..auth import PortalRef, WidgetUser, issue_token
from ..crm.base import entity_type_from_code
from ..i18n import t
from ..inputs import MAX_ID, loads_json, parse_id, parse_int
from ..models import Portal, db
from ..web import json_body, page
from . import portal as portals

bp = Blueprint("b24", __name__, url_prefix="/b24")


def _placement_options() -> dict:
    options = loads_json(request.form.get("PLACEMENT_OPTIONS") or "{}")
    return options if isinstance(options, dict) else {}


def _option_id(*values) -> int:
    """The first id given among ``values`` (absent or empty: 0); 400 for one that is not a Bitrix24 id."""
    for value in values:
        if value in (None, "", 0):
            continue
        number = parse_id(value if isinstance(value, (int, float)) else str(value))
        if number is None:
            abort(400)
        return number
    return 0


def _option_text(options: dict, name: str, limit: int) -> str:
    value = options.get(name)
    if value is None:
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool) or len(str(value)) > limit:
        abort(400)
    return str(value)


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
    data = json_body() if request.get_data(cache=True) else {}
    if not isinstance(data, dict):
        return _bad_token_request("body")
    fields = {}
    for name, limit in (("access_token", 2048), ("member_id", 128), ("domain", 255), ("lang", 8)):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit or "\x00" in value):
            return _bad_token_request(name)
        fields[name] = value or ""
    access_token, member_id = fields["access_token"], fields["member_id"]
    numbers = {}
    for name, high in (("expires_in", 86_400 * 365), ("entity_type", MAX_ID), ("entity_id", MAX_ID)):
        value = data.get(name)
        numbers[name] = 0 if value in (None, "") else parse_int(value, 0, high)
        if numbers[name] is None:
            return _bad_token_request(name)
    if not access_token or not member_id:
        return {"error": "no_auth"}, 401
    card = (numbers["entity_type"], numbers["entity_id"])
    try:
        user = portals.verify_user(member_id, fields["domain"], access_token, numbers["expires_in"], card=card)
    except portals.InstallError as exc:
        # unavailable: Bitrix24's side is down — the message names that cause.
        return {"error": exc.reason}, 401 if exc.reason == "no_auth" else 503
    portal = db.session.get(Portal, user.portal_id)
    lang = fields["lang"] if fields["lang"] in ("ru", "en") else portal.locale
    widget_token = issue_token(portal, WidgetUser(user.user_id, user.name, user.is_admin),
                               b24_token=access_token, locale=lang)
    return {"token": widget_token, "expires_in": current_app.config["OLCHAT_TOKEN_TTL"]}


def _bad_token_request(field: str):
    """400 in JSON (the caller is widget.js, not a person), naming the field that is wrong."""
    return {"error": "bad_request", "field": field,
            "message": t("err_bad_field", field=field) if field != "body" else t("err_bad_json")}, 400


@bp.post("/widget")
def widget_handler():
    """The user-field handler: the widget's frame inside a CRM card (view and edit mode)."""
    _frame_portal()
    options = _placement_options()
    entity_data = options.get("ENTITY_DATA") if isinstance(options.get("ENTITY_DATA"), dict) else {}
    code = _option_text(options, "ENTITY_ID", 64)
    # An object code we do not know (a user's profile, a task) is no card: the frame says where it works.
    entity_type = _option_id(entity_data.get("entityTypeId")) or entity_type_from_code(code) or 0
    entity_id = _option_id(options.get("ENTITY_VALUE_ID"), entity_data.get("entityId"))
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
    phone, line = _option_text(options, "phone", 64), _option_text(options, "line", 128)
    entity_type = entity_type_from_code(_option_text(options, "entity_type", 64)) or 0
    entity_id = _option_id(options.get("entity_id"), options.get("ID"))
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


@bp.post("/connector")
def connector_page():
    """What Bitrix24 opens from the contact center for one Open Line (SETTING_CONNECTOR): the shell, then its form."""
    _frame_portal()
    openline = str(_placement_options().get("LINE") or "")
    openline = openline if openline.isdigit() and openline.isascii() and len(openline) <= 12 else ""
    return page("widget/shell.html", mode="bitrix", view="connector", entity_type=0, entity_id=0,
                placement_mode="view", member_id="", openline=openline, locale=_lang())

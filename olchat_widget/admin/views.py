"""The standalone debug page, demo tokens, and the admin-only settings page."""
from __future__ import annotations

import socket
from datetime import timedelta

from flask import Blueprint, abort, current_app, g, make_response, request
from sqlalchemy import delete, text
from sqlalchemy.exc import SQLAlchemyError

from ..auth import WidgetUser, admin_required, issue_token
from ..crm.base import ENTITY_NAMES
from ..crypto import secrets_box
from ..gateway.base import GatewayError, GatewayUnauthorized
from ..gateway.egress import OutboundAddressRefused, policy_from_config
from ..bridge import connector, webhooks
from ..models import GatewayServer, LineDay, Portal, PortalLine, WebhookKey, db, get_or_create, utcnow
from ..phones.numbering import plan_for_app
from ..runtime import runtime
from ..i18n import t
from ..inputs import parse_int, parse_time
from ..web import fragment, json_body, page
from ..widget import service

bp = Blueprint("admin", __name__)

DEMO_USERS = {
    "admin": WidgetUser("1", "Демо-администратор", True),
    "operator": WidgetUser("2", "Демо-оператор", False),
}
TYPE_TITLES = {1: ("Лид", "Lead"), 2: ("Сделка", "Deal"), 3: ("Контакт", "Contact"), 4: ("Компания", "Company"),
               7: ("Предложение", "Quote"), 31: ("Счёт", "Invoice")}


def _debug_enabled() -> None:
    if not current_app.config["OLCHAT_DEBUG_PAGE"]:
        abort(404)


def demo_portal() -> Portal:
    """Return the embedded demo portal's row, creating it on first use."""
    rt = runtime()
    return get_or_create(Portal, {"domain": str(rt.demo_data["portal"].get("domain", "demo")), "kind": "demo",
                                  "installed": True}, member_id=rt.demo_member_id)


@bp.get("/healthz")
def healthz():
    """Answer load balancers: 200 ``ok`` when the database answers, 503 otherwise (no auth, never cached)."""
    try:
        db.session.execute(text("SELECT 1"))
        body, status = "ok\n", 200
    except SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.warning("healthz: database unavailable: %s", type(exc).__name__)
        body, status = "database unavailable\n", 503
    response = make_response(body, status)
    response.mimetype = "text/plain"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def debug_page():
    """List the demo portal's cards; each opens the real widget in a card-width frame."""
    _debug_enabled()
    locale = request.args.get("lang", current_app.config["OLCHAT_LOCALE"])
    g.locale = locale
    cards = []
    for entity_type, entity_id, title in runtime().demo_crm.list_cards():
        kind = TYPE_TITLES.get(entity_type, ("Смарт-процесс", "Smart process"))[0 if locale == "ru" else 1]
        cards.append({"type": entity_type, "id": entity_id, "title": title, "kind": kind,
                      "code": ENTITY_NAMES.get(entity_type, f"dynamic_{entity_type}")})
    return page("admin/debug.html", cards=cards, locale=locale, portal=runtime().demo_data["portal"])


@bp.post("/debug/token")
def debug_token():
    """Issue a widget token for the demo portal (the debug page's stand-in for BX24.getAuth)."""
    _debug_enabled()
    data = json_body() if request.get_data(cache=True) else {}
    if not isinstance(data, dict):
        return {"error": "bad_request", "message": t("err_bad_json")}, 400
    user = DEMO_USERS.get(str(data.get("user") or "admin"), DEMO_USERS["admin"])
    locale = data.get("lang") if data.get("lang") in ("ru", "en") else current_app.config["OLCHAT_LOCALE"]
    token = issue_token(demo_portal(), user, locale=locale)
    return {"token": token, "expires_in": current_app.config["OLCHAT_TOKEN_TTL"], "user": user.name}


# ---------------------------------------------------------------- settings (admin only)


@bp.get("/admin/settings")
def settings_shell():
    """The settings page's frame (debug entry); its form loads with the admin's token."""
    _debug_enabled()
    return debug_shell("settings")


def debug_shell(view: str):
    """The frame page of a debug-page view (settings, the demo Open Lines) on the demo portal."""
    return page("widget/shell.html", mode="debug", view=view, entity_type=0, entity_id=0,
                placement_mode="view", member_id=runtime().demo_member_id,
                locale=request.args.get("lang", current_app.config["OLCHAT_LOCALE"]))


@bp.get("/admin/settings/form")
@admin_required
def settings_form():
    return _settings_form()


TIME_FIELDS = ("orange_start", "green_start", "green_end", "orange_end")
# name, lowest, highest, what an empty field means (None: the deployment's default)
NUMBER_FIELDS = (("max_phones", 1, 50, None), ("check_budget", 0, 10_000, None), ("recheck_minutes", 0, 1440, 10))
TEXT_FIELDS = (*TIME_FIELDS, "max_phones", "check_budget", "recheck_minutes", "default_region")
FLAGS = ("always_show", "auto_show", "timeline_default")


@bp.post("/admin/settings/form")
@admin_required
def save_settings():
    """Save the widget settings; a rejected save shows the admin's input back and says per field what is wrong."""
    typed = {name: request.form.get(name, "")[:100] for name in TEXT_FIELDS}
    typed.update({name: request.form.get(name) == "1" for name in FLAGS})
    values, errors = _read_settings(typed)
    if errors:
        return _settings_form(errors=errors, typed=typed, status=422)
    settings = service.settings_row(g.portal.id)
    for name, value in values.items():
        setattr(settings, name, value)
    db.session.commit()
    service.forget_settings(g.portal.id)
    return _settings_form(saved=True)


def _read_settings(typed: dict) -> tuple[dict, dict[str, str]]:
    """The settings ``typed`` asks for, and each refused field with the sentence that says why."""
    values = {name: typed[name] for name in FLAGS}
    errors: dict[str, str] = {}
    for name in TIME_FIELDS:
        value = parse_time(typed[name].strip())
        if value is None:
            errors[name] = t("err_bad_time")
        values[name] = value
    if not errors and not (values["orange_start"] <= values["green_start"] <= values["green_end"]
                           <= values["orange_end"]):
        errors["order"] = t("err_time_order")
    for name, low, high, empty in NUMBER_FIELDS:
        raw = typed[name].strip()
        value = empty if raw == "" else parse_int(raw, low, high)
        if raw != "" and value is None:
            errors[name] = t("err_number_range" if empty is not None else "err_number_range_or_empty",
                             low=low, high=high)
        values[name] = value
    region = typed["default_region"].strip().upper()
    if region and (len(region) != 2 or not (region.isascii() and region.isalpha())):
        errors["default_region"] = t("err_region")
    values["default_region"] = region or None
    return values, errors


def _typed_from(settings) -> dict:
    """The form's fields as the stored settings fill them."""
    typed = {name: getattr(settings, name) or "" for name in TIME_FIELDS}
    for name, _low, _high, _empty in NUMBER_FIELDS:
        value = getattr(settings, name)
        typed[name] = "" if value is None else str(value)
    typed["default_region"] = settings.default_region or ""
    typed.update({name: bool(getattr(settings, name)) for name in FLAGS})
    return typed


# ---------------------------------------------------------------- WhatsApp gateway (admin only)


@bp.post("/admin/gateway")
@admin_required
def save_gateway():
    """Connect (or change) the portal's WAHA server; the API key is stored encrypted."""
    base_url = request.form.get("base_url", "").strip().rstrip("/")
    api_key = request.form.get("api_key", "")
    server = db.session.scalar(db.select(GatewayServer).filter_by(portal_id=g.portal.id))
    errors = _gateway_url_errors(base_url)
    if not errors and server is not None and server.base_url != base_url and not api_key:
        # The stored key was entered for the stored server: it never goes to another host.
        errors = ["api_key", "api_key_again"]
    if errors:
        return _settings_form(errors=errors, typed_base_url=base_url, status=422)
    if server is None:
        server = GatewayServer(portal_id=g.portal.id, base_url=base_url)
        db.session.add(server)
    if server.base_url != base_url:
        # Sessions of another server are not this portal's lines any more.
        db.session.execute(delete(PortalLine).where(PortalLine.portal_id == g.portal.id))
    server.base_url = base_url
    if api_key:  # an empty field keeps the stored key (it is never shown back)
        server.api_key_enc = secrets_box(current_app).seal(api_key)
    db.session.commit()
    runtime().lines.pop(g.portal.id)
    # The same server with a new API key: its lines (if any stayed) get our webhook through it.
    return _settings_form(saved=True, webhook_error=webhooks.set_portal_webhooks(g.portal))


def _gateway_url_errors(base_url: str) -> list[str]:
    """Return the field errors of a WAHA URL an admin entered (none: our server may connect there)."""
    try:
        policy_from_config(current_app.config).check_url(base_url)
    except OutboundAddressRefused as exc:
        return ["base_url"] if exc.kind == "url" else ["base_url", "base_url_refused"]
    except (socket.gaierror, UnicodeError):
        return ["base_url", "base_url_unreachable"]
    return []


@bp.post("/admin/gateway/disconnect")
@admin_required
def disconnect_gateway():
    db.session.execute(delete(PortalLine).where(PortalLine.portal_id == g.portal.id))
    # The server's webhook key goes with it: a later server (maybe another portal's, with the same id) gets its own.
    db.session.execute(delete(WebhookKey).where(WebhookKey.portal_id == g.portal.id))
    db.session.execute(delete(GatewayServer).where(GatewayServer.portal_id == g.portal.id))
    db.session.commit()
    runtime().lines.pop(g.portal.id)
    return _settings_form(saved=True)


@bp.post("/admin/lines")
@admin_required
def save_lines():
    """Choose which of the server's sessions are this portal's lines, with display names."""
    server = db.session.scalar(db.select(GatewayServer).filter_by(portal_id=g.portal.id))
    if server is None:
        return _settings_form(errors=["base_url"], status=422)
    chosen = request.form.getlist("session")
    db.session.execute(delete(PortalLine).where(PortalLine.portal_id == g.portal.id))
    for name in dict.fromkeys(chosen):
        if not name or len(name) > 128:
            continue
        display = request.form.get(f"name_{name}", "").strip()[:255] or name
        db.session.add(PortalLine(portal_id=g.portal.id, server_id=server.id, line_id=name, name=display))
    db.session.commit()
    runtime().lines.pop(g.portal.id)
    # The chosen sessions post their events to us: set their webhook on the server.
    return _settings_form(saved=True, webhook_error=webhooks.set_portal_webhooks(g.portal))


@bp.post("/admin/gateway/webhook-key")
@admin_required
def regenerate_webhook_key():
    """«Новый ключ»: a new webhook key for the portal's server, set on its lines at once."""
    server = webhooks.own_server(g.portal.id)
    if server is None:
        return _settings_form(errors=["base_url"], status=422)
    webhooks.regenerate_key(server)
    return _settings_form(saved=True, webhook_error=webhooks.set_portal_webhooks(g.portal))


def _gateway_context() -> dict:
    """What the gateway section shows: the server, its sessions, which are lines."""
    server = db.session.scalar(db.select(GatewayServer).filter_by(portal_id=g.portal.id))
    if server is None:
        return {"server": None}
    lines = {line.line_id: line.name for line in
             db.session.scalars(db.select(PortalLine).filter_by(portal_id=g.portal.id))}
    key = secrets_box(current_app).open(server.api_key_enc) if server.api_key_enc else None
    from ..gateway.waha import WahaGateway

    sessions, error = [], None
    # The stored URL is a portal admin's: the probe goes through the outbound policy too.
    probe = WahaGateway(server.base_url, key, connect_timeout=current_app.config["OLCHAT_GATEWAY_CONNECT_TIMEOUT"],
                        read_timeout=current_app.config["OLCHAT_GATEWAY_READ_TIMEOUT"],
                        policy=policy_from_config(current_app.config))
    try:
        sessions = probe.list_lines()
    except GatewayUnauthorized:
        error = "unauthorized"
    except GatewayError:
        # Refused address, refused connection, timeout, TLS, an answer that is not
        # WAHA's: one word for all, so the page is no port scanner.
        error = "unavailable"
    finally:
        probe.close()
    receiver = webhooks.receiver_for(g.portal)
    return {"server": server, "lines": lines, "sessions": sessions, "gateway_error": error,
            "key_hint": ("••••" + key[-4:]) if key and len(key) >= 8 else ("••••" if key else ""),
            # What to paste into the server by hand when we cannot set it (only the portal's own server's key:
            # the deployment's key is the deployment's secret, never shown to a portal).
            "webhook": receiver if receiver and receiver.server is not None else None,
            "webhook_events": webhooks.EVENTS}


def _settings_form(*, errors=(), typed=None, typed_base_url=None, saved=False, status=200, webhook_error=None):
    settings = service.settings_row(g.portal.id)
    since = (utcnow() - timedelta(days=6)).strftime("%Y-%m-%d")
    days = db.session.scalars(db.select(LineDay).filter(LineDay.portal_id == g.portal.id, LineDay.day >= since)
                              .order_by(LineDay.day.desc(), LineDay.line_id)).all()
    plan = plan_for_app(current_app)
    # errors: field → what is wrong (a list names fields whose sentence the template knows).
    errors = errors if isinstance(errors, dict) else dict.fromkeys(errors, "")
    return fragment("admin/_settings_form.html", status, settings=settings, errors=errors, saved=saved,
                    typed=typed or _typed_from(settings), typed_base_url=typed_base_url,
                    days=days, line_names=_line_names({day.line_id for day in days}),
                    plan=plan, budget=service.budget_of(service.settings_of(g.portal)),
                    default_max=current_app.config["OLCHAT_MAX_PHONES"], **_gateway_context(),
                    openline_bindings=connector.bindings(g.portal.id), webhook_error=webhook_error,
                    **templates.section_context())


def _line_names(line_ids: set[str]) -> dict[str, str]:
    """The names people gave the lines in the statistics (the portal's choice, else the gateway's)."""
    if not line_ids:
        return {}
    names = {row.line_id: row.name for row in db.session.scalars(
        db.select(PortalLine).filter(PortalLine.portal_id == g.portal.id, PortalLine.line_id.in_(line_ids)))}
    if line_ids - names.keys():
        try:
            names.update({line.id: line.name for line in service.portal_lines(g.portal)
                          if line.id in line_ids and line.id not in names and line.name})
        except GatewayError:
            pass  # the gateway is down: such lines show by their id
    return names


from . import templates  # noqa: E402 - the «Шаблоны» section's views, on this blueprint

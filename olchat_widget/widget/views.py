"""The widget blueprint: the shell page and its fragments.

Every block (start, lines, phones, one phone row, history, send form) has its
own URL and refreshes on its own. Views read the request, call the service
functions and render; nothing else.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask import Blueprint, abort, current_app, g, make_response, render_template, request
from markupsafe import Markup

from .. import clock
from ..auth import widget_required
from ..compression import compressed
from ..bridge import mirror
from ..crm.base import CrmError
from ..errors import crm_reason, error_response, gateway_reason
from ..gateway.guard import CHECKING, UNKNOWN, YES, Status, unknown_reason
from ..gateway.outbox import FAILED, SENT, UNKNOWN as SEND_UNKNOWN, send_once
from ..i18n import t
from ..templating import checked_ago
from ..inputs import parse_int
from ..jobs import enqueue
from ..runtime import gateway_for, runtime
from ..web import card_args, fragment, is_htmx, page
from ..bridge.statuses import with_stored_acks
from . import live, message_templates, service, timeline

bp = Blueprint("widget", __name__)

MAX_TEXT = 4096  # WhatsApp's limit for one text message
KEEP_TEXT = 2 * MAX_TEXT  # an over-long text up to this is shown back for trimming
MAX_OFFSET = 100_000  # history pages: far past any chat a person scrolls back through


@bp.context_processor
def _limits() -> dict:
    """The send form's counter shows the same limit the server enforces."""
    return {"max_text": MAX_TEXT}


def text_length(text: str) -> int:
    """A text's length as the operator counts it: a line break is one character, however the browser sent it."""
    return len(text.replace("\r\n", "\n"))


# ---------------------------------------------------------------- shell


def _debug_entry() -> None:
    """The GET entries serve the debug page's demo portal only; production turns them off."""
    if not current_app.config["OLCHAT_DEBUG_PAGE"]:
        abort(404)


@bp.get("/widget")
def shell():
    """Render the widget's frame page for a demo card (the debug page opens it)."""
    _debug_entry()
    entity_type, entity_id = card_args()
    return page("widget/shell.html", mode="debug", view="widget", entity_type=entity_type, entity_id=entity_id,
                placement_mode=request.args.get("mode", "view"), member_id=runtime().demo_member_id,
                locale=request.args.get("lang", current_app.config["OLCHAT_LOCALE"]))


@bp.get("/widget/start")
@compressed  # no secret in this answer: see compression.py
@widget_required
def start():
    """Show «Отобразить виджет», or the whole widget where the portal always shows it (F13) or where
    every number's status is already remembered (nothing would be checked, so no ban risk)."""
    entity_type, entity_id = card_args()
    settings = service.settings_of(g.portal)
    if settings.always_show or request.args.get("show") == "1":
        return _body(entity_type, entity_id)
    if settings.auto_show:
        context = _phones_context(entity_type, entity_id)
        # A CRM error here is no reason to show one: the button stays, and pressing it says what is wrong.
        if isinstance(context, dict) and all(item["status"] is not None for item in context["rows"]):
            return fragment("widget/_body.html", entity_type=entity_type, entity_id=entity_id,
                            placement_mode=request.values.get("mode", "view"), **context)
    return fragment("widget/_hidden.html", entity_type=entity_type, entity_id=entity_id)


@bp.get("/widget/body")
@compressed  # no secret in this answer: see compression.py
@widget_required
def body():
    entity_type, entity_id = card_args()
    return _body(entity_type, entity_id)


@bp.post("/widget/refresh")
@compressed  # no secret in this answer: see compression.py
@widget_required
def refresh():
    """«Обновить данные виджета»: reload the card and the lines now; re-check only numbers whose last
    check is older than the portal's re-check age (every press must not spend the line's budget)."""
    entity_type, entity_id = card_args()
    service.forget_card(g.portal, entity_type, entity_id)
    try:
        card, fetched_at = service.load_card(g.portal, g.user.id, entity_type, entity_id, fresh=True)
    except CrmError as exc:
        return _under_header(error_response(crm_reason(exc), retry=False), entity_type, entity_id,
                             request.values.get("mode", "view"))
    settings = service.settings_of(g.portal)
    phones = service.phone_list(g.portal, settings, card, fetched_at, locale=g.locale)
    runtime().guard.forget_checked_before(g.portal.id, [row.e164 for row in phones.rows],
                                          clock.utcnow() - service.recheck_age(settings))
    # The lines are asked again in this answer too, so rows with a remembered status render whole at once
    # (a failure is the lines block's to show: it loads itself when the lines are not known).
    service.choose_line(g.portal, g.user.id, request.values.get("line"), fresh=True)
    trigger = {"olchat-set-value": {"value": clock.now().isoformat(timespec="seconds")}}
    return _body(entity_type, entity_id, trigger=trigger)


def _body(entity_type: int, entity_id: int, trigger: dict | None = None):
    placement_mode = request.values.get("mode", "view")
    # No «Повторить» inside the body: it would put a second body into this one; the header's
    # «Обновить данные виджета» is the retry (and what the CRM messages tell to press).
    phones = _phones_context(entity_type, entity_id, retry=False)
    if not isinstance(phones, dict):
        return _under_header(phones, entity_type, entity_id, placement_mode)
    return fragment("widget/_body.html", trigger=trigger, entity_type=entity_type, entity_id=entity_id,
                    placement_mode=placement_mode, **phones)


def _under_header(error, entity_type: int, entity_id: int, placement_mode: str):
    """An error fragment in the widget's body, under its header: the refresh button stays on every error.
    The response (its status and headers, X-OLChat-Reauth included) is kept; only its HTML is wrapped."""
    if not is_htmx():
        return error
    error.set_data(render_template("widget/_body_error.html", t=t, entity_type=entity_type, entity_id=entity_id,
                                   placement_mode=placement_mode,
                                   error_html=Markup(error.get_data(as_text=True))))  # our own escaped fragment
    return error


# ---------------------------------------------------------------- lines (F6, B4)


@bp.get("/widget/lines")
@compressed  # no secret in this answer: see compression.py
@widget_required
def lines():
    entity_type, entity_id = card_args()
    choice = service.choose_line(g.portal, g.user.id, request.args.get("line"))
    return fragment("widget/_lines.html", choice=choice, entity_type=entity_type, entity_id=entity_id,
                    error_reason=gateway_reason(choice.error) if choice.error else None)


@bp.post("/widget/lines")
@compressed  # no secret in this answer: see compression.py
@widget_required
def choose_line():
    """Remember the user's line and tell the phones block to follow it."""
    entity_type, entity_id = card_args()
    choice = service.choose_line(g.portal, g.user.id, request.form.get("line"))
    if choice.chosen is not None and choice.chosen.id == request.form.get("line"):
        service.remember_line(g.portal, g.user.id, choice.chosen.id)
    lines_html = render_template("widget/_lines.html", choice=choice, entity_type=entity_type,
                                 entity_id=entity_id, error_reason=gateway_reason(choice.error) if choice.error else None)
    # The phones block follows the new line in the same answer (out of band): no second round trip.
    phones = _phones_context(entity_type, entity_id)
    if not isinstance(phones, dict):
        return make_response(lines_html)
    phones_html = render_template("widget/_phones.html", entity_type=entity_type, entity_id=entity_id, oob=True,
                                  **phones)
    return make_response(lines_html + phones_html)


# ---------------------------------------------------------------- phones (F1–F4, F7–F9)


@bp.get("/widget/phones")
@compressed  # no secret in this answer: see compression.py
@widget_required
def phones():
    """The card's phones at once; statuses nobody knows yet load row by row."""
    entity_type, entity_id = card_args()
    context = _phones_context(entity_type, entity_id)
    if not isinstance(context, dict):
        return context
    # The same card is rendered again and again with the same inputs (operators
    # reopen cards, blocks refresh): keep the HTML for a minute, keyed by every
    # input that changes it, the minute of the clients' clocks included.
    key = _phones_key(entity_type, entity_id, context)
    html = runtime().fragments.get(key)
    if html is None:
        html = render_template("widget/_phones.html", entity_type=entity_type, entity_id=entity_id, **context)
        runtime().fragments.set(key, html)
    return make_response(html)


def _phones_key(entity_type: int, entity_id: int, context: dict) -> tuple:
    line = context["line"]
    phone_list = context["phone_list"]
    rows = tuple(
        (item["row"].e164, item["row"].time.text, item["row"].time.light,
         (item["status"].state, item["status"].reason, item["status"].chat_id) if item["status"] else None,
         item["chat"] if item["chat"] in (None, "unknown") else bool(item["chat"]), item["b24_chat"],
         checked_ago(item["status"].checked_at) if item["status"] else None)
        for item in context["rows"])
    return (g.portal.id, g.locale, entity_type, entity_id, phone_list.fetched_at, phone_list.total,
            len(phone_list.invalid), (line.id, line.status, line.reachout_restricted) if line else None,
            rows, request.script_root)


def _phones_context(entity_type: int, entity_id: int, retry: bool = True):
    try:
        card, fetched_at = service.load_card(g.portal, g.user.id, entity_type, entity_id)
    except CrmError as exc:
        return error_response(crm_reason(exc), retry=retry)
    settings = service.settings_of(g.portal)
    phone_list = service.phone_list(g.portal, settings, card, fetched_at, locale=g.locale)
    # Only what is already remembered: the first paint never waits for the gateway.
    known = runtime().guard.known(g.portal.id, [row.e164 for row in phone_list.rows])
    choice = _cached_line_choice()
    rows = [_row_context(row, known.get(row.e164), choice) for row in phone_list.rows]
    return {"phone_list": phone_list, "rows": rows, "line": choice}


def _cached_line_choice():
    """The chosen line when lines are already known; None rather than waiting for the gateway."""
    if runtime().lines.get(g.portal.id) is None:
        return None
    choice = service.choose_line(g.portal, g.user.id, request.values.get("line"))
    return choice.chosen


def _row_context(row, status: Status | None, line) -> dict:
    chat = None
    if status is not None and status.state == YES and status.chat_id:
        # Without a known line the chat is unknown too: the row then loads itself.
        chat = _known_chat(line.id, row.e164, status.chat_id) if line is not None else "unknown"
    return {"row": row, "status": status, "line": line, "chat": chat, "b24_chat": _openline_chat(line, row.e164)}


def _openline_chat(line, phone: str) -> str | None:
    """On a line bound to an Open Line: the client's Open Lines chat we know of (whichever card it is bound to)."""
    return mirror.chat_for_card(g.portal.id, line.id, phone) if line is not None else None


def _messenger_link(b24_chat: str | None) -> str | None:
    """The chat's address in the portal's messenger: shown where no Bitrix24 frame can open it (debug page)."""
    if not b24_chat or g.portal.kind != "bitrix":
        return None
    return f"https://{g.portal.domain}/online/?IM_LINES=chat{b24_chat}"


def _known_chat(line_id: str, phone: str, chat_id: str):
    """A chat lookup that never calls the gateway (first paint); None when unknown."""
    hit = runtime().chats.get((g.portal.id, line_id, chat_id))
    if hit is None:
        return "unknown"
    return hit or None


@bp.get("/widget/phone")
@compressed  # no secret in this answer: see compression.py
@widget_required
def phone_row():
    """One phone row with its WhatsApp status, checked through the guard if nobody knows it yet."""
    entity_type, entity_id = card_args()
    row = _card_row(entity_type, entity_id)
    choice = service.choose_line(g.portal, g.user.id, request.args.get("line"))
    line = choice.chosen
    if choice.error is not None:
        # Lines cannot be listed (gateway down, key refused): what is remembered still counts.
        remembered = runtime().guard.known(g.portal.id, [row.e164]).get(row.e164)
        status = remembered or Status(UNKNOWN, reason=unknown_reason(choice.error))
    else:
        status = _presence(row.e164, line)
    chat = None
    if status.state == YES and line is not None and line.can_send and status.chat_id:
        chat = service.find_chat(g.portal, line.id, row.e164, status.chat_id)
    return fragment("widget/_phone_row.html", entity_type=entity_type, entity_id=entity_id,
                    row=row, status=status, line=line, chat=chat, b24_chat=_openline_chat(line, row.e164))


def _card_row(entity_type: int, entity_id: int):
    """The row of ``phone`` on this card; 404 for a number that is not the card's.

    Checks, chats and sends are only ever made for numbers of a card the user
    opened: the widget is not a way to probe arbitrary numbers.
    """
    phone = request.values.get("phone", "")
    card, fetched_at = service.load_card(g.portal, g.user.id, entity_type, entity_id)
    phone_list = service.phone_list(g.portal, service.settings_of(g.portal), card, fetched_at, locale=g.locale)
    row = phone_list.row(phone)
    if row is None:
        abort(404)
    return row


def _whatsapp_target(entity_type: int, entity_id: int):
    """Resolve (row, line, chat id) for an action on a number with WhatsApp, or an error response."""
    row = _card_row(entity_type, entity_id)
    choice = service.choose_line(g.portal, g.user.id, request.values.get("line"))
    if choice.error is not None:
        return error_response(gateway_reason(choice.error), retry=False, state="")
    line = choice.chosen
    if line is None:
        return error_response("line", retry=False, state=t("no_lines"))
    status = _presence(row.e164, line)
    if status.state in (UNKNOWN, CHECKING):
        return error_response("gateway", retry=False)
    if status.state != YES or not status.chat_id:
        return _no_whatsapp()
    return row, line, status.chat_id


def _presence(phone: str, line) -> Status:
    settings = service.settings_of(g.portal)
    return runtime().guard.presence(
        g.portal.id, phone, line_id=line.id if line is not None and line.can_send else None,
        gateway=gateway_for(g.portal), budget=service.budget_of(settings))


def _no_whatsapp():
    return fragment("errors/_fragment.html", 409, title=t("err_no_whatsapp_title"),
                    body=t("err_no_whatsapp_body"), reason="no_whatsapp", retry_url=None)


@bp.post("/widget/chat")
@compressed  # no secret in this answer: see compression.py
@widget_required
def create_chat():
    """«Создать чат»: start the chat on the chosen line and open it."""
    entity_type, entity_id = card_args()
    target = _whatsapp_target(entity_type, entity_id)
    if not isinstance(target, tuple):
        return target
    row, line, chat_id = target
    if not line.can_send:
        return error_response("line", retry=False, state=t("state_" + line.status))
    b24_chat = None
    if mirror.binding_of(g.portal.id, line.id) is not None:
        # The line serves an Open Line: the chat is the client's Open Lines chat, opened in the messenger.
        try:
            b24_chat = mirror.start_chat(g.portal, line.id, row.e164, g.user.id,
                                         mirror.address_holder(entity_type, entity_id, row.owners))
        except mirror.ChatError:
            return error_response("openline", retry=False)
    service.create_chat(g.portal, line.id, row.e164, chat_id)
    open_event = {"line": line.id, "phone": row.e164, "entity_type": entity_type, "entity_id": entity_id}
    if b24_chat:
        open_event["b24_chat"] = b24_chat
    return fragment("widget/_phone_row.html", trigger={"olchat-open-chat": open_event},
                    entity_type=entity_type, entity_id=entity_id, row=row,
                    status=Status(YES, chat_id), line=line, chat=True, b24_chat=b24_chat,
                    b24_link=_messenger_link(b24_chat))


# ---------------------------------------------------------------- send (F10, B6)


@bp.get("/widget/compose")
@widget_required
def compose():
    entity_type, entity_id = card_args()
    target = _whatsapp_target(entity_type, entity_id)
    if not isinstance(target, tuple):
        return target
    row, line, _ = target
    return fragment("widget/_compose.html", entity_type=entity_type, entity_id=entity_id, row=row, line=line,
                    key=uuid.uuid4().hex, text="", notice=None, publish=_publish_box(line),
                    **_compose_options(entity_id))


@bp.post("/widget/send")
@widget_required
def send():
    """«Отправить сообщение»: send once per form key; on failure keep the text and say why."""
    posted = posted_form()
    if not isinstance(posted, PostedForm):
        return posted
    entity_type, entity_id, key, row, line, chat_id = posted.target
    publish, options = posted.publish, posted.options
    text = request.form.get("text", "")
    template_state = _template_state(entity_type, entity_id, row, line, text)

    def form(notice, *, new_key=False, keep_text=True, confirm=False, trigger=None):
        # After a send the next message starts clean: no template, nothing left open.
        state = template_state if keep_text else {"template_id": None, "unresolved": ()}
        return fragment("widget/_compose.html", trigger=trigger, entity_type=entity_type,
                        entity_id=entity_id, row=row, line=line, key=uuid.uuid4().hex if new_key else key,
                        text=text if keep_text else "", notice=notice, confirm=confirm,
                        publish=publish, **options, **state)

    if not text.strip():
        return form({"kind": "error", "text": t("empty_message")})
    if text_length(text) > MAX_TEXT:
        # widget.js refuses an over-long text before sending (its counter shows it), so only a
        # script or a browser without it gets here. A little over: keep the text (and show the
        # counter) so the operator can trim it. Far over (the request
        # limit still lets 256 KB through): not a draft anyone edits in a card-width box,
        # and echoing it would double an abusive client's traffic — refuse without it.
        return form({"kind": "error", "text": t("too_long", n=MAX_TEXT)}, keep_text=len(text) <= KEEP_TEXT)
    if template_state["unresolved"]:
        # What the template could not fill is still in the text: sending it would show «{{deal.title}}» to the client.
        return form({"kind": "error", "text": t("tpl_unresolved_refused",
                                                names=", ".join(template_state["unresolved"]))})
    outgoing = _with_name(text) if options["show_name"] else text
    if text_length(outgoing) > MAX_TEXT:
        over = text_length(outgoing) - MAX_TEXT
        return form({"kind": "error", "text": t("too_long_with_name", n=MAX_TEXT, over=over)})
    if not line.can_send:
        return form({"kind": "error", "text": t("err_line_body", state=t("state_" + line.status))})
    if row.time.light == "red" and request.form.get("confirm") != "1":
        return form({"kind": "warning", "text": t("red_zone_confirm", time=row.time.text)}, confirm=True)

    if request.form.get("show_name_offered") == "1":
        service.remember_show_name(g.portal, g.user.id, options["show_name"])
    # The outbox key alone decides whether this is a new send: a repeated press finds its row, whatever the text.
    message = send_once(gateway_for(g.portal), portal_id=g.portal.id, key=key, user_id=g.user.id,
                        line_id=line.id, phone=row.e164, chat_id=chat_id, text=outgoing)
    if message.status == SENT:
        service.create_chat(g.portal, line.id, row.e164, chat_id)
        if publish:
            _publish(message)
        if options["timeline"]:
            _record_in_timeline(message, text, entity_type, entity_id, row, line)
        event = {"line": line.id, "phone": row.e164}
        return form({"kind": "ok", "text": t("sent")}, new_key=True, keep_text=False,
                    trigger={"olchat-message-sent": event})
    if message.status == SEND_UNKNOWN:
        # Same key: a retry looks the message up before anything is sent again.
        return form({"kind": "warning", "text": t("send_unknown")})
    if message.status == FAILED:
        reason = {"line_not_connected": "err_line_body", "unauthorized": "err_gateway_auth_body",
                  "rate_limited": "err_rate_body"}.get(message.error or "", "send_gateway_down")
        # A fresh key: the failed send is final, the next press is a new attempt.
        return form({"kind": "error", "text": t("send_failed") + ". " + t(reason, state=t("state_FAILED"))},
                    new_key=True)
    return form({"kind": "warning", "text": t("err_busy_body")})


@dataclass(frozen=True)
class PostedForm:
    """A posted send form (text, file or template pick): its card, key and WhatsApp target, its boxes."""

    target: tuple  # (entity_type, entity_id, key, row, line, chat_id)
    publish: bool | None  # «Публиковать в чат» as posted; None where the line does not offer it
    options: dict  # the other boxes as posted (_posted_options)


def posted_form(key_ok=lambda key: bool(key) and len(key) <= 64):
    """Read the posted send form; the answer to give instead when its card has no WhatsApp target."""
    entity_type, entity_id = card_args()
    key = request.form.get("key", "")
    if not key_ok(key):
        abort(400)
    target = _whatsapp_target(entity_type, entity_id)
    if not isinstance(target, tuple):
        return target
    row, line, chat_id = target
    # «Публиковать в чат» is offered only on a line bound to an Open Line; unticked, the form sends nothing.
    publish = (request.form.get("publish") == "1") if _publish_box(line) is not None else None
    return PostedForm((entity_type, entity_id, key, row, line, chat_id), publish, _posted_options(entity_id))


def _publish_box(line) -> bool | None:
    """«Публиковать в чат» as a fresh form shows it: ticked on a line bound to an Open Line (as in the
    original product); None where it is not offered."""
    return True if mirror.binding_of(g.portal.id, line.id) is not None else None


def _publish(message) -> None:
    """Queue the sent message for the Open Lines chat; the send is done whatever Bitrix24 does later."""
    row_id = mirror.publish_send(g.portal.id, message)
    if row_id is not None:
        try:
            enqueue("deliver_mirror", row_id)
        except Exception:  # noqa: BLE001 - the queue refused (or, immediate, Bitrix24 failed): the sweep retries
            current_app.logger.warning("mirror of message %s left for the sweep", message.id)


def _compose_options(entity_id: int) -> dict:
    """The send form's boxes as a fresh form shows them: the user's «Показывать имя сотрудника», the portal's
    «Создавать дело» (a card being created has no timeline yet), the user's templates."""
    return {"show_name": service.show_name_of(g.portal, g.user.id),
            "timeline": service.settings_row(g.portal.id).timeline_default if entity_id > 0 else None,
            "templates": message_templates.picker(g.portal.id, g.user.id, g.user.is_admin),
            "template_id": None, "unresolved": ()}


def _posted_options(entity_id: int) -> dict:
    """The boxes as the posted form had them (an unticked box sends nothing)."""
    return {"show_name": request.form.get("show_name") == "1",
            "timeline": (request.form.get("timeline") == "1") if entity_id > 0 else None,
            "templates": message_templates.picker(g.portal.id, g.user.id, g.user.is_admin)}


def _with_name(text: str) -> str:
    """The message as WhatsApp gets it with the employee's name: «*Имя Фамилия*:», a line break, the text."""
    name = " ".join(g.user.name.replace("*", "").split())  # a star in the name would end the bold early
    return f"*{name}*:\n{text}" if name else text


def _card_values(entity_type: int, entity_id: int, row, line) -> dict:
    card, _ = service.load_card(g.portal, g.user.id, entity_type, entity_id)
    return message_templates.card_values(card, row, g.user.name, line.name or line.id)


def _template_state(entity_type: int, entity_id: int, row, line, text: str) -> dict:
    """The template the form was filled from and what of it the text still leaves open.

    The server fills the template again for this card rather than trusting the page; the page's own list
    counts too (a template an admin changed since). Only these count: a client's name that happens to
    contain braces is the client's name, and a text typed by hand is the operator's.
    """
    template = message_templates.find(g.portal.id, g.user.is_admin, request.form.get("template", ""))
    tokens = [token for token in request.form.getlist("unresolved")[:20]
              if message_templates.OPEN_VARIABLE.fullmatch(token[:200])]
    if template is not None:
        tokens += message_templates.fill(template.text, _card_values(entity_type, entity_id, row, line)).unresolved
    return {"template_id": template.id if template is not None else None,
            "unresolved": tuple(message_templates.still_open(text, dict.fromkeys(tokens)))}


def _record_in_timeline(message, text: str, entity_type: int, entity_id: int, row, line) -> None:
    """«Создавать дело»: store the record and leave the posting to a job (the send is done either way)."""
    from ..templating import phone_display

    line_name = line.name or line.id
    if line.phone:
        line_name += f" ({phone_display(line.phone)})"
    comment = timeline.comment_text(message, text=text, line_name=line_name, phone_text=phone_display(row.e164),
                                    user_name=g.user.name, locale=g.locale)
    row_id = timeline.record_send(g.portal.id, message, entity_type, entity_id, comment)
    if row_id is not None:
        timeline.queue(row_id)


@bp.post("/widget/template")
@widget_required
def fill_template():
    """Fill the send form with the picked template and this card's values; what has no value stays, marked."""
    posted = posted_form()
    if not isinstance(posted, PostedForm):
        return posted
    entity_type, entity_id, key, row, line, _ = posted.target
    context = dict(entity_type=entity_type, entity_id=entity_id, row=row, line=line, key=key,
                   publish=posted.publish, **posted.options)
    template = message_templates.find(g.portal.id, g.user.is_admin, request.form.get("template_pick", ""))
    if template is None:
        # Unknown, deleted, or admins-only for someone else: the typed text stays as it was.
        return fragment("widget/_compose.html", text=request.form.get("text", ""),
                        notice={"kind": "error", "text": t("tpl_not_found")}, template_id=None, unresolved=(),
                        **context)
    values = _card_values(entity_type, entity_id, row, line)
    filled = message_templates.fill(template.text, values)
    text = _with_template(request.form.get("text", ""), filled.text, values)
    message_templates.record_use(g.portal.id, g.user.id, template.id)
    context["templates"] = message_templates.picker(g.portal.id, g.user.id, g.user.is_admin)
    return fragment("widget/_compose.html", text=text, notice=None, template_id=template.id,
                    unresolved=filled.unresolved, **context)


def _with_template(typed: str, filled: str, values: dict) -> str:
    """The text after a pick: the template's, in place of an empty text or of another template left as it
    was filled; after what the operator wrote otherwise (a pick never throws typed words away)."""
    typed = typed.replace("\r\n", "\n")
    if not typed.strip():
        return filled
    previous = message_templates.find(g.portal.id, g.user.is_admin, request.form.get("template", ""))
    if previous is not None and message_templates.fill(previous.text, values).text == typed:
        return filled
    return typed.rstrip() + "\n\n" + filled


# ---------------------------------------------------------------- history (F11)


@bp.get("/widget/history")
@widget_required
def history():
    """A page of the chat as WhatsApp holds it, newest last; older pages on demand."""
    entity_type, entity_id = card_args()
    target = _whatsapp_target(entity_type, entity_id)
    if not isinstance(target, tuple):
        return target
    row, line, chat_id = target
    offset = parse_int(request.args.get("offset", "0"), 0, MAX_OFFSET) or 0
    page_ = gateway_for(g.portal).history(line.id, chat_id, limit=20, offset=offset)
    page_ = with_stored_acks(g.portal.id, line.id, chat_id, page_)  # acks WAHA's history lacks (message.ack)
    if offset:
        return fragment("widget/_history_page.html", entity_type=entity_type, entity_id=entity_id, row=row,
                        line=line, page=page_, next_offset=offset + len(page_.messages), chat_id=chat_id)
    newest = page_.messages[-1] if page_.messages else None
    watch = {"after": newest.id if newest else "", "at": (newest.timestamp or 0) if newest else 0,
             "seen": live.seen_now(g.portal.id, line.id, chat_id)}
    return fragment("widget/_history.html", entity_type=entity_type, entity_id=entity_id, row=row, line=line,
                    page=page_, next_offset=len(page_.messages), watch=watch, chat_id=chat_id)


@bp.get("/widget/history/news")
@widget_required
def history_news():
    """The open history's poll: 204 when nothing is new, else the new messages (appended out of band)."""
    entity_type, entity_id = card_args()
    target = _whatsapp_target(entity_type, entity_id)
    if not isinstance(target, tuple):
        return target
    row, line, chat_id = target
    after = request.args.get("after", "")
    if len(after) > 255:
        abort(400)
    at = parse_int(request.args.get("at", "0"), 0, 1 << 40) or 0
    seen_arg = request.args.get("seen")
    seen = parse_int(seen_arg, 0, 1 << 62) if seen_arg else None
    found = live.news(g.portal.id, line.id, chat_id, after=after, at=at, seen=seen, gateway=gateway_for(g.portal))
    if found is None:
        return "", 204
    watch = {"after": found.newest, "at": found.newest_at, "seen": found.seen}
    return fragment("widget/_history_news.html", entity_type=entity_type, entity_id=entity_id, row=row, line=line,
                    page=found, watch=watch, chat_id=chat_id)


# ---------------------------------------------------------------- app view (F12)


@bp.get("/app/chat")
def app_chat():
    """The full chat view of the app for one client and line (debug entry; Bitrix24 uses POST /b24/app)."""
    _debug_entry()
    entity_type, entity_id = card_args()
    return page("widget/shell.html", mode="debug", view="chat", entity_type=entity_type, entity_id=entity_id,
                placement_mode="view", member_id=runtime().demo_member_id,
                phone=request.args.get("phone", ""), line=request.args.get("line", ""),
                locale=request.args.get("lang", current_app.config["OLCHAT_LOCALE"]))


@bp.get("/app/chat/body")
@widget_required
def app_chat_body():
    entity_type, entity_id = card_args()
    target = _whatsapp_target(entity_type, entity_id)
    if not isinstance(target, tuple):
        return target
    row, line, _ = target
    return fragment("widget/_chat_view.html", entity_type=entity_type, entity_id=entity_id, row=row, line=line,
                    key=uuid.uuid4().hex, publish=_publish_box(line), **_compose_options(entity_id))

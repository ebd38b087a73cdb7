"""The debug page's «Открытые линии»: the demo portal's Open Lines chats, answered as an operator.

Only while the debug page is on (OLCHAT_DEBUG_PAGE) and only for the demo
portal, whose token the debug page issues: a Bitrix24 portal has its own
contact center and never sees this view.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, g, request

from ..auth import widget_required
from ..gateway.base import GatewayError
from ..inputs import parse_id
from ..models import DemoOpenLineChat, db
from ..phones import normalise
from ..runtime import gateway_for, runtime
from ..web import fragment
from ..widget.service import portal_lines
from . import demo_openlines as demo

bp = Blueprint("demo_ol", __name__)


def _demo_only() -> None:
    if not current_app.config["OLCHAT_DEBUG_PAGE"] or g.portal.kind != "demo":
        abort(404)


@bp.get("/demo/openlines")
def shell():
    """The view's frame page; its body loads with the debug page's demo token."""
    if not current_app.config["OLCHAT_DEBUG_PAGE"]:
        abort(404)
    from ..admin.views import debug_shell

    return debug_shell("openlines")


@bp.get("/demo/openlines/body")
@widget_required
def body():
    _demo_only()
    return fragment("bridge/_demo_body.html", **_context())


@bp.get("/demo/openlines/chats")
@widget_required
def chats():
    _demo_only()
    return fragment("bridge/_demo_chats.html", **_context())


@bp.get("/demo/openlines/messages")
@widget_required
def messages():
    _demo_only()
    chat = _chat(request.args.get("chat", ""))
    found = next((c for c in demo.chats(g.portal.id) if c["chat"].id == chat.id), None)
    return fragment("bridge/_demo_messages.html", item=found)


@bp.get("/demo/openlines/news")
@widget_required
def news():
    """The view's poll: 204 while nothing changed, else which part to reload (HX-Trigger)."""
    _demo_only()
    shown = request.args.get("v", "")
    now = demo.version(g.portal.id)
    if shown == now:
        return "", 204
    # Chats came or the queue moved: the list reloads; otherwise only the messages (typed replies stay).
    event = "olchat-ol-chats" if shown.split(".")[::3] != now.split(".")[::3] else "olchat-ol-changed"
    return fragment("bridge/_demo_live.html", trigger={event: True}, version=now)


@bp.post("/demo/openlines/client")
@widget_required
def client_writes():
    """«Написать от клиента»: a demo client writes to a demo line; the bridge carries it to the Open Line."""
    _demo_only()
    context = _context()
    form = request.form
    text = form.get("text", "")
    line = next((b for b in context["bindings"] if b.line_id == form.get("line")), None)
    phone = normalise(form.get("phone", "")).e164
    error = demo.check_text(text)
    if line is None or line.line_id not in context["working"]:
        error = "Выберите работающую линию WhatsApp."
    elif not phone or phone not in context["clients"]:
        error = "Выберите номер клиента из списка."
    if error is None and not context["can_write"]:
        error = "Клиенты этой линии пишут со своих телефонов: демо-клиент работает только с демо-шлюзом."
    if error:
        return fragment("bridge/_demo_client_form.html", 422, notice=error, text=text, **context)
    demo.client_writes(g.portal.id, gateway_for(g.portal), line.line_id, phone,
                       form.get("name", "")[:100], text)
    return fragment("bridge/_demo_client_form.html", trigger={"olchat-ol-chats": True},
                    notice=None, sent=True, text="", **context)


@bp.post("/demo/openlines/reply")
@widget_required
def reply():
    """«Ответить»: the operator's reply goes to WhatsApp the way a Bitrix24 operator's would."""
    _demo_only()
    chat = _chat(request.form.get("chat", ""))
    text = request.form.get("text", "")
    error = demo.check_text(text)
    if error:
        return fragment("bridge/_demo_reply_form.html", 422, chat=chat, notice=error, text=text[:demo.MAX_TEXT * 2])
    demo.operator_replies(g.portal.id, chat, g.user, text, in_process=demo.in_process(gateway_for(g.portal)))
    return fragment("bridge/_demo_reply_form.html", trigger={"olchat-ol-changed": True}, chat=chat, notice=None,
                    text="")


def _chat(raw: str) -> DemoOpenLineChat:
    chat_id = parse_id(raw)
    chat = db.session.get(DemoOpenLineChat, chat_id) if chat_id else None
    if chat is None or chat.portal_id != g.portal.id:
        abort(404)
    return chat


def _context() -> dict:
    gateway = gateway_for(g.portal)
    try:
        lines = portal_lines(g.portal)
    except GatewayError:
        lines = []
    bindings = demo.bind_demo_lines(g.portal.id, lines)
    names = {line.id: line.name for line in lines}
    rt = runtime()
    return {"bindings": bindings, "names": names, "working": {line.id for line in lines if line.can_send},
            "chats": demo.chats(g.portal.id), "queued": demo.queued(g.portal.id), "version": demo.version(g.portal.id),
            "clients": sorted(rt.demo_gateway.whatsapp), "can_write": demo.in_process(gateway)}

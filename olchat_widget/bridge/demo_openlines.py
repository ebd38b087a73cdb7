"""The demo portal's Open Lines: the whole bridge loop on the debug page, without Bitrix24.

The demo portal has no Bitrix24 behind it, so ``app_client`` hands the bridge a
``DemoOpenLines`` instead: it answers the few imconnector/im methods the
bridge calls and keeps the chats in our database. Everything else is the real
bridge: a client's message goes in as a WAHA ``message.any`` envelope through
``inbound.accept`` and the ``deliver_inbound`` job; an operator's reply is an
ONIMCONNECTORMESSAGEADD form read by ``outbound.parse_event`` and sent by
``outbound.accept``/``deliver`` through the outbox.
"""
from __future__ import annotations

import json

from ..b24.client import B24Error
from ..models import (BridgeMessage, DemoOpenLineChat, DemoOpenLineMessage, OpenLineBinding, Portal, db,
                      get_or_create)
from .ids import clean_name, client_id

MAX_TEXT = 4096
# Methods the bridge calls that need no state here: the demo's connector is always registered and active.
_ALWAYS_OK = ("imconnector.register", "imconnector.activate", "imconnector.connector.data.set",
              "imconnector.status", "event.bind", "event.unbind")


class DemoOpenLines:
    """A stand-in for ``B24Client`` of the demo portal: ``call`` answers like Bitrix24's Open Lines would."""

    def __init__(self, portal_id: int):
        self.portal_id = portal_id

    def call(self, method: str, params=None):
        params = params or {}
        if method in _ALWAYS_OK:
            return True
        if method == "imconnector.send.messages":
            return self._send_messages(str(params.get("LINE", "")), params.get("MESSAGES") or [])
        if method == "imconnector.send.status.delivery":
            return self._delivered(params.get("MESSAGES") or [])
        if method == "im.message.add":
            return self._system_note(str(params.get("DIALOG_ID", "")), str(params.get("MESSAGE", "")))
        raise B24Error("ERROR_METHOD_NOT_FOUND", f"{method} is not part of the demo portal")

    def _send_messages(self, line: str, messages: list) -> dict:
        results = []
        for item in messages:
            user, message = item.get("user") or {}, item.get("message") or {}
            client = client_id(str((item.get("chat") or {}).get("id") or user.get("id") or ""))
            if not client:
                results.append({"SUCCESS": False})
                continue
            chat = get_or_create(DemoOpenLineChat, {"name": str(user.get("name") or ""),
                                                    "phone": str(user.get("phone") or "")},
                                 portal_id=self.portal_id, openline_id=line, client=client)
            # A message with an employee (user_id) is one of ours posted from elsewhere (the widget).
            author = "operator" if message.get("user_id") else "client"
            db.session.add(DemoOpenLineMessage(portal_id=self.portal_id, chat_id=chat.id, author=author,
                                               author_name=chat.name if author == "client" else "",
                                               text=str(message.get("text") or ""),
                                               external_id=str(message.get("id") or "")[:255] or None,
                                               status="delivered" if author == "operator" else ""))
            results.append({"SUCCESS": True, "session": {"CHAT_ID": chat.id}})
        db.session.commit()
        return {"SUCCESS": True, "DATA": {"RESULT": results}}

    def _delivered(self, messages: list) -> dict:
        for item in messages:
            message_id = str((item.get("im") or {}).get("message_id") or "")
            row = db.session.get(DemoOpenLineMessage, int(message_id)) if message_id.isdigit() else None
            if row is not None and row.portal_id == self.portal_id:
                row.status = "delivered"
                row.external_id = ",".join(map(str, (item.get("message") or {}).get("id") or []))[:255] or None
        db.session.commit()
        return {"SUCCESS": True}

    def _system_note(self, dialog: str, text: str) -> int:
        chat_id = dialog[4:] if dialog.startswith("chat") else ""
        chat = db.session.get(DemoOpenLineChat, int(chat_id)) if chat_id.isdigit() else None
        if chat is None or chat.portal_id != self.portal_id:
            raise B24Error("DIALOG_ID_EMPTY", "no such chat in the demo portal")
        note = DemoOpenLineMessage(portal_id=self.portal_id, chat_id=chat.id, author="system", text=text)
        db.session.add(note)
        db.session.commit()
        return note.id


# ---------------------------------------------------------------- what the demo view does


def bind_demo_lines(portal_id: int, lines) -> list[OpenLineBinding]:
    """Each demo line serves a demo Open Line (1, 2, …), as an admin would set on the connector page."""
    bound = {b.line_id: b for b in db.session.scalars(db.select(OpenLineBinding).filter_by(portal_id=portal_id))}
    taken = {b.openline_id for b in bound.values()}
    number = 1
    for line in lines:
        if line.id in bound:
            continue
        while str(number) in taken:
            number += 1
        bound[line.id] = get_or_create(OpenLineBinding, portal_id=portal_id, line_id=line.id,
                                       openline_id=str(number))
        taken.add(str(number))
    return sorted(bound.values(), key=lambda b: int(b.openline_id) if b.openline_id.isdigit() else 0)


def client_writes(portal_id: int, gateway, line_id: str, phone: str, name: str, text: str) -> None:
    """«Написать от клиента»: the demo gateway gets the message, then the bridge, as from WAHA's webhook."""
    from ..jobs import enqueue
    from ..widget import live
    from . import inbound

    chat_id = f"{client_id(phone)}@c.us"
    message = gateway.client_writes(line_id, chat_id, text)
    envelope = {"event": "message.any", "session": line_id,
                "payload": {"id": message.id, "from": chat_id, "fromMe": False, "body": text,
                            "timestamp": message.timestamp, "hasMedia": False,
                            "_data": {"notifyName": clean_name(name, fallback="")}}}
    for chat in inbound.accept(envelope, [portal_id]):
        enqueue("deliver_inbound", *chat)
    live.note_webhook(envelope, [portal_id])


def operator_replies(portal_id: int, chat: DemoOpenLineChat, user, text: str, *, in_process: bool) -> None:
    """An operator answers in the demo chat: the event Bitrix24 would post, read and sent by the real bridge.

    ``in_process``: the demo gateway keeps its chats in this process's memory, so
    the send runs here rather than in the queue's consumer (another process).
    """
    from ..jobs import enqueue
    from ..widget import live
    from . import connector, outbound

    note = DemoOpenLineMessage(portal_id=portal_id, chat_id=chat.id, author="operator", author_name=user.name,
                               text=text, status="sending")
    db.session.add(note)
    db.session.commit()
    # Bitrix24 signs an operator's message with the name in bold, then a line break.
    form = {"data[CONNECTOR]": connector.connector_id(), "data[LINE]": chat.openline_id,
            "data[MESSAGES][0][im][chat_id]": str(chat.id), "data[MESSAGES][0][im][message_id]": str(note.id),
            "data[MESSAGES][0][message][user_id]": str(user.id),
            "data[MESSAGES][0][message][text]": f"[b]{user.name}:[/b][br]{text}",
            "data[MESSAGES][0][chat][id]": chat.client}
    _, line, messages = outbound.parse_event(form)
    portal = db.session.get(Portal, portal_id)
    for row_id in outbound.accept(portal, line, messages):
        if not in_process:
            enqueue("deliver_outbound", row_id)
            continue
        try:
            if outbound.deliver(row_id) == "delivered":
                _phone_receives(portal, row_id)
        except RuntimeError:
            enqueue("deliver_outbound", row_id)  # the send's fate is unknown: the outbox sorts it out
    binding = db.session.scalar(db.select(OpenLineBinding).filter_by(portal_id=portal_id, openline_id=line))
    if binding is not None:
        live.touch(portal_id, binding.line_id, chat.client)  # WAHA's echo would do this on a real line


def _phone_receives(portal: Portal, row_id: int) -> None:
    """The demo client's phone is always on: its ack DEVICE comes at once, read as WAHA's webhook would be."""
    from ..models import BridgeMessage
    from . import statuses

    row = db.session.get(BridgeMessage, row_id)
    if row is not None and row.target_id:
        statuses.accept_ack({"event": "message.ack", "session": row.line_id,
                             "payload": {"id": row.target_id, "fromMe": True, "ack": statuses.DEVICE}}, [portal.id])


def chats(portal_id: int) -> list[dict]:
    """The demo's Open Lines chats, newest activity first, with their messages and what is still queued."""
    rows = db.session.scalars(db.select(DemoOpenLineChat).filter_by(portal_id=portal_id)).all()
    bindings = {b.openline_id: b.line_id for b in db.session.scalars(
        db.select(OpenLineBinding).filter_by(portal_id=portal_id))}
    result = []
    for chat in rows:
        messages = db.session.scalars(db.select(DemoOpenLineMessage).filter_by(portal_id=portal_id, chat_id=chat.id)
                                      .order_by(DemoOpenLineMessage.id)).all()
        result.append({"chat": chat, "line_id": bindings.get(chat.openline_id), "messages": messages,
                       "last": messages[-1].id if messages else 0})
    result.sort(key=lambda c: c["last"], reverse=True)
    return result


def queued(portal_id: int) -> list[dict]:
    """Clients' messages the bridge has taken in but not yet delivered to the demo Open Lines."""
    rows = db.session.scalars(db.select(BridgeMessage).filter_by(portal_id=portal_id, direction="in")
                              .where(BridgeMessage.status != "delivered").order_by(BridgeMessage.id).limit(50)).all()
    return [{"client": r.client, "line_id": r.line_id, "text": json.loads(r.payload).get("text", "")} for r in rows]


def version(portal_id: int) -> str:
    """Changes whenever the view would show something else: "chats.last message.delivered.queued"."""
    from sqlalchemy import func

    chats_ = db.session.scalar(db.select(func.count(DemoOpenLineChat.id)).filter_by(portal_id=portal_id)) or 0
    last = db.session.scalar(db.select(func.max(DemoOpenLineMessage.id)).filter_by(portal_id=portal_id)) or 0
    delivered = db.session.scalar(db.select(func.count(DemoOpenLineMessage.id)).filter_by(
        portal_id=portal_id, status="delivered")) or 0
    waiting = db.session.scalar(db.select(func.count(BridgeMessage.id)).filter_by(
        portal_id=portal_id, direction="in").where(BridgeMessage.status != "delivered")) or 0
    return f"{chats_}.{last}.{delivered}.{waiting}"


def in_process(gateway) -> bool:
    """Whether sends must run in this process: the demo gateway lives in its memory only."""
    from ..runtime import runtime

    return gateway is runtime().demo_gateway


def check_text(text: str) -> str | None:
    """Why ``text`` cannot be sent, in the operator's words; None when it can."""
    if not text.strip():
        return "Введите текст сообщения."
    if len(text) > MAX_TEXT:
        return f"Сообщение длиннее {MAX_TEXT} символов."
    return None

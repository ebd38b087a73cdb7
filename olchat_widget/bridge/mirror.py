"""Messages sent elsewhere, shown in the client's Open Lines chat; and that chat, found or started from a card.

What is mirrored (BridgeMessage rows, direction ``mirror``, keyed by the
WhatsApp id, so a retried job, a repeated webhook or the echo of a send can
never post a message twice):

* a send from the widget (F10) with «Публиковать в чат»: posted with
  ``imconnector.send.messages`` as the sending employee (``message.user_id``,
  the documented way to mirror what an employee wrote elsewhere), with the
  same ``user.id``/``chat.id`` as the client's own messages (bridge/ids.py), so
  it lands in the same chat;
* a message typed on the line's phone (WAHA ``message.any``, ``fromMe``,
  ``source: "app"``): nobody knows which employee held the phone, and
  ``send.messages`` without ``user_id`` would show the words as the client's.
  So it goes in as a system line of the chat, ``im.message.add`` with
  ``SYSTEM=Y`` into ``chat<CHAT_ID>`` («Отправлено с телефона: …»), as the
  bridge already tells operators about failed sends. When the client has no
  Open Lines chat yet there is nowhere to show it (a chat starts with someone's
  words, and these are neither the client's nor a known employee's): the row
  is kept as ``skipped``.

Our own sends come back from WAHA as ``message.any`` echoes (``fromMe``,
``source: "api"``) — widget sends and operator replies alike, both through the
outbox with a pre-generated id that is committed before WAHA is called. An
echo whose id is one of those is ours and is never mirrored, whether it
arrives before or after WAHA answered the send.
"""
from __future__ import annotations

import calendar
import json
import re
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy.exc import IntegrityError

from ..models import BridgeMessage, OpenLineBinding, OutgoingMessage, Portal, db, utcnow
from .ids import client_id

MIRROR = "mirror"
CHAT = "chat"  # a mapping row: the Open Lines chat of one client on one Open Line (source_id = user code)
EMPLOYEE, PHONE = "employee", "phone"
CHAT_STARTED = "Чат создан из карточки CRM"
_SERIALISED = re.compile(r"^(true|false)_[^_]+_.+$")


class Retry(Exception):
    """Bitrix24 did not take the message now: the job tries again."""


class ChatError(Exception):
    """Bitrix24 could not find or start the Open Lines chat."""


def binding_of(portal_id: int, line_id: str) -> OpenLineBinding | None:
    """The Open Line the WhatsApp line serves, or None."""
    return db.session.scalar(db.select(OpenLineBinding).filter_by(portal_id=portal_id, line_id=line_id))


def user_code(openline: str, client: str) -> str:
    """Bitrix24's key of the client's chat: ``<connector>|<LINE>|<chat.id>|<user.id>``."""
    return f"{current_app.config['OLCHAT_CONNECTOR_ID']}|{openline}|{client}|{client}"


def _unix(moment: datetime) -> int:
    """Unix seconds of a naive UTC timestamp (what the columns store), whatever the machine's zone."""
    return calendar.timegm(moment.utctimetuple())


def serialised_id(chat_id: str, message_id: str) -> str:
    """The id WAHA gives our send in webhooks and histories (``true_<chat>_<id>``)."""
    return message_id if _SERIALISED.match(message_id) else f"true_{chat_id}_{message_id}"


# ---------------------------------------------------------------- what gets mirrored


def publish_send(portal_id: int, message: OutgoingMessage) -> int | None:
    """Store a widget send for the Open Lines chat of its line; the row id to deliver, None if nothing to do."""
    binding = binding_of(portal_id, message.line_id)
    client = client_id(message.chat_id)
    if binding is None or not client or not message.message_id:
        return None
    part = {"kind": EMPLOYEE, "text": message.text, "user_id": message.user_id,
            "date": _unix(message.created_at or utcnow())}
    return _store(portal_id, serialised_id(message.chat_id, message.message_id), binding, client, part)


def accept_own(payload: dict, session: str, portal_ids: list[int]) -> list[int]:
    """A ``fromMe`` message of a webhook: queue it for the Open Lines chat unless it is our own send's echo."""
    from ..jobs import enqueue

    message_id, chat = payload.get("id"), payload.get("to")
    if not isinstance(message_id, str) or not message_id or not isinstance(chat, str):
        return []
    client = client_id(chat)
    if not client or "@lid" in chat or "@g.us" in chat:
        return []
    rows = []
    for portal_id in portal_ids:
        binding = binding_of(portal_id, session)
        if binding is None or _ours(portal_id, session, message_id):
            continue
        stamp = payload.get("timestamp")
        part = {"kind": PHONE, "text": str(payload.get("body") or "")[:20_000],
                "has_media": bool(payload.get("hasMedia")),
                "date": int(stamp) if isinstance(stamp, (int, float)) and stamp > 0 else None}
        row_id = _store(portal_id, message_id[:255], binding, client, part)
        if row_id is not None:
            rows.append(row_id)
    for row_id in rows:
        enqueue("deliver_mirror", row_id)
    return rows


def _ours(portal_id: int, line_id: str, message_id: str) -> bool:
    """Whether ``message_id`` (as WAHA serialises it) is a send of ours: widget, operator reply, or mirrored."""
    # WAHA serialises our pre-generated id as true_<chat>_<id> (some engines add a suffix): any part may be it.
    parts = [p for p in message_id.split("_") if p] + [message_id]
    sent = db.session.scalar(db.select(OutgoingMessage.id).where(
        OutgoingMessage.portal_id == portal_id, OutgoingMessage.line_id == line_id,
        OutgoingMessage.message_id.in_(parts)).limit(1))
    if sent is not None:
        return True
    mirrored = db.session.scalar(db.select(BridgeMessage.id).where(
        BridgeMessage.portal_id == portal_id, BridgeMessage.direction.in_((MIRROR, "out")),
        (BridgeMessage.source_id == message_id) | (BridgeMessage.target_id.in_(parts))).limit(1))
    return mirrored is not None


def _store(portal_id: int, source_id: str, binding: OpenLineBinding, client: str, part: dict) -> int | None:
    row = BridgeMessage(portal_id=portal_id, direction=MIRROR, source_id=source_id, part=0,
                        line_id=binding.line_id, openline_id=binding.openline_id, client=client,
                        payload=json.dumps(part, ensure_ascii=False))
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # stored before: the send's echo, a repeated webhook, a second press
        return None
    return row.id


# ---------------------------------------------------------------- delivery (a job)


def deliver(row_id: int) -> str:
    """Post one mirrored message to its Open Lines chat once; return the row's final status."""
    from ..b24.client import B24Error
    from ..b24.portal import app_client

    row = db.session.get(BridgeMessage, row_id)
    if row is None or row.direction != MIRROR:
        return "gone"
    if row.status != "queued":
        return row.status
    portal = db.session.get(Portal, row.portal_id)
    part = json.loads(row.payload)
    client = app_client(portal)
    row.attempts += 1
    try:
        if part.get("kind") == EMPLOYEE:
            chat_id = _post_as_employee(client, row, part)
        else:
            chat_id = known_chat(row.portal_id, row.openline_id, row.client) or _open_session(
                client, row.openline_id, row.client)
            if chat_id is None:
                row.status, row.error = "skipped", "no_chat"
                db.session.commit()
                return row.status
            text = part.get("text") or ("[файл]" if part.get("has_media") else "")
            client.call("im.message.add", {"DIALOG_ID": f"chat{chat_id}", "SYSTEM": "Y",
                                           "MESSAGE": f"Отправлено с телефона: {text}"[:20_000]})
    except B24Error as exc:
        row.error = type(exc).__name__[:255]
        db.session.commit()
        raise Retry(str(exc)) from exc
    row.status, row.target_id, row.error = "delivered", chat_id, None
    db.session.commit()
    return row.status


def _post_as_employee(client, row: BridgeMessage, part: dict) -> str | None:
    message = {"id": row.source_id, "text": part.get("text") or " "}
    if part.get("user_id"):
        message["user_id"] = part["user_id"]
    if part.get("date"):
        message["date"] = part["date"]
    # No name: the chat keeps the name the client gave in WhatsApp; the phone lets duplicate control find the lead.
    answer = client.call("imconnector.send.messages", {
        "CONNECTOR": current_app.config["OLCHAT_CONNECTOR_ID"], "LINE": row.openline_id,
        "MESSAGES": [{"user": {"id": row.client, "phone": "+" + row.client}, "message": message,
                      "chat": {"id": row.client}}]})
    from .inbound import _chat_ids

    return _chat_ids(answer, 1)[0]


def sweep(older_than: timedelta = timedelta(seconds=30)) -> int:
    """Queue again mirrored messages no job is taking care of (their job gave up or was lost)."""
    from ..jobs import enqueue

    ids = db.session.scalars(db.select(BridgeMessage.id).where(
        BridgeMessage.direction == MIRROR, BridgeMessage.status == "queued",
        BridgeMessage.updated_at < utcnow() - older_than).limit(1000)).all()
    for row_id in ids:
        enqueue("deliver_mirror", row_id)
    return len(ids)


# ---------------------------------------------------------------- the client's Open Lines chat


def known_chat(portal_id: int, openline: str, client: str) -> str | None:
    """The client's Open Lines chat as our own deliveries learnt it (no Bitrix24 call); None if never seen."""
    mapped = db.session.scalar(db.select(BridgeMessage.target_id).where(
        BridgeMessage.portal_id == portal_id, BridgeMessage.direction == CHAT,
        BridgeMessage.source_id == user_code(openline, client)))
    if mapped:
        return mapped
    # Every inbound delivery and every mirrored post stores the CHAT_ID Bitrix24 answered.
    return db.session.scalar(db.select(BridgeMessage.target_id).where(
        BridgeMessage.portal_id == portal_id, BridgeMessage.direction.in_(("in", MIRROR)),
        BridgeMessage.openline_id == openline, BridgeMessage.client == client,
        BridgeMessage.status == "delivered", BridgeMessage.target_id.is_not(None))
        .order_by(BridgeMessage.id.desc()).limit(1))


def chat_for_card(portal_id: int, line_id: str, phone: str) -> str | None:
    """The Open Lines chat of ``phone`` from our mapping: its CHAT_ID; "" on a bound line where it has none yet;
    None when the line serves no Open Line (the widget then keeps its own chats)."""
    binding = binding_of(portal_id, line_id)
    client = client_id(phone)
    if binding is None or not client:
        return None
    return known_chat(portal_id, binding.openline_id, client) or ""


def _open_session(client, openline: str, client_digits: str) -> str | None:
    """Ask Bitrix24 for the chat of the user code (imopenlines.session.open); None when it has none."""
    from ..b24.client import B24Error

    try:
        answer = client.call("imopenlines.session.open", {"USER_CODE": user_code(openline, client_digits)})
    except B24Error as exc:
        if exc.code in ("ACCESS_DENIED", "NOT_FOUND", "ERROR_ARGUMENT"):
            return None  # no such chat (Bitrix24 answers ACCESS_DENIED for a code it does not know)
        raise
    chat_id = answer.get("chatId") if isinstance(answer, dict) else None
    return str(chat_id) if chat_id not in (None, "", 0, "0") else None


# Records with the messenger field IM, and how to write it.
_CARD_METHODS = {1: "crm.lead.update", 3: "crm.contact.update", 4: "crm.company.update"}
_KINDS = {"lead": 1, "contact": 3, "company": 4}


def address_holder(entity_type_id: int, entity_id: int, owners) -> tuple[int, int] | None:
    """The record that gets the chat's messenger address: the card, or (a deal's card) whose number it is."""
    if entity_type_id in _CARD_METHODS:
        return entity_type_id, entity_id
    for owner in owners:
        if owner.kind in _KINDS:
            return _KINDS[owner.kind], owner.id
    return None  # the tracker binds the chat by the client's phone, as for a client who writes first


def start_chat(portal, line_id: str, phone: str, user_id: str | None, holder: tuple[int, int] | None) -> str:
    """«Создать чат» on a bound line: the client's Open Lines chat (found, or started), bound to the card.

    Started with the same ids as the client's own messages, so it is the chat
    their replies reach. Before the first message the card (on a deal: the
    contact or company whose number it is, see ``address_holder``) gets the
    chat's messenger address — the CRM field IM of type OPENLINE,
    ``imol|<user code>``, where Bitrix24 keeps which client a chat belongs to —
    so the CRM tracker binds the new chat there instead of making a lead.
    """
    from ..b24.client import B24Error
    from ..b24.portal import app_client

    binding = binding_of(portal.id, line_id)
    client_digits = client_id(phone)
    if binding is None or not client_digits:
        raise ChatError("line not bound")
    found = known_chat(portal.id, binding.openline_id, client_digits)
    if found:
        return found
    client = app_client(db.session.get(Portal, portal.id))  # the request's portal is a detached reference
    code = user_code(binding.openline_id, client_digits)
    try:
        chat_id = _open_session(client, binding.openline_id, client_digits)
        if chat_id is None:
            _bind_card(client, holder, code)
            answer = client.call("imconnector.send.messages", {
                "CONNECTOR": current_app.config["OLCHAT_CONNECTOR_ID"], "LINE": binding.openline_id,
                "MESSAGES": [{"user": {"id": client_digits, "phone": "+" + client_digits},
                              "message": dict({"id": f"card:{code}", "text": CHAT_STARTED, "date": _unix(utcnow())},
                                              **({"user_id": user_id} if user_id else {})),
                              "chat": {"id": client_digits}}]})
            from .inbound import _chat_ids

            chat_id = _chat_ids(answer, 1)[0]
    except B24Error as exc:
        raise ChatError(str(exc)) from exc
    if not chat_id:
        raise ChatError("Bitrix24 named no chat")
    _remember(portal.id, binding, client_digits, chat_id)
    return chat_id


def _bind_card(client, holder: tuple[int, int] | None, code: str) -> None:
    """Give the record the chat's messenger address (leads, contacts, companies have the IM field; deals do not)."""
    from ..b24.client import B24Error

    if holder is None:
        return
    entity_type_id, entity_id = holder
    try:
        client.call(_CARD_METHODS[entity_type_id], {"id": entity_id, "fields": {"IM": [{"VALUE": f"imol|{code}", "VALUE_TYPE": "OPENLINE"}]}})
    except B24Error:
        pass  # the card could not be written (rights, a deleted card): the chat still starts, bound by phone


def _remember(portal_id: int, binding: OpenLineBinding, client_digits: str, chat_id: str) -> None:
    row = BridgeMessage(portal_id=portal_id, direction=CHAT, source_id=user_code(binding.openline_id, client_digits),
                        part=0, line_id=binding.line_id, openline_id=binding.openline_id, client=client_digits,
                        payload="{}", status="delivered", target_id=str(chat_id))
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another press remembered it first

"""Open Lines → client: an operator's message (ONIMCONNECTORMESSAGEADD) goes out through WAHA exactly once.

The event is stored first, keyed by Bitrix24's message id, so a second
delivery of the same event adds nothing. The job sends through the outbox
(gateway/outbox.py) with the key ``ol:<message id>``: a consumer killed halfway
leaves a row that the retry finds, looks up by its pre-generated WhatsApp id
and never sends twice. Bitrix24 is told the message was delivered when
WhatsApp's ack says the client's phone has it (bridge/statuses.py).
"""
from __future__ import annotations

import json
import re

from flask import current_app

from ..models import BridgeMessage, OpenLineBinding, Portal, db
from . import statuses
from .ids import client_id

_SIGNATURE = re.compile(r"^\s*\[b\]([^\[\]\n]{1,80}):\[/b\]\s*(?:\[br\]|\n)", re.I)
_URL = re.compile(r"\[url=([^\]]+)\](.*?)\[/url\]", re.I | re.S)
_SIMPLE = (("b", "*"), ("i", "_"), ("s", "~"))


def to_whatsapp(text: str, *, with_name: bool) -> str:
    """Bitrix24's BB-code and operator signature as WhatsApp formatting."""
    text = text or ""
    signature = _SIGNATURE.match(text)
    name = None
    if signature:
        name, text = signature.group(1).strip(), text[signature.end():]
    text = re.sub(r"\[br\]", "\n", text, flags=re.I)
    text = _URL.sub(lambda m: m.group(2) if m.group(2).strip() == m.group(1).strip()
                    else f"{m.group(2)} ({m.group(1)})", text)
    for tag, mark in _SIMPLE:
        text = re.sub(rf"\[{tag}\](.*?)\[/{tag}\]", lambda m: f"{mark}{m.group(1)}{mark}", text, flags=re.I | re.S)
    text = re.sub(r"\[/?(u|quote|code|color(=[^\]]*)?|size(=[^\]]*)?)\]", "", text, flags=re.I)
    if name and with_name:
        text = f"*{name}:*\n{text}"
    return text.strip()


def parse_event(form) -> tuple[str, str, list[dict]]:
    """CONNECTOR, LINE and the messages of an ONIMCONNECTORMESSAGEADD form (bracketed keys)."""
    messages: dict[int, dict] = {}
    for key, value in form.items():
        match = re.fullmatch(r"data\[MESSAGES\]\[(\d{1,3})\]\[(\w+)\]\[(\w+)\](?:\[(\d{1,3})\]\[(\w+)\])?", key)
        if not match:
            continue
        n, section, field, file_n, file_field = match.groups()
        message = messages.setdefault(int(n), {})
        if file_n is not None:
            message.setdefault("files", {}).setdefault(int(file_n), {})[file_field] = value
        else:
            message.setdefault(section, {})[field] = value
    return (form.get("data[CONNECTOR]", ""), form.get("data[LINE]", ""),
            [messages[n] for n in sorted(messages)])


def accept(portal: Portal, line: str, messages: list[dict]) -> list[int]:
    """Store the operator's messages for the WhatsApp line bound to Open Line ``line``; return new row ids."""
    from sqlalchemy.exc import IntegrityError

    binding = db.session.scalar(db.select(OpenLineBinding).filter_by(portal_id=portal.id, openline_id=line))
    if binding is None:
        return []
    new = []
    for message in messages:
        im, body, chat = message.get("im") or {}, message.get("message") or {}, message.get("chat") or {}
        source = str(im.get("message_id") or "")
        client = client_id(str(chat.get("id") or ""))
        if not source or not client:
            continue
        files = [f for _, f in sorted((message.get("files") or {}).items())]
        row = BridgeMessage(portal_id=portal.id, direction="out", source_id=source[:255], part=0,
                            line_id=binding.line_id, openline_id=line, client=client,
                            payload=json.dumps({"text": str(body.get("text") or "")[:20_000],
                                                "user_id": str(body.get("user_id") or ""),
                                                "im_chat_id": str(im.get("chat_id") or ""),
                                                "files": files}, ensure_ascii=False))
        db.session.add(row)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()  # the same event again: Bitrix24 or a proxy delivered it twice
            continue
        new.append(row.id)
    return new


def deliver(row_id: int) -> str:
    """Send one stored operator message to the client once; return its final status."""
    from ..b24.portal import app_client
    from ..gateway.outbox import FAILED, SENT, send_once
    from ..runtime import gateway_for

    row = db.session.get(BridgeMessage, row_id)
    if row is None or row.status in ("delivered", "failed"):
        return row.status if row else "gone"
    portal = db.session.get(Portal, row.portal_id)
    part = json.loads(row.payload)
    text = to_whatsapp(part.get("text") or "", with_name=current_app.config["OLCHAT_OL_SHOW_OPERATOR_NAME"])
    for file in part.get("files") or []:
        # Files go as links until media sending lands (issue 13): the client still gets them.
        if file.get("link"):
            text = (text + "\n" if text else "") + f"{file.get('name') or 'файл'}: {file['link']}"
    sent = send_once(gateway_for(portal), portal_id=portal.id, key=f"ol:{row.source_id}"[:64], user_id=None,
                     line_id=row.line_id, phone="+" + row.client, chat_id=f"{row.client}@c.us", text=text or " ")
    client = app_client(portal)
    if sent.status == SENT:
        row.status, row.target_id = "delivered", sent.message_id
        db.session.commit()
        # Bitrix24's "delivered" tick waits for WhatsApp's ack DEVICE (bridge/statuses.py): an operator reads
        # it as "the client has it", which a send accepted by WAHA does not mean. An ack that came before
        # this row knew its WhatsApp id is looked up here.
        statuses.after_operator_send(row)
        return "delivered"
    if sent.status == FAILED:
        row.status, row.error = "failed", sent.error
        db.session.commit()
        _tell_operator(client, part.get("im_chat_id"), sent.error or "")
        return "failed"
    raise RuntimeError(f"send {sent.status}: retried later")  # unknown: the outbox reconciles on the retry


def _tell_operator(client, chat_id: str | None, reason: str) -> None:
    from ..b24.client import B24Error

    if not chat_id:
        return
    why = {"line_not_connected": "линия WhatsApp не подключена (нужен QR-код)",
           "unauthorized": "сервер WhatsApp не принял ключ API",
           "rate_limited": "WhatsApp временно ограничил отправку",
           "whatsapp_error": "WhatsApp не смог доставить его клиенту"}.get(reason, "сервер WhatsApp недоступен")
    try:
        client.call("im.message.add", {"DIALOG_ID": f"chat{chat_id}", "SYSTEM": "Y",
                                       "MESSAGE": f"Сообщение не доставлено в WhatsApp: {why}."})
    except B24Error:
        pass

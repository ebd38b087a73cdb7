"""Open Lines → client: an operator's message (ONIMCONNECTORMESSAGEADD) goes out through WAHA exactly once.

The event is stored first, keyed by Bitrix24's message id, so a second
delivery of the same event adds nothing. The job sends through the outbox
(gateway/outbox.py) with the key ``ol:<message id>`` for the text and
``ol:<message id>:<n>`` for each file (bridge/media.py): a consumer killed
halfway leaves rows that the retry finds, skips or looks up by the
pre-generated WhatsApp id, and never sends twice. Bitrix24 is told the
message was delivered when WhatsApp's ack says the client's phone has it
(bridge/statuses.py).
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
    """Send one stored operator message to the client once, text and each file a part; return its status."""
    from ..b24.portal import app_client
    from . import media

    row = db.session.get(BridgeMessage, row_id)
    if row is None or row.status in ("delivered", "failed"):
        return row.status if row else "gone"
    portal = db.session.get(Portal, row.portal_id)
    row.attempts += 1
    db.session.commit()
    part = json.loads(row.payload)
    text = to_whatsapp(part.get("text") or "", with_name=current_app.config["OLCHAT_OL_SHOW_OPERATOR_NAME"])
    files = [f for f in part.get("files") or [] if isinstance(f, dict)]
    if files and not to_whatsapp(part.get("text") or "", with_name=False):
        text = ""  # only the operator's signature: the files are the message
    elif not files:
        text = text or " "
    client = app_client(portal)
    # The job's last run (huey runs it OLCHAT_JOB_RETRIES more times): a server still down is then a failure.
    last_try = row.attempts > current_app.config["OLCHAT_JOB_RETRIES"]
    sent = media.send_parts(portal, row, text, files, last_try=last_try,
                            tell=lambda reason, name: _tell_operator(client, part.get("im_chat_id"), reason,
                                                                     file_name=name))
    if sent.retry:
        raise RuntimeError("WhatsApp server unreachable: retried later")
    ids = sent.ids
    if ids:
        # The first part's id is the message's (acks are matched by it); every part's goes to Bitrix24.
        row.status, row.target_id, row.error = "delivered", ids[0][:255], sent.failure
        row.payload = json.dumps(dict(part, sent_ids=list(ids)), ensure_ascii=False)
    else:
        row.status, row.error = "failed", sent.failure or "nothing_sent"  # each file's reason was told already
    db.session.commit()
    if sent.failure is not None:
        _tell_operator(client, part.get("im_chat_id"), sent.failure)
    if ids:
        # Bitrix24's "delivered" tick waits for WhatsApp's ack DEVICE (bridge/statuses.py): an operator reads
        # it as "the client has it", which a send accepted by WAHA does not mean. An ack that came before
        # this row knew its WhatsApp id is looked up here.
        statuses.after_operator_send(row)
    return row.status


def _tell_operator(client, chat_id: str | None, reason: str, *, file_name: str | None = None) -> None:
    from ..b24.client import B24Error

    if not chat_id:
        return
    why = {"line_not_connected": "линия WhatsApp не подключена (нужен QR-код)",
           "unauthorized": "сервер WhatsApp не принял ключ API",
           "rate_limited": "WhatsApp временно ограничил отправку",
           # A file's own troubles (bridge/media.py).
           "foreign_link": "ссылка ведёт не на ваш портал Bitrix24, файл не загружен",
           "too_large": "файл слишком большой",
           "link_failed": "файл не удалось скачать с портала",
           "whatsapp_error": "WhatsApp не смог доставить его клиенту",
           "unconfirmed": "сервер WhatsApp не подтвердил отправку — проверьте чат, прежде чем отправить снова",
           }.get(reason, "сервер WhatsApp недоступен")
    what = f"Файл «{file_name}» не доставлен" if file_name else "Сообщение не доставлено"
    try:
        client.call("im.message.add", {"DIALOG_ID": f"chat{chat_id}", "SYSTEM": "Y",
                                       "MESSAGE": f"{what} в WhatsApp: {why}."})
    except B24Error:
        pass

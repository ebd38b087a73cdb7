"""Statuses both ways: WhatsApp's acks and line states from WAHA, Open Lines' connector state from Bitrix24.

- ``message.ack`` is stored on the outbox row of the send (OutgoingMessage.ack):
  the highest ack wins, an ack never goes backwards, an ack of a message we did
  not send is ignored. The widget history shows the stored ack where WAHA's
  history has none.
- An operator's message (BridgeMessage "out") is marked delivered in Bitrix24
  (``imconnector.send.status.delivery``) when WhatsApp says it reached the
  client's phone (DEVICE or more): in Open Lines "delivered" is the only tick
  the operator gets, so it must mean what WhatsApp's two ticks mean. A message
  whose phone is off stays "sent" until the phone takes it; ERROR tells the
  operator in the chat.
- ``session.status`` is stored per portal line (LineState) and shows in the
  cached lines list at once (widget/service.portal_lines).
- Hourly, every bound Open Line's ``imconnector.status`` is checked and the
  connector activated again where Bitrix24 dropped it (a line that is not
  active accepts messages and loses them).
"""
from __future__ import annotations

import json
from dataclasses import replace

from flask import current_app
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from ..models import BridgeMessage, LineState, OpenLineBinding, OutgoingMessage, Portal, PortalLine, db, utcnow

ERROR, DEVICE = -1, 2
ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
_ACK_VALUES = {name: value for value, name in ACK_NAMES.items()}


def short_id(message_id: str) -> str:
    """The message's own id inside WAHA's serialised ``true_<chat id>_<id>[_<participant>]``."""
    parts = message_id.split("_")
    if len(parts) >= 3 and parts[0] in ("true", "false"):
        return parts[2]
    return message_id


# ---------------------------------------------------------------- message.ack


def accept_ack(envelope: dict, portal_ids: list[int]) -> int:
    """Store a message.ack for our send on ``session`` of the given portals; return how many rows moved."""
    payload, session = envelope.get("payload"), envelope.get("session")
    if not isinstance(payload, dict) or not isinstance(session, str) or not portal_ids:
        return 0
    full, ack = payload.get("id"), payload.get("ack")
    if isinstance(full, dict):  # some engines give the id as {"_serialized": ...}
        full = full.get("_serialized")
    if not isinstance(ack, int) or isinstance(ack, bool):
        ack = _ACK_VALUES.get(str(payload.get("ackName") or "").upper())
    if not isinstance(full, str) or not full or ack not in ACK_NAMES:
        return 0
    ids = {full[:255], short_id(full)[:255]}
    rows = db.session.execute(db.select(OutgoingMessage.id, OutgoingMessage.portal_id).where(
        OutgoingMessage.portal_id.in_(portal_ids), OutgoingMessage.line_id == session,
        OutgoingMessage.message_id.in_(ids))).all()
    from ..widget import timeline

    moved, records = 0, []
    for row_id, portal_id in rows:
        crossed = raise_ack(row_id, ack)
        moved += crossed is not None
        if crossed in ("delivered", "failed"):
            _operator_message_reached(portal_id, session, ids, crossed)
            records.append(timeline.note_delivery(row_id, crossed))  # «Создавать дело»: the card's record says it
    db.session.commit()
    for record in filter(None, records):
        timeline.queue_update(record)
    return moved


def raise_ack(row_id: int, ack: int) -> str | None:
    """Move the outbox row's ack up to ``ack``; return None (unchanged), "moved", "delivered" or "failed".

    Each statement is guarded by the ack it replaces, so of two webhooks
    carrying the same ack (WAHA retries, posts twice) only one moves the row,
    and "delivered"/"failed" are each returned once per message.
    """
    row = OutgoingMessage.id == row_id
    if ack == ERROR:
        # A message WhatsApp failed to deliver never got to the phone; one that did cannot fail any more.
        done = db.session.execute(update(OutgoingMessage).where(row, or_(OutgoingMessage.ack.is_(None),
                                                                         OutgoingMessage.ack.in_((0, 1))))
                                  .values(ack=ERROR)).rowcount
        return "failed" if done else None
    if ack >= DEVICE:
        done = db.session.execute(update(OutgoingMessage).where(row, or_(OutgoingMessage.ack.is_(None),
                                                                         OutgoingMessage.ack < DEVICE))
                                  .values(ack=ack)).rowcount
        if done:
            return "delivered"
    done = db.session.execute(update(OutgoingMessage).where(row, or_(OutgoingMessage.ack.is_(None),
                                                                     OutgoingMessage.ack < ack))
                              .values(ack=ack)).rowcount
    return "moved" if done else None


def _operator_message_reached(portal_id: int, line_id: str, ids: set[str], what: str) -> None:
    """Queue Bitrix24's news for the operator's message sent under one of ``ids`` (if it is one)."""
    from ..jobs import enqueue

    bridged = db.session.scalar(db.select(BridgeMessage).where(
        BridgeMessage.portal_id == portal_id, BridgeMessage.direction == "out", BridgeMessage.line_id == line_id,
        BridgeMessage.target_id.in_(ids)))
    if bridged is None:
        return  # a widget send, or the operator's send whose job has not noted the id yet (it checks the ack itself)
    db.session.commit()
    if what == "delivered":
        enqueue("report_delivered", portal_id, bridged.source_id)
    else:
        enqueue("report_failed", portal_id, bridged.id)


def ack_of(portal_id: int, line_id: str, message_id: str) -> int | None:
    """The stored ack of the send made under ``message_id`` (None: none yet)."""
    return db.session.scalar(db.select(OutgoingMessage.ack).where(
        OutgoingMessage.portal_id == portal_id, OutgoingMessage.line_id == line_id,
        OutgoingMessage.message_id == message_id))


def after_operator_send(row: BridgeMessage) -> None:
    """Right after an operator's message went out: an ack that came before its id was noted counts too."""
    from ..jobs import enqueue

    ack = ack_of(row.portal_id, row.line_id, row.target_id) if row.target_id else None
    if ack is not None and ack >= DEVICE:
        enqueue("report_delivered", row.portal_id, row.source_id)
    elif ack == ERROR:
        enqueue("report_failed", row.portal_id, row.id)


def report_delivered(portal_id: int, source_id: str) -> bool:
    """Tell Bitrix24 the operator's message reached the client, once; return whether this call told it."""
    from ..b24.portal import app_client

    parts = db.session.scalars(db.select(BridgeMessage).filter_by(
        portal_id=portal_id, direction="out", source_id=source_id).order_by(BridgeMessage.part)).all()
    if not parts or any(p.status != "delivered" or not p.target_id for p in parts):
        return False  # a part is still on its way: the last part's ack reports the message
    if any((ack_of(portal_id, p.line_id, p.target_id) or 0) < DEVICE for p in parts):
        return False
    # The gate: of two jobs (a duplicated trigger, the send's own check) only one reports.
    taken = db.session.execute(update(BridgeMessage).where(
        BridgeMessage.portal_id == portal_id, BridgeMessage.direction == "out", BridgeMessage.source_id == source_id,
        BridgeMessage.reported.is_(False)).values(reported=True)).rowcount
    db.session.commit()
    if not taken:
        return False
    first = parts[0]
    im_chat_id = json.loads(first.payload).get("im_chat_id")
    try:
        app_client(db.session.get(Portal, portal_id)).call("imconnector.send.status.delivery", {
            "CONNECTOR": current_app.config["OLCHAT_CONNECTOR_ID"], "LINE": first.openline_id,
            "MESSAGES": [{"im": {"chat_id": im_chat_id, "message_id": source_id},
                          "message": {"id": _sent_ids(parts)}, "chat": {"id": first.client}}]})
    except Exception:
        # Not told: open the gate again for the job's retry.
        db.session.rollback()
        db.session.execute(update(BridgeMessage).where(
            BridgeMessage.portal_id == portal_id, BridgeMessage.direction == "out",
            BridgeMessage.source_id == source_id).values(reported=False))
        db.session.commit()
        raise
    return True


def _sent_ids(parts: list[BridgeMessage]) -> list[str]:
    """The WhatsApp id of every part sent (text, then each file; bridge/media.py), in order.

    The first part's ack stands for the message: WhatsApp hands a message's
    parts to the phone together, and the files' ids are WAHA's, not ours.
    """
    ids: list[str] = []
    for p in parts:
        sent = json.loads(p.payload).get("sent_ids")
        if isinstance(sent, list) and sent:
            ids.extend(str(i) for i in sent)
        else:
            ids.append(p.target_id)
    return ids


def report_failed(portal_id: int, row_id: int) -> bool:
    """WhatsApp could not deliver the operator's message: say so in the Open Lines chat, once."""
    from ..b24.portal import app_client
    from .outbound import _tell_operator

    taken = db.session.execute(update(BridgeMessage).where(
        BridgeMessage.id == row_id, BridgeMessage.portal_id == portal_id, BridgeMessage.direction == "out",
        or_(BridgeMessage.error.is_(None), BridgeMessage.error != "whatsapp_error"))
        .values(error="whatsapp_error")).rowcount
    db.session.commit()
    if not taken:
        return False
    row = db.session.get(BridgeMessage, row_id)
    _tell_operator(app_client(db.session.get(Portal, portal_id)), json.loads(row.payload).get("im_chat_id"),
                   "whatsapp_error")
    return True


def with_stored_acks(portal_id: int, line_id: str, chat_id: str, page):
    """The history page with our stored ack on own messages where WAHA's history has none or an older one."""
    own = [m for m in page.messages if m.from_me]
    if not own:
        return page
    stored = dict(db.session.execute(db.select(OutgoingMessage.message_id, OutgoingMessage.ack).where(
        OutgoingMessage.portal_id == portal_id, OutgoingMessage.line_id == line_id,
        OutgoingMessage.chat_id == chat_id, OutgoingMessage.ack.is_not(None),
        OutgoingMessage.message_id.in_({short_id(m.id) for m in own} | {m.id for m in own}))).all())
    if not stored:
        return page
    messages = []
    for m in page.messages:
        ack = stored.get(m.id, stored.get(short_id(m.id))) if m.from_me else None
        if ack is not None and (m.ack is None or _ACK_VALUES.get(m.ack, -2) < ack):
            m = replace(m, ack=ACK_NAMES[ack])
        messages.append(m)
    return replace(page, messages=messages)


# ---------------------------------------------------------------- session.status


def accept_session_status(envelope: dict, portal_ids: list[int], *, own_server: bool) -> int:
    """Store the session's new state for each portal it is a line of; return how many changed."""
    from ..gateway.waha import line_state

    payload, session = envelope.get("payload"), envelope.get("session")
    if not isinstance(payload, dict) or not isinstance(session, str) or not session or len(session) > 128:
        return 0
    if not isinstance(payload.get("status"), str):
        return 0
    status = line_state(payload["status"])
    wanted = [n.strip() for n in current_app.config["OLCHAT_WAHA_SESSIONS"].split(",") if n.strip()]
    changed = 0
    for portal_id in portal_ids:
        if own_server:
            if db.session.scalar(db.select(PortalLine.id).filter_by(portal_id=portal_id, line_id=session)) is None:
                continue  # a session of that server the admin did not choose
        elif wanted and session not in wanted:
            continue
        changed += _store_state(portal_id, session, status)
    return changed


def _store_state(portal_id: int, line_id: str, status: str) -> int:
    now = utcnow()
    done = db.session.execute(update(LineState).where(
        LineState.portal_id == portal_id, LineState.line_id == line_id, LineState.status != status)
        .values(status=status, version=LineState.version + 1, changed_at=now)).rowcount
    if done:
        db.session.commit()
        return 1
    db.session.add(LineState(portal_id=portal_id, line_id=line_id, status=status, version=1, changed_at=now))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # the row exists with this state already (or was just written): nothing new
        return 0
    return 1


def told_states(portal_id: int) -> dict[str, tuple[int, str]]:
    """The portal's line states from session.status webhooks: line id → (version, state)."""
    return {line_id: (version, status) for line_id, version, status in db.session.execute(
        db.select(LineState.line_id, LineState.version, LineState.status).filter_by(portal_id=portal_id))}


def with_told_states(lines, seen: dict, told: dict):
    """The cached lines with every state WAHA told since the list was fetched (``seen``: the versions then)."""
    return [replace(line, status=told[line.id][1]) if line.id in told and told[line.id] != seen.get(line.id)
            else line for line in lines]


# ---------------------------------------------------------------- hourly: imconnector.status


def check_connectors() -> dict[str, int]:
    """Ask Bitrix24 about every bound Open Line; activate the connector again where it is not working."""
    from .connector import activate

    tally = {"checked": 0, "reactivated": 0, "failed": 0}
    bindings = db.session.execute(db.select(OpenLineBinding.id, OpenLineBinding.portal_id)
                                  .order_by(OpenLineBinding.id)).all()
    for binding_id, portal_id in bindings:
        try:
            binding = db.session.get(OpenLineBinding, binding_id)
            portal = db.session.get(Portal, portal_id)
            if binding is None or portal is None or not portal.installed or portal.kind != "bitrix":
                continue
            tally["checked"] += 1
            if not _connector_working(portal, binding.openline_id):
                activate(portal, binding)
                tally["reactivated"] += 1
        except Exception as exc:  # one portal's trouble (tokens revoked, portal gone, Bitrix24 down) is its own
            db.session.rollback()
            tally["failed"] += 1
            current_app.logger.warning("imconnector.status check of portal %s failed: %s", portal_id,
                                       type(exc).__name__)
    return tally


def _connector_working(portal: Portal, openline: str) -> bool:
    from ..b24.portal import app_client

    answer = app_client(portal).call("imconnector.status", {"CONNECTOR": current_app.config["OLCHAT_CONNECTOR_ID"],
                                                            "LINE": openline})
    if not isinstance(answer, dict):
        return False
    return _yes(answer.get("STATUS")) and _yes(answer.get("CONFIGURED")) and not _yes(answer.get("ERROR"))


def _yes(value) -> bool:
    """Bitrix24 answers booleans as true/false, "Y"/"N" or 1/0."""
    if isinstance(value, str):
        return value.strip().upper() in ("Y", "1", "TRUE")
    return bool(value)

"""Sends that are never doubled or lost (F10).

Each send is a row keyed by (portal, idempotency key), written before the
gateway is called. The first request with a key sends; every other request
with that key — a double click, a browser retry, a second worker — waits for
and returns the first one's result. A send that timed out is «unknown»: before
anything is sent again, the pre-generated message id is looked up.

Files (the Open Lines bridge) go through the same rows: WAHA's media
endpoints take no pre-generated id, so a file whose send is «unknown» can't
be looked up and is never sent again on a guess — a doubled photo is worse
than an operator told to check. A caller may ask for sends that failed
before reaching WhatsApp (``resend_failed``, e.g. the server was down) to be
tried again by a later job.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..models import OutgoingMessage, db, utcnow
from .base import Gateway, GatewayError, GatewayTimeout
from .guard import count_line

PENDING, SENT, FAILED, UNKNOWN = "pending", "sent", "failed", "unknown"

# A send still pending after this long lost its worker (gateway calls time out far sooner).
ABANDONED = timedelta(minutes=2)


@dataclass(frozen=True)
class OutgoingFile:
    """A file to send instead of a text: the row's text only describes it."""

    kind: str  # base.IMAGE | VOICE | VIDEO | DOCUMENT
    data: bytes | BinaryIO  # a file is read from where it stands, to its end
    mimetype: str
    filename: str
    caption: str = ""


def send_once(gateway: Gateway, *, portal_id: int, key: str, user_id: str | None, line_id: str, phone: str,
              chat_id: str, text: str, wait: float = 20.0, media: OutgoingFile | None = None,
              resend_failed: tuple[str, ...] = ()) -> OutgoingMessage:
    """Send ``text`` (or ``media``) once for ``key`` and return the outbox row with its final status."""
    row = OutgoingMessage(portal_id=portal_id, idempotency_key=key, user_id=user_id, line_id=line_id,
                          phone=phone, chat_id=chat_id, text=text, status=PENDING)
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _follow(gateway, portal_id, key, wait, media, resend_failed)
    return _deliver(gateway, row, media)


def sent_before(portal_id: int, key: str) -> OutgoingMessage | None:
    """The row of ``key`` when it went out already (a retried job skips that part), else None."""
    row = db.session.scalar(select(OutgoingMessage).filter_by(portal_id=portal_id, idempotency_key=key))
    return row if row is not None and row.status == SENT else None


def _deliver(gateway: Gateway, row: OutgoingMessage, media: OutgoingFile | None = None) -> OutgoingMessage:
    """Call the gateway for a row this request owns (status pending)."""
    try:
        if media is not None:
            sent = gateway.send_media(row.line_id, row.chat_id, media.kind, data=media.data,
                                      mimetype=media.mimetype, filename=media.filename, caption=media.caption)
            row.message_id = sent.id[:255] if sent.id else None
        else:
            if not row.message_id:
                row.message_id = gateway.new_message_id(row.line_id)
                db.session.commit()
            gateway.send_text(row.line_id, row.chat_id, row.text, message_id=row.message_id)
    except GatewayTimeout:
        # It may have gone out: never resend blindly, reconcile by id later.
        return _finish(row, UNKNOWN, "timeout")
    except GatewayError as exc:
        return _finish(row, FAILED, exc.reason)
    count_line(row.portal_id, row.line_id, sends=1)
    return _finish(row, SENT, None)


def _finish(row: OutgoingMessage, status: str, error: str | None) -> OutgoingMessage:
    row.status = status
    row.error = error
    row.updated_at = utcnow()
    db.session.commit()
    return row


def _follow(gateway: Gateway, portal_id: int, key: str, wait: float, media: OutgoingFile | None = None,
            resend_failed: tuple[str, ...] = ()) -> OutgoingMessage:
    """Return the result of the send that already owns ``key``; reconcile it if it is unknown."""
    deadline = time.monotonic() + wait
    while True:
        db.session.rollback()  # a fresh snapshot each time: the owner commits in another session
        row = db.session.scalar(select(OutgoingMessage).filter_by(portal_id=portal_id, idempotency_key=key))
        if row.status == PENDING and utcnow() - row.updated_at > ABANDONED:
            # The worker that owned it died mid-send: settle it like a send that timed out.
            db.session.execute(update(OutgoingMessage).where(OutgoingMessage.id == row.id,
                                                             OutgoingMessage.status == PENDING)
                               .values(status=UNKNOWN, error="abandoned", updated_at=utcnow()))
            db.session.commit()
            continue
        if row.status == UNKNOWN:
            return row if media is not None else reconcile(gateway, row)
        if row.status == FAILED and row.error in resend_failed:
            # It never reached WhatsApp: whoever takes the row back to pending sends it again.
            taken = db.session.execute(update(OutgoingMessage).where(
                OutgoingMessage.id == row.id, OutgoingMessage.status == FAILED, OutgoingMessage.error == row.error)
                .values(status=PENDING, error=None, updated_at=utcnow()))
            db.session.commit()
            if taken.rowcount == 1:
                db.session.refresh(row)
                return _deliver(gateway, row, media)
            continue
        if row.status != PENDING or time.monotonic() >= deadline:
            return row
        time.sleep(0.05)


def reconcile(gateway: Gateway, row: OutgoingMessage) -> OutgoingMessage:
    """Settle an «unknown» send: found by its id → sent; not found → send it now, once."""
    # Only one request may move the row out of unknown.
    taken = db.session.execute(
        update(OutgoingMessage).where(OutgoingMessage.id == row.id, OutgoingMessage.status == UNKNOWN)
        .values(status=PENDING, updated_at=utcnow()))
    db.session.commit()
    if taken.rowcount != 1:
        db.session.refresh(row)
        return row
    db.session.refresh(row)
    try:
        found = gateway.find_message(row.line_id, row.chat_id, row.message_id) if row.message_id else None
    except GatewayError:
        return _finish(row, UNKNOWN, "timeout")
    if found is not None:
        count_line(row.portal_id, row.line_id, sends=1)
        return _finish(row, SENT, None)
    return _deliver(gateway, row)

"""«Создавать дело»: a message sent from a card leaves a record in that card's timeline.

Why ``crm.timeline.comment.add`` and not an activity: a sent message is a thing
that happened, not work to do. ``crm.activity.todo.add`` makes an open to-do with a
deadline that the operator would have to close for every message, and
``crm.activity.add`` is the old provider-bound path (an activity of type e-mail or
call that it is not). A timeline comment takes our text, its author
(``AUTHOR_ID``: who sent it), shows in the card's timeline at once, and is the
documented way for an app to note something on a card.

The record is written in the send's own request (one row per outbox row: a
second press or a retried job finds it) and posted by a job, so the send's
answer never waits for Bitrix24 and a Bitrix24 failure can neither lose nor
repeat the WhatsApp message. The job retries with backoff; a sweep takes over
after its last retry. An attempt that may have reached Bitrix24 without us
hearing the answer (a timeout) is looked up before posting again, so each sent
message has exactly one record.

Delivery state: a comment has no state field, so its text says it. Not every
ack (sent, delivered, read) is written — each would be one more request from the
portal's 2-requests-a-second bucket that card loads need — only WhatsApp's final
word, once: delivered to the client's phone (ack DEVICE) or not delivered (ERROR),
by ``crm.timeline.comment.update`` from a job. Lines whose acks we never hear (no
webhook of ours) leave the comment as posted.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy.exc import IntegrityError

from ..crm.base import COMPANY, CONTACT, DEAL, LEAD, QUOTE
from ..models import OutgoingMessage, Portal, TimelineRecord, db, utcnow

# crm.timeline.comment.add's ENTITY_TYPE: lead, deal, contact, company are documented; smart processes
# (smart invoices too, type 31) are dynamic_<entityTypeId> in Bitrix24's newer REST, quotes "quote".
_ENTITY_TYPES = {LEAD: "lead", DEAL: "deal", CONTACT: "contact", COMPANY: "company", QUOTE: "quote"}
GIVE_UP_AFTER = 20  # attempts, retries and sweeps together: about a day of a portal that refuses
POSTED, QUEUED, FAILED = "posted", "queued", "failed"


class Retry(Exception):
    """Bitrix24 did not take the record now: the job tries again later."""


_DELIVERY_TEXT = {"ru": {"delivered": "Статус: доставлено клиенту", "failed": "Статус: не доставлено"},
                  "en": {"delivered": "Status: delivered to the client", "failed": "Status: not delivered"}}


def entity_type_name(entity_type_id: int) -> str:
    return _ENTITY_TYPES.get(entity_type_id) or f"dynamic_{entity_type_id}"


def comment_text(message: OutgoingMessage, *, text: str, line_name: str, phone_text: str, user_name: str,
                 locale: str) -> str:
    """What the card's timeline says about one sent message: text (as typed), line, number, who sent it."""
    if locale == "en":
        head, line, number, who, said = "WhatsApp message sent", "Line", "Number", "Sent by", "Text"
    else:
        head, line, number, who, said = "Отправлено сообщение WhatsApp", "Линия", "Номер", "Отправил", "Текст"
    return (f"{head}\n{line}: {line_name}\n{number}: {phone_text}\n{who}: {user_name or message.user_id or '—'}\n"
            f"{said}:\n{text}")


def record_send(portal_id: int, message: OutgoingMessage, entity_type_id: int, entity_id: int,
                comment: str) -> int | None:
    """Store the record of a sent message; the row id to post, None when it is stored already."""
    row = TimelineRecord(portal_id=portal_id, message_id=message.id, entity_type_id=entity_type_id,
                         entity_id=entity_id, comment=comment, author_id=message.user_id)
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a second press of the same send: its record exists
        return None
    return row.id


def post(row_id: int) -> str:
    """Post one record to its card's timeline once (a job); return the record's status."""
    from ..b24.client import B24AccessDenied, B24Error, B24NotFound, B24Unavailable
    from ..b24.portal import app_client

    row = db.session.get(TimelineRecord, row_id)
    if row is None:
        return "gone"
    if row.status != QUEUED:
        return row.status
    portal = db.session.get(Portal, row.portal_id)
    if portal is None:
        return "gone"
    if portal.kind == "demo":
        # The demo portal has no Bitrix24 behind it: the record is kept here, where the tests see it.
        row.status, row.b24_id = POSTED, f"demo-{row.id}"
        db.session.commit()
        if row.delivery:
            queue_update(row.id)
        return row.status
    client = app_client(portal)
    row.attempts += 1
    fields = {"ENTITY_ID": row.entity_id, "ENTITY_TYPE": entity_type_name(row.entity_type_id), "COMMENT": row.comment}
    if row.author_id and row.author_id.isdigit():
        fields["AUTHOR_ID"] = int(row.author_id)
    try:
        found = _already_posted(client, row, fields) if row.maybe_posted else None
        b24_id = found or client.call("crm.timeline.comment.add", {"fields": fields})
    except (B24NotFound, B24AccessDenied) as exc:
        # The card is gone or the app may not write it: no retry will change that.
        row.status, row.error = FAILED, f"{type(exc).__name__}: {exc}"[:255]
        db.session.commit()
        return row.status
    except B24Error as exc:
        # A timeout may have reached Bitrix24: the next attempt looks before it posts.
        row.maybe_posted = row.maybe_posted or isinstance(exc, B24Unavailable)
        row.error = type(exc).__name__[:255]
        if row.attempts >= GIVE_UP_AFTER:
            row.status = FAILED
        db.session.commit()
        if row.status == FAILED:
            return row.status
        raise Retry(str(exc)) from exc
    row.status, row.b24_id, row.error = POSTED, str(b24_id)[:64] if b24_id is not None else None, None
    db.session.commit()
    if row.delivery:
        queue_update(row.id)  # WhatsApp answered before the comment was posted
    return row.status


def queue_update(row_id: int) -> None:
    from ..jobs import enqueue

    try:
        enqueue("update_timeline", row_id)
    except Exception:  # noqa: BLE001 - refused queue or (immediate) Bitrix24 failure: the next ack or sweep
        current_app.logger.warning("delivery state of timeline record %s not written now", row_id)


def _already_posted(client, row: TimelineRecord, fields: dict) -> str | None:
    """The ID of our comment if an earlier attempt did post it (the card's newest comments, same text)."""
    answer = client.call("crm.timeline.comment.list", {
        "filter": {"ENTITY_ID": fields["ENTITY_ID"], "ENTITY_TYPE": fields["ENTITY_TYPE"]},
        "select": ["ID", "COMMENT", "AUTHOR_ID"], "order": {"ID": "DESC"}})
    for comment in answer or []:
        if isinstance(comment, dict) and str(comment.get("COMMENT") or "") == row.comment:
            return str(comment.get("ID") or "") or None
    return None


def note_delivery(message_row_id: int, outcome: str) -> int | None:
    """The sent message reached its final state (delivered | failed): remember it on its record; return the
    record to update in Bitrix24 (posted already), or None. The caller commits, then queues the update."""
    row = db.session.scalar(db.select(TimelineRecord).filter_by(message_id=message_row_id))
    if row is None or row.delivery == outcome:
        return None
    row.delivery = outcome
    return row.id if row.status == POSTED else None  # not posted yet: the post job queues the update after


def shown_comment(row: TimelineRecord) -> str:
    """The comment's text with its delivery line (in the language the comment was written in)."""
    lang = "en" if row.comment.startswith("WhatsApp message sent") else "ru"
    return f"{row.comment}\n{_DELIVERY_TEXT[lang][row.delivery]}" if row.delivery in ("delivered", "failed") \
        else row.comment


def update_delivery(row_id: int) -> str:
    """Write the record's delivery state into its posted comment, once per state (a job)."""
    from ..b24.client import B24AccessDenied, B24Error, B24NotFound
    from ..b24.portal import app_client

    row = db.session.get(TimelineRecord, row_id)
    if row is None or row.status != POSTED or not row.delivery or row.delivery == row.delivery_shown:
        return "same"
    portal = db.session.get(Portal, row.portal_id)
    if portal is None:
        return "gone"
    state = row.delivery
    if portal.kind != "demo" and row.b24_id and row.b24_id.isdigit():
        try:
            app_client(portal).call("crm.timeline.comment.update",
                                    {"id": int(row.b24_id), "fields": {"COMMENT": shown_comment(row)}})
        except (B24NotFound, B24AccessDenied):
            pass  # the comment or the card is gone, or the app may no longer write it: nothing to correct
        except B24Error as exc:
            raise Retry(str(exc)) from exc  # the same text again next time: an update twice is harmless
    row.delivery_shown = state
    db.session.commit()
    return state


def sweep(older_than: timedelta = timedelta(seconds=60)) -> int:
    """Queue again records no job is taking care of (their job gave up after its retries, or was lost)."""
    from ..jobs import enqueue

    ids = db.session.scalars(db.select(TimelineRecord.id).where(
        TimelineRecord.status == QUEUED, TimelineRecord.updated_at < utcnow() - older_than).limit(500)).all()
    for row_id in ids:
        try:
            enqueue("post_timeline", row_id)
        except Retry:
            pass  # immediate queue (tests, demo): the record stays queued for the next sweep
    # Posted records whose delivery state is not written yet (their update job gave up or was lost).
    behind = db.session.scalars(db.select(TimelineRecord.id).where(
        TimelineRecord.status == POSTED, TimelineRecord.delivery.is_not(None),
        (TimelineRecord.delivery_shown.is_(None)) | (TimelineRecord.delivery_shown != TimelineRecord.delivery),
        TimelineRecord.updated_at < utcnow() - older_than).limit(500)).all()
    for row_id in behind:
        queue_update(row_id)
    return len(ids) + len(behind)


def queue(row_id: int) -> None:
    """Hand the record to the job; whatever the queue or Bitrix24 does now, the sweep retries later."""
    from ..jobs import enqueue

    try:
        enqueue("post_timeline", row_id)
    except Exception:  # noqa: BLE001 - refused queue or (immediate) Bitrix24 failure: the send is done anyway
        current_app.logger.warning("timeline record %s left for the sweep", row_id)

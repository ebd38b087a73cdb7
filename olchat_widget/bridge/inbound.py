"""Client → Open Lines: a WAHA webhook is stored first, de-duplicated by WhatsApp id, delivered by a job.

The webhook answer only writes rows and queues ``deliver_chat``; the job sends
every queued message of one chat, in order, in one ``imconnector.send.messages``
request. A row is claimed before it is sent, so two consumers never send it
both; a claim left by a consumer that died is taken over after CLAIM_STALE.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, update
from huey.exceptions import RetryTask

from ..models import BridgeMessage, ChatDelivery, OpenLineBinding, Portal, db, insert_or_not, utcnow
from . import media
from .ids import clean_name, client_id

MESSAGE_EVENTS = ("message", "message.any")
CLAIM_STALE = timedelta(seconds=60)
BATCH = 20  # messages of one chat in one send.messages request
ROUNDS = 10  # batches one job sends before it queues the chat's rest as a new job
UNCONFIRMED = "unconfirmed"  # BridgeMessage.error: sent, maybe received, no answer: ask before sending again


def signature_ok(raw: bytes, key: str, signature: str | None) -> bool:
    """Check WAHA's X-Webhook-Hmac: hex HMAC-SHA512 of the raw body."""
    if not signature:
        return False
    expected = hmac.new(key.encode(), raw, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def accept(envelope: dict, portal_ids: list[int]) -> list[tuple[int, str, str]]:
    """Store the client's message of a webhook for each bound Open Line; return the chats whose delivery
    must be queued (a new message, and no job of the chat waiting yet)."""
    if envelope.get("event") not in MESSAGE_EVENTS:
        return []
    payload = envelope.get("payload")
    session = envelope.get("session")
    if not isinstance(payload, dict) or not isinstance(session, str):
        return []
    message_id = payload.get("id")
    chat = payload.get("from")
    if not isinstance(message_id, str) or not message_id or not isinstance(chat, str):
        return []
    if payload.get("fromMe"):
        # Not a client's words: our own sends' echoes (dropped there) and what was typed on the phone.
        from .mirror import accept_own

        accept_own(payload, session, portal_ids)
        return []
    client = client_id(chat)
    if not client or "@lid" in chat or "@g.us" in chat:
        return []  # groups and hidden numbers are not client chats of a CRM card
    stamp = payload.get("timestamp")
    part = {
        "text": str(payload.get("body") or "")[:20_000],
        "date": int(stamp) if isinstance(stamp, (int, float)) and stamp > 0 else None,
        "name": clean_name(_push_name(payload)),
        "has_media": bool(payload.get("hasMedia")),
        "media": media.describe(payload),
    }
    # One query for every portal the line serves: the deployment's WAHA may serve many.
    bound = db.session.execute(db.select(OpenLineBinding.portal_id, OpenLineBinding.openline_id).where(
        OpenLineBinding.portal_id.in_(portal_ids), OpenLineBinding.line_id == session)).all() if portal_ids else []
    return [(portal_id, session, client) for portal_id, openline_id in bound
            if _store(portal_id, message_id, session, openline_id, client, part)]


def _store(portal_id: int, message_id: str, line_id: str, openline_id: str, client: str, part: dict) -> bool:
    """Store one client message once; return whether a delivery job must be queued for its chat.

    Prepared statements and one commit, shared with the webhooks this process
    is storing at the same moment (shared_commits.py): SQLite has one writer at
    a time, and a webhook must answer fast under a burst. A message WAHA posted before (a
    retry, a duplicate) is not inserted again. The open histories' counter of
    the chat moves in the same commit, and the chat is marked as waiting for a
    job unless it is already: then the job that waits takes this message too.
    """
    from .. import shared_commits
    from ..widget import live

    dialect = db.session.get_bind().dialect.name
    row = {"row_portal": portal_id, "row_source": message_id[:255], "row_line": line_id, "row_openline": openline_id,
           "row_client": client, "row_payload": json.dumps(part, ensure_ascii=False), "row_at": utcnow()}
    chat = {"wait_portal": portal_id, "wait_line": line_id, "wait_client": client}

    def store(connection) -> bool:
        if connection.execute(_new_message(dialect), row).first() is None:
            return False  # had it already
        live.bump_on(connection, dialect, portal_id, line_id, client)
        return connection.execute(_mark_waiting(dialect), chat).first() is not None

    return shared_commits.run(store)


@functools.lru_cache(maxsize=None)
def _new_message(_dialect: str):
    # Built once per database kind: the webhook runs it while holding SQLite's only write turn.
    return insert_or_not(BridgeMessage).values(
        portal_id=bindparam("row_portal"), direction="in", source_id=bindparam("row_source"), part=0,
        line_id=bindparam("row_line"), openline_id=bindparam("row_openline"), client=bindparam("row_client"),
        payload=bindparam("row_payload"), status="queued", attempts=0, reported=False,
        created_at=bindparam("row_at"), updated_at=bindparam("row_at")).on_conflict_do_nothing().returning(
        BridgeMessage.id)  # a row back: stored now (rowcount says -1 on some drivers when RETURNING is implicit)


@functools.lru_cache(maxsize=None)
def _mark_waiting(_dialect: str):
    # A row back only when this call set the mark (new chat, or no job waiting): then it queues one.
    return insert_or_not(ChatDelivery).values(
        portal_id=bindparam("wait_portal"), line_id=bindparam("wait_line"), client=bindparam("wait_client"),
        waiting=True).on_conflict_do_update(
        index_elements=["portal_id", "line_id", "client"], set_={"waiting": True},
        where=ChatDelivery.waiting.is_(False)).returning(ChatDelivery.id)


def _started(portal_id: int, line_id: str, client: str) -> None:
    """The chat's waiting job runs now: a message stored from here on queues another (its claim may miss it)."""
    db.session.execute(update(ChatDelivery).where(
        ChatDelivery.portal_id == portal_id, ChatDelivery.line_id == line_id, ChatDelivery.client == client,
        ChatDelivery.waiting.is_(True)).values(waiting=False))
    db.session.commit()


def deliver_chat(portal_id: int, line_id: str, client: str) -> int:
    """Send the chat's queued messages to its Open Line, oldest first, a batch per request; return how many went.

    The job that holds a chat keeps taking its newer messages after each batch,
    so a job that finds the chat held simply leaves its message to the holder
    (its row was stored before it was queued, so the holder's next look sees it).
    """
    _started(portal_id, line_id, client)
    delivered = 0
    for _ in range(ROUNDS):
        rows = _claim(portal_id, line_id, client)
        if not rows:
            return delivered
        delivered += _send_batch(portal_id, client, rows)
    # A chat that keeps talking must not hold a consumer for ever: the rest goes to a new job.
    from ..jobs import enqueue

    enqueue("deliver_inbound", portal_id, line_id, client)
    return delivered


def _send_batch(portal_id: int, client: str, rows: list[BridgeMessage]) -> int:
    from ..b24.portal import app_client
    from ..b24.client import B24Error, B24Unavailable

    portal = db.session.get(Portal, portal_id)
    # Files first: WAHA deletes them within minutes, whatever Bitrix24 answers below.
    rows, waiting = media.settle_inbound(portal, rows)
    if waiting:
        _release(waiting, "file not received yet")
        if not rows:
            raise RetryTask(delay=backoff(max(row.attempts for row in waiting)))  # a file is not received yet
    connector = current_app.config["OLCHAT_CONNECTOR_ID"]
    b24 = app_client(portal)
    try:
        rows, known = _not_there_yet(b24, connector, client, rows)
        delivered = len(known)
        if not rows:
            db.session.commit()
            return delivered
        messages = [_item(row, client, portal_id) for row in rows]
        answer = b24.call("imconnector.send.messages",
                          {"CONNECTOR": connector, "LINE": rows[0].openline_id, "MESSAGES": messages})
    except B24Error as exc:
        # Bitrix24 gave no answer (timeout, broken connection, a 5xx): it may have the messages all the same.
        _release(rows, UNCONFIRMED if type(exc) is B24Unavailable else f"{type(exc).__name__}")
        attempts = max(row.attempts for row in rows)
        if attempts >= current_app.config["OLCHAT_JOB_RETRIES"] + 1:
            return 0  # given up for now: the sweep queues the chat again in a minute
        raise RetryTask(delay=backoff(attempts)) from exc
    chat_ids = _chat_ids(answer, len(rows))
    for row, chat_id in zip(rows, chat_ids):
        row.status, row.target_id, row.error = "delivered", chat_id, None
    db.session.commit()
    if waiting:
        # A file is not received yet: the rows from it on go on the retry, in order.
        raise RetryTask(delay=backoff(max(row.attempts for row in waiting)))
    return delivered + len(rows)


def _item(row: BridgeMessage, client: str, portal_id: int) -> dict:
    """One MESSAGES[] entry of send.messages (and update.messages) for a stored client message."""
    part = json.loads(row.payload)
    message = media.dress({"id": row.source_id, "text": part.get("text") or " "}, part, portal_id)
    if part.get("date"):
        message["date"] = part["date"]
    return {"user": {"id": client, "name": part.get("name") or "WhatsApp", "phone": "+" + client},
            "message": message, "chat": {"id": client}}


def _not_there_yet(b24, connector: str, client: str, rows: list[BridgeMessage]):
    """Split off the rows Bitrix24 may have already: those it has are marked delivered. Return (to send, had).

    A consumer that died after Bitrix24 took its batch, or a send whose answer
    was lost, leaves rows that look undelivered. Bitrix24 does not de-duplicate
    message ids, so sending them again would show them twice. Instead each is
    first "updated" by its id with imconnector.update.messages (same text): a
    message Bitrix24 has is confirmed by that, one it lacks is refused, and
    only those are sent.
    """
    unsure = [row for row in rows if row.error == UNCONFIRMED]
    if not unsure:
        return rows, []
    answer = b24.call("imconnector.update.messages", {
        "CONNECTOR": connector, "LINE": unsure[0].openline_id,
        "MESSAGES": [_item(row, client, row.portal_id) for row in unsure]})
    results = answer.get("DATA", {}).get("RESULT") if isinstance(answer, dict) and isinstance(
        answer.get("DATA"), dict) else None
    results = results if isinstance(results, list) else []
    had = [row for n, row in enumerate(unsure)
           if n < len(results) and isinstance(results[n], dict) and results[n].get("SUCCESS") is True]
    for row in had:
        row.status, row.error = "delivered", None
    return [row for row in rows if row not in had], had


def backoff(attempts: int) -> float:
    """Seconds before the next try: OLCHAT_JOB_RETRY_DELAY, doubled each attempt, at most five minutes."""
    return min(current_app.config["OLCHAT_JOB_RETRY_DELAY"] * 2 ** max(0, attempts - 1), 300.0)


def _push_name(payload: dict) -> str:
    """The name the client set in WhatsApp, where the engine puts it."""
    data = payload.get("_data")
    name = (data.get("notifyName") if isinstance(data, dict) else None) or payload.get("notifyName")
    return name if isinstance(name, str) else ""


def _chat_ids(answer, count: int) -> list[str | None]:
    """The Open Lines chat of each message in a send.messages answer (None where it names none)."""
    results = answer.get("DATA", {}).get("RESULT") if isinstance(answer, dict) and isinstance(
        answer.get("DATA"), dict) else None
    results = results if isinstance(results, list) else []
    chat_ids = []
    for n in range(count):
        session = results[n].get("session") if n < len(results) and isinstance(results[n], dict) else None
        chat_ids.append(str(session["CHAT_ID"]) if isinstance(session, dict) and session.get("CHAT_ID") else None)
    return chat_ids


def _claim(portal_id: int, line_id: str, client: str) -> list[BridgeMessage]:
    """Take the chat's oldest queued rows for this consumer; none while another consumer holds the chat."""
    now = utcnow()
    chat = (BridgeMessage.portal_id == portal_id, BridgeMessage.direction == "in",
            BridgeMessage.line_id == line_id, BridgeMessage.client == client)
    held = db.session.scalar(db.select(BridgeMessage.id).where(
        *chat, BridgeMessage.status == "sending", BridgeMessage.updated_at > now - CLAIM_STALE).limit(1))
    if held is not None:
        db.session.rollback()
        return []  # another consumer is delivering this chat: it takes these rows after its batch (order)
    ids = db.session.scalars(db.select(BridgeMessage.id).where(
        *chat, BridgeMessage.status.in_(("queued", "sending"))).order_by(BridgeMessage.id).limit(BATCH)).all()
    if not ids:
        db.session.rollback()
        return []
    # A dead consumer's claim: it may have delivered these before it died (see _not_there_yet).
    db.session.execute(update(BridgeMessage).where(
        BridgeMessage.id.in_(ids), BridgeMessage.status == "sending",
        BridgeMessage.updated_at <= now - CLAIM_STALE)
        .values(error=UNCONFIRMED, updated_at=BridgeMessage.updated_at))  # keep the stale time: the claim reads it
    # The claim is one UPDATE guarded by the states read: a concurrent consumer's claim makes it miss.
    claimed = db.session.execute(update(BridgeMessage).where(
        BridgeMessage.id.in_(ids),
        (BridgeMessage.status == "queued") | ((BridgeMessage.status == "sending")
                                              & (BridgeMessage.updated_at <= now - CLAIM_STALE)))
        .values(status="sending", updated_at=now, attempts=BridgeMessage.attempts + 1)).rowcount
    db.session.commit()
    if claimed != len(ids):
        # Two consumers raced for the chat; the winner may finish before our release is seen: try again soon.
        _release_ids(ids, now)
        raise RetryTask(delay=0.5)
    return db.session.scalars(db.select(BridgeMessage).where(BridgeMessage.id.in_(ids))
                              .order_by(BridgeMessage.id)).all()


def _release(rows, error: str) -> None:
    for row in rows:
        # A row Bitrix24 may have stays marked so until Bitrix24 says whether it has it.
        row.status, row.error = "queued", UNCONFIRMED if row.error == UNCONFIRMED else error[:255]
    db.session.commit()


def _release_ids(ids, claimed_at) -> None:
    db.session.execute(update(BridgeMessage).where(BridgeMessage.id.in_(ids), BridgeMessage.status == "sending",
                                                   BridgeMessage.updated_at == claimed_at)
                       .values(status="queued"))
    db.session.commit()


def chats_left_behind(older_than: timedelta = timedelta(seconds=30)) -> list[tuple[int, str, str]]:
    """Chats with messages no job is taking care of: queued a while ago, or claimed by a dead consumer.

    A job gives up after its retries (Bitrix24 down for a long time, a claim it
    waited for); the periodic sweep queues these chats again, so nothing is lost.
    """
    now = utcnow()
    rows = db.session.execute(db.select(BridgeMessage.portal_id, BridgeMessage.line_id, BridgeMessage.client)
                              .where(BridgeMessage.direction == "in",
                                     ((BridgeMessage.status == "queued") & (BridgeMessage.updated_at < now - older_than))
                                     | ((BridgeMessage.status == "sending")
                                        & (BridgeMessage.updated_at <= now - CLAIM_STALE)))
                              .distinct().limit(1000)).all()
    return [tuple(r) for r in rows]


def sweep() -> int:
    """Queue again every chat left behind; return how many."""
    from ..jobs import enqueue

    chats = chats_left_behind()
    for chat in chats:
        enqueue("deliver_inbound", *chat)
    return len(chats)

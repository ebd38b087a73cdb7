"""Live history: an open chat shows a new message within seconds, and "nothing new" costs next to nothing.

The history panel polls every 2 s with the newest message it shows (``after``)
and the chat's activity counter it was rendered with (``seen``). On lines
bound to an Open Line the app has set WAHA's webhook, which moves the counter
(ChatActivity) on every message: an unchanged counter answers "nothing new"
from one indexed row, without asking WhatsApp. Other lines have no webhook of
ours, so the gateway is asked — at most once per chat every LOOK_AGAIN seconds
in this process, however many operators have the chat open.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import bindparam

from .. import clock
from ..bridge.ids import client_id
from ..models import ChatActivity, OpenLineBinding, db, insert_or_not
from ..runtime import LockedTTLCache

MESSAGE_EVENTS = ("message", "message.any")
LOOK_AGAIN = 2.0  # seconds a chat's latest page is reused for lines without our webhook
PAGE = 20  # newest messages fetched when something changed; more than that: the panel reloads on demand
_CACHE = "olchat_live_pages"


@dataclass(frozen=True)
class News:
    messages: list  # messages newer than the one shown last, oldest first
    newest: str  # the id the next poll sends as ``after``
    newest_at: int  # and its timestamp, as ``at``
    seen: int | None  # the counter the next poll sends as ``seen`` (None: the line has no webhook of ours)


def note_webhook(envelope: dict, portal_ids: list[int]) -> None:
    """Move the chat's counter for each portal whose bound line the webhook's message belongs to."""
    if envelope.get("event") not in MESSAGE_EVENTS:
        return
    payload, session = envelope.get("payload"), envelope.get("session")
    if not isinstance(payload, dict) or not isinstance(session, str) or not portal_ids:
        return
    chat = payload.get("to") if payload.get("fromMe") else payload.get("from")
    if not isinstance(chat, str) or "@g.us" in chat or "@lid" in chat:
        return
    client = client_id(chat)
    if not client:
        return
    bound = db.session.scalars(db.select(OpenLineBinding.portal_id).where(
        OpenLineBinding.portal_id.in_(portal_ids), OpenLineBinding.line_id == session)).all()
    for portal_id in bound:
        touch(portal_id, session, client)


def bump(portal_id: int, line_id: str, client: str) -> None:
    """Move the chat's counter within the caller's transaction (one upsert; the caller commits)."""
    bump_on(db.session.connection(), db.session.get_bind().dialect.name, portal_id, line_id, client)


def bump_on(connection, dialect: str, portal_id: int, line_id: str, client: str) -> None:
    """bump() on a given connection (a transaction shared by several webhooks: shared_commits.py)."""
    connection.execute(_counter_upsert(dialect), {"chat_portal": portal_id, "chat_line": line_id, "chat_client": client})


@functools.lru_cache(maxsize=None)
def _counter_upsert(_dialect: str):
    # Built once per database kind: a webhook runs it while holding SQLite's only write turn.
    return (insert_or_not(ChatActivity)
            .values(portal_id=bindparam("chat_portal"), line_id=bindparam("chat_line"),
                    client=bindparam("chat_client"), seq=1)
            .on_conflict_do_update(index_elements=["portal_id", "line_id", "client"],
                                   set_={"seq": ChatActivity.seq + 1}))


def touch(portal_id: int, line_id: str, client: str) -> None:
    """Something happened in the chat: the next poll of an open history looks."""
    bump(portal_id, line_id, client)
    db.session.commit()


def watched(portal_id: int, line_id: str) -> bool:
    """Whether the line's webhook is ours (the line serves an Open Line), so its counters can be trusted."""
    return db.session.scalar(db.select(OpenLineBinding.id).filter_by(portal_id=portal_id, line_id=line_id)
                             .limit(1)) is not None


def counter(portal_id: int, line_id: str, chat_id: str) -> int:
    seq = db.session.scalar(db.select(ChatActivity.seq).filter_by(
        portal_id=portal_id, line_id=line_id, client=client_id(chat_id)))
    return seq or 0


def seen_now(portal_id: int, line_id: str, chat_id: str) -> int | None:
    """The counter a freshly rendered history polls with (None on lines without our webhook)."""
    return counter(portal_id, line_id, chat_id) if watched(portal_id, line_id) else None


def news(portal_id: int, line_id: str, chat_id: str, *, after: str, at: int, seen: int | None,
         gateway) -> News | None:
    """What the history showing ``after`` last has not got yet; None when nothing changed."""
    if watched(portal_id, line_id):
        now = counter(portal_id, line_id, chat_id)
        if seen is not None and now == seen:
            return None  # the webhook saw nothing: no question to WhatsApp
        page = gateway.history(line_id, chat_id, limit=PAGE)
    else:
        now = None
        cache = _pages()
        key = (portal_id, line_id, chat_id)
        hit = cache.get(key)
        at_now = clock.now().timestamp()  # the app's clock: tests move it instead of sleeping
        if hit is not None and at_now - hit[1] < LOOK_AGAIN:
            page = hit[0]
        else:
            page = gateway.history(line_id, chat_id, limit=PAGE)
            cache.set(key, (page, at_now))
    fresh = newer(page.messages, after, at)
    if not fresh and now == seen:
        return None
    last = fresh[-1] if fresh else None
    return News(fresh, last.id if last else after, last.timestamp if last else at, now)


def newer(messages: list, after: str, at: int) -> list:
    """The messages after the one with id ``after``, shown at time ``at``.

    When ``after`` is not on the page (more than a page arrived, or a cached
    page is older than what the panel shows) the timestamp decides, so a
    message is never shown twice.
    """
    ids = [m.id for m in messages]
    if after and after in ids:
        return list(messages[ids.index(after) + 1:])
    return [m for m in messages if (m.timestamp or 0) > at]


def _pages() -> LockedTTLCache:
    cache = current_app.extensions.get(_CACHE)
    if cache is None:
        # Kept a minute at most (memory); an entry older than LOOK_AGAIN is fetched again.
        cache = current_app.extensions.setdefault(_CACHE, LockedTTLCache(20_000, 60))
    return cache

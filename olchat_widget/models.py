"""Database models. Every row that belongs to a customer carries its portal."""
from __future__ import annotations

from datetime import datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from . import clock


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


@event.listens_for(Engine, "connect")
def _sqlite_wal(dbapi_connection, _record) -> None:
    """SQLite in write-ahead-log mode: readers never wait for a writer nor a writer for readers.

    Web workers, the queue consumer and its bucket all write one file; with the
    default rollback journal a webhook's insert waited behind every reader and
    timed out under a burst. The mode is stored in the file; setting it again is free.
    synchronous=NORMAL is SQLite's advice for WAL: a commit no longer waits for
    the disk (the log is synced at checkpoints), which keeps each writer's hold
    on the file short; the file stays consistent through a crash, and only a
    power cut can lose the last commits. Deployments that need more run PostgreSQL.
    """
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def insert_or_not(model):
    """An INSERT that can say ON CONFLICT: SQLite and PostgreSQL spell it alike (``on_conflict_do_…``).

    One statement instead of insert, fail, roll back, try again: writers hold
    SQLite's single write lock for as short a time as possible.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


def utcnow() -> datetime:
    """Naive UTC now from the app's clock: what every timestamp column stores."""
    return clock.utcnow()


def get_or_create(model, defaults: dict | None = None, **keys):
    """Return the row of ``model`` matching ``keys``, inserting it if missing.

    Two requests may insert the same row at once (first open of a portal, a
    user's first line choice); the unique constraint lets one win and the
    other reads the winner's row.
    """
    row = db.session.scalar(db.select(model).filter_by(**keys))
    if row is not None:
        return row
    db.session.add(model(**keys, **(defaults or {})))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
    return db.session.scalar(db.select(model).filter_by(**keys))


class Portal(db.Model):
    """A Bitrix24 portal that installed the app (or the embedded demo portal)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), unique=True)
    domain: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="bitrix")  # 'bitrix' | 'demo'
    # Every token is encrypted at rest (crypto.secrets_box); b24/portal.py reads and writes them.
    # The column names stay those of the plain-text days; init-db seals what an older version stored.
    access_token_enc: Mapped[str | None] = mapped_column("access_token", Text)  # app-context token, 1 h
    access_expires_at: Mapped[datetime | None]
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    # Bitrix24 signs the app's events with it (ONAPPUNINSTALL, connector events).
    application_token_enc: Mapped[str | None] = mapped_column("application_token", String(255))
    client_endpoint: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(8), default="ru")
    installed: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Settings(db.Model):
    """Portal settings an admin changes on the settings page."""

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"), unique=True)
    always_show: Mapped[bool] = mapped_column(default=False)  # F13: skip «Отобразить виджет»
    # Skip «Отобразить виджет» when every number's status is remembered (nothing would be checked).
    auto_show: Mapped[bool] = mapped_column(default=True)
    # «Обновить данные виджета» re-checks a number only when its last check is older than this.
    recheck_minutes: Mapped[int] = mapped_column(default=10)
    max_phones: Mapped[int | None]  # None: the deployment's OLCHAT_MAX_PHONES
    default_region: Mapped[str | None] = mapped_column(String(2))
    check_budget: Mapped[int | None]  # checks per line per day; None: OLCHAT_CHECK_BUDGET
    # Traffic light thresholds (F4), "HH:MM".
    orange_start: Mapped[str] = mapped_column(String(5), default="08:00")
    green_start: Mapped[str] = mapped_column(String(5), default="09:00")
    green_end: Mapped[str] = mapped_column(String(5), default="20:00")
    orange_end: Mapped[str] = mapped_column(String(5), default="22:00")
    # «Создавать дело»: the send form's box starts ticked (a record in the card's timeline per send).
    timeline_default: Mapped[bool] = mapped_column(default=False)


class GatewayServer(db.Model):
    """A WhatsApp gateway (WAHA) a portal's admin connected."""

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="waha")
    base_url: Mapped[str] = mapped_column(String(500))
    api_key_enc: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PortalLine(db.Model):
    """A gateway session the admin chose as one of the portal's lines."""

    __table_args__ = (UniqueConstraint("portal_id", "line_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"), index=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("gateway_server.id", ondelete="CASCADE"))
    line_id: Mapped[str] = mapped_column(String(128))  # gateway session name
    name: Mapped[str] = mapped_column(String(255))


class UserPreference(db.Model):
    """What one operator chose: the default line (F6)."""

    __table_args__ = (UniqueConstraint("portal_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    line_id: Mapped[str | None] = mapped_column(String(128))
    # «Показывать имя сотрудника»: the message goes out as «*Имя Фамилия*:» + newline + text.
    show_name: Mapped[bool] = mapped_column(default=False)


class CachedCard(db.Model):
    """A card's phones as the CRM gave them, shared by every worker for the freshness window (F14).

    Bitrix24 allows a portal 2 requests a second; a card loaded by one worker
    must not be loaded again by another a moment later.
    """

    __table_args__ = (UniqueConstraint("portal_id", "entity_type_id", "entity_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    entity_type_id: Mapped[int]
    entity_id: Mapped[int]
    data: Mapped[str] = mapped_column(Text)  # JSON, crm.base.card_to_dict
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class CardAccess(db.Model):
    """Bitrix24 let this user read this card at ``checked_at`` (with the user's own token).

    The card cache is shared by the portal's users, but CRM rights are per
    user: a user is served from the shared cache only while a verdict of their
    own is fresh (the freshness window of the cache).
    """

    __table_args__ = (UniqueConstraint("portal_id", "user_id", "entity_type_id", "entity_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    entity_type_id: Mapped[int]
    entity_id: Mapped[int]
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class TokenVerdict(db.Model):
    """A user's Bitrix24 token we verified, by its hash, until the token expires."""

    __table_args__ = (UniqueConstraint("portal_id", "token_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool]
    expires_at: Mapped[datetime]


class RestBucket(db.Model):
    """Our copy of a portal's Bitrix24 REST bucket (b24/bucket.py): the level and when it was last counted."""

    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[float] = mapped_column(Float, default=0.0)
    updated: Mapped[float] = mapped_column(Float, default=0.0)  # unix seconds (real time, shared by processes)


class NumberCheck(db.Model):
    """The remembered answer to "does this number have WhatsApp" (B1).

    Shared by every worker and kept across restarts, so a number is asked of
    WhatsApp once per freshness window, not once per process.
    """

    __table_args__ = (UniqueConstraint("portal_id", "phone"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    exists: Mapped[bool]
    chat_id: Mapped[str | None] = mapped_column(String(128))
    line_id: Mapped[str | None] = mapped_column(String(128))  # the line that asked
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class CheckClaim(db.Model):
    """A check in flight: the unique row makes other workers wait instead of asking too."""

    __table_args__ = (UniqueConstraint("portal_id", "phone"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LineDay(db.Model):
    """Checks and sends of one line on one day (UTC): the budget and the admin's ratio."""

    __table_args__ = (UniqueConstraint("portal_id", "line_id", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    line_id: Mapped[str] = mapped_column(String(128))
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    checks: Mapped[int] = mapped_column(Integer, default=0)
    sends: Mapped[int] = mapped_column(Integer, default=0)


class Chat(db.Model):
    """A chat the widget created or found, so «Открыть чат» needs no lookup next time."""

    __table_args__ = (UniqueConstraint("portal_id", "line_id", "phone"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    line_id: Mapped[str] = mapped_column(String(128))
    phone: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(128))
    b24_chat_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutgoingMessage(db.Model):
    """The outbox: one row per send, keyed by the form's idempotency key.

    The row is written before the gateway is called, so a double click, a retry
    or a second worker finds it and never sends twice.
    """

    __table_args__ = (
        UniqueConstraint("portal_id", "idempotency_key"),
        Index("ix_outgoing_chat", "portal_id", "line_id", "chat_id"),
        Index("ix_outgoing_message", "portal_id", "line_id", "message_id"),  # a message.ack finds its send
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    line_id: Mapped[str] = mapped_column(String(128))
    phone: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))  # pre-generated gateway id
    # pending -> sent | failed | unknown (timed out: reconciled by looking the id up)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(String(64))
    # WhatsApp's delivery state from message.ack webhooks (-1 ERROR … 4 PLAYED; bridge/statuses.py), None: none yet.
    ack: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OpenLineBinding(db.Model):
    """Which Bitrix24 Open Line a WhatsApp line serves (one line, at most one Open Line)."""

    __table_args__ = (UniqueConstraint("portal_id", "line_id"), UniqueConstraint("portal_id", "openline_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    line_id: Mapped[str] = mapped_column(String(128))  # the WhatsApp line (WAHA session)
    openline_id: Mapped[str] = mapped_column(String(32))  # Bitrix24's LINE, a string of digits
    # JSON of imconnector.connector.data.set's DATA, sent again when the hourly check re-activates the line.
    connector_data: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookKey(db.Model):
    """The HMAC key a portal's own WAHA server signs its webhooks with (generated, encrypted)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    server_id: Mapped[int] = mapped_column(ForeignKey("gateway_server.id", ondelete="CASCADE"), unique=True)
    key_enc: Mapped[str] = mapped_column(Text)


class BridgeMessage(db.Model):
    """One message part crossing the bridge, keyed by its source id: stored first, delivered by a job.

    The unique key is what makes a duplicated webhook or event, a retried job
    or a killed consumer harmless: the second arrival finds the row and does nothing.
    """

    __table_args__ = (UniqueConstraint("portal_id", "direction", "source_id", "part"),
                      Index("ix_bridge_chat", "portal_id", "line_id", "client"))
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # 'in': WhatsApp -> Bitrix24; 'out': Bitrix24 -> WhatsApp
    source_id: Mapped[str] = mapped_column(String(255))  # WhatsApp message id (in) / Bitrix24 message id (out)
    part: Mapped[int] = mapped_column(default=0)  # text and each attachment are separate parts
    line_id: Mapped[str] = mapped_column(String(128))
    openline_id: Mapped[str] = mapped_column(String(32))
    client: Mapped[str] = mapped_column(String(32))  # the client's number, digits: the Open Lines user/chat id
    payload: Mapped[str] = mapped_column(Text)  # JSON of what is to be delivered
    # queued -> delivered | failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    target_id: Mapped[str | None] = mapped_column(String(255))  # Bitrix24 chat id (in) / WhatsApp id (out)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(255))
    # An operator's message: Bitrix24 was told it was delivered (or that it failed) — once (bridge/statuses.py).
    reported: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BridgeFile(db.Model):
    """A file a client sent over WhatsApp, kept for Bitrix24 to fetch by our signed URL (bridge/media.py).

    The bytes are in the database rather than the instance folder: the consumer
    that downloads the file and the web process Bitrix24 asks for it may run on
    different machines (the Redis queue), and the database is what they share.
    A periodic job deletes files once no URL to them can still be valid.
    """

    __table_args__ = (UniqueConstraint("portal_id", "message_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(255))  # the WhatsApp message it came with
    name: Mapped[str] = mapped_column(String(255))
    mime: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(Integer)
    # Loaded only when the file is served, never with the row's other fields.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

class LineState(db.Model):
    """A line's state as WAHA's last session.status webhook told it (bridge/statuses.py).

    ``version`` grows with every change: a worker's cached lines list compares
    it with the versions it saw when it asked WAHA, and shows a newer state at once.
    """

    __table_args__ = (UniqueConstraint("portal_id", "line_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    line_id: Mapped[str] = mapped_column(String(128))  # the WAHA session
    status: Mapped[str] = mapped_column(String(32))  # one of the widget's line states (gateway/base.py)
    version: Mapped[int] = mapped_column(default=1)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatDelivery(db.Model):
    """Whether a delivery job for a client's chat is queued and not started yet (bridge/inbound.py).

    A webhook queues a job only when none is waiting: under a burst one job takes a
    chat's messages in batches instead of one job per message. A job clears the
    flag before it looks for messages, so a message stored after that queues again.
    """

    __table_args__ = (UniqueConstraint("portal_id", "line_id", "client"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    line_id: Mapped[str] = mapped_column(String(128))
    client: Mapped[str] = mapped_column(String(32))
    waiting: Mapped[bool] = mapped_column(default=False)


class ChatActivity(db.Model):
    """A counter the WAHA webhook moves on every message of a chat: open histories poll it, not WhatsApp.

    Only lines bound to an Open Line have their webhook set by us, so only their
    counters are trusted (widget/live.py); other lines are asked of the gateway.
    """

    __table_args__ = (UniqueConstraint("portal_id", "line_id", "client"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    line_id: Mapped[str] = mapped_column(String(128))
    client: Mapped[str] = mapped_column(String(32))  # the client's number, digits (bridge/ids.client_id)
    seq: Mapped[int] = mapped_column(default=0)


class DemoOpenLineChat(db.Model):
    """The demo portal's stand-in for a Bitrix24 Open Lines chat (bridge/demo_openlines.py)."""

    __table_args__ = (UniqueConstraint("portal_id", "openline_id", "client"),)
    id: Mapped[int] = mapped_column(primary_key=True)  # the chat's CHAT_ID, as Bitrix24 would number it
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    openline_id: Mapped[str] = mapped_column(String(32))
    client: Mapped[str] = mapped_column(String(32))  # chat.id = user.id: the client's digits
    name: Mapped[str] = mapped_column(String(255), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DemoOpenLineMessage(db.Model):
    """One message in a demo Open Lines chat: the client's, an operator's, or a system note."""

    id: Mapped[int] = mapped_column(primary_key=True)  # the im message id an operator's reply carries
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(ForeignKey("demo_open_line_chat.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(16))  # client | operator | system
    author_name: Mapped[str] = mapped_column(String(255), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    external_id: Mapped[str | None] = mapped_column(String(255))  # the WhatsApp id
    status: Mapped[str] = mapped_column(String(16), default="")  # operator's: sending | delivered
    created_at: Mapped[datetime] = mapped_column(default=utcnow)



class MessageTemplate(db.Model):
    """A reply an admin prepared for the send form; its text may hold card variables (widget/message_templates.py)."""

    __table_args__ = (UniqueConstraint("portal_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # unique per portal: the picker finds a template by it
    category: Mapped[str] = mapped_column(String(100), default="")
    text: Mapped[str] = mapped_column(Text)
    admins_only: Mapped[bool] = mapped_column(default=False)  # visible to the portal's admins only
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TemplateUse(db.Model):
    """When one user last picked a template: the picker puts their five latest first."""

    __table_args__ = (UniqueConstraint("portal_id", "user_id", "template_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[int] = mapped_column(ForeignKey("message_template.id", ondelete="CASCADE"))
    used_at: Mapped[datetime] = mapped_column(default=utcnow)


class TimelineRecord(db.Model):
    """«Создавать дело»: one sent message's record in its card's timeline, posted by a job (widget/timeline.py).

    Unique per outbox row, so a retried job or a second press never makes a second record.
    """

    __table_args__ = (UniqueConstraint("portal_id", "message_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("outgoing_message.id", ondelete="CASCADE"))
    entity_type_id: Mapped[int]
    entity_id: Mapped[int]
    comment: Mapped[str] = mapped_column(Text)  # exactly what is posted (and what a lost answer is looked up by)
    author_id: Mapped[str | None] = mapped_column(String(64))
    # queued -> posted | failed (Bitrix24 refused for good: no such card, no rights)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    b24_id: Mapped[str | None] = mapped_column(String(64))  # the comment's ID in Bitrix24
    attempts: Mapped[int] = mapped_column(default=0)
    # An attempt may have reached Bitrix24 without us hearing the answer: look before posting again.
    maybe_posted: Mapped[bool] = mapped_column(default=False)
    # WhatsApp's final word on the message (delivered | failed), and what the posted comment says of it.
    delivery: Mapped[str | None] = mapped_column(String(16))
    delivery_shown: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

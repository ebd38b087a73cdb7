"""Our copy of each portal's REST bucket, shared by every process that calls the portal.

Bitrix24 meters each portal with a leaky bucket (2 requests/s drain, 50
burst; BITRIX24.md). A full bucket answers 503 QUERY_LIMIT_EXCEEDED — and for
an Open Lines delivery a refusal is a retry and a delay. The queue consumers
therefore count every request they send in a bucket of our own, kept where
all of them see it (Redis when OLCHAT_REDIS_URL is set, else the database),
and wait before a request that would overflow it. Requests made for a person
in the widget are counted too but never wait: the worker stops short of the
burst by OLCHAT_B24_WORKER_RESERVE so those always find room.

The level drains with the real time (time.time: every process and machine
must agree on it), not with the app clock, which tests pin.
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import case, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ..models import RestBucket, db

INFINITE = math.inf
_MAKING = threading.Lock()


class BucketWaitTooLong(Exception):
    """The bucket would not have room within the caller's patience."""


@dataclass(frozen=True)
class Limits:
    rate: float    # requests per second the portal's bucket drains
    burst: float   # how many requests it holds


class SqlStore:
    """The levels in the RestBucket table: one atomic UPDATE per request, so concurrent takers never both win.

    It runs on connections of its own: a job's session may be mid-transaction
    when it calls Bitrix24, and the level must be visible to the other
    consumers at once, not when that job commits. On SQLite that is a file of
    its own too (sqlite_engine): a lock on SQLite is the whole file's, so a
    job that wrote a row before calling Bitrix24 would wait for itself.
    """

    def __init__(self, engine):
        self.engine = engine

    def reserve(self, portal_id: int, now: float, limits: Limits, ceiling: float) -> float:
        """Add one request if the bucket stays ≤ ceiling; return 0, or the seconds to wait before trying again."""
        table = RestBucket.__table__
        elapsed = case((table.c.updated > now, 0.0), else_=now - table.c.updated)
        drained = table.c.level - elapsed * limits.rate
        level_now = case((drained < 0, 0.0), else_=drained)
        for _ in range(3):
            with self.engine.begin() as conn:
                cond = [table.c.portal_id == portal_id]
                if ceiling != INFINITE:
                    cond.append(level_now + 1 <= ceiling)
                taken = conn.execute(update(table).where(*cond).values(
                    level=level_now + 1,
                    updated=case((table.c.updated > now, table.c.updated), else_=now))).rowcount
                if taken:
                    return 0.0
                row = conn.execute(select(table.c.level, table.c.updated)
                                   .where(table.c.portal_id == portal_id)).first()
            if row is not None and ceiling != INFINITE:
                level = max(0.0, row.level - max(0.0, now - row.updated) * limits.rate)
                return max((level + 1 - ceiling) / limits.rate, 0.01)
            if row is not None:
                continue  # made by another process between our update and our read: update it now
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(table).values(portal_id=portal_id, level=0.0, updated=now))
            except IntegrityError:
                pass  # another process made it first: take from theirs
        return 0.01


# One round trip per request: drain, then add if it fits. KEYS[1] the portal's key;
# ARGV now, rate, ceiling (-1 = none), time to live.
_RESERVE = """
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local updated = tonumber(redis.call('HGET', KEYS[1], 'updated') or ARGV[1])
local now, rate, ceiling = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if updated > now then now = updated end
level = math.max(0, level - (now - updated) * rate)
if ceiling >= 0 and level + 1 > ceiling then
  return tostring((level + 1 - ceiling) / rate)
end
redis.call('HSET', KEYS[1], 'level', tostring(level + 1), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return '0'
"""


class RedisStore:
    """The levels in Redis (many machines): a Lua script makes drain-and-add one atomic step."""

    def __init__(self, url: str, prefix: str = "olchat:b24bucket:"):
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self._reserve = self.redis.register_script(_RESERVE)

    def reserve(self, portal_id: int, now: float, limits: Limits, ceiling: float) -> float:
        ttl = max(60, int(limits.burst / limits.rate) + 60)
        wait = self._reserve(keys=[f"{self.prefix}{portal_id}"],
                             args=[repr(now), repr(limits.rate), -1 if ceiling == INFINITE else repr(ceiling), ttl])
        wait = float(wait)
        return 0.0 if wait <= 0 else max(wait, 0.01)


class PortalBuckets:
    """Takes room in a portal's bucket before each request."""

    def __init__(self, store, limits: Limits, reserve: float, *,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.store, self.limits = store, limits
        self.worker_ceiling = max(1.0, limits.burst - reserve)
        self.clock, self.sleep = clock, sleep

    def take(self, portal_id: int, *, wait: bool, patience: float = 120.0) -> float:
        """Count one request; a worker (``wait``) first waits until it fits. Return the seconds waited."""
        if not wait:
            self.store.reserve(portal_id, self.clock(), self.limits, INFINITE)
            return 0.0
        waited = 0.0
        while True:
            pause = self.store.reserve(portal_id, self.clock(), self.limits, self.worker_ceiling)
            if pause <= 0:
                return waited
            if waited + pause > patience:
                raise BucketWaitTooLong(f"portal {portal_id}: no room in {patience:.0f}s")
            self.sleep(pause)
            waited += pause


def buckets_of(app) -> PortalBuckets:
    """The app's buckets (made once per process)."""
    existing = app.extensions.get("olchat_b24_buckets")
    if existing is not None:
        return existing
    with _MAKING:  # a consumer's threads start together: one engine, one CREATE TABLE
        existing = app.extensions.get("olchat_b24_buckets")
        if existing is not None:
            return existing
        cfg = app.config
        store = RedisStore(cfg["OLCHAT_REDIS_URL"]) if cfg["OLCHAT_REDIS_URL"] else SqlStore(_sql_engine(app))
        existing = PortalBuckets(store, Limits(cfg["OLCHAT_B24_RATE"], cfg["OLCHAT_B24_BURST"]),
                                 cfg["OLCHAT_B24_WORKER_RESERVE"])
        app.extensions["olchat_b24_buckets"] = existing
    return existing


def _sql_engine(app):
    """The database engine for the levels: the app's own, or beside an SQLite database a file of their own."""
    if db.engine.dialect.name != "sqlite":
        return db.engine
    return sqlite_engine(Path(app.config["OLCHAT_JOBS_PATH"] or Path(app.instance_path) / "jobs.sqlite3")
                         .with_name("rest_buckets.sqlite3"), app.config["OLCHAT_DB_TIMEOUT"])


def sqlite_engine(path: Path, timeout: float):
    """An SQLite file holding only the RestBucket table (made on first use)."""
    from sqlalchemy import create_engine

    from ..sqlite_turns import TurnConnection

    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": timeout, "check_same_thread": False,
                                                              "factory": TurnConnection})
    try:
        RestBucket.__table__.create(engine, checkfirst=True)
    except OperationalError:
        pass  # another process made it between the check and the CREATE
    return engine

"""The anti-ban guard in front of WhatsApp number checks (B1).

WhatsApp bans accounts that check many numbers and send little, so a number
is asked of WhatsApp as rarely as possible:

* process cache (cachetools, thread-safe) → database → gateway, in that order;
* one flight per number: concurrent requests in one worker wait for the same
  answer, and a claim row in the database makes other workers wait too;
* the answer is stored in the database for its freshness window (7 days for
  "has WhatsApp", 1 day for "no"), shared by every worker and restart;
* one check at a time per line in a worker, with a pause between checks;
* a daily budget of checks per line, counted in the database;
* «Обновить данные виджета» drops only answers older than the portal's
  re-check age (Settings.recheck_minutes), so pressing it again costs nothing.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cachetools import TTLCache
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..models import CheckClaim, LineDay, NumberCheck, db, get_or_create, utcnow
from .base import Gateway, GatewayError, GatewayRateLimited, GatewayTimeout, LineNotConnected

YES, NO, UNKNOWN, CHECKING = "yes", "no", "unknown", "checking"

# A claim older than this belongs to a worker that died mid-check: take it over.
STALE_CLAIM = timedelta(seconds=60)


@dataclass(frozen=True)
class Status:
    """What the widget shows for a number: yes / no / unknown (with why) / checking."""

    state: str
    chat_id: str | None = None
    reason: str | None = None  # for unknown: gateway | line | budget | restricted | noline
    expires_at: datetime | None = None
    checked_at: datetime | None = None  # when WhatsApp answered (naive UTC): the row says how long ago

    @property
    def final(self) -> bool:
        return self.state != CHECKING


def today() -> str:
    return utcnow().strftime("%Y-%m-%d")


class _Flight:
    __slots__ = ("event", "result")

    def __init__(self):
        self.event = threading.Event()
        self.result: Status | None = None


class PresenceGuard:
    def __init__(self, *, ttl_yes: int, ttl_no: int, cache_ttl: int, pause: float, wait: float):
        self.ttl_yes = ttl_yes
        self.ttl_no = ttl_no
        self.pause = pause
        self.wait = wait
        # The process cache only spares the database; it is kept short so that a
        # re-check made by another worker is seen within the widget's freshness window.
        self._cache: TTLCache = TTLCache(maxsize=100_000, ttl=max(cache_ttl, 1))
        self._lock = threading.Lock()
        self._flights: dict[tuple[int, str], _Flight] = {}
        self._line_locks: dict[tuple[int, str], threading.Lock] = {}
        self._line_last: dict[tuple[int, str], float] = {}

    # ------------------------------------------------------------ reading memory

    def known(self, portal_id: int, phones: list[str]) -> dict[str, Status]:
        """Return what is remembered about ``phones`` without asking the gateway."""
        found: dict[str, Status] = {}
        missing = []
        now = utcnow()
        for phone in phones:
            status = self._cached(portal_id, phone, now)
            if status:
                found[phone] = status
            else:
                missing.append(phone)
        if missing:
            rows = db.session.scalars(
                select(NumberCheck).where(NumberCheck.portal_id == portal_id, NumberCheck.phone.in_(missing),
                                          NumberCheck.expires_at > now)
            )
            for row in rows:
                found[row.phone] = self._remember(portal_id, row)
        return found

    def _cached(self, portal_id: int, phone: str, now: datetime) -> Status | None:
        with self._lock:
            status = self._cache.get((portal_id, phone))
        if status and status.expires_at and status.expires_at > now:
            return status
        return None

    def _remember(self, portal_id: int, row: NumberCheck) -> Status:
        status = Status(YES if row.exists else NO, row.chat_id, None, row.expires_at, row.checked_at)
        with self._lock:
            self._cache[(portal_id, row.phone)] = status
        return status

    def forget_checked_before(self, portal_id: int, phones: list[str], before: datetime) -> list[str]:
        """Drop what is remembered about those of ``phones`` last checked before ``before``; return them.

        «Обновить данные виджета» re-checks only answers older than the portal's
        re-check age: pressing it again and again must not spend the line's budget.
        """
        if not phones:
            return []
        stale = list(db.session.scalars(
            select(NumberCheck.phone).where(NumberCheck.portal_id == portal_id, NumberCheck.phone.in_(phones),
                                            NumberCheck.checked_at < before)))
        with self._lock:
            for phone in stale:
                self._cache.pop((portal_id, phone), None)
        if stale:
            db.session.execute(delete(NumberCheck).where(NumberCheck.portal_id == portal_id,
                                                         NumberCheck.phone.in_(stale),
                                                         NumberCheck.checked_at < before))
            db.session.commit()
        return stale

    # ------------------------------------------------------------ asking

    def presence(self, portal_id: int, phone: str, *, line_id: str | None, gateway: Gateway,
                 budget: int) -> Status:
        """Return whether ``phone`` has WhatsApp, asking the gateway only when nothing fresh is known."""
        status = self._cached(portal_id, phone, utcnow())
        if status:
            return status
        key = (portal_id, phone)
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.event.wait(self.wait)
            return flight.result or Status(CHECKING)
        try:
            flight.result = self._resolve(portal_id, phone, line_id, gateway, budget)
            return flight.result
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.event.set()

    def _resolve(self, portal_id, phone, line_id, gateway, budget) -> Status:
        known = self.known(portal_id, [phone]).get(phone)
        if known:
            return known
        if line_id is None:
            return Status(UNKNOWN, reason="noline")
        breaker = getattr(gateway, "breaker", None)
        if breaker is not None and breaker.state == "open":
            # The gateway is known to be down: answer now, touch neither budget nor claims.
            return Status(UNKNOWN, reason="gateway")
        if not self._claim(portal_id, phone):
            return self._await_other_worker(portal_id, phone)
        try:
            # The claim may have been won just after another worker finished: look once more.
            known = self.known(portal_id, [phone]).get(phone)
            if known:
                return known
            if not reserve_check(portal_id, line_id, budget):
                return Status(UNKNOWN, reason="budget")
            try:
                answer = self._ask(portal_id, line_id, phone, gateway)
            except GatewayTimeout:
                return Status(UNKNOWN, reason="gateway")  # it may have reached WhatsApp: keep it counted
            except GatewayError as exc:
                # Refused before reaching WhatsApp: give the budget back.
                count_line(portal_id, line_id, checks=-1)
                return Status(UNKNOWN, reason=unknown_reason(exc))
            if answer is None:
                return Status(CHECKING)
            return self._store(portal_id, phone, line_id, answer)
        finally:
            self._release(portal_id, phone)

    def _ask(self, portal_id, line_id, phone, gateway):
        """Call the gateway, one check at a time per line with a pause between checks."""
        key = (portal_id, line_id)
        with self._lock:
            lock = self._line_locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=self.wait):
            count_line(portal_id, line_id, checks=-1)
            return None
        try:
            gap = self.pause - (time.monotonic() - self._line_last.get(key, 0.0))
            if gap > 0:
                time.sleep(gap)
            try:
                return gateway.check_exists(line_id, phone)
            finally:
                self._line_last[key] = time.monotonic()
        finally:
            lock.release()

    def _store(self, portal_id, phone, line_id, answer) -> Status:
        now = utcnow()
        ttl = self.ttl_yes if answer.exists else self.ttl_no
        row = db.session.scalar(select(NumberCheck).filter_by(portal_id=portal_id, phone=phone))
        if row is None:
            row = NumberCheck(portal_id=portal_id, phone=phone, exists=answer.exists)
            db.session.add(row)
        row.exists = answer.exists
        row.chat_id = answer.chat_id
        row.line_id = line_id
        row.checked_at = now
        row.expires_at = now + timedelta(seconds=ttl)
        db.session.commit()
        return self._remember(portal_id, row)

    # ------------------------------------------------------------ across workers

    def _claim(self, portal_id: int, phone: str) -> bool:
        """Take the database claim on checking ``phone``; False when another worker holds it."""
        for _ in range(2):
            db.session.add(CheckClaim(portal_id=portal_id, phone=phone, claimed_at=utcnow()))
            try:
                db.session.commit()
                return True
            except IntegrityError:
                db.session.rollback()
            stale = db.session.execute(
                delete(CheckClaim).where(CheckClaim.portal_id == portal_id, CheckClaim.phone == phone,
                                         CheckClaim.claimed_at < utcnow() - STALE_CLAIM))
            db.session.commit()
            if not stale.rowcount:
                return False
        return False

    def _release(self, portal_id: int, phone: str) -> None:
        db.session.rollback()
        db.session.execute(delete(CheckClaim).where(CheckClaim.portal_id == portal_id, CheckClaim.phone == phone))
        db.session.commit()

    def _await_other_worker(self, portal_id: int, phone: str) -> Status:
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            time.sleep(0.05)
            db.session.rollback()  # end the snapshot so we see the other worker's commit
            known = self.known(portal_id, [phone]).get(phone)
            if known:
                return known
            claim = db.session.scalar(select(CheckClaim.id).filter_by(portal_id=portal_id, phone=phone))
            if claim is None:
                known = self.known(portal_id, [phone]).get(phone)
                return known or Status(UNKNOWN, reason="gateway")
        return Status(CHECKING)


def unknown_reason(exc: GatewayError) -> str:
    """Why a number's status is unknown after ``exc``: line | restricted | gateway."""
    if isinstance(exc, LineNotConnected):
        return "line"
    if isinstance(exc, GatewayRateLimited):
        return "restricted"
    return "gateway"


# ---------------------------------------------------------------- per-line counters


def _ensure_line_day(portal_id: int, line_id: str, day: str) -> None:
    get_or_create(LineDay, {"checks": 0, "sends": 0}, portal_id=portal_id, line_id=line_id, day=day)


def reserve_check(portal_id: int, line_id: str, budget: int) -> bool:
    """Count one check against the line's daily budget; False when it is spent."""
    day = today()
    _ensure_line_day(portal_id, line_id, day)
    # One conditional UPDATE: workers racing for the last check cannot both win it.
    result = db.session.execute(
        update(LineDay)
        .where(LineDay.portal_id == portal_id, LineDay.line_id == line_id, LineDay.day == day,
               LineDay.checks < budget)
        .values(checks=LineDay.checks + 1))
    db.session.commit()
    return result.rowcount == 1


def count_line(portal_id: int, line_id: str, *, checks: int = 0, sends: int = 0) -> None:
    """Add to the line's counters of today."""
    day = today()
    _ensure_line_day(portal_id, line_id, day)
    db.session.execute(
        update(LineDay)
        .where(LineDay.portal_id == portal_id, LineDay.line_id == line_id, LineDay.day == day)
        .values(checks=LineDay.checks + checks, sends=LineDay.sends + sends))
    db.session.commit()

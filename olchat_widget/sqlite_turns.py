"""SQLite writers of one process take turns in order instead of polling the file's lock.

SQLite lets one connection write at a time. A writer that finds the file
locked sleeps in SQLite's busy handler — 1, 2, 5, 10 … 100 ms between looks —
and a newcomer that happens to look at the right moment goes first. Under a
burst of webhooks (16 threads per gunicorn worker, plus the queue consumer)
that made most answers take a few ms and some a second or more: the losers of
the lottery slept in ever longer steps.

Here each database file has one lock per process. A connection takes it at
its first writing statement and gives it back when its transaction ends
(commit, rollback, close), so the threads of a process queue for the file in
the order they came and hand it over without sleeping. Between processes
SQLite's own lock still decides, now among a handful of contenders instead of
dozens. Reads never take a turn: in WAL mode they do not wait for writers.

A turn is waited for as long as SQLite's busy timeout would have been; then
the statement fails with SQLite's own "database is locked", which the app
already answers with a 503 «повторите».
"""
from __future__ import annotations

import sqlite3
import threading

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_turns: dict[str, threading.Lock] = {}
_turns_lock = threading.Lock()


def _turn_of(database) -> threading.Lock | None:
    name = str(database)
    if name in ("", ":memory:") or name.startswith("file::memory:") or "mode=memory" in name:
        return None  # a private in-memory database: nobody to take turns with
    with _turns_lock:
        return _turns.setdefault(name, threading.Lock())


def _writes(sql: str) -> bool:
    head = sql.lstrip()[:16].upper()
    return head.startswith(_WRITES) or head.startswith(("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"))


class TurnCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        self.connection.before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after()

    def executemany(self, sql, seq_of_parameters, /):
        self.connection.before(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection.after()


class TurnConnection(sqlite3.Connection):
    """``sqlite3.connect(..., factory=TurnConnection)``: a connection that takes its process's turn to write."""

    def __init__(self, database, timeout=5.0, *args, **kwargs):
        super().__init__(database, timeout, *args, **kwargs)
        self._turn = _turn_of(database)
        self._wait = float(timeout)
        self._holding = False

    def cursor(self, factory=TurnCursor):
        return super().cursor(factory)

    # sqlite3's shortcuts make a plain cursor in C: route them through ours.
    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters, /):
        return self.cursor().executemany(sql, seq_of_parameters)

    def before(self, sql: str) -> None:
        if self._turn is None or self._holding or not _writes(sql):
            return
        if not self._turn.acquire(timeout=self._wait):
            raise sqlite3.OperationalError("database is locked")
        self._holding = True

    def after(self) -> None:
        # A statement that ran outside a transaction (autocommit) or failed before one began holds nothing.
        if self._holding and not self.in_transaction:
            self._give_back()

    def _give_back(self) -> None:
        if self._holding:
            self._holding = False
            self._turn.release()

    def commit(self):
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self):
        try:
            super().close()
        finally:
            self._give_back()

    def __exit__(self, *exc_info):
        try:
            return super().__exit__(*exc_info)  # commits or rolls back in C, past our commit()
        finally:
            self._give_back()

"""SQLite writers take turns for the file in order instead of polling its lock.

SQLite lets one connection write at a time. A writer that finds the file
locked sleeps in SQLite's busy handler — 1, 2, 5, 10 … 100 ms between looks —
so under a burst of webhooks (threads of two gunicorn workers, plus the queue
consumer) the file stood free while every writer slept, and the ones that had
waited longest slept longest: most answers took a few ms, some a second or more.

Here a writer takes the file's turn at its first writing statement and gives
it back when its transaction ends (commit, rollback, close). The threads of a
process queue on a lock and are handed the turn without sleeping; the
processes share it through an advisory lock on a small file beside the
database (``<file>-turn``, like SQLite's own ``-wal`` and ``-shm``), looked at
every half millisecond by one waiting thread per process. SQLite's own locking
still guards the data; this only decides who asks next. Reads never take a
turn: in WAL mode they do not wait for writers.

A turn is waited for as long as SQLite's busy timeout would have been; then
the statement fails with SQLite's own "database is locked", which the app
already answers with a 503 «повторите».
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
POLL = 0.0005  # seconds between a waiting process's looks at the file's turn
_turns: dict[str, "Turn"] = {}
_turns_lock = threading.Lock()


class Turn:
    """The right to write one database file: a lock among this process's threads, then among processes."""

    def __init__(self, path: str):
        self.path = path
        self.threads = threading.Lock()
        self.pid = os.getpid()
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self.threads.acquire(timeout=max(0.0, timeout)):
            return False
        try:
            fd = self._file()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(POLL)
        except OSError:
            return True  # no turn file (read-only folder): SQLite's own lock still decides
        except BaseException:
            self.threads.release()
            raise
        self.threads.release()
        return False

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self.threads.release()

    def locked(self) -> bool:
        return self.threads.locked()

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path + "-turn", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd


def _turn_of(database) -> Turn | None:
    name = str(database)
    if name in ("", ":memory:") or name.startswith("file:") or "mode=memory" in name:
        return None  # in-memory (or a URI we do not parse): SQLite's own lock alone
    with _turns_lock:
        turn = _turns.get(name)
        if turn is None or turn.pid != os.getpid():
            # New, or inherited through a fork: a copied descriptor would share the parent's lock.
            turn = _turns[name] = Turn(name)
        return turn


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

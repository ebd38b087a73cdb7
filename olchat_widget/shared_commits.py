"""Writers of one process that arrive together share one SQLite transaction.

SQLite lets one connection write at a time (sqlite_turns.py hands the turn
from writer to writer). Under a burst of webhooks each handover cost more than
the writing itself: the next thread had to wake and win Python's GIL while the
file stood idle. With 20 webhooks at once most of an answer's time went on
waiting for the turn (p50 10 ms of 15 ms, while holding it took 0.3 ms).

Here a thread brings its work (a function of a connection) to its database's
queue in this process. When no thread is writing, it writes: everything queued
by then, in one transaction on a connection of its own, one commit. Threads
that come meanwhile wait on their own event; the writer wakes each one when
its work is committed (with its result) and hands the writing to the first
still waiting. So a thread wakes once, and the turn is taken once per group
instead of once per webhook.

The answer still waits for that commit: nothing is acknowledged before it is
written. A piece that raises is left out and the others run again without it;
an error of the database itself (locked, disk) is every piece's error. A
piece runs in another request's thread: it must use only the connection it is
given. PostgreSQL has no single writer: there a piece runs in its caller's own
transaction, as it does on an SQLite database in memory.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from .models import db

Work = Callable[[Connection], Any]
WAIT = 60.0  # seconds; a writer gives up on the turn (OLCHAT_DB_TIMEOUT) long before this


class _Piece:
    __slots__ = ("work", "woken", "done", "result", "error")

    def __init__(self, work: Work):
        self.work = work
        self.woken = threading.Event()
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class SharedCommits:
    """The writers of one database in this process."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._lock = threading.Lock()
        self._queue: list[_Piece] = []
        self._writing = False

    def run(self, work: Work) -> Any:
        piece = _Piece(work)
        with self._lock:
            self._queue.append(piece)
            leads = not self._writing
            self._writing = True
        if not leads:
            if not piece.woken.wait(WAIT) and self._give_up(piece):
                raise OperationalError("shared commit", {}, TimeoutError("the writer of the moment took too long"))
            leads = not piece.done  # woken to write next
        if leads:
            self._write_queue()
        if piece.error is not None:
            raise piece.error
        return piece.result

    def _give_up(self, piece: _Piece) -> bool:
        """Leave the queue after waiting too long; False when the writing was handed over meanwhile."""
        with self._lock:
            if piece.woken.is_set():
                return False  # done, or ours to write, at the last moment
            if piece in self._queue:
                self._queue.remove(piece)
                return True
        # Taken by the writer of the moment just now: its answer comes with that writer's commit.
        piece.woken.wait()
        return False

    def _write_queue(self) -> None:
        with self._lock:
            pieces, self._queue = self._queue, []
        finished = False
        try:
            _write(self._engine, pieces)
            finished = True
        finally:
            for piece in pieces:
                if not finished and piece.error is None:
                    # The writer was interrupted (BaseException): say so rather than a result of None.
                    piece.error = OperationalError("shared commit", {}, RuntimeError("the write was interrupted"))
                piece.done = True
                piece.woken.set()
            with self._lock:
                if self._queue:
                    self._queue[0].woken.set()  # came while we wrote: the first of them writes next
                else:
                    self._writing = False


def _write(engine: Engine, pieces: list[_Piece]) -> None:
    while pieces:
        failed: _Piece | None = None
        try:
            with engine.begin() as connection:
                results = []
                for piece in pieces:
                    try:
                        results.append(piece.work(connection))
                    except OperationalError:
                        raise  # the database's own trouble: nobody's piece would fare better
                    except Exception as exc:  # noqa: BLE001 - the piece's own request answers it
                        piece.error, failed = exc, piece
                        raise
        except Exception as exc:  # noqa: BLE001 - the requests of the pieces answer it
            if failed is None:
                for piece in pieces:
                    piece.error = exc
                return
            pieces = [piece for piece in pieces if piece is not failed]  # the rest, again, without it
            continue
        for piece, result in zip(pieces, results):
            piece.result = result
        return


_queues: "weakref.WeakKeyDictionary[Engine, SharedCommits]" = weakref.WeakKeyDictionary()
_queues_lock = threading.Lock()


def run(work: Work) -> Any:
    """Run ``work(connection)`` in a committed transaction, shared with the writers of the moment; return
    what it returned (or raise what it raised)."""
    engine = db.engine
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        # No single writer (PostgreSQL), or a database each thread has to itself (SQLite in memory).
        result = work(db.session.connection())
        db.session.commit()
        return result
    with _queues_lock:
        queue = _queues.get(engine)
        if queue is None:
            queue = _queues[engine] = SharedCommits(engine)
    return queue.run(work)

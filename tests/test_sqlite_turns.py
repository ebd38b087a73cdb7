"""SQLite writers of one process wait in turn for the file (olchat_widget/sqlite_turns.py)."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from olchat_widget.sqlite_turns import TurnConnection, _turn_of
from tests.clock import NOON
from tests.conftest import make_app


def connect(path, timeout=5.0):
    conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False, factory=TurnConnection)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "turns.sqlite3")
    with connect(path) as conn:
        conn.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT UNIQUE)")
    return path


def writer(path, text, done: list, timeout=5.0):
    def run():
        conn = connect(path, timeout)
        try:
            conn.execute("INSERT INTO note (text) VALUES (?)", (text,))
            conn.commit()
            done.append("written")
        except sqlite3.OperationalError as exc:
            done.append(str(exc))
        finally:
            conn.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def texts(path):
    conn = sqlite3.connect(path)
    try:
        return sorted(row[0] for row in conn.execute("SELECT text FROM note"))
    finally:
        conn.close()


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_a_second_writer_waits_for_the_first_transaction_to_end(path, end):
    turn = _turn_of(path)
    first = connect(path)
    first.execute("INSERT INTO note (text) VALUES ('first')")  # holds the file's turn until its transaction ends
    assert turn.locked()
    done: list = []
    second = writer(path, "second", done)
    second.join(0.3)
    assert second.is_alive() and done == []  # waiting, not failed and not written
    getattr(first, end)()
    second.join(10)
    assert done == ["written"]
    assert not turn.locked()  # the second gave it back at its commit too
    assert texts(path) == (["first", "second"] if end == "commit" else ["second"])


def test_readers_never_wait_for_a_writer(path):
    first = connect(path)
    first.execute("INSERT INTO note (text) VALUES ('pending')")
    seen: list = []

    def read():
        conn = connect(path)
        seen.append([row[0] for row in conn.execute("SELECT text FROM note")])
        conn.close()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(10)
    assert seen == [[]]  # answered at once, from the last committed state
    first.commit()
    conn = connect(path)
    assert [row[0] for row in conn.execute("SELECT text FROM note")] == ["pending"]
    assert not _turn_of(path).locked()  # a read takes no turn, so it never holds one up
    conn.close()


def test_a_writer_gives_up_like_sqlite_would_after_its_timeout(path):
    first = connect(path)
    first.execute("INSERT INTO note (text) VALUES ('first')")
    done: list = []
    writer(path, "late", done, timeout=0.2).join(10)
    assert done == ["database is locked"]  # the app answers this with a 503 «повторите»
    first.commit()
    assert texts(path) == ["first"]
    done.clear()
    writer(path, "after", done).join(10)  # the turn was not left taken by the one that gave up
    assert done == ["written"]


def test_a_failed_statement_then_rollback_frees_the_turn(path):
    first = connect(path)
    first.execute("INSERT INTO note (text) VALUES ('one')")
    first.commit()
    with pytest.raises(sqlite3.IntegrityError):
        first.execute("INSERT INTO note (text) VALUES ('one')")
    first.rollback()
    done: list = []
    writer(path, "two", done).join(10)
    assert done == ["written"]


def test_the_app_and_its_rest_buckets_use_turn_taking_connections(tmp_path):
    from olchat_widget.b24.bucket import sqlite_engine
    from olchat_widget.models import db

    app = make_app(tmp_path, clock_at=NOON)
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            assert isinstance(raw.driver_connection, TurnConnection)
        finally:
            raw.close()
    engine = sqlite_engine(tmp_path / "rest_buckets.sqlite3", 3.0)
    raw = engine.raw_connection()
    try:
        assert isinstance(raw.driver_connection, TurnConnection)
    finally:
        raw.close()
        engine.dispose()


HOLDER = """
import sqlite3, sys
from olchat_widget.sqlite_turns import TurnConnection
conn = sqlite3.connect(sys.argv[1], factory=TurnConnection)
conn.execute("INSERT INTO note (text) VALUES ('from the other process')")
print("holding", flush=True)
sys.stdin.readline()
conn.commit()
print("committed", flush=True)
sys.stdin.readline()
"""


def test_processes_share_the_turn_through_the_file_beside_the_database(path):
    import fcntl
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    other = subprocess.Popen([sys.executable, "-c", HOLDER, path], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    fd = None
    try:
        assert other.stdout.readline().strip() == "holding"
        fd = os.open(path + "-turn", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the other process's transaction holds the turn
        done: list = []
        waiting = writer(path, "ours", done)
        waiting.join(0.3)
        assert done == []
        other.stdin.write("\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "committed"
        waiting.join(10)
        assert done == ["written"]
        assert texts(path) == ["from the other process", "ours"]
    finally:
        if fd is not None:
            os.close(fd)
        other.stdin.close()
        other.wait(10)

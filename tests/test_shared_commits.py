"""Writers of one process that arrive together share one SQLite transaction (olchat_widget/shared_commits.py)."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from olchat_widget import shared_commits
from olchat_widget.models import db
from tests.bridge.test_webhook import bound_portal_app, envelope, post, rows
from tests.conftest import make_app


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path, OLCHAT_DB_TIMEOUT=0.3)
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT UNIQUE)"))
    return app


def notes(app) -> list[str]:
    with app.app_context():
        with db.engine.connect() as connection:
            return sorted(connection.execute(text("SELECT body FROM note")).scalars())


def insert(body: str):
    def work(connection):
        connection.execute(text("INSERT INTO note (body) VALUES (:body)"), {"body": body})
        return f"stored {body}"
    return work


def commits_of(app) -> list[int]:
    counted = [0]
    with app.app_context():
        event.listen(db.engine, "commit", lambda connection: counted.__setitem__(0, counted[0] + 1))
    return counted


def waiting_until(app, count: int) -> None:
    """Until ``count`` writers wait behind the one writing (this app's database's queue)."""
    with app.app_context():
        queue = shared_commits._queues[db.engine]
    for _ in range(2000):
        if len(queue._queue) >= count:
            return
        threading.Event().wait(0.005)
    raise AssertionError(f"{len(queue._queue)} writers waiting, not {count}")


def in_threads(app, works) -> tuple[list[threading.Thread], list]:
    """Run each work through shared_commits in its own thread; return the threads and, once they end, each
    one's result or exception."""
    answers: list = [None] * len(works)

    def call(n):
        with app.app_context():
            try:
                answers[n] = shared_commits.run(works[n])
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                answers[n] = exc

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(works))]
    for thread in threads:
        thread.start()
    return threads, answers


def writer_held(app, body: str | None):
    """A writer that stores ``body`` (if any) and holds its transaction open until released; return
    (its thread, its answer, release) once it is writing."""
    writing, release = threading.Event(), threading.Event()

    def slow(connection):
        if body is not None:
            connection.execute(text("INSERT INTO note (body) VALUES (:body)"), {"body": body})
        writing.set()
        assert release.wait(10)
        return f"stored {body}"

    threads, answers = in_threads(app, [slow])
    assert writing.wait(10)
    return threads, answers, release


def test_writers_that_come_while_one_writes_share_the_next_commit_and_get_their_own_results(app):
    commits = commits_of(app)
    first, first_answer, release = writer_held(app, "first")
    later, answers = in_threads(app, [insert(f"note {n}") for n in range(6)])
    waiting_until(app, 6)  # all six wait behind the first writer
    release.set()
    for thread in first + later:
        thread.join(10)
    assert first_answer == ["stored first"]
    assert answers == [f"stored note {n}" for n in range(6)]
    assert notes(app) == ["first"] + [f"note {n}" for n in range(6)]
    assert commits[0] == 2  # the first writer's, then one for the six that queued meanwhile


def test_a_piece_that_fails_fails_only_its_own_caller(app):
    with app.app_context():
        shared_commits.run(insert("taken"))
    first, _, release = writer_held(app, None)
    later, answers = in_threads(app, [insert("a"), insert("taken"), insert("b")])
    waiting_until(app, 3)
    release.set()
    for thread in first + later:
        thread.join(10)
    assert answers[0] == "stored a" and answers[2] == "stored b"
    assert isinstance(answers[1], IntegrityError)
    assert notes(app) == ["a", "b", "taken"]


def test_a_locked_database_is_every_writers_error_and_nothing_is_half_written(app, tmp_path):
    import sqlite3

    holder = sqlite3.connect(str(tmp_path / "test.sqlite3"))
    holder.execute("INSERT INTO note (body) VALUES ('held')")  # holds SQLite's write lock past our timeout
    try:
        threads, answers = in_threads(app, [insert(f"note {n}") for n in range(4)])
        for thread in threads:
            thread.join(20)
    finally:
        holder.rollback()
        holder.close()
    assert all(isinstance(answer, OperationalError) for answer in answers), answers
    assert notes(app) == []
    with app.app_context():
        assert shared_commits.run(insert("after")) == "stored after"  # the queue is free again


def test_a_burst_of_webhooks_at_once_stores_each_message_once_and_queues_each_chat_once(tmp_path):
    from olchat_widget.jobs import queue_of

    app = bound_portal_app(tmp_path)
    chats = [f"7916123456{n}" for n in range(4)]
    bodies = []
    for n in range(24):
        chat = chats[n % 4]
        body = envelope(message_id=f"false_{chat}@c.us_M{n % 12}")  # every message posted twice
        body["payload"]["from"] = f"{chat}@c.us"
        bodies.append(body)
    start = threading.Barrier(len(bodies))
    statuses: list = [None] * len(bodies)

    def webhook(n):
        client = app.test_client()
        start.wait(10)
        statuses[n] = post(client, bodies[n]).status_code

    threads = [threading.Thread(target=webhook, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert statuses == [200] * len(bodies)
    stored = rows(app)
    assert len(stored) == 12 and len({row.source_id for row in stored}) == 12
    assert sorted({row.client for row in stored}) == chats
    assert queue_of(app).pending_count() == len(chats)  # one delivery job per chat, however the writes grouped


def test_a_writer_that_waits_too_long_gives_up_alone_and_the_queue_goes_on(app, monkeypatch):
    monkeypatch.setattr(shared_commits, "WAIT", 0.2)
    first, first_answer, release = writer_held(app, "slow")
    late, late_answer = in_threads(app, [insert("late")])
    late[0].join(10)
    assert isinstance(late_answer[0], OperationalError)  # a 503 «повторите»: WAHA posts it again
    release.set()
    first[0].join(10)
    assert first_answer == ["stored slow"]
    with app.app_context():
        assert shared_commits.run(insert("next")) == "stored next"  # nobody is left waiting for a writer
    assert notes(app) == ["next", "slow"]

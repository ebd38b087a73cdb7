"""The queue never overflows a portal's REST bucket: our copy of it is shared by every consumer.

Unit tests drive the bucket with a clock of their own (sleeping moves it), on
each store: the database (SQLite here, PostgreSQL in test_postgres.py's
server when installed) and Redis. The end-to-end tests burst client messages
through a real consumer against a fake portal whose bucket is small and
drains fast, and count what the portal refused.
"""
from __future__ import annotations

import pytest

from olchat_widget.b24.bucket import BucketWaitTooLong, Limits, PortalBuckets, RedisStore, SqlStore, sqlite_engine
from olchat_widget.jobs import queue_of
from olchat_widget.models import BridgeMessage, Portal, db
from tests.bridge.test_bridge_e2e import KEY, connect_open_line, wait_for
from tests.clock import NOON
from tests.conftest import make_app
from tests.fakes.fake_bitrix24 import FakeBitrix24
from tests.fakes.fake_waha import FakeWaha
from tests.redis_server import redis_url  # noqa: F401 -- fixture
from tests.served import Server
from tests.test_b24_app import DEMO


class Ticking:
    """A clock that moves only when the bucket sleeps."""

    def __init__(self):
        self.now = 1_000_000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.fixture(params=["database", "redis"])
def store(request, tmp_path):
    if request.param == "redis":
        return RedisStore(request.getfixturevalue("redis_url"))
    # Beside an SQLite database the levels have a file of their own (bucket._sql_engine).
    return SqlStore(sqlite_engine(tmp_path / "rest_buckets.sqlite3", 3.0))


def buckets(store, clock, *, rate=2.0, burst=50.0, reserve=10.0):
    return PortalBuckets(store, Limits(rate, burst), reserve, clock=clock, sleep=clock.sleep)


def test_a_worker_takes_the_burst_less_the_reserve_then_keeps_to_the_drain_rate(store):
    clock = Ticking()
    b = buckets(store, clock)
    for _ in range(40):
        assert b.take(7, wait=True) == 0.0  # 50 burst − 10 kept for the widget
    for _ in range(10):
        b.take(7, wait=True)
    # Ten more at 2 per second: five seconds of waiting, not a refusal.
    assert clock.slept == pytest.approx(5.0, abs=0.1)


def test_requests_for_people_never_wait_but_count(store):
    clock = Ticking()
    b = buckets(store, clock)
    for _ in range(45):
        assert b.take(7, wait=False) == 0.0
    assert clock.slept == 0.0
    b.take(7, wait=True)  # 46 in the bucket, the worker's ceiling is 40: (46 − 40) / 2 s
    assert clock.slept == pytest.approx(3.0, abs=0.1)


def test_each_portal_has_its_own_bucket(store):
    clock = Ticking()
    b = buckets(store, clock)
    for _ in range(40):
        b.take(7, wait=True)
    assert b.take(8, wait=True) == 0.0 and clock.slept == 0.0


def test_the_bucket_drains_while_nobody_calls(store):
    clock = Ticking()
    b = buckets(store, clock)
    for _ in range(40):
        b.take(7, wait=True)
    clock.now += 20  # 40 requests drain in 20 s
    for _ in range(40):
        b.take(7, wait=True)
    assert clock.slept == 0.0


def test_a_worker_gives_up_rather_than_wait_past_its_patience(store):
    clock = Ticking()
    b = buckets(store, clock)
    for _ in range(200):
        b.take(7, wait=False)
    with pytest.raises(BucketWaitTooLong):
        b.take(7, wait=True, patience=10)


def concurrent_takes_are_all_counted(b, clock, portal_id=7, threads=8, each=25):
    """Many processes' requests at once: none is lost from the level (the worker then waits for all)."""
    import threading

    def run():
        for _ in range(each):
            b.take(portal_id, wait=False)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    b.take(portal_id, wait=True)
    expected = (threads * each + 1 - 40) / 2.0
    assert clock.slept == pytest.approx(expected, abs=0.1), (clock.slept, expected)
    return True


def test_concurrent_requests_are_all_counted(store):
    clock = Ticking()
    assert concurrent_takes_are_all_counted(buckets(store, clock), clock)


def test_a_job_that_wrote_before_calling_bitrix24_does_not_wait_for_itself(tmp_path):
    # SQLite locks the whole file: with the levels in the app's database, a job's own pending
    # write would block its bucket update until the database timeout.
    from olchat_widget.b24.bucket import buckets_of

    app = make_app(tmp_path, OLCHAT_DB_TIMEOUT=0.5)
    with app.app_context():
        db.session.add(Portal(id=7, member_id="m7", domain="p7.example", kind="bitrix"))
        db.session.commit()
        portal = db.session.get(Portal, 7)
        portal.domain = "p7-renamed.example"
        db.session.flush()  # the session now holds SQLite's write lock
        assert buckets_of(app).take(7, wait=True) == 0.0
        db.session.commit()


# -- end to end: a burst through a real consumer ------------------------------------------------


@pytest.fixture
def small_portal():
    # A portal whose bucket holds 10 and drains 20 a second: a burst shows overflows quickly.
    portal = FakeBitrix24(DEMO["crm"], burst=10, drain_per_second=20.0).start()
    yield portal
    portal.stop()


def _burst(tmp_path, fake, *, clients: int, workers: int, until=None, **config):
    with FakeWaha() as waha:
        app = make_app(tmp_path, clock_at=NOON, OLCHAT_B24_CLIENT_ID=fake.client_id,
                       OLCHAT_B24_CLIENT_SECRET=fake.client_secret, OLCHAT_B24_OAUTH_URL=fake.url,
                       OLCHAT_B24_SCHEME="http", OLCHAT_B24_TIMEOUT=3.0, OLCHAT_GATEWAY="waha",
                       OLCHAT_WAHA_URL=waha.url, OLCHAT_WAHA_API_KEY=waha.api_key,
                       OLCHAT_WAHA_PORTALS=fake.member_id, OLCHAT_WAHA_WEBHOOK_KEY=KEY,
                       OLCHAT_JOB_RETRY_DELAY=0.2, OLCHAT_B24_RATE=20.0, **config)
        server = Server(app)
        try:
            pair = fake.issue_tokens(1)
            fake.application_token = "app-token-bucket"
            import requests

            assert requests.post(f"{server.url}/b24/install?DOMAIN={fake.domain}&PROTOCOL=0&LANG=ru", timeout=10,
                                 data={"AUTH_ID": pair["access_token"], "REFRESH_ID": pair["refresh_token"],
                                       "APPLICATION_TOKEN": "app-token-bucket",
                                       "member_id": fake.member_id}).status_code == 200
            connect_open_line(app, fake, server.url)
            fake.empty_bucket()
            fake.refused = 0
            numbers = [f"7916{n:07d}" for n in range(clients)]
            for number in numbers:
                waha.client_writes("sales", number, f"Здравствуйте, я {number}")
            consumer = queue_of(app).create_consumer(workers=workers, worker_type="thread", periodic=False)
            consumer.start()
            try:
                with app.app_context():
                    def all_delivered():
                        db.session.rollback()
                        return db.session.scalar(db.select(db.func.count()).select_from(BridgeMessage).where(
                            BridgeMessage.status == "delivered")) == clients
                    assert wait_for(until or all_delivered, seconds=60)
            finally:
                consumer.stop(graceful=True)
            chats = {c["user_external_id"] for c in fake.openline_chats()}
            return chats, numbers
        finally:
            server.close()


def test_a_burst_on_many_consumers_is_never_refused_by_the_portal(tmp_path, small_portal):
    chats, numbers = _burst(tmp_path, small_portal, clients=60, workers=6,
                            OLCHAT_B24_BURST=10.0, OLCHAT_B24_WORKER_RESERVE=2.0)
    assert chats == set(numbers)
    assert small_portal.refused == 0


def test_without_a_true_copy_of_the_bucket_a_burst_is_refused(tmp_path):
    # The control: our copy believes the portal holds 1000 and drains 20/s; the portal holds 10 and
    # drains 2/s. Nothing waits, so the portal refuses.
    portal = FakeBitrix24(DEMO["crm"], burst=10, drain_per_second=2.0).start()
    try:
        _burst(tmp_path, portal, clients=30, workers=6, until=lambda: portal.refused > 0,
               OLCHAT_B24_BURST=1000.0, OLCHAT_B24_WORKER_RESERVE=2.0)
        assert portal.refused > 0
    finally:
        portal.stop()


def test_on_redis_the_queue_and_the_bucket_deliver_a_burst_once(tmp_path, small_portal, redis_url):
    chats, numbers = _burst(tmp_path, small_portal, clients=30, workers=4, OLCHAT_REDIS_URL=redis_url,
                            OLCHAT_B24_BURST=10.0, OLCHAT_B24_WORKER_RESERVE=2.0)
    assert chats == set(numbers)
    assert small_portal.refused == 0
    for chat in small_portal.openline_chats():
        assert len(small_portal.messages_in(chat["CHAT_ID"])) == 1

"""The same guarantees on PostgreSQL (DATABASE_URL=postgresql://…): a throwaway server per test run.

Skipped when PostgreSQL's server binaries are not installed (apt-get install postgresql).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid

import pytest

from olchat_widget import create_app
from olchat_widget.cli import init_db
from olchat_widget.models import LineDay, NumberCheck, OutgoingMessage, db
from tests.clock import NOON, pin_clock
from tests.conftest import NUMBERING_CSV, Widget
from tests.html import parse
from tests.test_guard import CountingGateway, ask, race

BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root; the Debian package creates the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + args
    return args


@pytest.fixture(scope="module")
def postgres():
    if not BINARIES:
        pytest.skip("PostgreSQL server is not installed (apt-get install postgresql)")
    bindir = BINARIES[-1]
    base = tempfile.mkdtemp(prefix="olchat-pg-")
    os.chmod(base, 0o777)
    data = os.path.join(base, "data")
    port = _free_port()
    try:
        subprocess.run(_as_postgres([f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust"]),
                       check=True, capture_output=True)
        subprocess.run(_as_postgres([f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(base, "log"),
                                     "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start"]),
                       check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot start a PostgreSQL server here: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database(postgres):
    """A fresh database on the server for one test."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres}/{name}"


def pg_app(url: str, *, clock_at=NOON, **overrides):
    # Noon in Moscow: these tests send, and a send after 22:00 there asks first (B6).
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "OLCHAT_SECRET_KEY": "pg",
              "OLCHAT_CHECK_PAUSE": 0.0, "OLCHAT_NUMBERING_PATH": str(NUMBERING_CSV)}
    config.update(overrides)
    app = create_app(config)
    pin_clock(app, clock_at)
    with app.app_context():
        init_db()
    return app


def test_widget_flow_on_postgres(database):
    app = pg_app(database)
    widget = Widget(app.test_client())
    card = {"entity_type": 2, "entity_id": 10}
    body = parse(widget.get("/widget/body", **card).data)
    phones = [li.get("data-phone") for li in body.find_all("li", data_phone=True)]
    assert phones[0] == "+79161234567"
    row = parse(widget.get("/widget/phone", phone="+79261112233", **card).data).find("li", data_phone="+79261112233")
    assert row.get("data-whatsapp") == "yes"
    key = parse(widget.get("/widget/compose", phone="+79261112233", line="sales", **card).data).find(
        "input", name="key").get("value")
    sent = widget.post("/widget/send", {"text": "Привет из PostgreSQL", "key": key, "phone": "+79261112233",
                                        "line": "sales"}, **card)
    assert parse(sent.data).find("p", data_notice="ok") is not None


def test_two_apps_share_check_memory_and_single_flight_on_postgres(database):
    apps = [pg_app(database), pg_app(database)]
    gateway = CountingGateway(delay=0.3)
    results = race(apps, gateway)
    assert gateway.checks == 1 and results == ["yes"] * 6
    with apps[1].app_context():
        assert db.session.scalar(db.select(db.func.count(NumberCheck.id))) == 1


def test_budget_is_exact_under_concurrency_on_postgres(database):
    app = pg_app(database)
    gateway = CountingGateway(delay=0.01)
    phones = iter(f"+7916000{n:04d}" for n in range(12))
    lock = threading.Lock()

    def run():
        with lock:
            phone = next(phones)
        ask(app, phone, gateway, budget=5)

    threads = [threading.Thread(target=run) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gateway.checks == 5
    with app.app_context():
        assert db.session.scalar(db.select(LineDay.checks)) == 5


def test_concurrent_duplicate_sends_go_out_once_on_postgres(database):
    app = pg_app(database)
    widget = Widget(app.test_client())
    card = {"entity_type": 2, "entity_id": 10}
    widget.get("/widget/body", **card)
    widget.get("/widget/phone", phone="+79261112233", **card)
    gateway = app.extensions["olchat"].demo_gateway
    gateway.delay = 0.2
    key = uuid.uuid4().hex
    notices = []

    def press():
        answer = app.test_client().post("/widget/send", query_string=card, headers=widget.headers(),
                                        data={"text": "Одно", "key": key, "phone": "+79261112233", "line": "sales"})
        notices.append(parse(answer.data).find("p", data_notice=True).get("data-notice"))

    threads = [threading.Thread(target=press) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gateway.calls["send_text"] == 1 and notices == ["ok"] * 8
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(OutgoingMessage.id))) == 1


def test_the_rest_bucket_counts_concurrent_requests_on_postgres(database):
    from olchat_widget.models import Portal
    from tests.bridge.test_bridge_bucket import Ticking, buckets, concurrent_takes_are_all_counted
    from olchat_widget.b24.bucket import SqlStore

    app = pg_app(database)
    with app.app_context():
        db.session.add(Portal(id=7, member_id="m7", domain="p7.example", kind="bitrix"))
        db.session.commit()
        engine = db.engine
    clock = Ticking()
    assert concurrent_takes_are_all_counted(buckets(SqlStore(engine), clock), clock)


def test_a_webhook_posted_twice_stores_the_message_once_and_queues_one_job_per_wave_on_postgres(database):
    from tests.bridge.test_bridge_queueing import stores_once_and_queues_one_job_per_wave

    stores_once_and_queues_one_job_per_wave(pg_app(database, OLCHAT_JOBS_IMMEDIATE=True))


def test_init_db_upgrades_an_older_database_in_place_on_postgres(database):
    import psycopg

    from olchat_widget.models import Portal, Settings, UserPreference

    app = pg_app(database)
    with app.app_context():
        portal_id = db.session.scalar(db.select(Portal.id).limit(1))
        db.session.add(Settings(portal_id=portal_id, recheck_minutes=15))
        db.session.add(UserPreference(portal_id=portal_id, user_id="7", line_id="sales"))
        db.session.commit()
        db.engine.dispose()
    with psycopg.connect(database.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("ALTER TABLE settings DROP COLUMN timeline_default")  # as a release before it made them
        conn.execute("ALTER TABLE user_preference DROP COLUMN show_name")
    with app.app_context():
        assert init_db() == ["added column settings.timeline_default", "added column user_preference.show_name"]
        settings = db.session.scalar(db.select(Settings))
        preference = db.session.scalar(db.select(UserPreference))
        assert (settings.recheck_minutes, settings.timeline_default, preference.show_name) == (15, False, False)
        assert init_db() == []

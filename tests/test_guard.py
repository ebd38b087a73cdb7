"""B1 guard: single flight, memory shared through the database, budget, one check per line at a time."""
from __future__ import annotations

import threading
import time

from olchat_widget.gateway.base import Presence
from olchat_widget.gateway.guard import YES, UNKNOWN
from olchat_widget.models import LineDay, NumberCheck, Portal, db
from olchat_widget.runtime import runtime
from tests.conftest import make_app


class CountingGateway:
    """A gateway that counts checks and how many run at once."""

    def __init__(self, delay=0.1, whatsapp=("+79161234567",)):
        self.delay = delay
        self.whatsapp = set(whatsapp)
        self.checks = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def check_exists(self, line_id, phone):
        with self.lock:
            self.checks += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        return Presence(phone in self.whatsapp, phone.lstrip("+") + "@c.us" if phone in self.whatsapp else None)


def portal_id(app):
    with app.app_context():
        return db.session.scalar(db.select(Portal.id))


def ask(app, phone, gateway, budget=100, line="sales"):
    with app.app_context():
        return runtime().guard.presence(portal_id(app), phone, line_id=line, gateway=gateway, budget=budget)


def in_threads(n, fn):
    results = [None] * n

    def run(i):
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_requests_for_one_number_make_one_call(app):
    gateway = CountingGateway(delay=0.2)
    results = in_threads(10, lambda: ask(app, "+79161234567", gateway))
    assert gateway.checks == 1
    assert {r.state for r in results} == {YES}


def test_answer_is_remembered_in_the_database_for_another_app(tmp_path):
    first = make_app(tmp_path)
    gateway = CountingGateway()
    assert ask(first, "+79161234567", gateway).state == YES
    # A second app on the same database: another worker, or the same one after a restart.
    second = make_app(tmp_path)
    assert ask(second, "+79161234567", gateway).state == YES
    assert gateway.checks == 1
    with second.app_context():
        row = db.session.scalar(db.select(NumberCheck))
        assert row.exists and row.chat_id == "79161234567@c.us"


def race(apps, gateway, phone="+79161234567", n=6) -> list[str]:
    """Ask for one number from n threads spread over ``apps`` (workers); return the states they got."""
    results, lock = [], threading.Lock()

    def run(app):
        status = ask(app, phone, gateway)
        with lock:
            results.append(status.state)

    threads = [threading.Thread(target=run, args=(apps[i % len(apps)],)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_apps_racing_for_one_number_make_one_call(tmp_path):
    gateway = CountingGateway(delay=0.3)
    results = race([make_app(tmp_path), make_app(tmp_path)], gateway)
    assert gateway.checks == 1
    assert results == [YES] * 6


def test_no_answer_expires_sooner_than_yes(tmp_path):
    app = make_app(tmp_path, OLCHAT_PRESENCE_TTL_NO=3600, OLCHAT_PRESENCE_TTL_YES=7 * 86400)
    gateway = CountingGateway()
    ask(app, "+79161234567", gateway)
    ask(app, "+79031234567", gateway)
    with app.app_context():
        rows = {r.phone: (r.expires_at - r.checked_at).total_seconds() for r in db.session.scalars(db.select(NumberCheck))}
    assert rows == {"+79161234567": 7 * 86400, "+79031234567": 3600}


def test_one_check_at_a_time_per_line(app):
    gateway = CountingGateway(delay=0.1)
    phones = [f"+7916000000{i}" for i in range(5)]
    it = iter(phones)
    lock = threading.Lock()

    def next_phone():
        with lock:
            return next(it)

    in_threads(5, lambda: ask(app, next_phone(), gateway))
    assert gateway.checks == 5
    assert gateway.max_in_flight == 1


def test_daily_budget_per_line(app):
    gateway = CountingGateway(delay=0)
    results = [ask(app, f"+7916000000{i}", gateway, budget=3) for i in range(5)]
    assert [r.state for r in results] == ["no", "no", "no", UNKNOWN, UNKNOWN]
    assert results[-1].reason == "budget"
    assert gateway.checks == 3
    # Another line has its own budget.
    assert ask(app, "+79160000009", gateway, budget=3, line="support").state == "no"
    with app.app_context():
        counts = {d.line_id: d.checks for d in db.session.scalars(db.select(LineDay))}
    assert counts == {"sales": 3, "support": 1}


def test_pause_between_checks_on_a_line(tmp_path):
    app = make_app(tmp_path, OLCHAT_CHECK_PAUSE=0.2)
    gateway = CountingGateway(delay=0)
    started = time.monotonic()
    for i in range(3):
        ask(app, f"+7916000000{i}", gateway)
    assert time.monotonic() - started >= 0.4


def test_known_never_calls_the_gateway(app):
    with app.app_context():
        assert runtime().guard.known(portal_id(app), ["+79161234567"]) == {}

"""Shared fixtures: an app on a fresh SQLite file, a client, a CLI runner, widget tokens.

``OLCHAT_TEST_NOW`` (an ISO 8601 instant with its offset, e.g.
``2026-12-02T23:30:00+03:00``) runs the whole session with the process's wall
clock moved there and ticking on: .ci/run uses it to prove that no test depends
on the hour it runs at. Tests that care about the hour pin their app's clock
themselves (tests.clock) and are not moved by it.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from olchat_widget import create_app
from olchat_widget.cli import init_db
from olchat_widget.runtime import runtime
from tests.clock import pin_clock

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NUMBERING_CSV = SHARED / "data" / "ru-numbering" / "DEF-9xx.csv"


_TRAVEL = []


def pytest_configure(config):
    instant = os.environ.get("OLCHAT_TEST_NOW", "").strip()
    if not instant:
        return
    import time_machine

    when = datetime.fromisoformat(instant)
    if when.tzinfo is None:
        raise pytest.UsageError(f"OLCHAT_TEST_NOW needs an offset (…+03:00 or …Z): {instant!r}")
    # A timestamp, not the datetime: the machine's TZ stays whatever the run set.
    traveller = time_machine.travel(when.timestamp(), tick=True)
    traveller.start()
    _TRAVEL.append(traveller)


def pytest_unconfigure(config):
    while _TRAVEL:
        _TRAVEL.pop().stop()


def pytest_report_header(config):
    if _TRAVEL:
        return (f"wall clock moved to {os.environ['OLCHAT_TEST_NOW']} (OLCHAT_TEST_NOW), "
                f"TZ={os.environ.get('TZ', '(machine default)')}, local time now {time.strftime('%Y-%m-%d %H:%M %Z')}")
    return None


def make_app(tmp_path: Path, *, clock_at=None, **overrides):
    """Create an app on a SQLite file in ``tmp_path`` (a file, so threads and two apps share it).

    ``clock_at`` pins the app's clock at an aware instant (tests.clock); without
    it the app runs on the machine's clock, so a test that needs an hour says so.
    """
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.sqlite3'}",
        "OLCHAT_SECRET_KEY": "test-secret",
        "OLCHAT_CHECK_PAUSE": 0.0,
        "OLCHAT_NUMBERING_PATH": str(NUMBERING_CSV),
        # The queue in the test's own folder: no test shares jobs with another.
        "OLCHAT_JOBS_PATH": str(tmp_path / "jobs.sqlite3"),
        # Attached files wait in the test's own folder too.
        "OLCHAT_UPLOADS_PATH": str(tmp_path / "uploads"),
    }
    config.update(overrides)
    app = create_app(config)
    if clock_at is not None:
        pin_clock(app, clock_at)
    with app.app_context():
        init_db()
    return app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def demo_gateway(app):
    return runtime_of(app).demo_gateway


def runtime_of(app):
    with app.app_context():
        return runtime()


class Widget:
    """A test client that acts like the widget frame: token header, HX-Request, card params."""

    def __init__(self, client, user: str = "admin", lang: str = "ru"):
        self.client = client
        answer = client.post("/debug/token", json={"user": user, "lang": lang})
        assert answer.status_code == 200, answer.data
        self.token = answer.json["token"]

    def headers(self, **extra):
        headers = {"X-OLChat-Token": self.token, "HX-Request": "true"}
        headers.update(extra)
        return headers

    def get(self, path, **params):
        return self.client.get(path, query_string=params, headers=self.headers())

    def post(self, path, data=None, **params):
        return self.client.post(path, query_string=params, data=data or {}, headers=self.headers())


@pytest.fixture
def widget(client):
    return Widget(client)


def set_settings(app, **values) -> None:
    """Change the demo portal's settings as the admin page would (row + cache)."""
    from olchat_widget.models import Portal, db
    from olchat_widget.widget import service

    with app.app_context():
        portal_id = db.session.scalar(db.select(Portal.id))
        row = service.settings_row(portal_id)
        for name, value in values.items():
            setattr(row, name, value)
        db.session.commit()
        service.forget_settings(portal_id)


def write_demo(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)

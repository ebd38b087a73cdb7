"""Database trouble: a locked or unreachable database is a 503 «повторите», never a 500 or a hang."""
from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy.exc import OperationalError

from olchat_widget import create_app
from olchat_widget.config import _engine_options
from olchat_widget.b24.portal import access_token_of
from olchat_widget.models import Portal, db
from olchat_widget.runtime import runtime
from tests.conftest import NUMBERING_CSV, Widget, make_app
from tests.html import parse
from tests.test_b24_app import b24_app, fake, install  # noqa: F401 -- fixtures: the fake portal and its app

DEAL = {"entity_type": 2, "entity_id": 10}
MESSAGE = "Сервис временно недоступен, повторите"


def test_every_wait_for_the_database_is_bounded_below_five_seconds(tmp_path):
    app = make_app(tmp_path)
    assert app.config["OLCHAT_DB_TIMEOUT"] < 5
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["timeout"] == app.config["OLCHAT_DB_TIMEOUT"]
    postgres = _engine_options("postgresql://u@127.0.0.1/db", 3.0)
    assert postgres["pool_timeout"] == 3.0
    assert postgres["connect_args"]["connect_timeout"] == 3
    assert "lock_timeout=3000" in postgres["connect_args"]["options"]


@pytest.fixture
def locked(tmp_path):
    """An app whose SQLite file another connection holds an exclusive lock on."""
    app = make_app(tmp_path, OLCHAT_DB_TIMEOUT=0.5)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    widget = Widget(client)
    holder = sqlite3.connect(tmp_path / "test.sqlite3", isolation_level=None)

    def lock():
        # The app keeps its file in WAL mode (models._sqlite_wal), where a writer blocks no reader.
        # To lock readers out too, the file goes back to a rollback journal, with the app's idle
        # connections closed, before the exclusive lock: every request then waits and gives up.
        with app.app_context():
            db.engine.dispose()
        holder.execute("PRAGMA journal_mode=DELETE")
        holder.execute("BEGIN EXCLUSIVE")

    yield app, client, widget, lock
    holder.close()


@pytest.mark.parametrize("method, path, data", [
    ("get", "/widget/phones", None),
    ("get", "/widget/body", None),
    ("post", "/admin/settings/form", {"orange_start": "08:00", "green_start": "09:00", "green_end": "19:00",
                                      "orange_end": "21:00"}),
])
def test_a_locked_database_is_a_503_fragment_within_the_timeout(locked, method, path, data):
    app, client, widget, lock = locked
    lock()
    started = time.monotonic()
    answer = getattr(widget, method)(path, data, **DEAL) if data else getattr(widget, method)(path, **DEAL)
    elapsed = time.monotonic() - started
    assert answer.status_code == 503
    block = parse(answer.data).find(data_error="db_unavailable")
    assert block is not None and MESSAGE in block.text
    assert "<html" not in answer.get_data(as_text=True)  # a fragment for htmx, not a page
    # An upper bound only: the configured busy timeout (0.5 s) plus generous slack, far below 5 s.
    assert elapsed < 5


def test_a_locked_database_during_a_write_after_a_warm_read(locked):
    app, client, widget, lock = locked
    assert widget.get("/admin/settings/form").status_code == 200  # portal and settings now cached
    lock()
    answer = widget.post("/admin/settings/form", {"orange_start": "08:00", "green_start": "09:00",
                                                  "green_end": "19:00", "orange_end": "21:00", "max_phones": "7"})
    assert answer.status_code == 503 and MESSAGE in parse(answer.data).text


def test_a_locked_database_answers_json_callers_in_json(locked):
    app, client, widget, lock = locked
    lock()
    answer = client.post("/debug/token", json={"user": "admin"})
    assert answer.status_code == 503
    assert answer.json["error"] == "db_unavailable" and "Повторите" in answer.json["message"]


def test_a_writer_in_another_process_does_not_block_readers(tmp_path):
    # WAL: a webhook's or a consumer's write transaction must not stall every card being read.
    app = make_app(tmp_path, OLCHAT_DB_TIMEOUT=0.5)
    widget = Widget(app.test_client())
    assert widget.get("/widget/body", **DEAL).status_code == 200
    holder = sqlite3.connect(tmp_path / "test.sqlite3", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE portal SET domain = domain")
        assert widget.get("/admin/settings/form").status_code == 200
    finally:
        holder.close()


def test_the_page_answer_when_not_htmx(locked):
    app, client, widget, lock = locked
    lock()
    answer = client.get("/widget/phones", query_string=DEAL, headers={"X-OLChat-Token": widget.token})
    assert answer.status_code == 503
    assert "<html" in answer.get_data(as_text=True) and MESSAGE in parse(answer.data).text


def test_an_unreachable_database_is_a_503_fragment(tmp_path):
    good = make_app(tmp_path)
    token = Widget(good.test_client()).token
    broken = create_app({"TESTING": True, "OLCHAT_SECRET_KEY": "test-secret", "OLCHAT_NUMBERING_PATH": str(NUMBERING_CSV),
                         "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'no-such-dir' / 'x.sqlite3'}"})
    broken.config["PROPAGATE_EXCEPTIONS"] = False
    answer = broken.test_client().get("/widget/phones", query_string=DEAL,
                                      headers={"X-OLChat-Token": token, "HX-Request": "true"})
    assert answer.status_code == 503
    assert MESSAGE in parse(answer.data).text


# ---------------------------------------------------------------- a renewed token pair survives a failed commit


def _fail_commits(monkeypatch, times: int):
    real = db.session.commit
    left = {"n": times}

    def commit():
        if left["n"] > 0:
            left["n"] -= 1
            raise OperationalError("COMMIT", {}, Exception("database is locked"))
        return real()

    monkeypatch.setattr(db.session, "commit", commit)


def test_a_renewed_pair_whose_commit_fails_is_kept_and_saved_on_the_next_renewal(b24_app, fake, monkeypatch):
    from olchat_widget.b24 import portal as portals
    from olchat_widget.crypto import secrets_box

    install(b24_app.test_client(), fake)
    with b24_app.test_request_context("/"):
        portal = db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id))
        portal_id, old_access = portal.id, access_token_of(portal)
        old_refresh = secrets_box(b24_app).open(portal.refresh_token_enc)
        fake.expire_all()
        before = fake.oauth_requests

        _fail_commits(monkeypatch, 1)
        new_access = portals.renew_app_token(portal_id, old_access)
        assert fake.oauth_requests == before + 1
        assert new_access and new_access != old_access
        assert not fake.refresh_token_valid(old_refresh)  # Bitrix24 has moved on: only the new pair works
        kept = runtime().unsaved_tokens[portal_id]
        assert kept["access_token"] == new_access
        db.session.expire_all()
        assert access_token_of(db.session.get(Portal, portal_id)) == old_access  # the commit did fail

        # The next request still reads the old access token, fails, renews: the kept pair is
        # used and saved, and the dead refresh token is never sent.
        assert portals.renew_app_token(portal_id, old_access) == new_access
        assert fake.oauth_requests == before + 1
        assert portal_id not in runtime().unsaved_tokens
        db.session.expire_all()
        saved = db.session.get(Portal, portal_id)
        assert access_token_of(saved) == new_access
        assert fake.refresh_token_valid(secrets_box(b24_app).open(saved.refresh_token_enc))


def test_a_kept_pair_that_expired_too_is_refreshed_with_its_own_refresh_token(b24_app, fake, monkeypatch):
    from olchat_widget.b24 import portal as portals

    install(b24_app.test_client(), fake)
    with b24_app.test_request_context("/"):
        portal = db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id))
        portal_id, old_access = portal.id, access_token_of(portal)
        fake.expire_all()
        _fail_commits(monkeypatch, 1)
        first = portals.renew_app_token(portal_id, old_access)
        fake.expire_all()
        second = portals.renew_app_token(portal_id, first)
        assert second not in (first, old_access)
        db.session.expire_all()
        assert access_token_of(db.session.get(Portal, portal_id)) == second
        # The widget registration (an app-token call) works with it.
        portals.register_widget(db.session.get(Portal, portal_id))

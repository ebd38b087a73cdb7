"""No token, key or client phone in any log line: a failing send, logged at DEBUG, shows none of them."""
from __future__ import annotations

import logging

import pytest

from tests.clock import NOON
from tests.conftest import Widget, make_app
from tests.fakes.fake_waha import SEND_TEXT, FakeWaha
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}
IVAN = "+79161234567"


@pytest.fixture
def waha():
    with FakeWaha() as server:
        yield server


def send(widget, text):
    compose = parse(widget.get("/widget/compose", phone=IVAN, line="sales", **DEAL).data)
    key = compose.find("input", name="key").get("value")
    return widget.post("/widget/send", {"text": text, "key": key, "phone": IVAN, "line": "sales"}, **DEAL)


def secrets_in(log: str, *secrets: str) -> list[str]:
    return [s for s in secrets if s and s in log]


def test_a_send_the_gateway_refuses_logs_no_phone_key_or_token(tmp_path, waha, caplog):
    app = make_app(tmp_path, clock_at=NOON, OLCHAT_GATEWAY="waha", OLCHAT_WAHA_URL=waha.url,
                   OLCHAT_WAHA_API_KEY=waha.api_key)
    widget = Widget(app.test_client())
    widget.get("/widget/phone", phone=IVAN, **DEAL)
    waha.fail[SEND_TEXT] = "500"
    with caplog.at_level(logging.DEBUG):
        answer = send(widget, "Секретное предложение")
    assert answer.status_code < 500 and "не отправлено" in answer.data.decode()
    assert secrets_in(caplog.text, "79161234567", waha.api_key, widget.token, app.config["OLCHAT_SECRET_KEY"]) == []


def test_a_send_that_breaks_in_the_database_logs_no_bound_parameters(tmp_path, caplog):
    app = make_app(tmp_path, clock_at=NOON)
    widget = Widget(app.test_client())
    widget.get("/widget/phone", phone=IVAN, **DEAL)
    compose = parse(widget.get("/widget/compose", phone=IVAN, line="sales", **DEAL).data)
    key = compose.find("input", name="key").get("value")
    from olchat_widget.models import db

    with app.app_context():
        # The table the send writes to is gone (a botched migration): the INSERT fails
        # with the phone and the text as its bound parameters.
        db.session.execute(db.text("ALTER TABLE outgoing_message RENAME TO outgoing_message_old"))
        db.session.commit()
    with caplog.at_level(logging.DEBUG):
        answer = widget.post("/widget/send", {"text": "Секретное предложение", "key": key, "phone": IVAN,
                                              "line": "sales"}, **DEAL)
    assert answer.status_code >= 400
    assert "outgoing_message" in caplog.text  # the failure itself is logged...
    assert secrets_in(caplog.text, "79161234567", "Секретное предложение", widget.token) == []  # ...its data not

"""POST /waha/webhook: signed, fast, stored once per WhatsApp message, queued for the bound Open Line."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from olchat_widget.jobs import queue_of
from olchat_widget.models import BridgeMessage, OpenLineBinding, Portal, db
from tests.conftest import make_app

KEY = "webhook-test-key"
MEMBER = "member-of-portal-a"


def bound_portal_app(tmp_path, served=MEMBER):
    """An app with portal MEMBER whose line 'sales' serves Open Line 7; the deployment's WAHA serves ``served``."""
    app = make_app(tmp_path, OLCHAT_WAHA_WEBHOOK_KEY=KEY, OLCHAT_WAHA_PORTALS=served)
    with app.app_context():
        portal = Portal(member_id=MEMBER, domain="a.bitrix24.ru", kind="bitrix", installed=True)
        db.session.add(portal)
        db.session.flush()
        db.session.add(OpenLineBinding(portal_id=portal.id, line_id="sales", openline_id="7"))
        db.session.commit()
    return app


@pytest.fixture
def app(tmp_path):
    return bound_portal_app(tmp_path)


def envelope(message_id="false_79161234567@c.us_AAA1", session="sales", text="Здравствуйте", from_me=False):
    return {"id": "evt_1", "timestamp": 1764000000000, "event": "message.any", "session": session,
            "me": {"id": "79111111111@c.us"},
            "payload": {"id": message_id, "timestamp": 1764000000, "from": "79161234567@c.us", "fromMe": from_me,
                        "source": "app", "body": text, "hasMedia": False}}


def post(client, body: dict, key: str | None = KEY, signature: str | None = None):
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Webhook-Hmac"] = signature or hmac.new(key.encode(), raw, hashlib.sha512).hexdigest()
        headers["X-Webhook-Hmac-Algorithm"] = "sha512"
    return client.post("/waha/webhook", data=raw, headers=headers)


def rows(app):
    with app.app_context():
        return db.session.scalars(db.select(BridgeMessage)).all()


def test_a_signed_message_is_stored_and_queued(app):
    answer = post(app.test_client(), envelope())
    assert answer.status_code == 200
    [row] = rows(app)
    assert (row.direction, row.openline_id, row.client, row.status) == ("in", "7", "79161234567", "queued")
    assert json.loads(row.payload)["text"] == "Здравствуйте"
    assert queue_of(app).pending_count() == 1


@pytest.mark.parametrize("key,signature", [(None, None), ("another-key", None), (KEY, "00" * 64)],
                         ids=["unsigned", "wrong key", "forged"])
def test_a_webhook_without_the_right_signature_is_refused(app, key, signature):
    assert post(app.test_client(), envelope(), key=key, signature=signature).status_code == 401
    assert rows(app) == []


def test_the_same_message_posted_twice_is_stored_and_queued_once(app):
    client = app.test_client()
    assert post(client, envelope()).status_code == 200
    assert post(client, envelope()).status_code == 200
    assert len(rows(app)) == 1 and queue_of(app).pending_count() == 1


def test_messages_of_unbound_lines_and_our_own_echoes_are_not_carried(app):
    client = app.test_client()
    post(client, envelope(session="support"))
    post(client, envelope(message_id="true_79161234567@c.us_OWN", from_me=True))
    assert rows(app) == []


def test_a_portal_not_served_by_the_deployments_waha_gets_nothing(tmp_path):
    app = bound_portal_app(tmp_path, served="someone-else")
    assert post(app.test_client(), envelope()).status_code == 200
    assert rows(app) == []


def test_garbage_is_a_400_not_a_500(app):
    client = app.test_client()
    for raw in (b"not json", b"[1,2]", b'"text"'):
        signature = hmac.new(KEY.encode(), raw, hashlib.sha512).hexdigest()
        answer = client.post("/waha/webhook", data=raw, headers={"X-Webhook-Hmac": signature})
        assert answer.status_code == 400

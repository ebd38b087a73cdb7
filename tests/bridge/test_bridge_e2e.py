"""The whole loop over HTTP: fake WAHA → our webhook → Open Lines on the fake portal → operator reply → WAHA.

The app is served on 127.0.0.1 (a werkzeug server in a thread) so both fakes can
post to it, as WAHA and Bitrix24 post to a deployment. Jobs run at once
(OLCHAT_JOBS_IMMEDIATE); the queue itself is tested in test_jobs.py.
"""
from __future__ import annotations

import json
import time

import pytest
import requests

from olchat_widget.bridge.inbound import CLAIM_STALE
from olchat_widget.jobs import queue_of
from olchat_widget.models import BridgeMessage, db
from tests.clock import NOON
from tests.conftest import make_app
from tests.fakes.fake_waha import SEND_TEXT, FakeWaha
from tests.served import Server
from tests.test_b24_app import fake  # noqa: F401 -- the portal fixture

KEY = "e2e-webhook-key"
IVAN = "79161234567"


@pytest.fixture
def waha():
    with FakeWaha() as server:
        yield server


@pytest.fixture
def served(tmp_path, fake, waha):
    yield from _serve(tmp_path, fake, waha, OLCHAT_JOBS_IMMEDIATE=True)


@pytest.fixture
def served_on_a_queue(tmp_path, fake, waha):
    """The same, with jobs on the SQLite queue (retries 0.2 s apart): a test runs the consumer."""
    yield from _serve(tmp_path, fake, waha, OLCHAT_JOBS_IMMEDIATE=False, OLCHAT_JOB_RETRY_DELAY=0.2)


def _serve(tmp_path, fake, waha, **jobs):
    app = make_app(tmp_path, clock_at=NOON, OLCHAT_B24_CLIENT_ID=fake.client_id,
                   OLCHAT_B24_CLIENT_SECRET=fake.client_secret, OLCHAT_B24_OAUTH_URL=fake.url,
                   OLCHAT_B24_SCHEME="http", OLCHAT_B24_TIMEOUT=3.0, OLCHAT_GATEWAY="waha",
                   OLCHAT_WAHA_URL=waha.url, OLCHAT_WAHA_API_KEY=waha.api_key, OLCHAT_WAHA_PORTALS=fake.member_id,
                   OLCHAT_WAHA_WEBHOOK_KEY=KEY, **jobs)
    server = Server(app)
    url = server.url
    # Installed through the served address: the handlers Bitrix24 calls back are ours.
    pair = fake.issue_tokens(1)
    fake.application_token = "app-token-e2e"
    installed = requests.post(f"{url}/b24/install?DOMAIN={fake.domain}&PROTOCOL=0&LANG=ru", timeout=10,
                              data={"AUTH_ID": pair["access_token"], "REFRESH_ID": pair["refresh_token"],
                                    "APPLICATION_TOKEN": "app-token-e2e", "member_id": fake.member_id})
    assert installed.status_code == 200, installed.text[:300]
    # No global webhook on the fake WAHA: connecting a line sets that session's webhook (bridge/webhooks.py).
    yield app, url
    server.close()


def connect_open_line(app, fake, url, openline="3", line="sales"):
    """What the admin does on the connector page: trade the frame's auth, pick the line, «Подключить»."""
    pair = fake.issue_tokens(1)
    token = requests.post(f"{url}/b24/token", timeout=10, json={
        "access_token": pair["access_token"], "domain": fake.domain, "member_id": fake.member_id,
        "expires_in": 3600}).json()["token"]
    headers = {"X-OLChat-Token": token, "HX-Request": "true"}
    form = requests.get(f"{url}/bridge/connector", params={"openline": openline}, headers=headers, timeout=10)
    assert f'data-line="{line}"' in form.text and "Подключить" in form.text
    done = requests.post(f"{url}/bridge/connector", params={"openline": openline}, data={"line": line},
                         headers=headers, timeout=10)
    assert done.status_code == 200 and "Подключено" in done.text and "Отключить" in done.text
    return headers


def test_install_registers_the_connector_ungrouped_and_binds_its_events(served, fake):
    connector = fake.connectors["olchat_whatsapp"]
    assert connector["CHAT_GROUP"] is False and connector["PLACEMENT_HANDLER"].endswith("/b24/connector")
    assert connector["ICON"]["DATA_IMAGE"].startswith("data:image/svg+xml")
    bound = {e["event"].upper() for e in fake.events}
    assert {"ONIMCONNECTORMESSAGEADD", "ONIMCONNECTORLINEDELETE", "ONIMCONNECTORSTATUSDELETE"} <= bound


def test_the_connector_page_binds_one_whatsapp_line_to_one_open_line(served, fake):
    app, url = served
    headers = connect_open_line(app, fake, url)
    assert fake.line("olchat_whatsapp", "3")["active"]
    # Our settings page shows the binding too.
    settings = requests.get(f"{url}/admin/settings/form", headers=headers, timeout=10).text
    assert 'data-binding-line="sales" data-binding-openline="3"' in settings
    # The same WhatsApp line cannot serve a second Open Line.
    taken = requests.post(f"{url}/bridge/connector", params={"openline": "4"}, data={"line": "sales"},
                          headers=headers, timeout=10)
    assert taken.status_code == 409 and "уже обслуживает" in taken.text
    off = requests.post(f"{url}/bridge/connector/disconnect", params={"openline": "3"}, headers=headers, timeout=10)
    assert "Подключить" in off.text and not fake.line("olchat_whatsapp", "3")["active"]


def test_a_client_message_reaches_the_open_line_once_with_the_clients_phone(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    first = waha.client_writes("sales", IVAN, "Здравствуйте, есть ли доставка?")
    assert [d["status"] for d in first["deliveries"]] == [200]
    # WAHA retries or posts an event twice: the same id again.
    waha.post_event("sales", "message.any", first["payload"])
    [chat] = [c for c in fake.openline_chats() if c["user_external_id"] == IVAN]
    assert chat["chat_external_id"] == IVAN and chat["line"] == "3"
    texts = [m["text"] for m in fake.messages_in(chat["CHAT_ID"])]
    assert texts.count("Здравствуйте, есть ли доставка?") == 1
    with app.app_context():
        [row] = db.session.scalars(db.select(BridgeMessage).filter_by(direction="in")).all()
        assert row.status == "delivered" and row.target_id == str(chat["CHAT_ID"])


def test_an_operator_reply_goes_to_whatsapp_once_and_is_marked_delivered_when_the_phone_has_it(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Здравствуйте")
    [chat] = [c for c in fake.openline_chats() if c["user_external_id"] == IVAN]
    reply = fake.operator_reply(chat, "Да, [b]доставка[/b] завтра", user_id=1)
    assert [d["status"] for d in reply["deliveries"]] == [200]
    assert waha.count(SEND_TEXT) == 1
    sent = waha.exchanges(SEND_TEXT)[-1]
    body = json.loads(sent.body)
    assert body["chatId"] == f"{IVAN}@c.us" and body["text"].endswith("Да, *доставка* завтра")
    assert "*Админ Порталов:*" in body["text"]  # the operator's name goes out first (the default)
    # Bitrix24 delivers the same event again: nothing more goes to WhatsApp.
    again = fake.fire_event("ONIMCONNECTORMESSAGEADD", {
        "CONNECTOR": "olchat_whatsapp", "LINE": "3",
        "MESSAGES": [{"im": {"chat_id": reply["chat_id"], "message_id": reply["message_id"]},
                      "message": {"user_id": 1, "text": reply["text"]}, "chat": {"id": IVAN}}]})
    assert [d["status"] for d in again] == [200]
    assert waha.count(SEND_TEXT) == 1
    # Sent is not delivered: Bitrix24's tick waits until the client's phone has it (ack DEVICE).
    assert not [d for d in fake.delivered() if str(d["message_id"]) == str(reply["message_id"])]
    waha.ack("sales", json.loads(sent.response_body)["id"], 2)
    [delivered] = [d for d in fake.delivered() if str(d["message_id"]) == str(reply["message_id"])]
    assert isinstance(delivered["external_ids"], list) and delivered["external_ids"]


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_on_the_queue_a_chat_a_dead_consumer_held_is_taken_over_once_its_claim_is_stale(served_on_a_queue, fake,
                                                                                       waha):
    from olchat_widget.bridge.inbound import sweep

    app, url = served_on_a_queue
    connect_open_line(app, fake, url)
    posted = waha.client_writes("sales", IVAN, "Есть кто?")
    assert [d["status"] for d in posted["deliveries"]] == [200]  # answered at once: the work is queued
    assert fake.openline_chats() == []
    with app.app_context():
        # A consumer claimed the message and died before Bitrix24 answered (huey lost its task with it).
        row = db.session.scalar(db.select(BridgeMessage).filter_by(direction="in"))
        row.status = "sending"
        db.session.commit()
    consumer = queue_of(app).create_consumer(workers=2, worker_type="thread", periodic=False)
    consumer.start()
    try:
        time.sleep(0.5)  # the queued job finds the fresh claim and leaves the chat to its holder: order first
        assert fake.openline_chats() == []
        app.extensions["olchat_clock"].advance(CLAIM_STALE.total_seconds() + 1)  # the claim is stale now
        with app.app_context():
            assert sweep() == 1  # the minute's sweep sees the dead consumer's chat
        assert wait_for(lambda: any(c["user_external_id"] == IVAN for c in fake.openline_chats()))
    finally:
        consumer.stop(graceful=True)
    [chat] = fake.openline_chats()
    assert [m["text"] for m in fake.messages_in(chat["CHAT_ID"])].count("Есть кто?") == 1


def delivered_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(BridgeMessage).filter_by(
            direction="in", status="delivered"))


def test_a_consumer_killed_after_bitrix24_took_the_batch_does_not_make_it_show_twice(served_on_a_queue, fake,
                                                                                      waha):
    from olchat_widget.bridge.inbound import sweep

    app, url = served_on_a_queue
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Первое")
    consumer = queue_of(app).create_consumer(workers=1, worker_type="thread", periodic=False)
    consumer.start()
    try:
        assert wait_for(lambda: any(c["user_external_id"] == IVAN for c in fake.openline_chats()))
        assert wait_for(lambda: delivered_rows(app) == 1)  # the consumer is done with it (else it would overwrite)
        with app.app_context():
            # The consumer died between Bitrix24's answer and its own commit: the row still says "sending".
            row = db.session.scalar(db.select(BridgeMessage).filter_by(direction="in"))
            row.status = "sending"
            db.session.commit()
        waha.client_writes("sales", IVAN, "Второе")  # not yet in Bitrix24: it must go, once
        app.extensions["olchat_clock"].advance(CLAIM_STALE.total_seconds() + 1)
        with app.app_context():
            assert sweep() == 1
        [chat] = fake.openline_chats()
        assert wait_for(lambda: len(fake.messages_in(chat["CHAT_ID"])) == 2)
        time.sleep(0.5)
    finally:
        consumer.stop(graceful=True)
    assert [m["text"] for m in fake.messages_in(chat["CHAT_ID"])] == ["Первое", "Второе"]
    assert fake.ol_counters["updated"] == 1  # Bitrix24 was asked about the one it may have had
    with app.app_context():
        assert {r.status for r in db.session.scalars(db.select(BridgeMessage).filter_by(direction="in"))} == {
            "delivered"}


def test_a_send_whose_answer_was_lost_is_confirmed_not_repeated(served_on_a_queue, fake, waha):
    app, url = served_on_a_queue
    connect_open_line(app, fake, url)
    fake.latency = 4.0  # Bitrix24 takes the message but answers after our 3 s read timeout
    waha.client_writes("sales", IVAN, "Медленно")
    consumer = queue_of(app).create_consumer(workers=1, worker_type="thread", periodic=False)
    consumer.start()
    try:
        assert wait_for(lambda: fake.openline_chats(), seconds=10)
        fake.latency = 0.0
        with app.app_context():
            def settled():
                db.session.rollback()
                return db.session.scalar(db.select(BridgeMessage.status).filter_by(direction="in")) == "delivered"
            assert wait_for(settled, seconds=15)
    finally:
        consumer.stop(graceful=True)
    [chat] = fake.openline_chats()
    assert [m["text"] for m in fake.messages_in(chat["CHAT_ID"])] == ["Медленно"]


def test_messages_of_a_busy_chat_are_taken_by_the_job_already_delivering_it(served_on_a_queue, fake, waha):
    app, url = served_on_a_queue
    connect_open_line(app, fake, url)
    fake.latency = 0.3  # Bitrix24 is slow: the client writes again while the first batch is on its way
    for n in range(6):
        waha.client_writes("sales", IVAN, f"Сообщение {n + 1}")
    consumer = queue_of(app).create_consumer(workers=3, worker_type="thread", periodic=False)
    consumer.start()
    try:
        assert wait_for(lambda: fake.openline_chats() and len(fake.messages_in(
            fake.openline_chats()[0]["CHAT_ID"])) == 6)
    finally:
        consumer.stop(graceful=True)
    [chat] = fake.openline_chats()
    assert [m["text"] for m in fake.messages_in(chat["CHAT_ID"])] == [f"Сообщение {n + 1}" for n in range(6)]
    assert fake.log.count("imconnector.send.messages") < 6  # what queued up went together


def test_the_sweep_queues_again_what_no_job_is_delivering(served_on_a_queue, fake, waha):
    from olchat_widget.bridge.inbound import sweep

    app, url = served_on_a_queue
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Алло")
    queue = queue_of(app)
    queue.flush()  # the job was lost (the queue's storage wiped, every retry spent...)
    with app.app_context():
        assert sweep() == 0  # just queued: a job may still be on it
        app.extensions["olchat_clock"].advance(60)
        assert sweep() == 1
    assert queue.pending_count() == 1

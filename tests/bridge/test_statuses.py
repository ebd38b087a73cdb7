"""Statuses both ways over HTTP: the app sets the lines' WAHA webhooks, acks reach Bitrix24 and the widget,
session.status reaches the lines list at once, an hourly check re-activates dropped Open Lines.

Same stage as test_bridge_e2e: the app served on 127.0.0.1, the fake portal, the fake WAHA posting
signed webhooks to whatever the app set on its sessions.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from olchat_widget.bridge.statuses import check_connectors
from olchat_widget.crypto import secrets_box
from olchat_widget.jobs import queue_of
from olchat_widget.models import GatewayServer, OpenLineBinding, OutgoingMessage, Portal, db
from tests import openapi_check
from tests.bridge.test_bridge_e2e import KEY, _serve, connect_open_line, served, waha  # noqa: F401 -- fixtures
from tests.clock import NOON
from tests.fakes.fake_waha import SEND_TEXT, SESSION_GET, SESSION_UPDATE, SESSIONS
from tests.html import parse
from tests.test_b24_app import fake  # noqa: F401 -- the portal fixture

IVAN = "79161234567"
IVAN_CHAT = f"{IVAN}@c.us"
DEAL = {"entity_type": 2, "entity_id": 10}  # the fake portal's deal with Ivan's number
EVENTS = ["message.any", "message.ack", "session.status"]
ELSEWHERE = {"url": "https://crm.example/hooks/waha", "events": ["session.status"]}


@pytest.fixture
def own_server(tmp_path, fake, waha):
    """The fake portal may connect a WAHA of its own on 127.0.0.1 (the outbound policy allows it here)."""
    yield from _serve(tmp_path, fake, waha, OLCHAT_JOBS_IMMEDIATE=True, OLCHAT_GATEWAY_ALLOWED_HOSTS="127.0.0.1")


def token_headers(fake, url, user_id=1):
    """The widget frame's headers for a portal user (1: the admin, 2: an operator)."""
    pair = fake.issue_tokens(user_id)
    token = requests.post(f"{url}/b24/token", timeout=10, json={
        "access_token": pair["access_token"], "domain": fake.domain, "member_id": fake.member_id,
        "expires_in": 3600}).json()["token"]
    return {"X-OLChat-Token": token, "HX-Request": "true"}


def our_hook(waha, session="sales"):
    [hook] = [h for h in waha.webhooks(session) if "/waha/webhook" in h["url"]]
    return hook


def operator_reply(fake, waha, text="Доставка завтра"):
    """A client writes, the operator answers; returns the Bitrix24 message id and WhatsApp's full id."""
    waha.client_writes("sales", IVAN, "Здравствуйте")
    [chat] = [c for c in fake.openline_chats() if c["user_external_id"] == IVAN]
    reply = fake.operator_reply(chat, text)
    sent = waha.exchanges(SEND_TEXT)[-1]
    return chat, reply, json.loads(sent.response_body)["id"]


def delivered(fake, reply):
    return [d for d in fake.delivered() if str(d["message_id"]) == str(reply["message_id"])]


# ---------------------------------------------------------------- the webhook on WAHA


def test_connecting_a_line_sets_its_webhook_keeping_the_sessions_other_webhooks(served, fake, waha):
    app, url = served
    waha.sessions["sales"]["config"] = {"metadata": {"team": "sales"}, "webhooks": [ELSEWHERE]}
    connect_open_line(app, fake, url)
    config = waha.session_config("sales")
    assert config["metadata"] == {"team": "sales"}  # the rest of the session's config is kept
    assert config["webhooks"][0] == ELSEWHERE
    hook = our_hook(waha)
    assert hook["url"] == f"{url}/waha/webhook" and hook["events"] == EVENTS  # message.any, never "message" too
    assert hook["hmac"] == {"key": KEY}
    assert hook["retries"]["policy"] == "exponential" and hook["retries"]["attempts"] > 1
    # Subscribed this way, the client's message reaches the Open Line once.
    posted = waha.client_writes("sales", IVAN, "Добрый день")
    assert [d["status"] for d in posted["deliveries"]] == [200]
    [chat] = [c for c in fake.openline_chats() if c["user_external_id"] == IVAN]
    assert [m["text"] for m in fake.messages_in(chat["CHAT_ID"])] == ["Добрый день"]
    # Connecting again finds the webhook in place and writes nothing (a PUT restarts a WAHA session).
    headers = token_headers(fake, url)
    requests.post(f"{url}/bridge/connector/disconnect", params={"openline": "3"}, headers=headers, timeout=10)
    connect_open_line(app, fake, url)
    assert waha.count(SESSION_UPDATE) == 1 and len(waha.webhooks("sales")) == 2
    if openapi_check.spec_available():
        openapi_check.check_all(waha.exchanges(SESSION_GET) + waha.exchanges(SESSION_UPDATE))


def test_when_waha_refuses_the_webhook_the_admin_is_told_and_the_line_is_still_connected(served, fake, waha):
    app, url = served
    waha.fail[SESSION_GET] = "401"
    headers = token_headers(fake, url)
    done = requests.post(f"{url}/bridge/connector", params={"openline": "3"}, data={"line": "sales"},
                         headers=headers, timeout=10)
    assert done.status_code == 200 and "Подключено" in done.text
    notice = parse(done.text).find(data_webhook_error=True)
    assert notice.get("data-webhook-error") == "unauthorized" and "вебхук" in notice.text
    assert waha.webhooks("sales") == []


def connect_own_server(fake, url, waha, headers):
    """The admin connects the portal's own WAHA and chooses its line 'sales' on the settings page."""
    saved = requests.post(f"{url}/admin/gateway", data={"base_url": waha.url, "api_key": waha.api_key},
                          headers=headers, timeout=10)
    assert saved.status_code == 200, saved.text[:500]
    return requests.post(f"{url}/admin/lines", data={"session": "sales", "name_sales": "Продажи"},
                         headers=headers, timeout=10)


def test_an_own_server_gets_its_own_key_shown_to_admins_only(own_server, fake, waha):
    app, url = own_server
    admin = token_headers(fake, url)
    chosen = connect_own_server(fake, url, waha, admin)
    assert chosen.status_code == 200 and not parse(chosen.text).find(data_webhook_error=True)
    with app.app_context():
        server_id = db.session.scalar(db.select(GatewayServer.id))
    hook = our_hook(waha)
    assert hook["url"] == f"{url}/waha/webhook/{server_id}" and hook["events"] == EVENTS
    key = hook["hmac"]["key"]
    assert len(key) >= 32 and key != KEY  # the server's own, not the deployment's
    # The settings page shows the admin what to paste into a WAHA we could not configure.
    page = parse(requests.get(f"{url}/admin/settings/form", headers=admin, timeout=10).text)
    assert page.find(data_webhook_key=True).text == key
    assert page.find(data_webhook_url=True).text == hook["url"]
    assert page.find(data_webhook_events=True).text == ",".join(EVENTS)
    # An operator sees none of it.
    operator = requests.get(f"{url}/admin/settings/form", headers=token_headers(fake, url, user_id=2), timeout=10)
    assert operator.status_code == 403 and key not in operator.text
    # The key verifies: a client's message to the bound line reaches Bitrix24.
    connect_open_line(app, fake, url)
    posted = waha.client_writes("sales", IVAN, "Сервер портала")
    assert [d["status"] for d in posted["deliveries"]] == [200]
    assert [c["user_external_id"] for c in fake.openline_chats()] == [IVAN]
    # A new key replaces the old one on the server at once; the old one is refused.
    renewed = requests.post(f"{url}/admin/gateway/webhook-key", headers=admin, timeout=10)
    new_key = parse(renewed.text).find(data_webhook_key=True).text
    assert new_key != key and our_hook(waha)["hmac"]["key"] == new_key
    waha.sessions["sales"]["config"]["webhooks"][0]["hmac"]["key"] = key  # a WAHA still holding the old key
    assert [d["status"] for d in waha.client_writes("sales", IVAN, "Старый ключ")["deliveries"]] == [401]


def test_a_server_that_cannot_be_configured_is_reported_on_the_settings_page(own_server, fake, waha):
    app, url = own_server
    waha.fail[SESSION_UPDATE] = "500"
    chosen = connect_own_server(fake, url, waha, token_headers(fake, url))
    assert chosen.status_code == 200
    page = parse(chosen.text)
    assert page.find(data_webhook_error=True).get("data-webhook-error") == "unavailable"
    assert page.find(data_webhook_key=True).text  # …and what to set by hand


# ---------------------------------------------------------------- acks


def test_the_operator_message_is_delivered_in_bitrix24_once_when_the_phone_has_it(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    chat, reply, wa_id = operator_reply(fake, waha)
    assert waha.count(SEND_TEXT) == 1 and delivered(fake, reply) == []
    waha.ack("sales", wa_id, 1)  # WhatsApp's server has it: not the client yet
    assert delivered(fake, reply) == []
    assert [d["status"] for d in waha.ack("sales", wa_id, 2)] == [200]
    [tick] = delivered(fake, reply)
    assert tick["external_ids"] and wa_id.endswith(tick["external_ids"][0]) and tick["chat_external_id"] == IVAN
    waha.ack("sales", wa_id, 2)  # WAHA posts the same ack again
    waha.ack("sales", wa_id, 3)  # …and then read
    assert len(delivered(fake, reply)) == 1


def test_an_ack_that_overtakes_the_sends_answer_still_counts(served, fake, waha):
    """WAHA may post the phone's ack while our sendText is still waiting for its answer."""
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Здравствуйте")
    [chat] = [c for c in fake.openline_chats() if c["user_external_id"] == IVAN]
    waha.delays[SEND_TEXT] = 1.0  # the send's answer comes late…
    acked = []

    def phone_takes_it():
        # …and the ack as soon as WAHA has the request (the fake records it before it waits).
        while not waha.exchanges(SEND_TEXT):
            time.sleep(0.01)
        body = json.loads(waha.exchanges(SEND_TEXT)[0].body)
        acked.extend(waha.ack("sales", f"true_{body['chatId']}_{body['id']}", 2))

    thread = threading.Thread(target=phone_takes_it)
    thread.start()
    reply = fake.operator_reply(chat, "Обгоняющий ответ")
    thread.join(10)
    assert [d["status"] for d in acked] == [200]
    assert len(delivered(fake, reply)) == 1


def test_acks_out_of_order_never_go_backwards(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    _, reply, wa_id = operator_reply(fake, waha)
    waha.ack("sales", wa_id, 3)  # read arrives first
    waha.ack("sales", wa_id, 2)
    waha.ack("sales", wa_id, 1)
    waha.ack("sales", wa_id, -1)  # an error after the phone had it cannot be true
    assert len(delivered(fake, reply)) == 1
    with app.app_context():
        [row] = db.session.scalars(db.select(OutgoingMessage)).all()
        assert row.ack == 3
    # An ack of a message we never sent is ignored.
    assert [d["status"] for d in waha.ack("sales", f"true_{IVAN_CHAT}_NOTOURS", 2)] == [200]
    assert len(fake.delivered()) == 1


def test_an_ack_error_tells_the_operator_in_the_chat(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    chat, reply, wa_id = operator_reply(fake, waha)
    waha.ack("sales", wa_id, -1)
    waha.ack("sales", wa_id, -1)
    notices = [m["text"] for m in fake.messages_in(chat["CHAT_ID"]) if m["author"] == "system"]
    assert notices == ["Сообщение не доставлено в WhatsApp: WhatsApp не смог доставить его клиенту."]
    assert delivered(fake, reply) == []


def test_the_widget_history_shows_the_stored_ack_where_waha_has_none(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    headers = token_headers(fake, url)
    requests.get(f"{url}/widget/phone", params={"phone": "+" + IVAN, **DEAL}, headers=headers, timeout=10)
    compose = requests.get(f"{url}/widget/compose", params={"phone": "+" + IVAN, "line": "sales", **DEAL},
                           headers=headers, timeout=10)
    key = parse(compose.text).find("input", name="key").get("value")
    sent = requests.post(f"{url}/widget/send", params=DEAL, headers=headers, timeout=10,
                         data={"text": "Счёт во вложении", "key": key, "phone": "+" + IVAN, "line": "sales"})
    assert parse(sent.text).find("p", data_notice=True).get("data-notice") == "ok"
    wa_id = json.loads(waha.exchanges(SEND_TEXT)[-1].response_body)["id"]
    waha.ack("sales", wa_id, 3)
    # An engine whose history keeps no delivery state (NOWEB without its store).
    for message in waha.chats[("sales", IVAN_CHAT)]:
        message.pop("ack", None), message.pop("ackName", None)
    history = parse(requests.get(f"{url}/widget/history", params={"phone": "+" + IVAN, "line": "sales", **DEAL},
                                 headers=headers, timeout=10).text)
    acks = {li.get("data-message-id"): li.find("span", data_ack=True)
            for li in history.find_all("li", data_message_id=True)}
    assert acks[wa_id].get("data-ack") == "READ"
    assert sum(1 for span in acks.values() if span is not None) == 1  # the others' state nobody told us


# ---------------------------------------------------------------- session.status


def test_a_line_that_needs_a_qr_code_shows_it_at_once(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    headers = token_headers(fake, url)

    def sales_state():
        page = parse(requests.get(f"{url}/widget/lines", params=DEAL, headers=headers, timeout=10).text)
        return page.find("option", data_line="sales").get("data-status")

    assert sales_state() == "WORKING"
    asked = waha.count(SESSIONS)
    assert [d["status"] for d in waha.session_status("sales", "SCAN_QR_CODE")] == [200]
    assert sales_state() == "SCAN_QR_CODE"
    assert waha.count(SESSIONS) == asked  # told by the webhook, not asked again
    waha.session_status("sales", "WORKING")
    assert sales_state() == "WORKING"


# ---------------------------------------------------------------- hourly imconnector.status


def test_the_hourly_check_activates_a_dropped_line_again_and_leaves_working_ones_alone(served, fake, waha):
    app, url = served
    with app.app_context():
        # A portal whose Bitrix24 cannot be reached comes first: its failure stops nobody.
        gone = Portal(member_id="gone", domain="127.0.0.1:9", kind="bitrix", installed=True,
                      access_token_enc=secrets_box(app).seal("dead"))
        db.session.add(gone)
        db.session.flush()
        db.session.add(OpenLineBinding(portal_id=gone.id, line_id="sales", openline_id="9"))
        db.session.commit()
    connect_open_line(app, fake, url, openline="3", line="sales")
    connect_open_line(app, fake, url, openline="4", line="support")
    name = fake.line("olchat_whatsapp", "3")["data"]["NAME"]
    fake.set_line_active("olchat_whatsapp", "3", False)  # Bitrix24 dropped our connector from Open Line 3
    before = fake.calls.count("imconnector.activate")
    with app.app_context():
        tally = check_connectors()
    assert tally == {"checked": 3, "reactivated": 1, "failed": 1}
    assert fake.line("olchat_whatsapp", "3")["active"] and fake.line("olchat_whatsapp", "3")["data"]["NAME"] == name
    assert fake.line("olchat_whatsapp", "4")["active"]
    assert fake.calls.count("imconnector.activate") == before + 1
    # It runs on the queue every hour.
    assert "check_connectors" in {task.name for task in queue_of(app).read_periodic(NOON.replace(minute=17))}

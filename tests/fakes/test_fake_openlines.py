"""The fakes' Open Lines bridge protocol, over real HTTP on 127.0.0.1.

Fake Bitrix24: imconnector.* and imopenlines.session/dialog, events posted the way Bitrix24
posts them. Fake WAHA: session webhooks, signed event envelopes, media files, echoes of sends.
Events and webhooks are received by a tiny http.server on port 0.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.fakes.fake_bitrix24 import FakeBitrix24, php_parse_str

ICON = {"DATA_IMAGE": "data:image/svg+xml;charset=US-ASCII,%3Csvg%2F%3E", "COLOR": "#25d366"}


class Receiver:
    """An HTTP endpoint on 127.0.0.1:0 that records every POST and answers ``status``."""

    def __init__(self, status: int = 200):
        self.status = status
        self.received: list[dict] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                outer.got.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


# ---------------------------------------------------------------- fake Bitrix24


@pytest.fixture
def portal():
    with FakeBitrix24() as fake:
        yield fake


def rest(portal: FakeBitrix24, token: str, method: str, **params):
    """Call a REST method with a JSON body; return the decoded answer."""
    answer = requests.post(f"{portal.url}/rest/{method}.json", json=dict(params, auth=token), timeout=5)
    return answer.status_code, answer.json()


@pytest.fixture
def token(portal):
    return portal.issue_tokens(1)["access_token"]


def register(portal, token, connector="olchat_wa", **extra):
    params = dict({"NAME": "WhatsApp", "ICON": ICON, "PLACEMENT_HANDLER": "https://app.example/connector"}, **extra)
    return rest(portal, token, "imconnector.register", ID=connector, **params)


def message(chat="79161234567", user="79161234567", mid="wamid1", text="Привет", **user_extra):
    return {"user": {"id": user, "name": "Иван", "last_name": "Петров", "phone": "+79161234567", **user_extra},
            "message": {"id": mid, "date": 1764000000, "text": text}, "chat": {"id": chat}}


@pytest.fixture
def line(portal, token):
    """A registered connector (CHAT_GROUP=N: the CRM tracker runs) active on line 3."""
    assert register(portal, token, CHAT_GROUP="N")[1]["result"] is True
    assert rest(portal, token, "imconnector.activate", CONNECTOR="olchat_wa", LINE=3, ACTIVE=1)[1]["result"] is True
    return "3"


def test_register_validates_the_id_and_the_required_fields_and_updates_on_the_same_id(portal, token):
    for bad in ("OlChat", "olchat.wa", "olchat-wa", ""):
        status, body = register(portal, token, connector=bad)
        assert (status, body["result"]) == (200, False)
    for missing in ("NAME", "PLACEMENT_HANDLER"):
        params = {"ID": "olchat_wa", "NAME": "WhatsApp", "ICON": ICON, "PLACEMENT_HANDLER": "https://a.example/c"}
        params.pop(missing)
        assert rest(portal, token, "imconnector.register", **params)[1]["result"] is False
    assert rest(portal, token, "imconnector.register", ID="olchat_wa", NAME="W", ICON={"COLOR": "#fff"},
                PLACEMENT_HANDLER="https://a.example/c")[1]["result"] is False
    assert len(portal.register_refusals) == 7 and portal.connectors == {}

    assert register(portal, token)[1]["result"] is True
    assert portal.connectors["olchat_wa"]["CHAT_GROUP"] is True  # documented default Y
    assert register(portal, token, CHAT_GROUP="N", NAME="WhatsApp 2")[1]["result"] is True
    assert portal.connectors["olchat_wa"]["CHAT_GROUP"] is False
    assert len(portal.connectors) == 1 and portal.connectors["olchat_wa"]["NAME"] == "WhatsApp 2"
    assert portal.ol_callers[-1] == ("imconnector.register", 1)

    assert rest(portal, token, "imconnector.unregister", ID="olchat_wa")[1]["result"] is True
    assert portal.connectors == {}


def test_activate_status_and_connector_data(portal, token):
    register(portal, token)
    assert rest(portal, token, "imconnector.status", CONNECTOR="olchat_wa", LINE="3")[1]["result"] == {
        "LINE": "3", "CONNECTOR": "olchat_wa", "ERROR": False, "CONFIGURED": False, "STATUS": False}
    rest(portal, token, "imconnector.activate", CONNECTOR="olchat_wa", LINE="3", ACTIVE="1")
    assert rest(portal, token, "imconnector.status", CONNECTOR="olchat_wa", LINE=3)[1]["result"]["STATUS"] is True
    portal.set_line_error("olchat_wa", 3)
    status = rest(portal, token, "imconnector.status", CONNECTOR="olchat_wa", LINE=3)[1]["result"]
    assert (status["CONFIGURED"], status["ERROR"], status["STATUS"]) == (True, True, False)
    rest(portal, token, "imconnector.activate", CONNECTOR="olchat_wa", LINE=3, ACTIVE=0)
    assert portal.line("olchat_wa", 3)["active"] is False

    rest(portal, token, "imconnector.connector.data.set", CONNECTOR="olchat_wa", LINE=3,
         DATA={"ID": "sales", "URL": "https://wa.me/79111111111", "NAME": "Sales"})
    rest(portal, token, "imconnector.connector.data.set", CONNECTOR="olchat_wa", LINE=3, DATA={"NAME": "Only"})
    assert portal.line("olchat_wa", 3)["data"] == {"NAME": "Only"}  # replaced, not merged

    status, body = rest(portal, token, "imconnector.activate", CONNECTOR="nope", LINE=3, ACTIVE=1)
    assert body["error"] == "IMCONNECTOR_NO_CORRECT_PROVIDER"
    status, body = rest(portal, token, "imconnector.status", CONNECTOR="olchat_wa")
    assert (status, body["error"]) == (400, "LINE")


def test_send_messages_creates_one_chat_per_user_code_and_a_lead_per_new_chat(portal, token, line):
    status, body = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                        MESSAGES=[message()])
    assert status == 200
    result = body["result"]
    assert result["SUCCESS"] is True
    session = result["DATA"]["RESULT"][0]["session"]
    chat_id = session["CHAT_ID"]
    assert isinstance(session["ID"], int) and isinstance(chat_id, int)

    # same ids -> the same chat; the same message id again is recorded again (no de-duplication)
    again = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE="3",
                 MESSAGES=[message(), message(mid="wamid2", text="ещё")])[1]["result"]
    assert {r["session"]["CHAT_ID"] for r in again["DATA"]["RESULT"]} == {chat_id}
    assert [m["external_id"] for m in portal.messages_in(chat_id)] == ["wamid1", "wamid1", "wamid2"]

    # a user id that differs by one byte -> a second chat; without user.phone, a second lead too
    other = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                 MESSAGES=[message(user="+79161234567", phone="")]
                 )[1]["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
    assert other != chat_id
    chats = portal.openline_chats()
    assert [c["user_code"] for c in chats] == ["olchat_wa|3|79161234567|79161234567",
                                               "olchat_wa|3|79161234567|+79161234567"]
    assert portal.ol_counters["chats"] == 2 and portal.ol_counters["messages"] == 4
    assert portal.ol_counters["leads"] == 2
    # with the phone, duplicate control attaches a third chat to the one open lead with that number
    third = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                 MESSAGES=[message(user="wa:79161234567")])[1]["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
    assert portal.ol_counters["leads"] == 2 and portal.ol_counters["chats"] == 3
    assert portal.openline_chat(third)["crm"] == portal.openline_chat(chat_id)["crm"]

    # the CRM tracker bound the chat: crm.chat.get sees it
    lead = portal.openline_chat(chat_id)["crm"]
    found = rest(portal, token, "imopenlines.crm.chat.get", CRM_ENTITY_TYPE="LEAD", CRM_ENTITY=lead["entity_id"])
    assert found[1]["result"] == [{"CHAT_ID": str(c), "CONNECTOR_ID": "olchat_wa", "CONNECTOR_TITLE": "WhatsApp"}
                                  for c in (chat_id, third)]
    assert rest(portal, token, "imopenlines.crm.chat.getLastId", CRM_ENTITY_TYPE="LEAD",
                CRM_ENTITY=lead["entity_id"])[1]["result"] == third


def test_duplicate_control_attaches_a_new_chat_to_the_one_lead_with_that_phone(portal, token, line):
    portal.add_item(1, 77, title="Старый лид", phones=["8 (916) 123-45-67"])
    chat_id = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                   MESSAGES=[message(phone="79161234567")])[1]["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
    assert portal.ol_counters["leads"] == 1  # 8 916… vs 7 916…: digits differ, so a new lead
    portal.add_item(1, 78, title="Другой", phones=["+7 903 000-00-00"])
    other = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                 MESSAGES=[message(chat="79030000000", user="79030000000", phone="79030000000")]
                 )[1]["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
    assert portal.ol_counters["leads"] == 1
    assert portal.openline_chat(other)["crm"] == {"entity_type": "lead", "entity_id": 78}
    assert portal.openline_chat(chat_id)["lead_created"] is not None


def test_group_mode_runs_no_tracker_and_a_helper_binds_the_chat(portal, token):
    register(portal, token)  # CHAT_GROUP defaults to Y
    rest(portal, token, "imconnector.activate", CONNECTOR="olchat_wa", LINE=3, ACTIVE=1)
    chat_id = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                   MESSAGES=[message()])[1]["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
    assert portal.ol_counters["leads"] == 0
    assert rest(portal, token, "imopenlines.crm.chat.get", CRM_ENTITY_TYPE="deal", CRM_ENTITY=10)[1]["result"] == []
    portal.bind_chat_to_crm(chat_id, "deal", 10)
    assert rest(portal, token, "imopenlines.crm.chat.get", CRM_ENTITY_TYPE="deal",
                CRM_ENTITY=10)[1]["result"][0]["CHAT_ID"] == str(chat_id)
    portal.close_chat(chat_id)
    assert rest(portal, token, "imopenlines.crm.chat.get", CRM_ENTITY_TYPE="deal", CRM_ENTITY=10)[1]["result"] == []
    assert len(rest(portal, token, "imopenlines.crm.chat.get", CRM_ENTITY_TYPE="deal", CRM_ENTITY=10,
                    ACTIVE_ONLY="N")[1]["result"]) == 1


def test_send_messages_validation(portal, token, line):
    def send(*messages):
        return rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3, MESSAGES=list(messages))

    no_chat = message()
    del no_chat["chat"]
    assert send(no_chat)[1]["error"] == "100"
    for name in ("Иван 🙂", "R2D2", "x" * 26, "Ann_Lee"):
        status, body = send(message(name=name))
        assert (status, body["error"]) == (400, "IMCONNECTOR_NOT_ALL_THE_REQUIRED_DATA"), name
    assert send(message(last_name="O'Brien-Smith"))[0] == 200
    empty = message()
    del empty["message"]["text"]
    assert send(empty)[1]["error"] == "IMCONNECTOR_NOT_ALL_THE_REQUIRED_DATA"
    files = message()
    files["message"] = {"id": "f1", "date": 1764000000, "files": [{"url": "https://x.example/a.jpg", "name": "a.jpg"}]}
    assert send(files)[0] == 200
    # one bad message refuses the whole call: nothing of it is recorded
    before = portal.ol_counters["messages"]
    assert send(message(mid="ok"), message(name="🙂"))[0] == 400
    assert portal.ol_counters["messages"] == before
    assert send()[1]["error"] == "MESSAGES"
    assert rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_x", LINE=3,
                MESSAGES=[message()])[1]["error"] == "IMCONNECTOR_NO_CORRECT_PROVIDER"


def test_an_inactive_line_answers_success_but_the_message_hangs(portal, token, line):
    portal.set_line_active("olchat_wa", 3, False)
    status, body = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                        MESSAGES=[message()])
    assert status == 200 and body["result"]["SUCCESS"] is True
    assert "session" not in body["result"]["DATA"]["RESULT"][0]
    assert portal.openline_chats() == [] and portal.ol_counters["hung"] == 1
    assert portal.hung_messages()[0]["external_id"] == "wamid1"


def test_form_encoded_calls_and_batch_work_too(portal, token, line):
    form = {"auth": token, "CONNECTOR": "olchat_wa", "LINE": "3",
            "MESSAGES[0][user][id]": "u1", "MESSAGES[0][user][name]": "Анна",
            "MESSAGES[0][message][id]": "m1", "MESSAGES[0][message][date]": "1764000000",
            "MESSAGES[0][message][text]": "hi", "MESSAGES[0][chat][id]": "c1"}
    body = requests.post(f"{portal.url}/rest/imconnector.send.messages", data=form, timeout=5).json()
    chat_id = body["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
    batch = rest(portal, token, "batch", cmd={
        "s": "imconnector.status?CONNECTOR=olchat_wa&LINE=3",
        "d": f"imopenlines.dialog.get?CHAT_ID={chat_id}"})[1]["result"]
    assert batch["result"]["s"]["STATUS"] is True and batch["result"]["d"]["entity_id"] == "olchat_wa|3|c1|u1"


def test_delivery_needs_an_array_of_ids_and_is_recorded(portal, token, line):
    chat_id = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                   MESSAGES=[message()])[1]["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
    item = {"im": {"chat_id": chat_id, "message_id": 86999}, "message": {"id": "true_x_1", "date": 1764000000},
            "chat": {"id": "79161234567"}}
    status, body = rest(portal, token, "imconnector.send.status.delivery", CONNECTOR="olchat_wa", LINE=3,
                        MESSAGES=[item])
    assert status == 400 and body["error"] == "IMCONNECTOR_NOT_ALL_THE_REQUIRED_DATA"
    assert portal.delivered() == []
    item["message"]["id"] = ["true_x_1"]
    assert rest(portal, token, "imconnector.send.status.delivery", CONNECTOR="olchat_wa", LINE=3,
                MESSAGES=[item])[0] == 200
    assert portal.delivered() == [{"connector": "olchat_wa", "line": "3", "chat_id": chat_id, "message_id": 86999,
                                   "external_ids": ["true_x_1"], "chat_external_id": "79161234567",
                                   "date": 1764000000}]
    assert portal.ol_counters["deliveries"] == 1


def test_session_open_and_dialog_get(portal, token, line):
    chat_id = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                   MESSAGES=[message()])[1]["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]
    code = "olchat_wa|3|79161234567|79161234567"
    assert rest(portal, token, "imopenlines.session.open", USER_CODE=code)[1]["result"] == {"chatId": str(chat_id)}
    assert rest(portal, token, "imopenlines.session.open", USER_CODE="imol|" + code)[1]["result"]["chatId"] == str(chat_id)
    assert rest(portal, token, "imopenlines.session.open", USER_CODE="olchat_wa|3|x|y")[1]["error"] == "ACCESS_DENIED"
    for key, value in (("CHAT_ID", chat_id), ("DIALOG_ID", f"chat{chat_id}"), ("USER_CODE", "imol|" + code)):
        dialog = rest(portal, token, "imopenlines.dialog.get", **{key: value})[1]["result"]
        assert (dialog["id"], dialog["entity_id"], dialog["type"]) == (chat_id, code, "lines")
        assert dialog["entity_data_1"].startswith("Y|LEAD|")
    assert rest(portal, token, "imopenlines.dialog.get")[1]["error"] == "DIALOG_ID_EMPTY"
    assert rest(portal, token, "imopenlines.dialog.get", CHAT_ID=1)[1]["error"] == "ACCESS_ERROR"


def test_operator_reply_posts_the_event_form_encoded_with_the_signature(portal, token, line, receiver):
    assert rest(portal, token, "event.bind", EVENT="OnImConnectorMessageAdd", HANDLER=receiver.url)[1]["result"]
    portal.application_token = "app-token-from-install"
    chat_id = rest(portal, token, "imconnector.send.messages", CONNECTOR="olchat_wa", LINE=3,
                   MESSAGES=[message()])[1]["result"]["DATA"]["RESULT"][0]["session"]["CHAT_ID"]

    sent = portal.operator_reply(chat_id, "Добрый день!", user_id=2,
                                 files=[{"name": "price.pdf", "content": b"%PDF-1.4", "mime": "application/pdf"}])

    assert [d["status"] for d in sent["deliveries"]] == [200]
    got = receiver.received[0]
    assert got["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    raw = got["body"].decode()
    assert "data%5BMESSAGES%5D%5B0%5D%5Bim%5D%5Bchat_id%5D=" in raw  # bracketed keys, as PHP sends them
    form = php_parse_str(raw)
    assert form["event"] == "ONIMCONNECTORMESSAGEADD"
    assert form["auth"]["application_token"] == "app-token-from-install"
    assert form["auth"]["member_id"] == portal.member_id and form["auth"]["domain"] == portal.domain
    data = form["data"]
    assert (data["CONNECTOR"], data["LINE"]) == ("olchat_wa", "3")
    item = data["MESSAGES"][0]
    assert item["im"] == {"chat_id": str(chat_id), "message_id": str(sent["message_id"])}
    assert item["message"]["user_id"] == "2"
    assert item["message"]["text"] == "[b]Оператор Первый:[/b][br]Добрый день!"
    assert item["chat"]["id"] == "79161234567"
    f = item["message"]["files"][0]
    assert (f["name"], f["type"], f["mime"], f["size"]) == ("price.pdf", "file", "application/pdf", "8")
    assert requests.get(f["link"], timeout=5).content == b"%PDF-1.4"
    assert portal.messages_in(chat_id)[-1]["author"] == "operator"
    assert portal.ol_counters["events"] == 1
    # the access token in the event works
    assert rest(portal, form["auth"]["access_token"], "imconnector.status", CONNECTOR="olchat_wa",
                LINE=3)[0] == 200


def test_fire_event_posts_to_every_bound_handler_once_and_never_before_install(portal, token, receiver):
    second = Receiver(status=500)
    try:
        rest(portal, token, "event.bind", EVENT="OnImConnectorLineDelete", HANDLER=receiver.url)
        rest(portal, token, "event.bind", EVENT="ONIMCONNECTORLINEDELETE", HANDLER=second.url)
        rest(portal, token, "event.bind", EVENT="OnImConnectorStatusDelete", HANDLER=receiver.url)
        results = portal.fire_event("OnImConnectorLineDelete", {"connector": "olchat_wa", "line": "3"})
        assert sorted(r["status"] for r in results) == [200, 500]  # the 500 is not retried
        assert len(receiver.received) == len(second.received) == 1
        assert php_parse_str(receiver.received[0]["body"].decode())["data"] == {"connector": "olchat_wa", "line": "3"}
        portal.installed = False
        assert portal.fire_event("OnImConnectorLineDelete", {"line": "3"}) == []
        assert len(receiver.received) == 1
    finally:
        second.close()


def test_an_unreachable_handler_is_reported_not_raised(portal, token):
    rest(portal, token, "event.bind", EVENT="OnImConnectorMessageAdd", HANDLER="http://127.0.0.1:9/none")
    portal.event_timeout = 1.0
    [result] = portal.fire_event("OnImConnectorMessageAdd", {"CONNECTOR": "x"})
    assert result["status"] is None and "error" in result


# ---------------------------------------------------------------- fake WAHA

import hashlib  # noqa: E402
import hmac  # noqa: E402

from tests import openapi_check  # noqa: E402
from tests.fakes.fake_waha import SESSION_CREATE, SESSION_GET, SESSION_UPDATE, FakeWaha  # noqa: E402


@pytest.fixture
def waha():
    with FakeWaha() as fake:
        fake.now = lambda: 1764000000.5  # the fake's timestamps and file lifetime run on this clock
        yield fake


def waha_call(waha, method, path, **kw):
    return requests.request(method, waha.url + path, headers={"X-Api-Key": waha.api_key}, timeout=5, **kw)


def subscribe(waha, receiver, events=("message.any", "message.ack", "session.status"), key="hook-secret",
              session="sales"):
    hook = {"url": receiver.url, "events": list(events), "hmac": {"key": key} if key else None,
            "retries": {"policy": "constant", "delaySeconds": 2, "attempts": 3},
            "customHeaders": [{"name": "X-Portal", "value": "p1"}]}
    answer = waha_call(waha, "PUT", f"/api/sessions/{session}", json={"config": {"webhooks": [hook]}})
    assert answer.status_code == 200, answer.text
    return hook


def test_session_webhooks_are_set_by_put_and_post_and_shown_as_set(waha, receiver):
    hook = subscribe(waha, receiver)
    assert waha.webhooks("sales") == [hook]
    assert waha_call(waha, "GET", "/api/sessions/sales").json()["config"]["webhooks"] == [hook]
    listed = {s["name"]: s for s in waha_call(waha, "GET", "/api/sessions").json()}
    assert listed["sales"]["config"]["webhooks"][0]["hmac"] == {"key": "hook-secret"}

    created = waha_call(waha, "POST", "/api/sessions", json={"name": "fresh", "start": False,
                                                             "config": {"webhooks": [hook]}})
    assert created.status_code == 201 and created.json()["status"] == "STOPPED"
    assert waha.webhooks("fresh") == [hook]
    assert waha_call(waha, "POST", "/api/sessions", json={"name": "fresh"}).status_code == 422
    assert waha_call(waha, "PUT", "/api/sessions/nope", json={"config": {}}).status_code == 404
    bad = waha_call(waha, "PUT", "/api/sessions/sales", json={"config": {"webhooks": [{"url": receiver.url}]}})
    assert bad.status_code == 400 and waha.webhooks("sales") == [hook]
    assert waha_call(waha, "PUT", "/api/sessions/sales", json={"config": {}}).status_code == 200
    assert waha.webhooks("sales") == []  # the config is replaced as a whole

    assert waha_call(waha, "GET", "/api/sessions/sales").json()["config"] == {}
    if openapi_check.spec_available():
        # WebhookConfig.events items are event names, not the objects the spec says (corrected in openapi_check).
        ok = [e for e in waha.exchanges() if e.endpoint in (SESSION_CREATE, SESSION_GET, SESSION_UPDATE)
              and e.status in (200, 201)]
        assert len(ok) >= 2
        openapi_check.check_all(ok)


def test_client_writes_posts_a_signed_envelope_to_subscribed_webhooks(waha, receiver):
    subscribe(waha, receiver)
    sent = waha.client_writes("sales", "+7 916 123-45-67", "Здравствуйте", msg_id="ABC123")

    assert [d["event"] for d in sent["deliveries"]] == ["message.any"]  # not subscribed to "message"
    [delivery] = sent["deliveries"]
    assert delivery["status"] == 200 and delivery["seconds"] >= 0
    got = receiver.received[0]
    raw = got["body"]
    assert raw == delivery["body"]
    expected = hmac.new(b"hook-secret", raw, hashlib.sha512).hexdigest()
    assert got["headers"]["X-Webhook-Hmac"] == expected and got["headers"]["X-Webhook-Hmac-Algorithm"] == "sha512"
    assert got["headers"]["X-Webhook-Timestamp"] == "1764000000500" and got["headers"]["X-Webhook-Request-Id"]
    assert got["headers"]["X-Portal"] == "p1"
    envelope = json.loads(raw)
    assert envelope["id"].startswith("evt_") and len(envelope["id"]) == 30
    assert (envelope["timestamp"], envelope["event"], envelope["session"]) == (1764000000500, "message.any", "sales")
    assert envelope["me"]["id"] == "79111111111@c.us"
    payload = envelope["payload"]
    assert payload["id"] == "false_79161234567@c.us_ABC123" == sent["id"]
    assert (payload["from"], payload["fromMe"], payload["body"], payload["hasMedia"]) == (
        "79161234567@c.us", False, "Здравствуйте", False)
    assert payload["timestamp"] == 1764000000
    assert waha.messages("sales", "79161234567@c.us")[-1]["id"] == sent["id"]  # history has it too


def test_message_and_message_any_go_to_their_own_subscribers_and_the_global_hook(waha, receiver):
    other = Receiver()
    try:
        subscribe(waha, receiver, events=("message",), key=None)
        waha.set_global_webhook(other.url, events=["*"], hmac_key="global-key")
        sent = waha.client_writes("sales", "79161234567", "hi")
        assert sorted((d["url"] == other.url, d["event"]) for d in sent["deliveries"]) == [
            (False, "message"), (True, "message"), (True, "message.any")]
        assert "X-Webhook-Hmac" not in receiver.received[0]["headers"]
        for got in other.received:
            assert got["headers"]["X-Webhook-Hmac"] == hmac.new(b"global-key", got["body"], hashlib.sha512).hexdigest()
        # the phone's own messages: message.any only, fromMe true, source app
        phone = waha.phone_writes("sales", "79161234567", "from the phone")
        assert [d["event"] for d in phone["deliveries"]] == ["message.any"]
        assert phone["payload"]["fromMe"] is True and phone["payload"]["source"] == "app"
        assert phone["id"].startswith("true_79161234567@c.us_")
    finally:
        other.close()


def test_received_media_is_served_with_the_key_and_deleted_after_its_lifetime(waha, receiver):
    subscribe(waha, receiver)
    sent = waha.client_writes("sales", "79161234567", "", media={"content": b"\xff\xd8jpeg", "mimetype": "image/jpeg"})
    media = sent["payload"]["media"]
    assert sent["payload"]["hasMedia"] is True and media["mimetype"] == "image/jpeg"
    assert media["url"].startswith(waha.url + "/api/files/sales/") and media["url"].endswith(".jpg")
    assert requests.get(media["url"], timeout=5).status_code == 401
    got = requests.get(media["url"], headers={"X-Api-Key": waha.api_key}, timeout=5)
    assert (got.status_code, got.content, got.headers["Content-Type"]) == (200, b"\xff\xd8jpeg", "image/jpeg")
    waha.now = lambda: 1764000000.5 + waha.files_lifetime
    assert requests.get(media["url"], headers={"X-Api-Key": waha.api_key}, timeout=5).status_code == 404


def test_ack_and_session_status_events(waha, receiver):
    subscribe(waha, receiver)
    sent = waha_call(waha, "POST", "/api/sendText", json={"session": "sales", "chatId": "79161234567@c.us",
                                                          "text": "hi", "id": "3EB0AA"}).json()
    [d] = waha.ack("sales", sent["id"], 3)
    ack = d["envelope"]["payload"]
    assert (d["event"], ack["id"], ack["ack"], ack["ackName"], ack["fromMe"]) == ("message.ack", sent["id"], 3,
                                                                                  "READ", True)
    assert waha.messages("sales", "79161234567@c.us")[-1]["ackName"] == "READ"
    [d] = waha.session_status("sales", "FAILED")
    assert d["envelope"]["payload"]["status"] == "FAILED"
    assert waha_call(waha, "GET", "/api/sessions/sales").json()["status"] == "FAILED"


@pytest.mark.parametrize("when", ["before", "after"])
def test_sends_through_the_api_are_echoed_as_message_any_from_me_source_api(waha, receiver, when):
    subscribe(waha, receiver)
    waha.echo_sends = when
    answer = waha_call(waha, "POST", "/api/sendText", json={"session": "sales", "chatId": "79161234567@c.us",
                                                            "text": "от оператора", "id": "3EB0BB"})
    assert answer.status_code == 201
    assert receiver.got.wait(5)
    echo = json.loads(receiver.received[0]["body"])
    assert echo["event"] == "message.any"
    assert (echo["payload"]["id"], echo["payload"]["fromMe"], echo["payload"]["source"]) == (
        answer.json()["id"], True, "api")
    image = waha_call(waha, "POST", "/api/sendImage", json={
        "session": "sales", "chatId": "79161234567@c.us", "caption": "фото",
        "file": {"url": "https://files.example/a.jpg", "mimetype": "image/jpeg", "filename": "a.jpg"}})
    assert image.status_code == 201 and image.json()["hasMedia"] is True
    for _ in range(100):
        if len(receiver.received) == 2:
            break
        receiver.got.clear()
        receiver.got.wait(0.05)
    assert json.loads(receiver.received[1]["body"])["payload"]["media"]["url"] == "https://files.example/a.jpg"


def test_no_echo_unless_asked(waha, receiver):
    subscribe(waha, receiver)
    waha_call(waha, "POST", "/api/sendText", json={"session": "sales", "chatId": "79161234567@c.us", "text": "x"})
    assert receiver.received == [] and waha.webhook_log == []

"""The WAHA adapter against a fake WAHA over real HTTP, every exchange checked against the contract."""
from __future__ import annotations

import socket
import time

import pytest

from olchat_widget.gateway.base import (SCAN_QR_CODE, STOPPED, WORKING, ChatRef, GatewayError, GatewayNotFound,
                                        GatewayRateLimited, GatewayTimeout, GatewayUnauthorized, GatewayUnavailable,
                                        LineNotConnected, Presence)
from olchat_widget.gateway.waha import WahaGateway
from tests import openapi_check
from tests.fakes.fake_waha import (CHATS_OVERVIEW, CHECK_EXISTS, ENDPOINTS, MESSAGE, MESSAGES, NEW_MESSAGE_ID,
                                   SEND_TEXT, SESSIONS, Exchange, FakeWaha, wa_message)

READ_TIMEOUT = 0.3
CHAT = "79161234567@c.us"


@pytest.fixture
def waha():
    """Run a fake WAHA for one test; afterwards check everything it saw and said against the contract."""
    with FakeWaha(timeout_sleep=READ_TIMEOUT + 0.5) as fake:
        yield fake
        if openapi_check.spec_available():
            openapi_check.check_all(fake.exchanges())


def gateway(fake: FakeWaha, **kw) -> WahaGateway:
    """Return an adapter on the fake with short timeouts."""
    kw.setdefault("connect_timeout", 0.5)
    kw.setdefault("read_timeout", READ_TIMEOUT)
    return WahaGateway(fake.url, kw.pop("api_key", fake.api_key), **kw)


@pytest.fixture
def gw(waha):
    g = gateway(waha)
    yield g
    g.close()


# Each Gateway question, keyed by the WAHA endpoint it uses.
CALLS = {
    SESSIONS: lambda g: g.list_lines(),
    CHECK_EXISTS: lambda g: g.check_exists("sales", "+79161234567"),
    CHATS_OVERVIEW: lambda g: g.find_chat("sales", CHAT),
    MESSAGES: lambda g: g.history("sales", CHAT),
    MESSAGE: lambda g: g.find_message("sales", CHAT, "3EB0FFFF"),
    NEW_MESSAGE_ID: lambda g: g.new_message_id("sales"),
    SEND_TEXT: lambda g: g.send_text("sales", CHAT, "hello", message_id="3EB0AAAA"),
}
assert set(CALLS) == set(ENDPOINTS)


# ---------------------------------------------------------------- lines


def test_list_lines_reports_state_own_number_and_reachout_lock(waha, gw):
    lines = {line.id: line for line in gw.list_lines()}

    assert set(lines) == {"sales", "support", "newline", "old"}  # STOPPED too: all=true
    assert lines["sales"].status == WORKING and lines["sales"].phone == "+79111111111"
    assert lines["sales"].reachout_restricted is False and lines["sales"].can_send
    assert lines["support"].reachout_restricted is True
    assert lines["newline"].status == SCAN_QR_CODE and lines["newline"].phone is None
    assert lines["old"].status == STOPPED and not lines["old"].can_send
    [ex] = waha.exchanges(SESSIONS)
    assert ex.headers["X-Api-Key"] == waha.api_key
    assert ex.params()["all"] == ["true"]


def test_sessions_limit_the_portal_to_its_lines_and_names_label_them(waha):
    gw = gateway(waha, sessions=["support", "sales", "deleted-meanwhile"], names={"sales": "Отдел продаж"})

    lines = gw.list_lines()

    assert [line.id for line in lines] == ["support", "sales"]  # configured order; unknown ones left out
    assert [line.name for line in lines] == ["support", "Отдел продаж"]
    # Another portal's session on the same WAHA is refused without asking WAHA.
    with pytest.raises(GatewayNotFound):
        gw.check_exists("newline", "+79161234567")
    with pytest.raises(GatewayNotFound):
        gw.send_text("old", CHAT, "hi", message_id="X")
    assert waha.count(CHECK_EXISTS) == 0 and waha.count(SEND_TEXT) == 0


def test_reachout_lock_as_a_plain_flag_is_read_too(waha, gw):
    waha.sessions["sales"]["me"]["reachoutTimelock"] = True
    waha.sessions["support"]["me"]["reachoutTimelock"] = {"isActive": False}

    lines = {line.id: line for line in gw.list_lines()}

    assert lines["sales"].reachout_restricted is True
    assert lines["support"].reachout_restricted is False


# ---------------------------------------------------------------- checks and chats


def test_check_exists_sends_digits_and_uses_the_returned_chat_id(waha, gw):
    assert gw.check_exists("sales", "+79161234567") == Presence(True, "79161234567@c.us")
    # WhatsApp knows this Brazilian number without its 9th digit: the returned id must be used.
    assert gw.check_exists("sales", "+5511987654321") == Presence(True, "551187654321@c.us")
    assert gw.check_exists("sales", "+79035550000") == Presence(True, "215589334122731@lid")
    assert gw.check_exists("sales", "+79990000000") == Presence(False, None)

    sent = [ex.params() for ex in waha.exchanges(CHECK_EXISTS)]
    assert [p["phone"] for p in sent] == [["79161234567"], ["5511987654321"], ["79035550000"], ["79990000000"]]
    assert all(p["session"] == ["sales"] for p in sent)


def test_find_chat_asks_for_one_chat_by_id(waha, gw):
    assert gw.find_chat("sales", CHAT) == ChatRef(CHAT, "79161234567")
    assert gw.find_chat("sales", "79990000000@c.us") is None

    first = waha.exchanges(CHATS_OVERVIEW)[0]
    assert first.params()["ids"] == [CHAT] and first.params()["limit"] == ["1"]


def test_path_parts_are_url_encoded(waha, gw):
    gw.history("sales", CHAT, limit=5)
    gw.find_message("sales", CHAT, "3EB0ABC")

    assert waha.exchanges(MESSAGES)[0].path == "/api/sales/chats/79161234567%40c.us/messages"
    assert waha.exchanges(MESSAGE)[0].path == "/api/sales/chats/79161234567%40c.us/messages/true_79161234567%40c.us_3EB0ABC"


# ---------------------------------------------------------------- history


def test_history_pages_come_oldest_first_with_has_more(waha, gw):
    newest = gw.history("sales", CHAT, limit=10, offset=0)
    middle = gw.history("sales", CHAT, limit=10, offset=10)
    oldest = gw.history("sales", CHAT, limit=10, offset=20)

    assert [m.text for m in newest.messages] == [f"message {n}" for n in range(15, 25)]
    assert [m.text for m in middle.messages] == [f"message {n}" for n in range(5, 15)]
    assert [m.text for m in oldest.messages] == [f"message {n}" for n in range(0, 5)]
    assert (newest.has_more, middle.has_more, oldest.has_more) == (True, True, False)
    assert (newest.offset, middle.offset, oldest.offset) == (0, 10, 20)
    assert [m.timestamp for m in newest.messages] == sorted(m.timestamp for m in newest.messages)
    params = waha.exchanges(MESSAGES)[1].params()
    assert params == {"limit": ["10"], "offset": ["10"], "downloadMedia": ["false"]}


def test_history_maps_delivery_state_of_own_messages(waha, gw):
    page = gw.history("sales", CHAT, limit=25)

    by_text = {m.text: m for m in page.messages}
    # Seed: own messages (odd n) have ack n % 5; incoming ones carry no delivery state.
    assert [by_text[f"message {n}"].ack for n in (1, 3, 5, 7, 9)] == ["SERVER", "READ", "PENDING", "DEVICE", "PLAYED"]
    assert by_text["message 2"].from_me is False and by_text["message 2"].ack is None
    assert by_text["message 1"].from_me is True


def test_ack_number_is_used_when_the_name_is_missing(waha, gw):
    waha.chats[("sales", "7@c.us")] = [dict(wa_message(mid="true_7@c.us_A", chat_id="7@c.us", me_id="1@c.us",
                                                       from_me=True, body="x", timestamp=1, ack=-1), ackName="")]
    [m] = gw.history("sales", "7@c.us").messages
    assert m.ack == "ERROR"


# ---------------------------------------------------------------- sends


def test_send_text_carries_the_pre_generated_id_and_can_be_found_by_it(waha, gw):
    mid = gw.new_message_id("sales")

    sent = gw.send_text("sales", CHAT, "Добрый день", message_id=mid)

    [ex] = waha.exchanges(SEND_TEXT)
    assert ex.json() == {"session": "sales", "chatId": CHAT, "text": "Добрый день", "id": mid}
    assert sent.id == f"true_{CHAT}_{mid}" and sent.ack == "SERVER" and sent.timestamp
    found = gw.find_message("sales", CHAT, mid)
    assert found is not None and found.text == "Добрый день" and found.from_me and found.id == sent.id


def test_send_timeout_is_not_retried_and_the_message_is_found_afterwards(waha, gw):
    waha.fail[SEND_TEXT] = "timeout"
    mid = gw.new_message_id("sales")

    started = time.monotonic()
    with pytest.raises(GatewayTimeout):
        gw.send_text("sales", CHAT, "maybe sent", message_id=mid)
    assert time.monotonic() - started < READ_TIMEOUT + 0.4

    time.sleep(0.1)  # room for a (wrong) retry to arrive
    assert waha.count(SEND_TEXT) == 1
    # WAHA did send it; the reconciliation look-up must say so.
    found = gw.find_message("sales", CHAT, mid)
    assert found is not None and found.text == "maybe sent"


def test_send_with_a_dropped_connection_is_an_unknown_outcome(waha, gw):
    waha.fail[SEND_TEXT] = "drop"
    with pytest.raises(GatewayTimeout):
        gw.send_text("sales", CHAT, "lost answer", message_id="3EB0DROP")
    assert waha.count(SEND_TEXT) == 1


def test_send_to_a_server_that_is_not_there_is_not_an_unknown_outcome():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = WahaGateway(f"http://127.0.0.1:{port}", "k", connect_timeout=0.5, read_timeout=READ_TIMEOUT)

    with pytest.raises(GatewayUnavailable) as info:
        gw.send_text("sales", CHAT, "never left", message_id="3EB0NONE")
    assert not isinstance(info.value, GatewayTimeout)  # refused: certainly not sent
    with pytest.raises(GatewayUnavailable):
        gw.list_lines()


def test_find_message_returns_none_for_a_message_never_sent(waha, gw):
    assert gw.find_message("sales", CHAT, "3EB0NEVER") is None
    # Not found by id, and not among the latest own messages either.
    assert waha.count(MESSAGE) == 1 and waha.count(MESSAGES) == 1
    assert waha.exchanges(MESSAGES)[0].params()["filter.fromMe"] == ["true"]


def test_find_message_scans_recent_own_messages_for_engine_specific_ids(waha, gw):
    # Some engines serialise own ids with a suffix; the raw id is still one of the parts.
    waha.chats[("sales", CHAT)].append(wa_message(mid=f"true_{CHAT}_3EB0SUFFIX_out", chat_id=CHAT,
                                                  me_id="79111111111@c.us", from_me=True, body="odd id",
                                                  timestamp=1764009999))
    found = gw.find_message("sales", CHAT, "3EB0SUFFIX")
    assert found is not None and found.text == "odd id"


def test_find_message_accepts_a_full_waha_id(waha, gw):
    found = gw.find_message("sales", CHAT, f"true_{CHAT}_SEED0001")
    assert found is not None and found.text == "message 1"
    assert waha.count(MESSAGES) == 0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("mode, error", [
    ("401", GatewayUnauthorized),
    ("404", GatewayNotFound),
    ("422_qr", LineNotConnected),
    ("500_rate", GatewayRateLimited),
    ("500_lock", GatewayRateLimited),
    ("500", GatewayUnavailable),
    ("garbage", GatewayUnavailable),
    ("drop", GatewayUnavailable),
    ("timeout", GatewayTimeout),
])
def test_each_failure_mode_becomes_its_typed_error_without_retry(waha, gw, endpoint, mode, error):
    waha.fail[endpoint] = mode

    with pytest.raises(error) as info:
        CALLS[endpoint](gw)

    exc = info.value
    assert type(exc) is error or (endpoint, mode) == (SEND_TEXT, "drop")
    if mode == "drop":
        # A dropped send may have gone out (unknown); a dropped read is just unavailable.
        assert isinstance(exc, GatewayTimeout) == (endpoint == SEND_TEXT)
    if mode == "422_qr":
        assert exc.status == SCAN_QR_CODE and exc.line_id == (None if endpoint == SESSIONS else "sales")
    if mode == "500":
        assert not isinstance(exc, GatewayRateLimited)  # a stack line ":463:" is not the timelock
    assert waha.count(endpoint) == 1


def test_wrong_api_key_is_unauthorized(waha):
    gw = gateway(waha, api_key="not-the-key")
    with pytest.raises(GatewayUnauthorized):
        gw.list_lines()


@pytest.mark.parametrize("line, status", [("newline", SCAN_QR_CODE), ("old", STOPPED)])
def test_a_line_that_is_not_working_is_not_connected(waha, gw, line, status):
    with pytest.raises(LineNotConnected) as info:
        gw.check_exists(line, "+79161234567")
    assert info.value.status == status and info.value.line_id == line
    with pytest.raises(LineNotConnected):
        gw.send_text(line, CHAT, "hi", message_id="3EB0X")


def test_passkey_state_is_not_connected(waha, gw):
    waha.sessions["newline"]["status"] = "PASSKEY_REQUIRED"
    assert {line.id: line.status for line in gw.list_lines()}["newline"] == SCAN_QR_CODE
    with pytest.raises(LineNotConnected) as info:
        gw.history("newline", CHAT)
    assert info.value.status == SCAN_QR_CODE


def test_unknown_session_is_not_found(waha, gw):
    with pytest.raises(GatewayNotFound):
        gw.new_message_id("nope")
    # find_message tells an unknown line from a message it does not have.
    with pytest.raises(GatewayNotFound):
        gw.find_message("nope", CHAT, "3EB0X")


def test_slow_answers_within_the_read_timeout_are_fine(waha, gw):
    waha.delay = READ_TIMEOUT / 3
    assert gw.new_message_id("sales")
    waha.delays[NEW_MESSAGE_ID] = READ_TIMEOUT + 0.3
    with pytest.raises(GatewayTimeout):
        gw.new_message_id("sales")


def test_a_phone_without_digits_is_refused_without_a_call(waha, gw):
    with pytest.raises(GatewayError):
        gw.check_exists("sales", "n/a")
    assert waha.count(CHECK_EXISTS) == 0


def test_api_key_stays_out_of_reprs_and_errors(waha):
    key = "sk-very-secret-key-123"
    gw = gateway(waha, api_key=key)
    errors = []
    for endpoint, mode in [(SESSIONS, "500"), (SEND_TEXT, "timeout"), (MESSAGES, "drop")]:
        waha.fail[endpoint] = mode
        try:
            CALLS[endpoint](gw)
        except GatewayError as exc:
            errors.append(exc)
    assert len(errors) == 3
    texts = [repr(gw)] + [f"{e!r} {e} {e.__cause__!r}" for e in errors]
    assert not any(key in t for t in texts)


# ---------------------------------------------------------------- the contract


def test_every_request_and_answer_matches_the_contract(waha, gw):
    openapi_check.require_spec()
    gw.list_lines()
    gw.check_exists("sales", "+5511987654321")
    gw.check_exists("sales", "+79990000000")
    gw.find_chat("sales", CHAT)
    gw.find_chat("sales", "79990000000@c.us")
    gw.history("sales", CHAT, limit=7, offset=3)
    mid = gw.new_message_id("sales")
    gw.send_text("sales", CHAT, "hi", message_id=mid)
    gw.find_message("sales", CHAT, mid)
    gw.find_message("sales", CHAT, "3EB0NEVER")
    for line in ("newline", "nope"):
        with pytest.raises(GatewayError):
            gw.history(line, CHAT)
    for mode in ("401", "404", "422_qr", "500_rate", "500_lock", "500"):
        waha.fail["*"] = mode
        for endpoint in ENDPOINTS:
            with pytest.raises(GatewayError):
                CALLS[endpoint](gw)

    tally = openapi_check.check_all(waha.exchanges())

    assert tally["contract"] >= 10 and tally["error shape"] >= 6 * len(ENDPOINTS)
    assert {ex.endpoint for ex in waha.exchanges()} == set(ENDPOINTS)


def test_the_contract_check_catches_broken_requests_and_answers(waha):
    openapi_check.require_spec()
    base = dict(method="POST", path="/api/sendText", query="", host_url=waha.url, endpoint=SEND_TEXT,
                headers={"X-Api-Key": "k", "Content-Type": "application/json"})
    no_chat = Exchange(body=b'{"session": "sales", "text": "hi"}', **base)
    with pytest.raises(AssertionError, match="request breaks the contract"):
        openapi_check.check_request(no_chat)
    no_key = Exchange(body=b'{"session": "sales", "chatId": "1@c.us", "text": "hi"}',
                      **{**base, "headers": {"Content-Type": "application/json"}})
    with pytest.raises(AssertionError, match="api_key"):
        openapi_check.check_request(no_key)
    # openapi-core lets this one through (it also allows an undeclared oauth2); the helper does not.
    no_key_sessions = Exchange(endpoint=SESSIONS, method="GET", path="/api/sessions", query="all=true", body=b"",
                               host_url=waha.url, headers={})
    with pytest.raises(AssertionError, match="no X-Api-Key header"):
        openapi_check.check_request(no_key_sessions)
    bad_answer = Exchange(body=no_key.body, status=201, response_type="application/json",
                          response_body=b'{"id": "true_1@c.us_X", "fromMe": "yes"}', **base)
    with pytest.raises(AssertionError, match="answer breaks the contract"):
        openapi_check.check_response(bad_answer)
    bad_error = Exchange(body=no_key.body, status=422, response_type="application/json",
                         response_body=b'{"message": "oops"}', **base)
    with pytest.raises(AssertionError, match="error shape"):
        openapi_check.check_response(bad_error)

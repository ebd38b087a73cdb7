"""Bad input never 500s: each case that once did answers 4xx with words a person understands."""
from __future__ import annotations

import json

import pytest

from olchat_widget.inputs import MAX_ID, parse_id, parse_int, parse_time
from olchat_widget.crm.base import entity_type_from_code
from tests.clock import NOON
from tests.conftest import make_app
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}
ANNA = "+79261112233"


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path, clock_at=NOON)
    # A crash must show as the 500 page it would be in production, not as an exception in the test.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


# ---------------------------------------------------------------- the readers


@pytest.mark.parametrize("value, expected", [
    ("0", 0), ("17", 17), (" 42 ", 42), (str(MAX_ID), MAX_ID), (7, 7), (7.0, 7),
    (str(MAX_ID + 1), None), ("1" * 25, None), ("²", None), ("١٢", None), ("-1", None), ("", None),
    ("1e3", None), (float("inf"), None), (float("nan"), None), (1.5, None), (True, None), (None, None),
    ([1], None), ({"a": 1}, None), ("9" * 100_000, None),
])
def test_parse_id_takes_ascii_digits_in_the_32_bit_range_only(value, expected):
    assert parse_id(value) == expected


def test_parse_int_honours_its_bounds():
    assert parse_int("-5", -10, 10) == -5
    assert parse_int("11", -10, 10) is None


@pytest.mark.parametrize("value, expected", [
    ("09:00", "09:00"), ("23:59", "23:59"), ("00:00", "00:00"),
    ("24:00", None), ("9:00", None), ("²³:00", None), ("٠٩:٠٠", None), ("09:60", None), ("", None), (None, None),
])
def test_parse_time(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize("code, expected", [
    ("CRM_DEAL", 2), ("deal", 2), ("2", 2), ("CRM_183", 183), ("DYNAMIC_183", 183),
    ("²", None), ("CRM_²", None), ("1" * 25, None), ("CRM_" + "9" * 11, None), ("-2", None), ("", None),
])
def test_entity_type_from_code(code, expected):
    assert entity_type_from_code(code) == expected


# ---------------------------------------------------------------- /b24/token (JSON in, JSON out)


@pytest.mark.parametrize("body", [
    "[1, 2]", '"a string"', "3", "null",
    '{"access_token": "a", "member_id": "m", "expires_in": "soon"}',
    '{"access_token": "a", "member_id": "m", "entity_type": 1e999}',
    '{"access_token": "a", "member_id": "m", "entity_id": 99999999999999999999999}',
    '{"access_token": ["a"], "member_id": "m"}',
    '{"access_token": "a", "member_id": "m", "domain": {"x": 1}}',
    '{"access_token": "' + "a" * 5000 + '", "member_id": "m"}',
    '{"access_token": "a\\u0000", "member_id": "m"}',
    "[" * 100_000 + "]" * 100_000,
    b'{"access_token": "\xff\xfe", "member_id": "m"}',
    "{not json",
])
def test_token_refuses_malformed_json_with_a_json_400(client, body):
    answer = client.post("/b24/token", data=body, content_type="application/json")
    assert answer.status_code == 400, answer.data[:200]
    assert answer.is_json
    assert answer.json["error"] == "bad_request"
    assert answer.json["message"].startswith("Некорректный запрос")


def test_token_names_the_wrong_field(client):
    answer = client.post("/b24/token", json={"access_token": "a", "member_id": "m", "expires_in": "soon"})
    assert answer.json["field"] == "expires_in"
    assert "expires_in" in answer.json["message"]


def test_token_without_auth_is_still_401(client):
    assert client.post("/b24/token", json={}).status_code == 401
    assert client.post("/b24/token").status_code == 401


def test_debug_token_refuses_a_non_object(client):
    answer = client.post("/debug/token", data="[" * 50_000, content_type="application/json")
    assert answer.status_code == 400 and answer.is_json


# ---------------------------------------------------------------- /b24/widget and /b24/app (pages)


@pytest.mark.parametrize("path, options", [
    ("/b24/widget", '{"ENTITY_ID": "CRM_DEAL", "ENTITY_VALUE_ID": 1e999}'),
    ("/b24/widget", '{"ENTITY_ID": "CRM_DEAL", "ENTITY_VALUE_ID": "²"}'),
    ("/b24/widget", '{"ENTITY_DATA": {"entityTypeId": 1e999, "entityId": 5}}'),
    ("/b24/widget", '{"ENTITY_ID": "CRM_DEAL", "ENTITY_VALUE_ID": 99999999999999999999999}'),
    ("/b24/app", '{"entity_type": "deal", "entity_id": 1e999}'),
    ("/b24/app", '{"entity_type": 1e999, "entity_id": 1}'),
    ("/b24/app", '{"entity_type": "deal", "entity_id": 10, "phone": {"x": 1}, "line": "sales"}'),
])
def test_placement_options_with_impossible_numbers_answer_a_400_page(client, path, options):
    answer = client.post(path, data={"PLACEMENT_OPTIONS": options})
    assert answer.status_code == 400
    page = parse(answer.data)
    assert page.find("html") is not None  # a page, not a fragment: this is a frame's first load
    assert page.find(data_error="bad_request") is not None
    assert "Некорректный запрос" in page.text


def test_placement_options_that_are_not_json_show_the_no_card_frame(client):
    deep = "[" * 50_000  # 150 KB form-encoded: within the request limit
    for options in (deep, "{", "[1]"):
        answer = client.post("/b24/widget", data={"PLACEMENT_OPTIONS": options})
        assert answer.status_code == 200
        assert parse(answer.data).find("body").get("data-view") == "none"


# ---------------------------------------------------------------- /widget/* (fragments)


@pytest.mark.parametrize("params", [
    {"entity_type": 2, "entity_id": "1" * 25},
    {"entity_type": 2, "entity_id": str(2**31)},
    {"entity_type": "²", "entity_id": 10},
    {"entity_type": 2, "entity_id": "١٠"},
    {"entity_type": "9" * 30, "entity_id": 10},
    {"entity_type": 2, "entity_id": "-1"},
])
@pytest.mark.parametrize("path", ["/widget/phones", "/widget/body", "/widget/start", "/widget/lines"])
def test_widget_fragments_refuse_impossible_ids_with_a_400_fragment(widget, path, params):
    answer = widget.get(path, **params)
    assert answer.status_code == 400
    block = parse(answer.data).find(data_error="bad_request")
    assert block is not None and "Некорректный запрос" in block.text


def test_the_largest_bitrix24_id_is_a_card_that_does_not_exist(widget):
    assert widget.get("/widget/phones", entity_type=2, entity_id=MAX_ID).status_code == 404


def test_a_nul_character_in_a_value_is_a_400(widget):
    assert widget.get("/widget/phones", entity_type=2, entity_id=10, line="a\x00b").status_code == 400


def test_history_with_a_huge_offset_is_not_a_crash(widget):
    widget.get("/widget/phone", phone=ANNA, **DEAL)
    answer = widget.get("/widget/history", phone=ANNA, line="sales", offset="9" * 40, **DEAL)
    assert answer.status_code == 200


# ---------------------------------------------------------------- the settings form


@pytest.mark.parametrize("value", ["²³:00", "٠٩:٠٠", "25:00", "9", "x" * 10_000])
def test_settings_refuse_an_impossible_time_and_say_how_to_write_one(widget, value):
    answer = widget.post("/admin/settings/form", {"orange_start": value, "green_start": "09:00",
                                                  "green_end": "19:00", "orange_end": "21:00"})
    assert answer.status_code == 422
    page = parse(answer.data)
    assert "orange_start" in page.find(data_errors=True).get("data-errors")
    assert "ЧЧ:ММ" in page.find("small", data_field_error="orange_start").text  # said at the field itself


@pytest.mark.parametrize("value", ["²", "١٢", "9" * 50])
def test_settings_refuse_non_ascii_or_huge_numbers(widget, value):
    answer = widget.post("/admin/settings/form", {"orange_start": "08:00", "green_start": "09:00",
                                                  "green_end": "19:00", "orange_end": "21:00",
                                                  "max_phones": value})
    assert answer.status_code == 422
    assert "max_phones" in parse(answer.data).find(data_errors=True).get("data-errors")


# ---------------------------------------------------------------- request size


def _ready(widget):
    widget.get("/widget/body", **DEAL)
    widget.get("/widget/phone", phone=ANNA, **DEAL)
    form = parse(widget.get("/widget/compose", phone=ANNA, line="sales", **DEAL).data).find("form")
    return form.find("input", name="key").get("value")


def test_a_20_mb_message_is_a_413_fragment_that_does_not_echo_it(widget, demo_gateway):
    key = _ready(widget)
    text = "я" * 10_000_000  # 20 MB in UTF-8
    answer = widget.post("/widget/send", {"text": text, "key": key, "phone": ANNA, "line": "sales"}, **DEAL)
    assert answer.status_code == 413
    assert len(answer.data) < 10_000
    block = parse(answer.data).find(data_error="too_large")
    assert "Слишком большой запрос" in block.text and "256 КБ" in block.text
    assert demo_gateway.calls.get("send_text", 0) == 0


def test_413_for_json_callers_is_json(client):
    answer = client.post("/b24/token", data="[" + "1," * 200_000 + "1]", content_type="application/json")
    assert answer.status_code == 413
    assert answer.json["error"] == "too_large"


def test_the_request_limit_is_configurable(tmp_path):
    app = make_app(tmp_path, OLCHAT_MAX_REQUEST_BYTES=1024)
    assert app.config["MAX_CONTENT_LENGTH"] == 1024
    assert app.test_client().post("/b24/token", json={"x": "y" * 2000}).status_code == 413


def test_a_message_a_little_over_the_limit_is_kept_for_trimming(widget, demo_gateway):
    key = _ready(widget)
    text = "я" * 5000
    page = parse(widget.post("/widget/send", {"text": text, "key": key, "phone": ANNA, "line": "sales"}, **DEAL).data)
    assert "длиннее 4096" in page.find("p", data_notice="error").text
    assert page.find("textarea").text == text


def test_a_message_far_over_the_limit_is_refused_without_echoing_it(widget, demo_gateway):
    key = _ready(widget)
    text = "x" * 200_000  # within the request limit, far past anything typed
    answer = widget.post("/widget/send", {"text": text, "key": key, "phone": ANNA, "line": "sales"}, **DEAL)
    page = parse(answer.data)
    assert "длиннее 4096" in page.find("p", data_notice="error").text
    assert page.find("textarea").text == ""
    assert len(answer.data) < 10_000
    assert demo_gateway.calls.get("send_text", 0) == 0


def test_invalid_utf8_in_a_form_is_not_a_crash(widget):
    answer = widget.client.post("/widget/send?entity_type=2&entity_id=10", data=b"text=\xff\xfe&key=k&phone=%ff",
                                content_type="application/x-www-form-urlencoded", headers=widget.headers())
    assert answer.status_code < 500


def test_b24_events_with_a_huge_body_is_json_413(client):
    answer = client.post("/b24/events", data={"event": "x" * 300_000})
    assert answer.status_code == 413 and answer.json["error"] == "too_large"
    assert json.dumps(answer.json)  # plain JSON, no page

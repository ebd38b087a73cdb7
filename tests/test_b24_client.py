"""The Bitrix24 REST client against the fake portal: encoding, batch, errors, retries, tokens."""
from __future__ import annotations

import time

import pytest
import requests

from olchat_widget.b24 import (B24AccessDenied, B24AuthError, B24Client, B24Error, B24NotFound, B24Overload,
                               B24PortalDeleted, B24QueryLimit, B24Unavailable, build_command, build_query,
                               domain_of_endpoint, error_from, refresh_tokens, verify_user_token)
from tests.fakes.fake_bitrix24 import FakeBitrix24, php_parse_str, resolve_references

DATA = {
    "contacts": [
        {"id": 1, "name": "Иван", "last_name": "Петров", "phones": ["8 (916) 123-45-67"], "company_ids": [5]},
        {"id": 2, "name": "Анна", "last_name": "Смирнова", "phones": ["9261112233"]},
        {"id": 3, "name": "Пётр", "last_name": "Чужой", "phones": ["+7 900 000 00 00"]},
    ],
    "companies": [{"id": 5, "title": "ООО «Ромашка»", "phones": ["+7 495 123-45-67"]}],
    "deals": [{"id": 10, "title": "Поставка", "contact_ids": [1, 2], "company_id": 5}],
}


@pytest.fixture
def fake():
    with FakeBitrix24(DATA) as portal:
        yield portal


@pytest.fixture
def tokens(fake):
    return fake.issue_tokens(user_id=1)


@pytest.fixture
def client(fake, tokens):
    return B24Client(fake.domain, tokens["access_token"], scheme="http")


class Sleeps:
    """A sleep that records pauses instead of waiting."""

    def __init__(self):
        self.pauses: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


# -- encoding ---------------------------------------------------------------------------

def test_build_query_nests_like_http_build_query():
    query = build_query({"entityTypeId": 3, "filter": {"@id": [1, 2], ">=opportunity": 5},
                         "select": ["id", "fm"], "flag": True, "off": False, "skip": None})
    assert query == ("entityTypeId=3&filter[@id][0]=1&filter[@id][1]=2&filter[%3E%3Dopportunity]=5"
                     "&select[0]=id&select[1]=fm&flag=1&off=0")
    # What PHP's parse_str makes of it is what we meant.
    assert php_parse_str(query) == {"entityTypeId": "3", "filter": {"@id": {0: "1", 1: "2"}, ">=opportunity": "5"},
                                    "select": {0: "id", 1: "fm"}, "flag": "1", "off": "0"}


def test_build_query_escapes_what_would_break_a_command_and_keeps_references():
    cmd = build_command("crm.item.list", {"filter": {"%title": "A&B=C+D #1 100%"},
                                          "x": "$result[item][item][contactIds]"})
    method, _, query = cmd.partition("?")
    assert method == "crm.item.list"
    assert "x=$result[item][item][contactIds]" in query
    assert php_parse_str(query)["filter"]["%title"] == "A&B=C+D #1 100%"


def test_build_query_refuses_empty_arrays():
    # PHP would drop the key: filter[@id]=[] would become "no filter".
    with pytest.raises(ValueError):
        build_query({"filter": {"@id": []}})


def test_build_command_without_params_is_the_method():
    assert build_command("user.current", None) == "user.current"


def test_domain_of_endpoint():
    assert domain_of_endpoint("https://b24-x.bitrix24.ru/rest/") == "b24-x.bitrix24.ru"
    assert domain_of_endpoint("nonsense") is None


# -- calls and batch --------------------------------------------------------------------

def test_call_posts_json_and_returns_result(fake, client):
    me = client.call("user.current")
    assert me["ID"] == "1" and me["NAME"] == "Админ"
    assert fake.requests == 1 and fake.log == ["user.current"]
    assert client.requests_sent == 1


def test_call_raw_gives_total_and_next(fake, tokens):
    for n in range(100, 160):
        fake.add_item(3, n, name=f"C{n}", phones=[f"+7 900 {n}"])
    client = B24Client(fake.domain, tokens["access_token"], scheme="http")
    answer = client.call_raw("crm.item.list", {"entityTypeId": 3, "select": ["id"]})
    assert len(answer["result"]["items"]) == 50
    assert answer["total"] == 63 and answer["next"] == 50


def test_batch_is_one_request_and_resolves_references(fake, client):
    res = client.batch({
        "deal": ("crm.item.get", {"entityTypeId": 2, "id": 10}),
        "first": ("crm.item.get", {"entityTypeId": 3, "id": "$result[deal][item][contactIds][0]"}),
        "all": ("crm.item.list", {"entityTypeId": 3, "filter": {"@id": "$result[deal][item][contactIds]"}}),
        "company": ("crm.item.get", {"entityTypeId": 4, "id": "$result[deal][item][companyId]"}),
    })
    assert fake.requests == 1
    assert fake.calls == ["crm.item.get", "crm.item.get", "crm.item.list", "crm.item.get"]
    assert res.errors == {}
    assert res.result["first"]["item"]["id"] == 1
    # A value that is exactly one reference receives the referred array whole.
    assert [i["id"] for i in res.result["all"]["items"]] == [1, 2]
    assert res.total["all"] == 2
    assert res.unwrap("company")["item"]["title"] == "ООО «Ромашка»"


def test_batch_errors_are_typed_and_empty_sections_are_lists(fake, client):
    raw = client.call_raw("batch", {"halt": 0, "cmd": {"a": "user.current"}})
    assert raw["result"]["result_error"] == [] and raw["result"]["result_next"] == []
    res = client.batch({
        "missing": ("crm.item.get", {"entityTypeId": 2, "id": 999}),
        "old": ("crm.deal.get", {"id": 999}),  # old methods answer error "" + "Not found"
        "nomethod": ("no.such.method", {}),
        "ok": ("user.admin", None),
    })
    assert isinstance(res.errors["missing"], B24NotFound)
    assert isinstance(res.errors["old"], B24NotFound)
    assert type(res.errors["nomethod"]) is B24Error and res.errors["nomethod"].code == "ERROR_METHOD_NOT_FOUND"
    assert res.ok("ok") and res.get("ok") is True
    with pytest.raises(B24NotFound):
        res.unwrap("missing")


def test_batch_halt_stops_at_the_first_error(fake, client):
    res = client.batch({"bad": ("crm.item.get", {"entityTypeId": 2, "id": 999}), "after": ("user.current", None)},
                       halt=True)
    assert "bad" in res.errors and "after" not in res.result
    assert fake.calls == ["crm.item.get"]


def test_batch_inside_batch_is_refused(client):
    res = client.batch({"inner": "batch?cmd[x]=user.current"})
    assert res.errors["inner"].code == "ERROR_BATCH_METHOD_NOT_ALLOWED"


def test_reference_walk_stops_at_a_missing_key_like_bitrix():
    sections = {"result": {"item": {"item": {"contactIds": [], "companyId": None}}}}
    # Missing index: the walk stops and the partial value (the empty list) is used.
    assert resolve_references("$result[item][item][contactIds][0]", sections) == []
    # Null counts as missing for isset: the walk stops at the item.
    assert resolve_references("$result[item][item][companyId]", sections) == sections["result"]["item"]["item"]
    # Inside a longer string only scalars are substituted.
    sections["result"]["n"] = {"x": 7}
    assert resolve_references("ID=$result[n][x]", sections) == "ID=7"
    assert resolve_references("IDS=$result[item][item][contactIds]", sections) == "IDS=$result[item][item][contactIds]"


def test_too_many_commands_are_refused_before_sending(fake, client):
    with pytest.raises(ValueError):
        client.batch({f"k{i}": ("user.current", None) for i in range(51)})
    assert fake.requests == 0


# -- errors -----------------------------------------------------------------------------

def test_error_codes_decide_the_type_not_the_status():
    assert isinstance(error_from("OVERLOAD_LIMIT", "", 401), B24Overload)
    assert isinstance(error_from("ACCESS_DENIED", "", 400), B24AccessDenied)
    assert isinstance(error_from("insufficient_scope", "", 401), B24AccessDenied)
    assert isinstance(error_from("user_access_error", "", 401), B24AccessDenied)
    assert isinstance(error_from("QUERY_LIMIT_EXCEEDED", "", 503), B24QueryLimit)
    assert isinstance(error_from("PORTAL_DELETED", "", 403), B24PortalDeleted)
    assert isinstance(error_from("NOT_FOUND", "", 400), B24NotFound)
    assert isinstance(error_from("", "Access denied.", 400), B24AccessDenied)
    assert isinstance(error_from("INTERNAL_SERVER_ERROR", "", 500), B24Unavailable)
    assert error_from("expired_token", "", 401).expired
    assert not error_from("invalid_token", "", 401).expired
    assert type(error_from("ERROR_ARGUMENT", "", 400)) is B24Error


def test_auth_errors(fake, tokens):
    with pytest.raises(B24AuthError) as info:
        B24Client(fake.domain, "forged", scheme="http").call("user.current")
    assert info.value.code == "invalid_token" and not info.value.expired and info.value.status == 401
    with pytest.raises(B24AuthError) as info:
        B24Client(fake.domain, "", scheme="http").call("user.current")
    assert info.value.code == "NO_AUTH_FOUND"
    fake.expire(tokens["access_token"])
    with pytest.raises(B24AuthError) as info:
        B24Client(fake.domain, tokens["access_token"], scheme="http").call("user.current")
    assert info.value.expired


def test_access_denied_for_a_user_without_rights(fake):
    fake.deny(2, 2)
    operator = B24Client(fake.domain, fake.issue_tokens(2)["access_token"], scheme="http")
    with pytest.raises(B24AccessDenied):
        operator.call("crm.item.get", {"entityTypeId": 2, "id": 10})
    with pytest.raises(B24AccessDenied):
        operator.call("placement.bind", {"PLACEMENT": "CRM_DEAL_DETAIL_ACTIVITY", "HANDLER": "https://x/"})


def test_not_found(client):
    with pytest.raises(B24NotFound):
        client.call("crm.item.get", {"entityTypeId": 2, "id": 404})


def test_portal_deleted(fake, client):
    fake.portal_deleted = True
    with pytest.raises(B24PortalDeleted):
        client.call("user.current")


def test_query_limit_retries_after_a_pause_and_succeeds(fake, client):
    fake.fill_bucket()  # full; at 2/s one slot frees in 0.5 s
    started = time.monotonic()
    assert client.call("user.admin") is True
    assert fake.requests == 2 and fake.refused == 1
    assert time.monotonic() - started < 3.0


def test_query_limit_gives_up_after_two_retries(fake, tokens):
    fake.drain_per_second = 0.0
    fake.fill_bucket()
    sleeps = Sleeps()
    client = B24Client(fake.domain, tokens["access_token"], scheme="http", sleep=sleeps)
    started = time.monotonic()
    with pytest.raises(B24QueryLimit):
        client.call("user.current")
    assert fake.requests == 3 and fake.refused == 3
    assert sleeps.pauses == [0.5, 1.5] and sum(sleeps.pauses) < 3.0
    assert time.monotonic() - started < 3.0


def test_query_limit_retries_stay_within_three_seconds(fake, tokens):
    fake.drain_per_second = 0.0
    fake.fill_bucket()
    client = B24Client(fake.domain, tokens["access_token"], scheme="http", retry_pauses=(2.0, 2.0))
    started = time.monotonic()
    with pytest.raises(B24QueryLimit):
        client.call("user.current")
    assert fake.requests == 2  # the second pause would have gone past 3 s
    assert time.monotonic() - started < 3.0


def test_overload_is_not_retried(fake, client):
    fake.overload = True
    with pytest.raises(B24Overload):
        client.call("user.current")
    assert fake.requests == 1


def test_bucket_counts_a_batch_as_one_and_refuses_the_51st(fake, tokens):
    fake.drain_per_second = 0.0
    client = B24Client(fake.domain, tokens["access_token"], scheme="http", retry_pauses=())
    for _ in range(50):
        client.batch({"a": ("user.current", None), "b": ("app.info", None)})
    with pytest.raises(B24QueryLimit):
        client.call("user.current")
    assert fake.requests == 51 and fake.refused == 1


# -- tokens -----------------------------------------------------------------------------

def test_expired_token_is_refreshed_once_and_the_call_repeated(fake, tokens):
    pairs = [tokens]

    def renew() -> str:
        pair = refresh_tokens(fake.oauth_url, fake.client_id, fake.client_secret, pairs[-1]["refresh_token"],
                              timeout=5)
        pairs.append(pair)
        return pair["access_token"]

    fake.expire(tokens["access_token"])
    client = B24Client(fake.domain, tokens["access_token"], scheme="http", on_expired=renew)
    assert client.call("user.current")["ID"] == "1"
    assert len(pairs) == 2 and client.access_token == pairs[1]["access_token"]
    assert fake.requests == 2 and fake.oauth_requests == 1
    # The new pair replaced the old one: the old refresh token is refused now.
    with pytest.raises(B24AuthError) as info:
        refresh_tokens(fake.oauth_url, fake.client_id, fake.client_secret, tokens["refresh_token"], timeout=5)
    assert info.value.code == "invalid_grant"
    assert fake.refresh_token_valid(pairs[1]["refresh_token"])
    assert pairs[1]["member_id"] == fake.member_id
    assert domain_of_endpoint(pairs[1]["client_endpoint"]) == fake.domain


def test_refresh_happens_only_once(fake, tokens):
    calls = []

    def renew() -> str:
        calls.append(1)
        pair = fake.issue_tokens(1)
        fake.expire(pair["access_token"])  # the new token is no good either
        return pair["access_token"]

    fake.expire(tokens["access_token"])
    client = B24Client(fake.domain, tokens["access_token"], scheme="http", on_expired=renew)
    with pytest.raises(B24AuthError) as info:
        client.call("user.current")
    assert info.value.expired and calls == [1] and fake.requests == 2


def test_invalid_token_is_not_refreshed(fake):
    calls = []
    client = B24Client(fake.domain, "forged", scheme="http", on_expired=lambda: calls.append(1) or "x")
    with pytest.raises(B24AuthError):
        client.call("user.current")
    assert calls == [] and fake.requests == 1


def test_refresh_with_wrong_client_secret(fake, tokens):
    with pytest.raises(B24AuthError) as info:
        refresh_tokens(fake.oauth_url, fake.client_id, "wrong", tokens["refresh_token"], timeout=5)
    assert info.value.code == "invalid_client"
    assert fake.refresh_token_valid(tokens["refresh_token"])


def test_verify_user_token_is_one_request(fake):
    admin = verify_user_token(fake.domain, fake.issue_tokens(1)["access_token"], scheme="http", timeout=5)
    assert admin == {"member_id": None, "user_id": 1, "user_name": "Админ Порталов", "is_admin": True,
                     "app_code": fake.client_id, "app_installed": True}
    operator = verify_user_token(fake.domain, fake.issue_tokens(2)["access_token"], scheme="http", timeout=5)
    assert operator["user_id"] == 2 and operator["is_admin"] is False
    assert fake.requests == 2 and fake.log == ["batch", "batch"]
    with pytest.raises(B24AuthError):
        verify_user_token(fake.domain, "forged", scheme="http", timeout=5)


# -- unavailable ------------------------------------------------------------------------

def test_stopped_server_is_unavailable_fast(fake, tokens):
    domain = fake.domain
    fake.stop()
    client = B24Client(domain, tokens["access_token"], scheme="http", connect_timeout=0.5, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(B24Unavailable) as info:
        client.call("user.current")
    assert time.monotonic() - started < 1.0
    assert tokens["access_token"] not in str(info.value)
    assert info.value.__suppress_context__


def test_timeout_is_unavailable(fake, tokens):
    fake.latency = 0.6
    client = B24Client(fake.domain, tokens["access_token"], scheme="http", read_timeout=0.2)
    with pytest.raises(B24Unavailable) as info:
        client.call("user.current")
    assert info.value.code == "TIMEOUT"


def test_non_json_answer_is_unavailable(fake, client):
    fake.garbage_next = 1
    with pytest.raises(B24Unavailable) as info:
        client.call("user.current")
    assert info.value.status == 502


def test_forced_server_error_is_unavailable(fake, client):
    fake.fail_next("INTERNAL_SERVER_ERROR", "Internal server error", 500)
    with pytest.raises(B24Unavailable):
        client.call("user.current")
    assert client.call("user.admin") is True


def test_oauth_server_down_does_not_leak_secrets(fake, tokens):
    url = fake.oauth_url
    fake.stop()
    with pytest.raises(B24Unavailable) as info:
        refresh_tokens(url, fake.client_id, fake.client_secret, tokens["refresh_token"], timeout=0.5)
    assert tokens["refresh_token"] not in str(info.value) and fake.client_secret not in str(info.value)


def test_repr_hides_the_token(client, tokens):
    assert tokens["access_token"] not in repr(client)


def test_shared_session_is_used(fake, tokens):
    session = requests.Session()
    client = B24Client(fake.domain, tokens["access_token"], scheme="http", session=session)
    assert client.session is session
    assert client.call("user.admin") is True


# -- the install methods the fake stores for the app's tests ----------------------------

def test_install_registrations_are_stored_and_idempotency_is_visible(fake, client):
    handler = "https://app.example/b24/widget"
    assert client.call("userfieldtype.add", {"USER_TYPE_ID": "olchatwa", "HANDLER": handler,
                                             "TITLE": "OLChat WhatsApp — статусы и чаты", "OPTIONS": {"height": 300}})
    with pytest.raises(B24Error) as info:  # a second add of the same type
        client.call("userfieldtype.add", {"USER_TYPE_ID": "olchatwa", "HANDLER": handler})
    assert info.value.code == "ERROR_CORE"
    assert client.call("userfieldtype.list") == [{"USER_TYPE_ID": "olchatwa", "HANDLER": handler,
                                                  "TITLE": "OLChat WhatsApp — статусы и чаты", "DESCRIPTION": ""}]
    assert client.call("userfieldtype.update", {"USER_TYPE_ID": "olchatwa", "HANDLER": handler + "?v=2"})
    assert fake.userfield_types["olchatwa"]["HANDLER"] == handler + "?v=2"
    assert fake.userfield_types["olchatwa"]["OPTIONS"] == {"height": 300}

    res = client.batch({f"p{t}": ("placement.bind", {"PLACEMENT": f"CRM_{t}_DETAIL_ACTIVITY",
                                                     "HANDLER": "https://app.example/b24/app", "TITLE": "OLChat"})
                        for t in ("LEAD", "DEAL", "CONTACT", "COMPANY")})
    assert res.errors == {} and len(fake.placements) == 4
    again = client.batch({"p": ("placement.bind", {"PLACEMENT": "CRM_DEAL_DETAIL_ACTIVITY",
                                                   "HANDLER": "https://app.example/b24/app"})})
    assert again.errors["p"].code == "ERROR_CORE"
    assert client.call("placement.unbind", {"PLACEMENT": "CRM_LEAD_DETAIL_ACTIVITY"}) == {"count": 1}
    assert client.call("event.bind", {"event": "ONAPPUNINSTALL", "handler": "https://app.example/b24/events"})
    assert fake.events[0]["event"] == "ONAPPUNINSTALL"
    assert client.call("app.info")["CODE"] == fake.client_id


def test_userfieldtype_add_is_refused_inside_a_batch_and_for_non_admins(fake, client):
    res = client.batch({"t": ("userfieldtype.add", {"USER_TYPE_ID": "x", "HANDLER": "https://a/"})})
    assert res.errors["t"].code == "ERROR_BATCH_METHOD_NOT_ALLOWED" and fake.userfield_types == {}
    operator = B24Client(fake.domain, fake.issue_tokens(2)["access_token"], scheme="http")
    with pytest.raises(B24AccessDenied):
        operator.call("userfieldtype.add", {"USER_TYPE_ID": "x", "HANDLER": "https://a/"})


def test_fake_takes_form_bodies_and_query_auth_like_bitrix(fake, tokens):
    form = requests.post(f"{fake.url}/rest/crm.item.get.json",
                         data={"auth": tokens["access_token"], "entityTypeId": "2", "id": "10"}, timeout=5).json()
    assert form["result"]["item"]["contactIds"] == [1, 2]
    query = requests.get(f"{fake.url}/rest/batch", timeout=5, params={
        "auth": tokens["access_token"], "halt": "0",
        "cmd[d]": "crm.item.get?entityTypeId=2&id=10",
        "cmd[c]": "crm.item.get?entityTypeId=3&id=%24result%5Bd%5D%5Bitem%5D%5BcontactIds%5D%5B1%5D"}).json()
    assert query["result"]["result"]["c"]["item"]["name"] == "Анна"

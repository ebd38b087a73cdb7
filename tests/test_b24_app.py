"""Issue 5: the widget inside a real Bitrix24 portal — install, embedding, auth, CRM phones, isolation.

Every Bitrix24 call goes over HTTP to a fake portal + OAuth server on 127.0.0.1.
"""
from __future__ import annotations

import json

import pytest

from olchat_widget.b24.portal import application_token_matches
from olchat_widget.models import Portal, Settings, UserPreference, db
from tests.conftest import Widget, make_app
from tests.fakes.fake_bitrix24 import FakeBitrix24
from tests.html import parse

DEMO = json.loads(open("olchat_widget/demo_data.json", encoding="utf-8").read())


@pytest.fixture
def fake():
    portal = FakeBitrix24(DEMO["crm"]).start()
    yield portal
    portal.stop()


@pytest.fixture
def b24_app(tmp_path, fake):
    return make_app(tmp_path, OLCHAT_B24_CLIENT_ID=fake.client_id, OLCHAT_B24_CLIENT_SECRET=fake.client_secret,
                    OLCHAT_B24_OAUTH_URL=fake.url, OLCHAT_B24_SCHEME="http", OLCHAT_B24_TIMEOUT=3.0)


def install(client, fake, application_token="app-token-1"):
    pair = fake.issue_tokens(1)
    client.post("/b24/events", data={"event": "ONAPPINSTALL", "auth[refresh_token]": pair["refresh_token"],
                                     "auth[application_token]": application_token,
                                     "auth[member_id]": fake.member_id, "auth[domain]": fake.domain})
    page = client.post(f"/b24/install?DOMAIN={fake.domain}&PROTOCOL=0&LANG=ru",
                       data={"AUTH_ID": pair["access_token"], "REFRESH_ID": fake.issue_tokens(1)["refresh_token"],
                             "member_id": fake.member_id, "PLACEMENT": "DEFAULT"})
    return page


class B24Widget(Widget):
    """The widget frame inside the portal: auth from BX24.getAuth traded at /b24/token."""

    def __init__(self, client, fake, user_id=1):
        self.client = client
        self.pair = fake.issue_tokens(user_id)
        answer = client.post("/b24/token", json={"access_token": self.pair["access_token"], "domain": fake.domain,
                                                 "member_id": fake.member_id, "expires_in": 3600})
        assert answer.status_code == 200, answer.data
        self.token = answer.json["token"]


# ---------------------------------------------------------------- install / uninstall


def test_install_registers_field_type_and_card_placements(b24_app, fake):
    client = b24_app.test_client()
    page = install(client, fake)
    assert page.status_code == 200
    assert parse(page.data).find("body").get("data-install") == "ok"
    field = fake.userfield_types["olchatwidget"]
    assert field["TITLE"] == "OLChat WhatsApp — статусы и чаты"
    assert field["HANDLER"].endswith("/b24/widget")
    bound = {p["placement"] for p in fake.placements}
    assert {"CRM_LEAD_DETAIL_ACTIVITY", "CRM_DEAL_DETAIL_ACTIVITY", "CRM_CONTACT_DETAIL_ACTIVITY",
            "CRM_COMPANY_DETAIL_ACTIVITY"} <= bound
    with b24_app.app_context():
        portal = db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id))
        assert portal.domain == fake.domain and portal.installed
        # Every token is stored encrypted: none of them is in the row as it was handed over.
        assert portal.application_token_enc and "app-token-1" not in portal.application_token_enc
        assert portal.refresh_token_enc and len(portal.refresh_token_enc) > 60
        assert portal.access_token_enc and not any(t in portal.access_token_enc for t in fake.issued_access_tokens())
        assert application_token_matches(portal, "app-token-1")


def test_reinstall_is_idempotent(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    install(client, fake)
    assert len(fake.userfield_types) == 1
    per_place = {}
    for p in fake.placements:
        per_place[p["placement"]] = per_place.get(p["placement"], 0) + 1
    assert set(per_place.values()) == {1}
    with b24_app.app_context():
        assert db.session.scalar(db.select(db.func.count(Portal.id)).filter_by(member_id=fake.member_id)) == 1


def test_install_with_a_forged_refresh_token_stores_nothing(b24_app, fake):
    client = b24_app.test_client()
    page = client.post("/b24/install?DOMAIN=evil.example", data={"REFRESH_ID": "forged", "AUTH_ID": "x"})
    assert page.status_code == 401
    assert "Нет данных авторизации от Битрикс24" in page.data.decode()
    with b24_app.app_context():
        assert db.session.scalar(db.select(Portal).filter_by(kind="bitrix")) is None


def test_uninstall_needs_the_application_token_and_removes_the_portal(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    widget = B24Widget(client, fake)
    widget.post("/widget/lines", {"line": "support"}, entity_type=2, entity_id=10)
    wrong = client.post("/b24/events", data={"event": "ONAPPUNINSTALL", "auth[member_id]": fake.member_id,
                                             "auth[application_token]": "not-it"})
    assert wrong.status_code == 403
    right = client.post("/b24/events", data={"event": "ONAPPUNINSTALL", "auth[member_id]": fake.member_id,
                                             "auth[application_token]": "app-token-1"})
    assert right.status_code == 200
    with b24_app.app_context():
        assert db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id)) is None
        assert db.session.scalar(db.select(db.func.count(UserPreference.id))) == 0
    # The old widget token is worthless now.
    assert widget.get("/widget/start", entity_type=2, entity_id=10).status_code == 401


# ---------------------------------------------------------------- embedding


def test_field_handler_renders_the_shell_in_view_and_edit_mode(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    options = {"MODE": "edit", "ENTITY_ID": "CRM_DEAL", "FIELD_NAME": "UF_CRM_OLCHAT", "ENTITY_VALUE_ID": "10",
               "VALUE": None, "ENTITY_DATA": {"entityTypeId": 2, "entityId": "10", "module": "crm"}}
    page = client.post(f"/b24/widget?DOMAIN={fake.domain}&LANG=ru",
                       data={"PLACEMENT": "USERFIELD_TYPE", "PLACEMENT_OPTIONS": json.dumps(options)})
    assert page.status_code == 200
    body = parse(page.data).find("body")
    assert body.get("data-mode") == "bitrix" and body.get("data-entity-type") == "2"
    assert body.get("data-entity-id") == "10" and body.get("data-placement-mode") == "edit"
    assert f"frame-ancestors 'self' http://{fake.domain}" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    assert "api.bitrix24.com/api/v1/" in page.data.decode()
    smart = dict(options, ENTITY_ID="CRM_183", ENTITY_DATA={"entityTypeId": 183, "entityId": "3"}, ENTITY_VALUE_ID="3")
    page = client.post("/b24/widget", data={"PLACEMENT_OPTIONS": json.dumps(smart)})
    assert parse(page.data).find("body").get("data-entity-type") == "183"


def test_edit_mode_shows_the_notice_and_refresh_sets_the_field_value(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    widget = B24Widget(client, fake)
    body = widget.get("/widget/body", entity_type=2, entity_id=10, mode="edit")
    assert "Вы в режиме редактирования" in body.data.decode()
    refreshed = widget.post("/widget/refresh", entity_type=2, entity_id=10, mode="edit")
    assert "olchat-set-value" in refreshed.headers["HX-Trigger"]


def test_app_page_opens_a_cards_chat_view(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    page = client.post(f"/b24/app?DOMAIN={fake.domain}", data={
        "PLACEMENT": "CRM_DEAL_DETAIL_ACTIVITY", "PLACEMENT_OPTIONS": json.dumps({"ID": "10"}),
        "AUTH_ID": "x", "member_id": fake.member_id})
    body = parse(page.data).find("body")
    assert body.get("data-view") == "card" and body.get("data-entity-id") == "10"
    opened = client.post("/b24/app", data={"PLACEMENT": "DEFAULT", "PLACEMENT_OPTIONS": json.dumps(
        {"view": "chat", "line": "sales", "phone": "+79161234567", "entity_type": "2", "entity_id": "10"})})
    assert parse(opened.data).find("body").get("data-view") == "chat"


# ---------------------------------------------------------------- auth


def test_token_exchange_and_the_widget_over_rest(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    widget = B24Widget(client, fake)
    fake.reset_counters()
    body = widget.get("/widget/body", entity_type=2, entity_id=10)
    assert body.status_code == 200
    phones = [li.get("data-phone") for li in parse(body.data).find_all("li", data_phone=True)]
    assert phones[:2] == ["+79161234567", "+79031234567"]
    assert fake.requests <= 2
    cold = fake.requests
    widget.get("/widget/body", entity_type=2, entity_id=10)
    widget.get("/widget/phones", entity_type=2, entity_id=10)
    assert fake.requests == cold  # warm: none


@pytest.mark.parametrize("payload,reason", [
    ({}, "no_auth"),
    ({"access_token": "forged", "member_id": "M"}, "no_auth"),
])
def test_no_auth_is_refused(b24_app, fake, payload, reason):
    client = b24_app.test_client()
    install(client, fake)
    payload = {**payload, "member_id": payload.get("member_id") and fake.member_id}
    answer = client.post("/b24/token", json=payload)
    assert answer.status_code == 401 and answer.json["error"] == reason


def test_unknown_member_and_foreign_domain_are_refused(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    pair = fake.issue_tokens(1)
    unknown = client.post("/b24/token", json={"access_token": pair["access_token"], "member_id": "someone-else",
                                              "domain": fake.domain})
    assert unknown.status_code == 401
    before = fake.requests
    foreign = client.post("/b24/token", json={"access_token": pair["access_token"], "member_id": fake.member_id,
                                              "domain": "evil.example"})
    assert foreign.status_code == 401
    assert fake.requests == before  # no call was made anywhere for a foreign domain


def test_auth_server_down_says_unavailable(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    pair = fake.issue_tokens(1)
    fake.stop()
    answer = client.post("/b24/token", json={"access_token": pair["access_token"], "member_id": fake.member_id,
                                             "domain": ""})
    assert answer.status_code == 503 and answer.json["error"] == "unavailable"


def test_verdict_is_cached_for_the_token_life(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    pair = fake.issue_tokens(1)
    payload = {"access_token": pair["access_token"], "member_id": fake.member_id, "domain": fake.domain,
               "expires_in": 3600}
    client.post("/b24/token", json=payload)
    before = fake.requests
    assert client.post("/b24/token", json=payload).status_code == 200
    assert fake.requests == before


def test_expired_user_token_asks_the_frame_to_renew(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    widget = B24Widget(client, fake)
    fake.expire(widget.pair["access_token"])
    answer = widget.get("/widget/body", entity_type=2, entity_id=10)
    assert answer.status_code == 401 and answer.headers["X-OLChat-Reauth"] == "1"


def test_no_rights_to_the_card(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    fake.deny(2, 2, 10)
    operator = B24Widget(client, fake, user_id=2)
    answer = operator.get("/widget/body", entity_type=2, entity_id=10)
    assert answer.status_code == 403 and "Нет доступа" in answer.data.decode()


def test_deleted_card(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    answer = B24Widget(client, fake).get("/widget/body", entity_type=2, entity_id=999)
    assert answer.status_code == 404 and "Карточка не найдена" in answer.data.decode()


def test_state_changing_requests_need_the_widget_token(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    for path in ("/widget/send", "/widget/chat", "/widget/lines", "/widget/refresh", "/admin/settings/form"):
        answer = client.post(path, query_string={"entity_type": 2, "entity_id": 10}, data={"text": "x", "key": "k"},
                             headers={"HX-Request": "true"})
        assert answer.status_code == 401, path


# ---------------------------------------------------------------- tenant isolation


WIDGET_ROUTES = [
    ("get", "/widget/start", {}), ("get", "/widget/body", {}), ("get", "/widget/lines", {}),
    ("get", "/widget/phones", {}), ("get", "/widget/phone", {"phone": "+79161234567"}),
    ("get", "/widget/compose", {"phone": "+79161234567", "line": "sales"}),
    ("get", "/widget/history", {"phone": "+79161234567", "line": "sales"}),
    ("get", "/app/chat/body", {"phone": "+79161234567", "line": "sales"}),
    ("post", "/widget/chat", {"phone": "+79161234567", "line": "sales"}),
    ("post", "/widget/send", {"phone": "+79161234567", "line": "sales", "text": "x", "key": "k1"}),
    ("post", "/widget/lines", {"line": "sales"}), ("post", "/widget/refresh", {}),
    ("get", "/admin/settings/form", {}),
]


def test_a_token_of_one_portal_reaches_nothing_of_another(tmp_path, fake):
    """Portal B (Bitrix24) has card 'deal 500' with a private phone; portal A's token never sees it."""
    fake.add_item(3, 500, phones=["+7 999 555-00-00"], NAME="Секретный", LAST_NAME="Клиент")
    fake.add_item(2, 500, TITLE="Сделка B", contactIds=[500], CONTACT_ID=500)
    # The debug page forced on beside a real portal: the demo portal is tenant A.
    app = make_app(tmp_path, OLCHAT_B24_CLIENT_ID=fake.client_id, OLCHAT_B24_CLIENT_SECRET=fake.client_secret,
                   OLCHAT_B24_OAUTH_URL=fake.url, OLCHAT_B24_SCHEME="http", OLCHAT_B24_TIMEOUT=3.0,
                   OLCHAT_DEBUG_PAGE=True)
    client = app.test_client()
    install(client, fake)
    portal_b = B24Widget(client, fake)
    assert "+79995550000" in portal_b.get("/widget/body", entity_type=2, entity_id=500).data.decode()
    portal_b.post("/admin/settings/form", {"orange_start": "07:00", "green_start": "09:00", "green_end": "20:00",
                                           "orange_end": "22:00", "always_show": "1"})
    portal_a = Widget(client)  # the demo portal
    for method, path, params in WIDGET_ROUTES:
        query = {"entity_type": 2, "entity_id": 500}
        if method == "get":
            answer = client.get(path, query_string={**query, **params}, headers=portal_a.headers())
        else:
            answer = client.post(path, query_string=query, data=params, headers=portal_a.headers())
        text = answer.data.decode()
        assert "+79995550000" not in text and "Секретный" not in text and "Сделка B" not in text, path
        assert "07:00" not in text, path
        assert answer.status_code in (200, 400, 403, 404, 409), (path, answer.status_code)
    with app.app_context():
        settings = {s.portal_id: s.orange_start for s in db.session.scalars(db.select(Settings))}
        demo_id = db.session.scalar(db.select(Portal.id).filter_by(kind="demo"))
        assert settings.get(demo_id, "08:00") == "08:00"


def test_expired_app_token_is_refreshed_once_and_the_new_pair_replaces_the_old(b24_app, fake):
    from olchat_widget.b24 import portal as portals
    from olchat_widget.crypto import secrets_box

    client = b24_app.test_client()
    install(client, fake)
    with b24_app.test_request_context("/"):
        portal = db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id))
        old_refresh = secrets_box(b24_app).open(portal.refresh_token_enc)
        fake.expire_all()
        before = fake.oauth_requests
        portals.register_widget(portal)  # needs the app token: expired, so it is renewed first
        assert fake.oauth_requests == before + 1
        db.session.refresh(portal)
        new_refresh = secrets_box(b24_app).open(portal.refresh_token_enc)
        assert new_refresh != old_refresh
        assert fake.refresh_token_valid(new_refresh) and not fake.refresh_token_valid(old_refresh)


def test_first_look_at_a_card_costs_one_request_with_the_token_check(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    pair = fake.issue_tokens(2)
    fake.reset_counters()
    answer = client.post("/b24/token", json={"access_token": pair["access_token"], "member_id": fake.member_id,
                                             "domain": fake.domain, "expires_in": 3600,
                                             "entity_type": 2, "entity_id": 10})
    assert answer.status_code == 200 and fake.requests == 1
    widget = Widget.__new__(Widget)
    widget.client, widget.token = client, answer.json["token"]
    body = widget.get("/widget/body", entity_type=2, entity_id=10)
    assert 'data-phone="+79161234567"' in body.data.decode()
    assert fake.requests == 1  # the card came with the token check


def test_other_workers_reuse_the_verdict_and_the_card(tmp_path, fake):
    config = dict(OLCHAT_B24_CLIENT_ID=fake.client_id, OLCHAT_B24_CLIENT_SECRET=fake.client_secret,
                  OLCHAT_B24_OAUTH_URL=fake.url, OLCHAT_B24_SCHEME="http")
    first, second = make_app(tmp_path, **config), make_app(tmp_path, **config)
    install(first.test_client(), fake)
    pair = fake.issue_tokens(1)
    payload = {"access_token": pair["access_token"], "member_id": fake.member_id, "domain": fake.domain,
               "expires_in": 3600, "entity_type": 2, "entity_id": 10}
    assert first.test_client().post("/b24/token", json=payload).status_code == 200
    fake.reset_counters()
    answer = second.test_client().post("/b24/token", json=payload)
    assert answer.status_code == 200
    widget = Widget.__new__(Widget)
    widget.client, widget.token = second.test_client(), answer.json["token"]
    assert widget.get("/widget/body", entity_type=2, entity_id=10).status_code == 200
    assert fake.requests == 0


@pytest.mark.parametrize("switch", ["overload", "bucket"])
def test_a_busy_portal_is_not_mistaken_for_missing_rights(b24_app, fake, switch):
    client = b24_app.test_client()
    install(client, fake)
    pair = fake.issue_tokens(1)
    if switch == "overload":
        fake.overload = True
    else:
        fake.fill_bucket()
        fake.drain_per_second = 0
    answer = client.post("/b24/token", json={"access_token": pair["access_token"], "member_id": fake.member_id,
                                             "domain": fake.domain})
    assert answer.status_code == 503 and answer.json["error"] == "unavailable"


def test_portal_over_its_limit_is_retried_then_explained(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    widget = B24Widget(client, fake)
    fake.fill_bucket()
    fake.drain_per_second = 0  # stays full: the retries cannot succeed
    fake.reset_counters()
    answer = widget.get("/widget/body", entity_type=2, entity_id=10)
    assert answer.status_code == 429
    assert "временно ограничил запросы" in answer.data.decode()
    assert fake.requests == 3  # the first try and at most 2 retries


def test_overloaded_portal_is_not_retried(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    widget = B24Widget(client, fake)
    fake.overload = True
    fake.reset_counters()
    answer = widget.get("/widget/body", entity_type=2, entity_id=10)
    assert answer.status_code == 200 and "Битрикс24 не отвечает" in answer.data.decode()
    assert fake.requests == 1

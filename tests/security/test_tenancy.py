"""Per-user CRM rights behind the shared card cache, and a gateway per tenant."""
from __future__ import annotations

import pytest

from tests.clock import NOON
from tests.conftest import make_app, runtime_of
from tests.fakes.fake_waha import SEND_TEXT, SESSIONS, FakeWaha
from tests.html import parse
from tests.test_b24_app import fake, install  # noqa: F401 -- fixtures

DEAL = {"entity_type": 2, "entity_id": 10}
IVAN = "+79161234567"  # on deal 10; has WhatsApp and a chat on 'sales' in the fake WAHA
ADMIN, OPERATOR = 1, 2


@pytest.fixture
def waha():
    with FakeWaha() as server:
        yield server


def portal_app(tmp_path, fake, waha=None, *, listed=True, **extra):
    config = {"OLCHAT_B24_CLIENT_ID": fake.client_id, "OLCHAT_B24_CLIENT_SECRET": fake.client_secret,
              "OLCHAT_B24_OAUTH_URL": fake.url, "OLCHAT_B24_SCHEME": "http", "OLCHAT_B24_TIMEOUT": 3.0}
    if waha is not None:
        config.update(OLCHAT_GATEWAY="waha", OLCHAT_WAHA_URL=waha.url, OLCHAT_WAHA_API_KEY=waha.api_key,
                      OLCHAT_WAHA_PORTALS=fake.member_id if listed else "some-other-member")
    config.update(extra)
    app = make_app(tmp_path, clock_at=NOON, **config)
    install(app.test_client(), fake)
    return app


def exchange(client, fake, user_id, card=DEAL):
    """The frame's token exchange, naming its card as widget.js does."""
    pair = fake.issue_tokens(user_id)
    answer = client.post("/b24/token", json={"access_token": pair["access_token"], "domain": fake.domain,
                                             "member_id": fake.member_id, "expires_in": 3600, **card})
    assert answer.status_code == 200, answer.data
    headers = {"X-OLChat-Token": answer.json["token"], "HX-Request": "true"}
    return headers


def card_requests(client, headers):
    """Every request of the widget that shows or acts on the card's client, with what it needs."""
    compose = client.get("/widget/compose", query_string={**DEAL, "phone": IVAN, "line": "sales"}, headers=headers)
    key = (parse(compose.data).find("input", name="key") or {}).get("value") or "k-denied"
    return {
        "body": client.get("/widget/body", query_string=DEAL, headers=headers),
        "phones": client.get("/widget/phones", query_string=DEAL, headers=headers),
        "phone": client.get("/widget/phone", query_string={**DEAL, "phone": IVAN}, headers=headers),
        "history": client.get("/widget/history", query_string={**DEAL, "phone": IVAN, "line": "sales"},
                              headers=headers),
        "chat view": client.get("/app/chat/body", query_string={**DEAL, "phone": IVAN, "line": "sales"},
                                headers=headers),
        "compose": compose,
        "create chat": client.post("/widget/chat", query_string=DEAL, headers=headers,
                                   data={"phone": IVAN, "line": "sales"}),
        "send": client.post("/widget/send", query_string=DEAL, headers=headers,
                            data={"phone": IVAN, "line": "sales", "text": "Привет", "key": key}),
    }


def test_a_user_denied_the_deal_gets_nothing_of_it_after_an_admin_opened_it(tmp_path, fake, waha):
    app = portal_app(tmp_path, fake, waha)
    client = app.test_client()
    admin = exchange(client, fake, ADMIN)
    assert client.get("/widget/body", query_string=DEAL, headers=admin).status_code == 200  # the card is cached now
    fake.deny(OPERATOR, 2, 10)
    operator = exchange(client, fake, OPERATOR)
    answers = card_requests(client, operator)
    leaked = {name: a.status_code for name, a in answers.items() if a.status_code != 403}
    assert leaked == {}
    for name, answer in answers.items():
        text = answer.data.decode()
        # Nothing of the card: not its owners, not its other phones, not a line of the chat.
        # (The number the request itself named comes back only in its own retry address.)
        for secret in ("Петров", "Смирнова", "79261112233", "74951234567", "message 2"):
            assert secret not in text, (name, secret)
    assert waha.count(SEND_TEXT) == 0


def test_the_users_own_check_rides_in_the_token_exchange_no_extra_request(tmp_path, fake, waha):
    app = portal_app(tmp_path, fake, waha)
    client = app.test_client()
    exchange(client, fake, ADMIN)
    fake.reset_counters()
    operator = exchange(client, fake, OPERATOR)  # names the card: one batch with the user's token
    assert client.get("/widget/body", query_string=DEAL, headers=operator).status_code == 200
    assert fake.requests == 1 and fake.log == ["batch"]


def test_a_right_taken_away_is_noticed_within_the_freshness_window(tmp_path, fake, waha):
    app = portal_app(tmp_path, fake, waha)
    clock = app.extensions["olchat_clock"]
    client = app.test_client()
    operator = exchange(client, fake, OPERATOR)
    assert client.get("/widget/body", query_string=DEAL, headers=operator).status_code == 200
    fake.deny(OPERATOR, 2, 10)
    clock.advance(app.config["OLCHAT_CACHE_TTL"] + 1)
    operator = exchange(client, fake, OPERATOR)  # a renewed token; its own exchange is refused the card
    assert client.get("/widget/body", query_string=DEAL, headers=operator).status_code == 403


def test_a_real_portal_is_never_served_by_the_demo_gateway(tmp_path, fake):
    app = portal_app(tmp_path, fake)  # OLCHAT_GATEWAY=demo, the default
    demo = runtime_of(app).demo_gateway
    client = app.test_client()
    admin, operator = exchange(client, fake, ADMIN), exchange(client, fake, OPERATOR)
    lines = parse(client.get("/widget/lines", query_string=DEAL, headers=admin).data)
    assert lines.find("option", data_line=True) is None
    assert "Линии WhatsApp не подключены" in lines.text and "Шлюз WhatsApp (WAHA)" in lines.text
    operator_lines = parse(client.get("/widget/lines", query_string=DEAL, headers=operator).data)
    assert "Администратор портала подключает линии" in operator_lines.text
    sent = client.post("/widget/send", query_string=DEAL, headers=admin,
                       data={"phone": IVAN, "line": "sales", "text": "x", "key": "k1"})
    assert sent.status_code < 500 and "отправлено" not in parse(sent.data).text.replace("не отправлено", "")
    assert sum(demo.calls.values()) == 0


def test_the_deployments_waha_serves_only_the_portals_it_lists(tmp_path, fake, waha):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    unlisted = portal_app(tmp_path / "a", fake, waha, listed=False)
    client = unlisted.test_client()
    lines = parse(client.get("/widget/lines", query_string=DEAL, headers=exchange(client, fake, ADMIN)).data)
    assert lines.find("option", data_line=True) is None
    assert waha.count(SESSIONS) == 0
    listed = portal_app(tmp_path / "b", fake, waha, listed=True)
    client = listed.test_client()
    lines = parse(client.get("/widget/lines", query_string=DEAL, headers=exchange(client, fake, ADMIN)).data)
    assert "sales" in {o.get("data-line") for o in lines.find_all("option", data_line=True)}

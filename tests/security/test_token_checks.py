"""/b24/token: only tokens of our application, and a verdict trusted for minutes, not for the client's claim."""
from __future__ import annotations

from olchat_widget.b24.portal import VERDICT_TTL
from tests.clock import NOON, pin_clock
from tests.test_b24_app import b24_app, fake, install  # noqa: F401 -- fixtures


def trade(client, fake, pair, expires_in=3600):
    return client.post("/b24/token", json={"access_token": pair["access_token"], "domain": fake.domain,
                                           "member_id": fake.member_id, "expires_in": expires_in})


def test_a_token_of_another_application_is_refused(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    fake.app_code = "othervendor.crmtool"
    answer = trade(client, fake, fake.issue_tokens(1))
    assert answer.status_code == 401 and "token" not in answer.json


def test_a_market_app_is_recognised_by_its_configured_code(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    fake.app_code = "olchat.widget"
    assert trade(client, fake, fake.issue_tokens(1)).status_code == 401
    b24_app.config["OLCHAT_B24_APP_CODE"] = "olchat.widget"
    assert trade(client, fake, fake.issue_tokens(1)).status_code == 200


def test_a_verdict_is_kept_minutes_whatever_lifetime_the_client_claims(b24_app, fake):
    clock = pin_clock(b24_app, NOON)
    client = b24_app.test_client()
    install(client, fake)
    pair = fake.issue_tokens(1)
    assert trade(client, fake, pair, expires_in=3600).status_code == 200
    asked = fake.calls.count("app.info")
    clock.advance(VERDICT_TTL - 30)
    assert trade(client, fake, pair, expires_in=3600).status_code == 200
    assert fake.calls.count("app.info") == asked  # still trusted
    # The admin was demoted in Bitrix24; after the window the next exchange asks again and sees it.
    fake.users[1]["ADMIN"] = False
    clock.advance(60)
    again = trade(client, fake, pair, expires_in=3600)
    assert again.status_code == 200 and fake.calls.count("app.info") == asked + 1
    widget_headers = {"X-OLChat-Token": again.json["token"], "HX-Request": "true"}
    assert client.get("/admin/settings/form", headers=widget_headers).status_code == 403
    assert VERDICT_TTL <= 300

"""Install takeover: only the genuine install sets a portal's tokens; uninstall needs the stored application token."""
from __future__ import annotations

import logging

import pytest

from olchat_widget.b24.portal import access_token_of, application_token_matches
from olchat_widget.models import Portal, db
from tests.html import parse
from tests.test_b24_app import B24Widget, b24_app, fake, install  # noqa: F401 -- fixtures

OPERATOR = 2  # a plain employee of the fake portal; user 1 is its administrator


def stored(app, fake):
    with app.app_context():
        portal = db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id))
        return portal and (access_token_of(portal), portal.refresh_token_enc, portal.application_token_enc)


def event(client, fake, name, user_id=OPERATOR, application_token="evil"):
    pair = fake.issue_tokens(user_id)
    return client.post("/b24/events", data={"event": name, "auth[refresh_token]": pair["refresh_token"],
                                            "auth[access_token]": pair["access_token"],
                                            "auth[application_token]": application_token,
                                            "auth[member_id]": fake.member_id, "auth[domain]": fake.domain})


def test_an_employees_refresh_token_cannot_replace_the_installed_tokens(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    before = stored(b24_app, fake)
    answer = event(client, fake, "ONAPPINSTALL")
    assert answer.status_code == 403 and answer.json["error"] == "not_admin"
    assert stored(b24_app, fake) == before
    with b24_app.app_context():
        portal = db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id))
        assert application_token_matches(portal, "app-token-1") and not application_token_matches(portal, "evil")


def test_the_forged_application_token_cannot_uninstall_the_portal(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    event(client, fake, "ONAPPINSTALL")
    gone = client.post("/b24/events", data={"event": "ONAPPUNINSTALL", "auth[member_id]": fake.member_id,
                                            "auth[application_token]": "evil"})
    assert gone.status_code == 403
    assert stored(b24_app, fake) is not None
    # The portal still works for its users.
    assert B24Widget(client, fake, user_id=OPERATOR).get("/widget/start", entity_type=2, entity_id=10).status_code == 200


def test_the_install_page_with_an_employees_token_says_only_an_admin_can_install(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    before = stored(b24_app, fake)
    pair = fake.issue_tokens(OPERATOR)
    page = client.post(f"/b24/install?DOMAIN={fake.domain}&PROTOCOL=0&LANG=ru",
                       data={"AUTH_ID": pair["access_token"], "REFRESH_ID": pair["refresh_token"],
                             "APPLICATION_TOKEN": "evil", "member_id": fake.member_id, "PLACEMENT": "DEFAULT"})
    assert page.status_code == 403
    assert "Установить приложение может только администратор портала" in page.data.decode()
    assert stored(b24_app, fake) == before


def test_an_administrator_reinstalls_and_the_new_application_token_guards_uninstall(b24_app, fake):
    client = b24_app.test_client()
    install(client, fake)
    assert event(client, fake, "ONAPPINSTALL", user_id=1, application_token="app-token-2").status_code == 200
    old = client.post("/b24/events", data={"event": "ONAPPUNINSTALL", "auth[member_id]": fake.member_id,
                                           "auth[application_token]": "app-token-1"})
    assert old.status_code == 403
    new = client.post("/b24/events", data={"event": "ONAPPUNINSTALL", "auth[member_id]": fake.member_id,
                                           "auth[application_token]": "app-token-2"})
    assert new.status_code == 200 and stored(b24_app, fake) is None


def test_a_first_install_of_an_unknown_portal_is_accepted(b24_app, fake):
    assert install(b24_app.test_client(), fake).status_code == 200
    assert stored(b24_app, fake) is not None


@pytest.mark.parametrize("method", ["userfieldtype.add", "placement.bind", "userfieldtype.list"])
def test_a_failing_registration_shows_the_install_page_with_the_reason_and_logs_no_secret(b24_app, fake, caplog, method):
    fake.fail_method(method, "ACCESS_DENIED", "Access denied: token 0123456789abcdef", status=403, count=10)
    pair = fake.issue_tokens(1)
    with caplog.at_level(logging.DEBUG):
        page = b24_app.test_client().post(
            f"/b24/install?DOMAIN={fake.domain}&PROTOCOL=0&LANG=ru",
            data={"AUTH_ID": pair["access_token"], "REFRESH_ID": pair["refresh_token"],
                  "APPLICATION_TOKEN": "app-token-secret", "member_id": fake.member_id, "PLACEMENT": "DEFAULT"})
    assert page.status_code < 500
    body = parse(page.data).find("body")
    assert body.get("data-install") == "failed"
    assert "Установка не завершена" in page.data.decode()
    log = caplog.text
    secrets = [pair["access_token"], pair["refresh_token"], "app-token-secret", *fake.issued_access_tokens()]
    assert not any(secret in log for secret in secrets), log

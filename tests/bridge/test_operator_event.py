"""ONIMCONNECTORMESSAGEADD: checked by the application token, stored once per Bitrix24 message, BB-code to WhatsApp."""
from __future__ import annotations

import json

import pytest

from olchat_widget.b24.portal import seal
from olchat_widget.bridge.outbound import parse_event, to_whatsapp
from olchat_widget.jobs import queue_of
from olchat_widget.models import BridgeMessage, OpenLineBinding, Portal, db
from tests.conftest import make_app

MEMBER = "member-of-portal-a"


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    with app.app_context():
        portal = Portal(member_id=MEMBER, domain="a.bitrix24.ru", kind="bitrix", installed=True,
                        application_token_enc=seal("app-token-a"))
        db.session.add(portal)
        db.session.flush()
        db.session.add(OpenLineBinding(portal_id=portal.id, line_id="sales", openline_id="7"))
        db.session.commit()
    return app


def event(message_id="501", text="[b]Иван Петров:[/b][br]Счёт во вложении", token="app-token-a", line="7"):
    return {"event": "ONIMCONNECTORMESSAGEADD", "data[CONNECTOR]": "olchat_whatsapp", "data[LINE]": line,
            "data[MESSAGES][0][im][chat_id]": "1010", "data[MESSAGES][0][im][message_id]": message_id,
            "data[MESSAGES][0][message][user_id]": "1", "data[MESSAGES][0][message][text]": text,
            "data[MESSAGES][0][message][files][0][name]": "счёт.pdf",
            "data[MESSAGES][0][message][files][0][link]": "https://a.bitrix24.ru/disk/1",
            "data[MESSAGES][0][chat][id]": "79161234567",
            "auth[application_token]": token, "auth[member_id]": MEMBER, "auth[domain]": "a.bitrix24.ru"}


def stored(app):
    with app.app_context():
        return db.session.scalars(db.select(BridgeMessage).filter_by(direction="out")).all()


def test_an_operator_message_is_stored_once_even_when_the_event_comes_twice(app):
    client = app.test_client()
    assert client.post("/b24/events", data=event()).status_code == 200
    assert client.post("/b24/events", data=event()).status_code == 200
    [row] = stored(app)
    assert (row.line_id, row.client, row.source_id) == ("sales", "79161234567", "501")
    assert json.loads(row.payload)["files"][0]["name"] == "счёт.pdf"
    assert queue_of(app).pending_count() == 1


def test_an_event_with_a_forged_application_token_is_refused(app):
    assert app.test_client().post("/b24/events", data=event(token="evil")).status_code == 403
    assert stored(app) == []


def test_a_message_for_an_open_line_without_our_line_is_ignored(app):
    assert app.test_client().post("/b24/events", data=event(line="9")).status_code == 200
    assert stored(app) == []


def test_the_event_form_is_read_as_bitrix24_sends_it():
    connector, line, messages = parse_event(event())
    assert (connector, line) == ("olchat_whatsapp", "7")
    assert messages[0]["im"] == {"chat_id": "1010", "message_id": "501"}
    assert messages[0]["files"] == {0: {"name": "счёт.pdf", "link": "https://a.bitrix24.ru/disk/1"}}


@pytest.mark.parametrize("text,with_name,expected", [
    ("[b]Иван Петров:[/b][br]Добрый день", True, "*Иван Петров:*\nДобрый день"),
    ("[b]Иван Петров:[/b][br]Добрый день", False, "Добрый день"),
    ("Цена [b]100[/b] [i]руб.[/i] [s]200[/s][br][u]важно[/u]", False, "Цена *100* _руб._ ~200~\nважно"),
    ("[url=https://x.ru/a]каталог[/url]", False, "каталог (https://x.ru/a)"),
    ("[url=https://x.ru]https://x.ru[/url]", False, "https://x.ru"),
])
def test_bb_code_and_the_signature_become_whatsapp_formatting(text, with_name, expected):
    assert to_whatsapp(text, with_name=with_name) == expected

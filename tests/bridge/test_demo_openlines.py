"""The debug page's «Открытые линии» (issue 11, point 9): the whole bridge loop on the demo portal.

A client's message written in the demo goes through the bridge into the demo
Open Lines; an operator's reply there goes out through the real outbound path
to the demo gateway and shows in the widget's history.
"""
from __future__ import annotations

import html
import re

import pytest

from olchat_widget.auth import WidgetUser, issue_token
from olchat_widget.models import BridgeMessage, Portal, db
from tests.clock import NOON
from tests.conftest import Widget, make_app, runtime_of

IVAN = "+79161234567"
DEAL = {"entity_type": 2, "entity_id": 10}


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, clock_at=NOON, OLCHAT_JOBS_IMMEDIATE=True)


@pytest.fixture
def widget(app):
    return Widget(app.test_client())


def text_of(answer) -> str:
    return answer.get_data(as_text=True)


def client_writes(widget, text, phone=IVAN, line="sales", name="Иван Петров"):
    widget.get("/demo/openlines/body")  # the view binds the demo lines to demo Open Lines
    return widget.post("/demo/openlines/client", {"line": line, "phone": phone, "name": name, "text": text})


def history(widget, phone=IVAN, line="sales"):
    return text_of(widget.get("/widget/history", phone=phone, line=line, **DEAL))


def test_the_debug_page_links_the_view(widget):
    page = text_of(widget.client.get("/"))
    assert 'href="/demo/openlines?lang=ru"' in page and "Открытые линии" in page
    shell = widget.client.get("/demo/openlines")
    assert shell.status_code == 200 and "/demo/openlines/body" in text_of(shell)


def test_a_client_message_written_in_the_demo_reaches_the_open_line_and_the_widget(app, widget):
    written = client_writes(widget, "Здравствуйте! <b>Когда</b> доставка?")
    assert written.status_code == 200 and "идёт через мост" in text_of(written)
    chats = text_of(widget.get("/demo/openlines/chats"))
    assert "Иван Петров" in chats and "открытая линия 1" in chats and "WhatsApp «Продажи»" in chats
    assert "Здравствуйте! &lt;b&gt;Когда&lt;/b&gt; доставка?" in chats  # escaped, as typed
    with app.app_context():
        [row] = db.session.scalars(db.select(BridgeMessage).filter_by(direction="in")).all()
        assert row.status == "delivered" and row.client == IVAN.lstrip("+")  # through the real bridge
    assert "Здравствуйте! &lt;b&gt;Когда&lt;/b&gt; доставка?" in history(widget)


def test_an_operator_reply_goes_out_through_the_demo_gateway_and_shows_in_the_widget(app, widget):
    gateway = runtime_of(app).demo_gateway
    client_writes(widget, "Есть доставка в пятницу?")
    chat = re.search(r'data-chat="(\d+)"', text_of(widget.get("/demo/openlines/chats"))).group(1)
    sends = gateway.calls.get("send_text", 0)
    answered = widget.post("/demo/openlines/reply", {"chat": chat, "text": "Да, [b]в пятницу[/b]"})
    assert answered.status_code == 200 and answered.headers["HX-Trigger"] == '{"olchat-ol-changed": true}'
    assert gateway.calls["send_text"] == sends + 1
    shown = history(widget)
    assert "*Демо-администратор:*" in shown and "Да, *в пятницу*" in shown  # signature and BB-code as WhatsApp's
    messages = text_of(widget.get("/demo/openlines/messages", chat=chat))
    assert "Да, [b]в пятницу[/b]" in messages and "доставлено" in messages
    # The same reply is not sent twice when the form is not pressed again.
    assert gateway.calls["send_text"] == sends + 1


def test_an_open_widget_history_gets_the_demo_clients_message_by_its_poll(widget):
    widget.get("/demo/openlines/body")
    shown = history(widget)
    poll = html.unescape(re.search(r'data-live-history\s+hx-get="([^"]+)"', shown).group(1))
    assert widget.client.get(poll, headers=widget.headers()).status_code == 204
    client_writes(widget, "Я перезвоню вечером")
    news = widget.client.get(poll, headers=widget.headers())
    assert news.status_code == 200 and "Я перезвоню вечером" in text_of(news)


def test_the_view_polls_cheaply_and_names_what_changed(widget):
    body = text_of(widget.get("/demo/openlines/body"))
    poll = html.unescape(re.search(r'class="demo-live"[^>]*hx-get="([^"]+)"', body).group(1))
    assert widget.client.get(poll, headers=widget.headers()).status_code == 204
    client_writes(widget, "Алло")
    changed = widget.client.get(poll, headers=widget.headers())
    assert changed.status_code == 200 and "olchat-ol-chats" in changed.headers["HX-Trigger"]


def test_bad_input_gets_a_clear_answer(widget):
    widget.get("/demo/openlines/body")
    empty = widget.post("/demo/openlines/client", {"line": "sales", "phone": IVAN, "text": "  "})
    assert empty.status_code == 422 and "Введите текст" in text_of(empty)
    dead = widget.post("/demo/openlines/client", {"line": "old", "phone": IVAN, "text": "Привет"})
    assert dead.status_code == 422 and "работающую линию" in text_of(dead)
    stranger = widget.post("/demo/openlines/client", {"line": "sales", "phone": "+70000000000", "text": "Привет"})
    assert stranger.status_code == 422 and "из списка" in text_of(stranger)
    assert widget.post("/demo/openlines/reply", {"chat": "999", "text": "Привет"}).status_code == 404
    assert widget.post("/demo/openlines/reply", {"chat": "x", "text": "Привет"}).status_code == 404


def test_not_reachable_when_the_debug_page_is_off(tmp_path):
    app = make_app(tmp_path, OLCHAT_DEBUG_PAGE="0")
    client = app.test_client()
    assert client.get("/demo/openlines").status_code == 404
    assert client.post("/debug/token", json={}).status_code == 404
    with app.app_context():
        demo = db.session.scalar(db.select(Portal).filter_by(kind="demo"))
        token = issue_token(demo, WidgetUser("1", "Демо", True))
    answer = client.get("/demo/openlines/body", headers={"X-OLChat-Token": token, "HX-Request": "true"})
    assert answer.status_code == 401  # a demo token is worth nothing in production


def test_a_bitrix24_portal_never_sees_it(app):
    with app.app_context():
        portal = Portal(member_id="real-portal", domain="real.bitrix24.ru", kind="bitrix", installed=True)
        db.session.add(portal)
        db.session.commit()
        token = issue_token(portal, WidgetUser("1", "Админ", True))
    answer = app.test_client().get("/demo/openlines/body", headers={"X-OLChat-Token": token, "HX-Request": "true"})
    assert answer.status_code == 404

"""Live history (issue 11, point 7): an open history shows a new message without a reload.

The poll answers 204 when nothing is new. On a line bound to an Open Line the
answer comes from the counter the WAHA webhook moves, so it asks WhatsApp
nothing (counted on the fake WAHA); on other lines the gateway's page is
reused for a moment (counted on the demo gateway, the app's clock moved).
"""
from __future__ import annotations

import html
import re

import pytest
import requests

from tests.bridge.test_bridge_e2e import IVAN, connect_open_line, served, waha  # noqa: F401 -- fixtures
from tests.clock import NOON
from tests.conftest import Widget, make_app, runtime_of
from tests.test_b24_app import fake  # noqa: F401 -- the portal fixture

CONTACT = 501


def poll_url(fragment: str) -> str:
    match = re.search(r'data-live-history\s+hx-get="([^"]+)"', fragment)
    assert match, "the history has no live poll"
    return html.unescape(match.group(1))


def test_a_client_message_from_the_webhook_reaches_the_next_poll_and_nothing_new_asks_whatsapp_nothing(
        served, fake, waha):
    app, url = served
    headers = connect_open_line(app, fake, url)  # «sales» serves Open Line 3: its webhook is ours
    fake.add_item(3, CONTACT, phones=["+" + IVAN], NAME="Иван")
    card = {"entity_type": 3, "entity_id": CONTACT, "phone": "+" + IVAN, "line": "sales"}
    history = requests.get(f"{url}/widget/history", params=card, headers=headers, timeout=10)
    assert history.status_code == 200 and "message 24" in history.text
    poll = poll_url(history.text)

    before = waha.calls
    for _ in range(5):
        quiet = requests.get(url + poll, headers=headers, timeout=10)
        assert quiet.status_code == 204 and quiet.text == ""
    assert waha.calls == before  # not one request to WhatsApp while nothing happened

    waha.client_writes("sales", IVAN, "Когда привезёте?")
    news = requests.get(url + poll, headers=headers, timeout=10)
    assert news.status_code == 200
    assert "Когда привезёте?" in news.text and "message 24" not in news.text  # only what is new
    assert f'hx-swap-oob="beforeend:#history-list-{IVAN}"' in news.text
    # The next poll starts from the new message: nothing new again, and no gateway request.
    before = waha.calls
    again = requests.get(url + poll_url(news.text), headers=headers, timeout=10)
    assert again.status_code == 204 and waha.calls == before


def test_a_poll_for_another_cards_number_is_refused(served, fake, waha):
    app, url = served
    headers = connect_open_line(app, fake, url)
    fake.add_item(3, CONTACT, phones=["+79990001122"], NAME="Пётр")
    answer = requests.get(f"{url}/widget/history/news", headers=headers, timeout=10,
                          params={"entity_type": 3, "entity_id": CONTACT, "phone": "+" + IVAN, "line": "sales"})
    assert answer.status_code == 404


@pytest.fixture
def demo(tmp_path):
    app = make_app(tmp_path, clock_at=NOON)
    return app, Widget(app.test_client())


def test_without_our_webhook_the_gateway_is_asked_at_most_once_per_moment(demo):
    app, widget = demo
    gateway = runtime_of(app).demo_gateway
    card = {"entity_type": 2, "entity_id": 10, "phone": "+79161234567", "line": "sales"}
    history = widget.get("/widget/history", **card)
    assert history.status_code == 200 and "Спасибо!" in history.text
    poll = poll_url(history.get_data(as_text=True))
    assert widget.client.get(poll, headers=widget.headers()).status_code == 204
    asked = gateway.calls["history"]
    for _ in range(5):
        assert widget.client.get(poll, headers=widget.headers()).status_code == 204
    assert gateway.calls["history"] == asked  # the page is reused while it is fresh

    with app.app_context():
        gateway.client_writes("sales", "79161234567@c.us", "А можно в пятницу?")
    app.extensions["olchat_clock"].advance(3)
    news = widget.client.get(poll, headers=widget.headers())
    assert news.status_code == 200 and "А можно в пятницу?" in news.get_data(as_text=True)
    assert "Спасибо!" not in news.get_data(as_text=True)
    assert gateway.calls["history"] == asked + 1


def test_bad_poll_parameters_get_a_clear_answer(demo):
    _, widget = demo
    card = {"entity_type": 2, "entity_id": 10, "phone": "+79161234567", "line": "sales"}
    assert widget.get("/widget/history/news", after="x" * 300, **card).status_code == 400
    assert widget.get("/widget/history/news", at="soon", seen="-", **card).status_code in (200, 204)


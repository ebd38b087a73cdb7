"""Live history and the demo «Открытые линии» in a real Chromium: no reload, and polling ends with the panel."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.test_browser import (IVAN, browser, expect, idle, open_history, open_widget, page, requests_to,  # noqa: F401
                                serve, server, show_widget)

pytestmark = pytest.mark.browser


def test_a_new_message_appears_in_the_open_history_and_closing_it_stops_the_polls(page, server):
    root = open_widget(page, server)
    show_widget(root)
    polls = requests_to(page, "/widget/history/news")
    history = open_history(root, IVAN)
    expect(history.locator("[data-message-id]").last.locator(".text")).to_have_text("Спасибо!")

    server.gateway.client_writes("sales", IVAN.lstrip("+") + "@c.us", "Можно привезти утром?")
    server.app.extensions["olchat_clock"].advance(3)  # past the 2 s the gateway's page is reused
    newest = history.locator("[data-message-id]").last
    expect(newest.locator(".text")).to_have_text("Можно привезти утром?")  # no reload: the poll brought it
    expect(newest).to_have_attribute("data-from-me", "false")
    assert history.locator("[data-message-id]").all_inner_texts().count(newest.inner_text()) == 1

    history.get_by_role("button", name="Скрыть").click()
    expect(root.locator("[data-live-history]")).to_have_count(0)
    idle(root)
    count = len(polls)
    page.wait_for_timeout(4500)  # two poll intervals and more
    assert len(polls) == count


def test_the_demo_open_lines_loop_without_bitrix24(page, serve):
    server = serve(OLCHAT_JOBS_IMMEDIATE=True)  # no consumer beside this server: deliveries run at once
    page.goto(server.url + "/")
    with page.expect_popup() as popup:
        page.get_by_role("link", name="Открытые линии").click()
    view = popup.value
    expect(view.get_by_role("button", name="Написать от клиента")).to_be_visible()
    view.locator("select[name=phone]").select_option(IVAN)
    view.locator("form.demo-client textarea").fill("Добрый день, заказ готов?")
    view.get_by_role("button", name="Написать от клиента").click()
    chat = view.locator("article.demo-chat")
    expect(chat.locator(".message.from-client .text")).to_have_text("Добрый день, заказ готов?")
    chat.locator("form.demo-reply textarea").fill("Да, можно забирать")
    chat.get_by_role("button", name="Ответить").click()
    expect(chat.locator(".message.from-me .text")).to_contain_text("Да, можно забирать")
    expect(chat.locator(".message.from-me [data-status]")).to_have_text("доставлено")
    assert urlsplit(view.url).path == "/demo/openlines"

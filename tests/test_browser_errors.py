"""Issue 12, point 8 in Chromium: the offline banner promises a kept text only when one was typed,
and a CRM failure leaves «Обновить данные виджета» on screen to press when the CRM is back."""
from __future__ import annotations

import pytest

from tests.conftest import runtime_of
from tests.test_browser import (  # noqa: F401 -- browser, serve, server, page: the shared Chromium and app fixtures
    ANNA, browser, expect, idle, open_compose, open_widget, page, row, serve, server, settle, show_widget)

pytestmark = pytest.mark.browser

KEPT = "Введённый текст сохранён"


def test_offline_banner_says_the_text_is_kept_only_when_something_was_typed(page, server):
    open_widget(page, server)
    show_widget(page)
    textarea = open_compose(page, ANNA)
    page.route("**/widget/refresh**", lambda route: route.abort())  # the widget server cannot be reached
    refresh = page.get_by_role("button", name="Обновить данные виджета")

    refresh.click()
    banner = page.locator("#olchat-offline")
    expect(banner).to_contain_text("Нет связи с сервером виджета")
    expect(banner).not_to_contain_text(KEPT, ignore_case=True)

    textarea.fill("Черновик, который нельзя потерять")
    idle(page)
    refresh.click()
    expect(banner).to_contain_text(KEPT, ignore_case=True)
    expect(textarea).to_have_value("Черновик, который нельзя потерять")


def test_crm_down_keeps_refresh_on_screen_and_it_brings_the_phones_back(page, server):
    runtime_of(server.app).demo_crm.fail = "unavailable"
    open_widget(page, server)
    page.get_by_role("button", name="Отобразить виджет").click()
    expect(page.locator('[data-error="crm_unavailable"]')).to_contain_text("Битрикс24 не отвечает")
    expect(page.get_by_role("button", name="Повторить")).to_have_count(0)

    runtime_of(server.app).demo_crm.fail = ""
    idle(page)
    page.get_by_role("button", name="Обновить данные виджета").click()
    expect(row(page, ANNA)).to_be_visible()
    settle(page)
    expect(page.locator('[data-error="crm_unavailable"]')).to_have_count(0)

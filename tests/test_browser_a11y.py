"""Issue 12, point 4 in Chromium: axe-core finds no serious or critical violation on any main screen.

The screens an operator meets: the widget hidden (before «Отобразить виджет»), shown, with a chat
history open, with a send form open, after a failed send and on a line that needs a QR code; the
app's chat view; the settings page. Each is checked by axe-core (the axe-playwright-python package
ships it) as it stands on screen. Beside axe, the texts a screen reader needs and axe cannot judge:
the light says in words what its colour means, and every history message says who wrote it.
"""
from __future__ import annotations

import pytest

from tests.conftest import runtime_of

from tests.test_browser import (  # noqa: F401 -- browser, serve, server, page: the shared Chromium and app fixtures
    ANNA, IVAN, IVAN2, browser, choose_line, expect, idle, open_compose, open_history, open_widget, page, row,
    serve, server, settle, show_widget)

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright",
                                 reason="axe-playwright-python is not installed")

pytestmark = pytest.mark.browser

BLOCKING = ("serious", "critical")


def blocking_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one readable line per node."""
    idle(page)
    results = axe_module.Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        for node in violation["nodes"]:
            found.append(f'{violation["impact"]} {violation["id"]}: {node["target"]} -- {node["failureSummary"]}')
    return found


def test_widget_hidden_shown_history_compose_and_errors_have_no_serious_violation(page, server):
    open_widget(page, server)
    expect(page.get_by_role("button", name="Отобразить виджет")).to_be_visible()
    assert blocking_violations(page) == []
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    expect(page.get_by_role("main")).to_have_count(1)

    show_widget(page)
    assert blocking_violations(page) == []
    expect(page.get_by_role("heading", level=1, name="Статусы и чаты")).to_be_visible()
    # The light's colour is also said in words, as an image with a name.
    light = row(page, ANNA).get_by_role("img")
    expect(light).to_have_attribute("aria-label", "можно писать и звонить")

    history = open_history(page, IVAN)
    expect(history.locator("[data-message-id]").first).to_be_visible()
    assert blocking_violations(page) == []
    # Who wrote each message is said, not only shown by its colour and side.
    authors = history.locator("[data-message-id] .author").all_inner_texts()
    assert set(authors) == {"Клиент:", "Вы:"}, authors

    open_compose(page, ANNA).fill("Проверка доступности")
    assert blocking_violations(page) == []

    server.gateway.fail = {"send_text"}
    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()
    expect(row(page, ANNA).locator(".notice-error")).to_be_visible()
    assert blocking_violations(page) == []

    choose_line(page, page, "old")  # the line needs a QR code: its warnings and disabled actions
    assert blocking_violations(page) == []


def test_chat_view_and_settings_have_no_serious_violation(page, server):
    page.goto(f"{server.url}/app/chat?entity_type=2&entity_id=10&phone=%2B79161234567&line=sales")
    expect(page.locator(".chat-view [data-message-id]").first).to_be_visible()
    settle(page)
    assert blocking_violations(page) == []
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    expect(page.get_by_role("main")).to_have_count(1)

    page.goto(f"{server.url}/admin/settings")
    expect(page.get_by_role("button", name="Сохранить")).to_be_visible()
    assert blocking_violations(page) == []
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    expect(page.get_by_role("main")).to_have_count(1)


def test_crm_error_under_the_header_has_no_serious_violation(page, server):
    runtime_of(server.app).demo_crm.fail = "unavailable"
    open_widget(page, server)
    page.get_by_role("button", name="Отобразить виджет").click()
    expect(page.locator('[data-error="crm_unavailable"]')).to_be_visible()
    assert blocking_violations(page) == []
    expect(page.get_by_role("heading", level=1)).to_have_count(1)

"""The strict Content-Security-Policy breaks nothing: the main screens run without one violation.

Every frame records ``securitypolicyviolation`` events (an init script, which CSP does not
govern), and the console is watched for errors; both must stay empty through the debug page,
the widget in its card frame (statuses, lines, history, send), the chat view and settings.
"""
from __future__ import annotations

import pytest

from tests.test_browser import (  # noqa: F401 -- browser, serve, server: the shared Chromium and app fixtures
    TIMEOUT, browser, collect_js_errors, expect, idle, serve, server, walk_the_widget)

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " in " + e.documentURI);
});
"""


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="ru-RU", viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    yield page
    context.close()


def violations(page) -> list[str]:
    found = []
    for frame in page.frames:
        try:
            found += frame.evaluate("window.__cspViolations || []")
        except Exception:  # noqa: BLE001 -- a frame that went away meanwhile has nothing to say
            pass
    return found


def test_main_screens_raise_no_csp_violation_and_no_console_error(page, server):
    errors = collect_js_errors(page)
    csp_console = []
    page.on("console", lambda m: csp_console.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(server.url + "/")
    assert "script-src 'self' https://api.bitrix24.com" in page.evaluate(
        "fetch('/').then(r => r.headers.get('Content-Security-Policy'))")
    walk_the_widget(page, server, "Проверка CSP")
    assert violations(page) == []

    page.locator("a[data-settings-link]").click()
    settings = page.frame_locator('iframe[name="card-frame"]')
    expect(settings.get_by_role("button", name="Сохранить")).to_be_visible()
    idle(settings)
    page.wait_for_load_state("networkidle")

    assert violations(page) == []
    assert csp_console == []
    assert errors == [], "\n".join(errors)

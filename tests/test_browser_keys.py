"""Issue 12, points 5 and 3 in Chromium: no click pattern loses or doubles a message, and the widget
works from the keyboard (focus where the work is, Ctrl+Enter, Esc, a visible ring on every control)."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.test_browser import (  # noqa: F401 -- browser, serve, server, page: the shared Chromium and app fixtures
    ANNA, ANNA2, IVAN, browser, expect, idle, message_texts, open_compose, open_history, open_widget, page,
    requests_to, row, serve, server, settle, show_widget)

pytestmark = pytest.mark.browser

SEND = 'form.compose button[type="submit"]'

# Five clicks 10 ms apart, each on the send button on screen at that moment (a swapped form has a new one).
FAST_CLICKS = """async ([phone, text]) => {
  const row = document.querySelector(`li[data-phone="${phone}"]`);
  row.querySelector('[data-action="write"]').click();
  while (!row.querySelector("form.compose textarea")) { await new Promise(r => setTimeout(r, 1)); }
  row.querySelector("form.compose textarea").value = text;
  for (let i = 0; i < 5; i++) {
    const button = document.querySelector(`li[data-phone="${phone}"] form.compose button[type="submit"]`);
    if (button) { button.click(); }
    await new Promise(r => setTimeout(r, 10));
  }
}"""


def watch_navigation(page):
    """Every navigation of the page after this call, and every request that carries a message text in its URL."""
    navigated, text_in_url = [], []
    page.on("framenavigated", lambda frame: navigated.append(frame.url))
    page.on("request", lambda r: text_in_url.append(r.url) if "text=" in urlsplit(r.url).query else None)
    return navigated, text_in_url


def test_five_clicks_10_ms_apart_send_once_and_never_navigate_the_frame(page, server):
    open_widget(page, server)
    show_widget(page)
    navigated, text_in_url = watch_navigation(page)
    sends = requests_to(page, "/widget/send")
    texts = {}
    for phone in (ANNA, ANNA2, IVAN):
        # The clicks start the moment the form is on screen: htmx has not wired it yet.
        texts[phone] = f"Пять щелчков {phone[-4:]}"
        page.evaluate(FAST_CLICKS, [phone, texts[phone]])
        expect(row(page, phone).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
        expect(row(page, phone).locator("form.compose textarea")).to_have_value("")
        settle(page)
    page.wait_for_load_state("networkidle")
    assert navigated == [] and text_in_url == []
    assert all(r.method == "POST" for r in sends)
    assert server.gateway.calls["send_text"] == 3
    for phone in (ANNA, ANNA2, IVAN):
        history = open_history(page, phone)
        expect(history.locator("[data-message-id]").last.locator(".text")).to_have_text(texts[phone])
        assert message_texts(history).count(texts[phone]) == 1


def test_a_line_change_keeps_the_draft_and_moves_it_to_the_new_line(page, server):
    open_widget(page, server)
    show_widget(page)
    open_compose(page, ANNA).fill("Черновик, который нельзя потерять")
    choose_line_keeping(page, "support")
    settle(page)
    form = row(page, ANNA).locator("form.compose")
    expect(form.locator("textarea")).to_have_value("Черновик, который нельзя потерять")
    expect(form.locator('input[name="line"]')).to_have_value("support")
    form.get_by_role("button", name="Отправить сообщение").click()
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    history = open_history(page, ANNA)  # the support line's chat
    expect(history.locator("[data-message-id]").last.locator(".text")).to_have_text("Черновик, который нельзя потерять")


def test_a_draft_survives_a_line_that_cannot_send_and_a_refresh(page, server):
    open_widget(page, server)
    show_widget(page)
    open_compose(page, IVAN).fill("Не потеряй меня")
    choose_line_keeping(page, "old")  # needs a QR scan: the draft waits, the server would refuse the send
    textarea = row(page, IVAN).locator("form.compose textarea")
    expect(textarea).to_have_value("Не потеряй меня")
    row(page, IVAN).get_by_role("button", name="Отправить сообщение").click()
    expect(row(page, IVAN).locator('[data-notice="error"]')).to_be_visible()
    expect(textarea).to_have_value("Не потеряй меня")
    assert server.gateway.calls.get("send_text", 0) == 0

    idle(page)
    page.get_by_role("button", name="Обновить данные виджета").click()
    expect(page.locator("[data-checking]")).to_have_count(0)
    idle(page)
    expect(row(page, IVAN).locator("form.compose textarea")).to_have_value("Не потеряй меня")


def test_a_send_in_flight_during_a_line_change_shows_its_result(page, server):
    open_widget(page, server)
    show_widget(page)
    held = []
    page.route("**/widget/send?*", lambda route: held.append(route))
    open_compose(page, ANNA).fill("В пути")
    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()
    while not held:
        page.wait_for_timeout(10)
    choose_line_keeping(page, "support")  # the send is still on its way
    expect(row(page, ANNA).locator("form.compose textarea")).to_have_value("В пути")
    held[0].continue_()
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(row(page, ANNA).locator("form.compose textarea")).to_have_value("")
    # The next message from this form goes on the line now chosen.
    expect(row(page, ANNA).locator('form.compose input[name="line"]')).to_have_value("support")
    assert server.gateway.calls["send_text"] == 1


def choose_line_keeping(page, line_id):
    """Pick a line without waiting for every request to end (a send may be in flight)."""
    page.locator("#olchat-phones").evaluate("e => e.setAttribute('data-stale', '')")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/widget/lines" and r.request.method == "POST"):
        page.locator("#olchat-line-select").select_option(line_id)
    expect(page.locator("#olchat-phones[data-stale]")).to_have_count(0)
    expect(page.locator("[data-checking]")).to_have_count(0)


def test_a_pasted_5000_character_text_is_refused_with_a_counter_and_kept(page, server):
    open_widget(page, server)
    show_widget(page)
    sends = requests_to(page, "/widget/send")
    textarea = open_compose(page, ANNA)
    textarea.focus()
    long_text = ("Очень длинный текст. " * 250)[:5000]
    page.keyboard.insert_text(long_text)  # as a paste does: no key events, one input
    counter = row(page, ANNA).locator("[data-counter]")
    expect(counter).to_have_text("5000 / 4096")
    expect(counter).to_be_visible()
    expect(textarea).to_have_attribute("aria-invalid", "true")

    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()
    expect(row(page, ANNA).locator('[data-notice="error"]')).to_contain_text("длиннее 4096")
    textarea.press("Control+Enter")
    expect(textarea).to_be_focused()
    assert textarea.input_value() == long_text
    assert sends == [] and server.gateway.calls.get("send_text", 0) == 0

    # Trimmed to the limit, it goes.
    textarea.fill(long_text[:4096])
    expect(counter).to_have_text("4096 / 4096")
    expect(textarea).not_to_have_attribute("aria-invalid", "true")
    textarea.press("Control+Enter")
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(counter).to_be_hidden()
    assert server.gateway.calls["send_text"] == 1


def test_focus_follows_the_work_and_the_keyboard_sends_and_closes(page, server):
    open_widget(page, server)
    expect(page.get_by_role("button", name="Отобразить виджет")).to_be_visible()
    idle(page)
    page.get_by_role("button", name="Отобразить виджет").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#olchat-phones li.phone").first).to_be_focused()
    settle(page)

    write = row(page, ANNA).get_by_role("button", name="Написать в чат")
    write.focus()
    page.keyboard.press("Enter")
    textarea = row(page, ANNA).locator("form.compose textarea")
    expect(textarea).to_be_focused()
    idle(page)
    page.keyboard.type("С клавиатуры")
    page.keyboard.press("Control+Enter")
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(row(page, ANNA)).to_be_focused()
    assert server.gateway.calls["send_text"] == 1

    # Esc closes the send form; its text waits for the next «Написать в чат».
    idle(page)
    textarea.focus()
    page.keyboard.type("Черновик")
    page.keyboard.press("Escape")
    expect(row(page, ANNA).locator("form.compose")).to_have_count(0)
    expect(write).to_be_focused()
    page.keyboard.press("Enter")
    expect(textarea).to_be_focused()
    expect(textarea).to_have_value("Черновик")

    # Esc closes the history too, and focus returns to its button.
    history_button = row(page, ANNA).get_by_role("button", name="Открыть историю чата")
    history_button.focus()
    page.keyboard.press("Enter")
    expect(row(page, ANNA).locator("section.history")).to_be_visible()
    idle(page)
    page.keyboard.press("Escape")
    expect(row(page, ANNA).locator("section.history")).to_have_count(0)
    expect(history_button).to_be_focused()


def test_in_the_chat_view_ctrl_enter_sends_and_the_text_keeps_the_focus(page, server):
    page.goto(f"{server.url}/app/chat?entity_type=2&entity_id=10&phone=%2B79261112233&line=sales")
    textarea = page.locator("form.compose textarea")
    expect(textarea).to_be_visible()
    idle(page)
    textarea.fill("Из окна чата")
    textarea.press("Meta+Enter")  # Cmd+Enter on a Mac
    expect(page.locator('form.compose [data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(page.locator("form.compose textarea")).to_be_focused()
    expect(page.locator("form.compose textarea")).to_have_value("")
    assert server.gateway.calls["send_text"] == 1


def test_every_control_is_reachable_by_tab_with_a_visible_focus_ring(page, server):
    open_widget(page, server)
    show_widget(page)
    open_compose(page, ANNA)
    page.locator("body").focus()
    controls = """Array.from(document.querySelectorAll(
        'button:not([disabled]), select, textarea, input:not([type=hidden]), a[href], summary'))
        .filter(e => e.offsetParent !== null)"""
    expected = page.evaluate(f"() => {controls}.length")
    assert expected > 20
    reached = []
    for _ in range(expected + 3):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(f"""() => {{ const e = document.activeElement, s = getComputedStyle(e);
            return [{controls}.indexOf(e), e.tagName, e.getAttribute('data-action') || e.id, s.outlineStyle, s.outlineWidth]; }}"""))
    assert {r[0] for r in reached} >= set(range(expected))  # every control, Tab after Tab
    for index, tag, name, style, width in reached:
        if tag != "BODY":
            assert style != "none" and width != "0px", (tag, name)

"""End-to-end: the widget in a real headless Chromium (Playwright), served by the real app.

Each test starts its own app (fresh SQLite file, fresh demo gateway, no remembered
line or WhatsApp status) on a werkzeug server in a thread, and drives it the way
an operator would: the debug page with the card iframe, or the widget page
opened directly. Assertions are on what a person sees (labels, notices, rows,
messages) plus the markup contract of PRODUCT.md (data-phone, data-whatsapp,
data-line, data-status, data-message-id, data-from-me).

Never downloads a browser: Debian's /usr/bin/chromium or a skip.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.clock import LATE, NOON
from tests.served import Server
from tests.conftest import make_app, write_demo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

pytestmark = pytest.mark.browser

TIMEOUT = 5_000  # ms, for every wait on the page
DEAL = "entity_type=2&entity_id=10"
IVAN = "+79161234567"    # WhatsApp, has a chat on line "sales"
IVAN2 = "+79031234567"   # WhatsApp, has a 46-message chat on line "support"
ANNA = "+79261112233"    # WhatsApp, no chat yet
ANNA2 = "+79857654321"   # WhatsApp, no chat yet
DEAL_PHONES = {IVAN: "yes", IVAN2: "yes", ANNA: "yes", ANNA2: "yes", "+74951234567": "yes"}
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


# ---------------------------------------------------------------- browser and server


@pytest.fixture(scope="module")
def browser():
    try:
        playwright = sync_api.sync_playwright().start()
    except Exception as exc:  # noqa: BLE001 - any failure to start the driver means "cannot run here"
        pytest.skip(f"Playwright cannot start: {exc}")
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:  # noqa: BLE001
        playwright.stop()
        pytest.skip(f"Playwright cannot launch {CHROMIUM}: {exc}")
    expect.set_options(timeout=TIMEOUT)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def serve(tmp_path):
    """Start an app with config overrides: ``serve(OLCHAT_TOKEN_TTL=2)``, ``serve(clock_at=LATE)``."""
    servers = []

    def start(clock_at=NOON, **overrides):
        directory = tmp_path / f"app{len(servers)}"
        directory.mkdir()
        # Noon in Moscow unless a test asks for another hour: the send-time guard (B6)
        # asks before writing to a client in the red zone, and most tests are about sending.
        app = make_app(directory, clock_at=clock_at, **overrides)
        server = Server(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def server(serve):
    return serve()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="ru-RU", viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    yield page
    context.close()


# ---------------------------------------------------------------- helpers


def open_widget(page, server, query=DEAL):
    page.goto(f"{server.url}/widget?{query}")
    return page


def open_card_on_debug_page(page, server, entity_type=2, entity_id=10, load=True):
    """The debug page, then a click on the card link: the widget opens in the card iframe."""
    if load:
        page.goto(server.url + "/")
    page.locator(f'a.card-link[data-entity-type="{entity_type}"][data-entity-id="{entity_id}"]').click()
    return page.frame_locator('iframe[name="card-frame"]')


def show_widget(root, label="Отобразить виджет"):
    """Press «Отобразить виджет» and wait until every phone row knows its WhatsApp status."""
    expect(root.get_by_role("button", name=label)).to_be_visible()
    idle(root)
    root.get_by_role("button", name=label).click()
    expect(root.locator("li[data-phone]").first).to_be_visible()
    settle(root)


def shown_by_itself(root):
    """A card whose every status is remembered opens without «Отобразить виджет» (nothing would be checked)."""
    expect(root.locator("li[data-phone]").first).to_be_visible()
    expect(root.get_by_role("button", name="Отобразить виджет")).to_have_count(0)
    settle(root)


def settle(root):
    expect(root.locator("[data-checking]")).to_have_count(0)
    idle(root)


def idle(root):
    """Wait until htmx has finished with what it swapped in.

    htmx attaches the handlers of new content in its settle step, 20 ms after the
    swap; until then a control is on screen but dead. A person never acts that fast,
    a test does: wait for no element added, settling or requesting.
    """
    expect(root.locator(".htmx-added, .htmx-settling, .htmx-swapping, .htmx-request")).to_have_count(0)


def row(root, phone):
    return root.locator(f'li[data-phone="{phone}"]')


def choose_line(page, root, line_id):
    """Pick a line in the selector and wait for the phones block re-rendered for it."""
    expect(root.locator("#olchat-line-select")).to_be_visible()
    settle(root)
    root.locator("#olchat-phones").evaluate("e => e.setAttribute('data-stale', '')")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/widget/lines" and r.request.method == "POST"):
        root.locator("#olchat-line-select").select_option(line_id)
    expect(root.locator("#olchat-phones[data-stale]")).to_have_count(0)  # a new phones block came
    settle(root)


def open_compose(root, phone):
    row(root, phone).get_by_role("button", name="Написать в чат").click()
    textarea = row(root, phone).locator("form.compose textarea")
    expect(textarea).to_be_visible()
    idle(root)
    return textarea


def open_history(root, phone):
    row(root, phone).get_by_role("button", name="Открыть историю чата").click()
    history = row(root, phone).locator("section.history")
    expect(history).to_be_visible()
    idle(root)
    return history


def message_texts(history):
    return history.locator("[data-message-id] .text").all_inner_texts()


def message_ids(history):
    return history.locator("[data-message-id]").evaluate_all("ns => ns.map(n => n.dataset.messageId)")


def requests_to(page, path):
    """A live list of the requests the page (any of its frames) makes to ``path``."""
    seen = []
    page.on("request", lambda request: seen.append(request) if urlsplit(request.url).path == path else None)
    return seen


# ---------------------------------------------------------------- 1. hidden by default, then statuses (F13, F1, F7)


def test_card_frame_checks_nothing_until_show_widget_then_marks_every_phone(page, server):
    phone_requests = requests_to(page, "/widget/phone")
    frame = open_card_on_debug_page(page, server)

    button = frame.get_by_role("button", name="Отобразить виджет")
    expect(button).to_be_visible()
    page.wait_for_timeout(500)  # give a stray lazy load every chance to fire
    assert len(phone_requests) == 0
    assert server.gateway.calls.get("check_exists", 0) == 0
    expect(frame.locator("li[data-phone]")).to_have_count(0)

    button.click()
    expect(frame.locator("li[data-phone]")).to_have_count(len(DEAL_PHONES))
    settle(frame)
    rows = frame.locator("li[data-phone]")
    shown = dict(zip(rows.evaluate_all("ns => ns.map(n => n.dataset.phone)"),
                     rows.evaluate_all("ns => ns.map(n => n.dataset.whatsapp)")))
    assert all(E164.match(phone) for phone in shown), shown
    assert shown == DEAL_PHONES
    assert len(phone_requests) > 0  # statuses came lazily, row by row
    expect(row(frame, ANNA).locator(".wa-status")).to_have_text("есть WhatsApp")
    # The invalid number of the company is listed apart, not as a row.
    expect(frame.locator("[data-invalid-phone]")).to_have_count(1)

    # Another card, with numbers that have no WhatsApp: marked so, and offered no chat actions.
    frame = open_card_on_debug_page(page, server, entity_type=2, entity_id=12, load=False)
    show_widget(frame)
    rows = frame.locator("li[data-phone]")
    shown = dict(zip(rows.evaluate_all("ns => ns.map(n => n.dataset.phone)"),
                     rows.evaluate_all("ns => ns.map(n => n.dataset.whatsapp)")))
    assert shown == {"+4915112345678": "yes", "+12125550100": "no", "+49301234567": "no"}
    expect(row(frame, "+12125550100").locator(".wa-status")).to_have_text("нет WhatsApp")
    expect(row(frame, "+12125550100").get_by_role("button")).to_have_count(0)


# ---------------------------------------------------------------- 2. line selection remembered (F6, B4)


def test_line_choice_reloads_phones_and_survives_a_reload(page, server):
    open_widget(page, server)
    show_widget(page)
    options = page.locator("#olchat-line-select option")
    assert options.evaluate_all("ns => ns.map(n => [n.dataset.line, n.dataset.status])") == [
        ["sales", "WORKING"], ["support", "WORKING"], ["old", "SCAN_QR_CODE"]]
    expect(page.locator("#olchat-line-select")).to_have_value("sales")
    expect(row(page, IVAN).locator('[data-action="open-app"]')).to_have_attribute("data-for-line", "sales")

    choose_line(page, page, "support")
    expect(row(page, IVAN).locator('[data-action="open-app"]')).to_have_attribute("data-for-line", "support")
    expect(page.locator("[data-line-health]")).to_have_attribute("data-line-health", "WORKING")

    page.reload()
    shown_by_itself(page)  # every status is remembered now
    expect(page.locator("#olchat-line-select")).to_have_value("support")
    expect(row(page, IVAN).locator('[data-action="open-app"]')).to_have_attribute("data-for-line", "support")

    # A line that needs a QR scan is shown as such and cannot send.
    choose_line(page, page, "old")
    expect(page.locator("[data-line-health]")).to_have_attribute("data-line-health", "SCAN_QR_CODE")
    expect(page.locator("[data-line-health]")).to_contain_text("линия не может отправлять")
    expect(row(page, IVAN).get_by_role("button", name="Написать в чат")).to_be_disabled()


# ---------------------------------------------------------------- 3. send (F10)


def test_send_message_shows_sent_and_empties_the_form(page, server):
    text = f"Добрый день! Счёт отправлен {uuid.uuid4().hex[:6]}"
    open_widget(page, server)
    show_widget(page)
    textarea = open_compose(page, ANNA)
    textarea.fill(text)
    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()

    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(row(page, ANNA).locator("form.compose textarea")).to_have_value("")

    history = open_history(page, ANNA)
    last = history.locator("[data-message-id]").last
    expect(last.locator(".text")).to_have_text(text)
    expect(last).to_have_attribute("data-from-me", "true")


def test_double_click_on_send_sends_once(page, server):
    text = f"Один раз {uuid.uuid4().hex[:6]}"
    open_widget(page, server)
    show_widget(page)
    sends = requests_to(page, "/widget/send")
    textarea = open_compose(page, ANNA2)
    textarea.fill(text)
    row(page, ANNA2).get_by_role("button", name="Отправить сообщение").dblclick()

    expect(row(page, ANNA2).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(row(page, ANNA2).locator("form.compose textarea")).to_have_value("")
    page.wait_for_load_state("networkidle")
    assert len(sends) >= 1

    history = open_history(page, ANNA2)
    expect(history.locator("[data-message-id]").first).to_be_visible()
    assert message_texts(history).count(text) == 1


def test_late_in_moscow_the_send_asks_first_and_a_double_clicked_confirmation_sends_once(page, serve):
    server = serve(clock_at=LATE)
    text = f"Поздно, но срочно {uuid.uuid4().hex[:6]}"
    open_widget(page, server)
    show_widget(page)
    expect(row(page, ANNA).locator("[data-light]")).to_have_attribute("data-light", "red")
    textarea = open_compose(page, ANNA)
    textarea.fill(text)
    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()

    warning = row(page, ANNA).locator('[data-notice="warning"]')
    expect(warning).to_contain_text("23:3")
    expect(row(page, ANNA).locator("form.compose textarea")).to_have_value(text)
    assert server.gateway.calls.get("send_text", 0) == 0

    row(page, ANNA).get_by_role("button", name="Всё равно отправить").dblclick()
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    page.wait_for_load_state("networkidle")
    assert server.gateway.calls["send_text"] == 1
    history = open_history(page, ANNA)
    expect(history.locator("[data-message-id]").last.locator(".text")).to_have_text(text)
    assert message_texts(history).count(text) == 1


def test_at_noon_in_moscow_the_light_is_green_and_nothing_is_asked(page, server):
    open_widget(page, server)
    show_widget(page)
    # The Moscow landline: Moscow by its area code, with or without the numbering plan.
    expect(row(page, "+74951234567").locator("[data-light]")).to_have_attribute("data-light", "green")
    textarea = open_compose(page, ANNA)
    textarea.fill("Днём")
    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(row(page, ANNA).get_by_role("button", name="Всё равно отправить")).to_have_count(0)


# ---------------------------------------------------------------- 4. a failed send keeps the text (F10)


def test_failed_send_says_why_and_keeps_the_text(page, server):
    text = f"Важный текст {uuid.uuid4().hex[:6]}"
    open_widget(page, server)
    show_widget(page)
    server.gateway.fail = {"send_text"}
    textarea = open_compose(page, ANNA)
    textarea.fill(text)
    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()

    error = row(page, ANNA).locator(".notice-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Сообщение не отправлено")
    expect(row(page, ANNA).locator("form.compose textarea")).to_have_value(text)
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_count(0)

    # The gateway is back: the same kept text goes with one more press.
    server.gateway.fail = set()
    idle(page)
    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(row(page, ANNA).locator("form.compose textarea")).to_have_value("")


# ---------------------------------------------------------------- 5. history pages (F11)


def test_history_newest_last_and_older_pages_on_demand(page, server):
    open_widget(page, server)
    show_widget(page)
    choose_line(page, page, "support")
    history = open_history(page, IVAN2)

    messages = history.locator("[data-message-id]")
    expect(messages).to_have_count(20)
    first_page = message_ids(history)
    assert first_page[-1] == "s-last"
    expect(messages.last.locator(".text")).to_have_text("Заявка закрыта, спасибо за обращение.")
    times = history.locator("[data-message-id] time").evaluate_all("ns => ns.map(n => n.getAttribute('datetime'))")
    assert times == sorted(times)
    # The list opens on the newest message, not scrolled to the oldest (it scrolls inside the widget).
    expect(history.locator('[data-message-id="s-last"]')).to_be_in_viewport(ratio=0.9)

    older = history.get_by_role("button", name="Показать более ранние")
    older.click()
    expect(messages).to_have_count(40)
    two_pages = message_ids(history)
    assert len(set(two_pages)) == 40
    assert two_pages[20:] == first_page  # the older page went above, the view kept its order
    expect(history.locator(f'[data-message-id="{first_page[0]}"]')).to_be_in_viewport(ratio=0.9)  # no jump
    times = history.locator("[data-message-id] time").evaluate_all("ns => ns.map(n => n.getAttribute('datetime'))")
    assert times == sorted(times)

    idle(page)
    older.click()
    expect(messages).to_have_count(46)
    assert len(set(message_ids(history))) == 46
    expect(history.get_by_role("button", name="Показать более ранние")).to_have_count(0)


# ---------------------------------------------------------------- 6. open chat / open app (F9, F12)


def _bridge_entries(page):
    return page.locator("#bridge-log li")


def _app_chat_params(page):
    frame = page.frame(name="card-frame")
    parts = urlsplit(frame.url)
    assert parts.path == "/app/chat", frame.url
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_open_chat_and_open_app_go_through_the_bridge_to_the_chat_view(page, server):
    frame = open_card_on_debug_page(page, server)
    show_widget(frame)

    row(frame, IVAN).get_by_role("button", name="Открыть чат").click()
    expect(_bridge_entries(page)).to_have_count(1)
    expect(_bridge_entries(page).first).to_contain_text("BX24.openApplication")
    expect(_bridge_entries(page).first).to_contain_text(IVAN)
    chat_view = frame.locator(".chat-view")
    expect(chat_view).to_be_visible()
    assert _app_chat_params(page) == {"entity_type": "2", "entity_id": "10", "phone": IVAN, "line": "sales",
                                      "lang": "ru"}
    expect(chat_view.locator("[data-message-id]")).to_have_count(3)
    expect(chat_view.locator("[data-message-id]").last.locator(".text")).to_have_text("Спасибо!")
    expect(chat_view.locator("form.compose textarea")).to_be_visible()
    # The chat view's form sends, and its history follows.
    text = f"Из приложения {uuid.uuid4().hex[:6]}"
    chat_view.locator("form.compose textarea").fill(text)
    idle(frame)
    chat_view.get_by_role("button", name="Отправить сообщение").click()
    expect(chat_view.locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    expect(chat_view.locator("[data-message-id]")).to_have_count(4)
    expect(chat_view.locator("[data-message-id]").last.locator(".text")).to_have_text(text)

    # Back to the card (same debug page, its log kept): «Открыть приложение» on another number.
    frame = open_card_on_debug_page(page, server, load=False)
    shown_by_itself(frame)  # every status is remembered: no «Отобразить виджет»
    row(frame, ANNA).get_by_role("button", name="Открыть приложение").click()
    expect(_bridge_entries(page)).to_have_count(2)
    expect(_bridge_entries(page).last).to_contain_text("BX24.openApplication")
    expect(_bridge_entries(page).last).to_contain_text(ANNA)
    chat_view = frame.locator(".chat-view")
    expect(chat_view).to_be_visible()
    assert _app_chat_params(page)["phone"] == ANNA
    expect(chat_view.locator("section.history")).to_be_visible()
    expect(chat_view.locator("form.compose textarea")).to_be_visible()


def test_create_chat_opens_it_through_the_bridge(page, server):
    frame = open_card_on_debug_page(page, server)
    show_widget(frame)
    expect(row(frame, ANNA).get_by_role("button", name="Открыть чат")).to_have_count(0)
    row(frame, ANNA).get_by_role("button", name="Создать чат").click()
    expect(_bridge_entries(page)).to_have_count(1)
    expect(_bridge_entries(page).first).to_contain_text("BX24.openApplication")
    expect(_bridge_entries(page).first).to_contain_text(ANNA)
    expect(frame.locator(".chat-view")).to_be_visible()
    assert _app_chat_params(page)["phone"] == ANNA

    # Back in the card the number now offers «Открыть чат» instead.
    frame = open_card_on_debug_page(page, server, load=False)
    shown_by_itself(frame)
    expect(row(frame, ANNA).get_by_role("button", name="Открыть чат")).to_be_visible()
    expect(row(frame, ANNA).get_by_role("button", name="Создать чат")).to_have_count(0)


# ---------------------------------------------------------------- 7. hostile data is text


HOSTILE_NAME = '<img src=x onerror="window.__xss=1">'
HOSTILE_TEXT = "<script>window.__xss=2</script>"
HOSTILE_TITLE = '<svg onload="window.__xss=3">'


def hostile_demo(tmp_path):
    return write_demo(tmp_path, {
        "portal": {"member_id": "demo", "domain": "demo.bitrix24.ru"},
        "lines": [{"id": "sales", "name": "Продажи", "phone": "+79000000001", "status": "WORKING"}],
        "whatsapp": [IVAN],
        "crm": {
            "contacts": [{"id": 1, "name": HOSTILE_NAME, "phones": ["8 (916) 123-45-67"], "company_ids": []}],
            "companies": [], "leads": [], "items": [],
            "deals": [{"id": 10, "title": HOSTILE_TITLE, "contact_ids": [1], "company_id": None}],
        },
        "chats": [{"line": "sales", "phone": IVAN, "messages": [
            {"id": "x1", "from_me": False, "text": HOSTILE_TEXT, "timestamp": 1764000000}]}],
    })


def test_hostile_names_and_messages_are_shown_as_text(page, serve, tmp_path):
    server = serve(OLCHAT_DEMO_DATA=hostile_demo(tmp_path))
    frame = open_card_on_debug_page(page, server)
    expect(page.locator('a.card-link[data-entity-type="2"][data-entity-id="10"]')).to_contain_text(HOSTILE_TITLE)
    expect(page.locator('a.card-link[data-entity-type="3"][data-entity-id="1"]')).to_contain_text(HOSTILE_NAME)
    show_widget(frame)

    expect(row(frame, IVAN).locator(".owner")).to_contain_text(HOSTILE_NAME)
    history = open_history(frame, IVAN)
    expect(history.locator("[data-message-id] .text")).to_have_text(HOSTILE_TEXT)

    # The chat view renders the same data through other templates.
    row(frame, IVAN).get_by_role("button", name="Открыть чат").click()
    chat_view = frame.locator(".chat-view")
    expect(chat_view.locator(".owner")).to_contain_text(HOSTILE_NAME)
    expect(chat_view.locator("[data-message-id] .text")).to_have_text(HOSTILE_TEXT)

    page.wait_for_timeout(300)  # an injected onerror would have fired by now
    card_frame = page.frame(name="card-frame")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert card_frame.evaluate("typeof window.__xss") == "undefined"
    assert card_frame.locator("img, svg, .text script").count() == 0
    assert page.locator(".debug-cards svg").count() == 0


# ---------------------------------------------------------------- 8. no JS errors on a full flow


def collect_js_errors(page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def on_console(message):
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        if "favicon" in where or "favicon" in message.text:
            return
        errors.append(f"console: {message.text} @ {where}")

    page.on("console", on_console)
    return errors


def walk_the_widget(page, server, text: str):
    """Every main screen of a card, as an operator goes through them; return the card's frame."""
    frame = open_card_on_debug_page(page, server)
    show_widget(frame)
    choose_line(page, frame, "support")
    history = open_history(frame, IVAN2)
    history.get_by_role("button", name="Показать более ранние").click()
    expect(history.locator("[data-message-id]")).to_have_count(40)
    open_compose(frame, IVAN2).fill(text)
    row(frame, IVAN2).get_by_role("button", name="Отправить сообщение").click()
    expect(row(frame, IVAN2).locator('[data-notice="ok"]')).to_be_visible()
    # The indicator is hidden again (htmx's own inline style is off; widget.css hides and shows it).
    expect(row(frame, IVAN2).locator(".htmx-indicator")).to_be_hidden()
    frame.get_by_role("button", name="Обновить данные виджета").click()
    settle(frame)
    expect(frame.locator("li[data-phone]")).to_have_count(len(DEAL_PHONES))
    row(frame, IVAN2).get_by_role("button", name="Открыть приложение").click()
    expect(frame.locator(".chat-view [data-message-id]").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    return frame


def test_full_flow_raises_no_javascript_errors(page, server):
    errors = collect_js_errors(page)
    walk_the_widget(page, server, "Проверка без ошибок")

    assert errors == [], "\n".join(errors)


# ---------------------------------------------------------------- 9. an expired token is renewed silently


def test_expired_token_is_renewed_and_the_request_repeated(page, serve):
    server = serve(OLCHAT_TOKEN_TTL=2)
    tokens = requests_to(page, "/debug/token")
    refused = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)

    open_widget(page, server)
    button = page.get_by_role("button", name="Отобразить виджет")
    expect(button).to_be_visible()
    time.sleep(3.2)  # the token (2 s, whole-second timestamps) is now expired
    show_widget(page)

    expect(page.locator("li[data-phone]")).to_have_count(len(DEAL_PHONES))
    expect(page.locator("#olchat-line-select")).to_be_visible()
    expect(page.get_by_text("Сессия виджета истекла")).to_have_count(0)
    expect(page.locator(".error-block:visible")).to_have_count(0)
    expect(page.locator("#olchat-noauth")).to_be_hidden()
    # It really went through the renewal path: a 401 was met and a second token fetched.
    assert any("/widget/body" in url for url in refused), refused
    assert len(tokens) >= 2

    # Expired again: a send (a POST with the form's fields) is renewed and repeated too, once.
    text = f"После паузы {uuid.uuid4().hex[:6]}"
    open_compose(page, ANNA).fill(text)
    time.sleep(3.2)  # token timestamps are whole seconds: 3 s are needed to outlive a 2 s token
    row(page, ANNA).get_by_role("button", name="Отправить сообщение").click()
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    assert any("/widget/send" in url for url in refused), refused
    page.wait_for_load_state("networkidle")
    history = open_history(page, ANNA)
    expect(history.locator("[data-message-id]").last.locator(".text")).to_have_text(text)
    assert message_texts(history).count(text) == 1
    expect(page.get_by_text("Сессия виджета истекла")).to_have_count(0)


# ---------------------------------------------------------------- 10. English


def test_english_locale(page, server):
    open_widget(page, server, DEAL + "&lang=en")
    expect(page.get_by_role("button", name="Show widget")).to_be_visible()
    expect(page.get_by_text("Отобразить виджет")).to_have_count(0)
    show_widget(page, label="Show widget")
    expect(row(page, ANNA).get_by_role("button", name="Open chat history")).to_be_visible()
    expect(row(page, ANNA).locator(".wa-status")).to_have_text("has WhatsApp")

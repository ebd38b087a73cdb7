"""Issue 13 in Chromium: attach and send a photo and a PDF (button and drag-and-drop), record and send voice
(Chromium's fake microphone), programs refused before upload, the red-zone question keeps the file, and
received media show in the history (a thumbnail that loads, a player with a working source)."""
from __future__ import annotations

import pytest

from olchat_widget.gateway.demo_media import pdf, png
from tests.clock import LATE
from tests.test_browser import (  # noqa: F401 -- browser, serve, server, page: the shared Chromium and app fixtures
    CHROMIUM, CHROMIUM_ARGS, IVAN, TIMEOUT, browser, expect, idle, open_compose, open_history, open_widget, page,
    row, serve, server, show_widget)

pytestmark = pytest.mark.browser

ROMASHKA = "+74951234567"  # the demo chat with a photo, a price list and a voice note
PNG = {"name": "витрина.png", "mimeType": "image/png", "buffer": png(40, 30)}
PDF = {"name": "Счёт № 7.pdf", "mimeType": "application/pdf", "buffer": pdf("Invoice 7")}

# Records the progress bar's value at every upload progress event (after widget-media.js has set it).
WATCH_PROGRESS = """() => { window.__progress = [];
  document.addEventListener("htmx:xhr:progress", e => {
    const bar = e.target.querySelector && e.target.querySelector("[data-upload-progress] progress");
    if (bar) { window.__progress.push(bar.value); } }); }"""


@pytest.fixture(scope="module")
def voice_browser(browser):
    """Chromium with a fake microphone that grants itself (a beep for MediaRecorder to record)."""
    # Launched by the shared Playwright of the ``browser`` fixture (one driver per thread).
    chromium = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    yield chromium
    chromium.close()


def sent_media(server):
    # Sent through the gateway (the demo chats' own media have ids of the demo file).
    return [m for chat in server.gateway.chats.values() for m in chat if m.has_media and m.id.startswith("true_")]


def send_file(page, form):
    """Press «Отправить сообщение» and wait for the upload's answer (a form may still say «отправлено» of the last one)."""
    with page.expect_response(lambda r: "/widget/send-file" in r.url):
        form.get_by_role("button", name="Отправить сообщение").click()
    idle(page)


def attach(root, phone, files):
    form = row(root, phone).locator("form.compose")
    form.locator('input[type="file"]').set_input_files(files)
    return form


def test_a_photo_and_a_pdf_go_from_the_form_and_show_in_the_history(page, server):
    open_widget(page, server)
    show_widget(page)
    page.evaluate(WATCH_PROGRESS)
    open_compose(page, IVAN).fill("Наша витрина")
    form = attach(page, IVAN, PNG)
    expect(form.locator("[data-attach-name]")).to_contain_text("витрина.png")
    # The limits are stated before anything is uploaded.
    expect(form.locator(".attach-hint")).to_contain_text("до 16 МБ")
    send_file(page, form)
    expect(row(page, IVAN).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    assert max(page.evaluate("window.__progress")) == 100  # the bar filled while the file went up
    form = attach(page, IVAN, PDF)
    send_file(page, form)
    expect(row(page, IVAN).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    [photo, document] = sent_media(server)
    assert (photo.media.mimetype, photo.text) == ("image/png", "Наша витрина")
    assert (document.media.mimetype, document.media.filename) == ("application/pdf", "Счёт № 7.pdf")
    assert server.gateway.files[document.media.url][2] == PDF["buffer"]

    history = open_history(page, IVAN)
    thumbnail = history.locator('[data-media="image"] img').last
    expect(thumbnail).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
    expect(history.locator('[data-media="file"]').last).to_have_text("Счёт № 7.pdf")


def test_a_file_dropped_onto_the_form_is_attached(page, server):
    open_widget(page, server)
    show_widget(page)
    open_compose(page, IVAN)
    row(page, IVAN).locator("form.compose").evaluate("""form => {
        const files = new DataTransfer();
        files.items.add(new File(["%PDF-1.4 dropped"], "прайс.pdf", {type: "application/pdf"}));
        form.querySelector("textarea").dispatchEvent(new DragEvent("dragover", {dataTransfer: files, bubbles: true}));
        form.querySelector("textarea").dispatchEvent(new DragEvent("drop", {dataTransfer: files, bubbles: true}));
    }""")
    form = row(page, IVAN).locator("form.compose")
    expect(form.locator("[data-attach-name]")).to_contain_text("прайс.pdf")
    form.get_by_role("button", name="Отправить сообщение").click()
    expect(row(page, IVAN).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    assert [m.media.filename for m in sent_media(server)] == ["прайс.pdf"]


def test_a_program_is_refused_before_upload_with_a_reason(page, server):
    open_widget(page, server)
    show_widget(page)
    open_compose(page, IVAN)
    uploads = []
    page.on("request", lambda r: uploads.append(r) if "/widget/send-file" in r.url else None)
    attach(page, IVAN, {"name": "счёт.pdf.exe", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00"})
    expect(row(page, IVAN).locator('[data-notice="error"]')).to_contain_text("Программы и скрипты не отправляются")
    expect(row(page, IVAN).locator("[data-attach-chosen]")).to_be_hidden()
    assert uploads == [] and sent_media(server) == []


def test_the_red_zone_question_keeps_the_chosen_file(page, serve):
    server = serve(clock_at=LATE)
    open_widget(page, server)
    show_widget(page)
    open_compose(page, IVAN)
    form = attach(page, IVAN, PDF)
    form.get_by_role("button", name="Отправить сообщение").click()
    form = row(page, IVAN).locator("form.compose")
    expect(form.locator('[data-notice="warning"]')).to_contain_text("нерабочее время")
    expect(form.locator("[data-attach-name]")).to_contain_text("Счёт № 7.pdf")
    assert sent_media(server) == []
    idle(page)
    form.get_by_role("button", name="Всё равно отправить").click()
    expect(row(page, IVAN).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    [document] = sent_media(server)
    assert server.gateway.files[document.media.url][2] == PDF["buffer"]


def test_voice_is_recorded_listened_to_and_sent(voice_browser, server):
    context = voice_browser.new_context(locale="ru-RU", permissions=["microphone"])
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    try:
        open_widget(page, server)
        show_widget(page)
        open_compose(page, IVAN)
        form = row(page, IVAN).locator("form.compose")
        form.get_by_role("button", name="Записать голосовое").click()
        expect(form.locator("[data-voice-status]")).to_have_text("Идёт запись…")
        page.wait_for_timeout(1200)  # a second of the fake microphone's beep
        form.get_by_role("button", name="Остановить запись").click()
        preview = form.locator("[data-voice-audio]")
        expect(preview).to_be_visible()
        assert preview.get_attribute("src").startswith("blob:")
        # Delete, record again, send.
        form.get_by_role("button", name="Удалить запись").click()
        expect(preview).to_be_hidden()
        form.get_by_role("button", name="Записать голосовое").click()
        page.wait_for_timeout(800)
        form.get_by_role("button", name="Остановить запись").click()
        expect(preview).to_be_visible()
        form.get_by_role("button", name="Отправить сообщение").click()
        expect(row(page, IVAN).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
        [voice] = sent_media(server)
        assert voice.media.mimetype.startswith("audio/") and len(server.gateway.files[voice.media.url][2]) > 1000
    finally:
        context.close()


def test_no_microphone_gets_a_clear_message(page, server):
    open_widget(page, server)
    show_widget(page)
    open_compose(page, IVAN)
    form = row(page, IVAN).locator("form.compose")
    form.get_by_role("button", name="Записать голосовое").click()
    expect(form.locator('[data-notice="error"]')).to_contain_text("икрофон")
    assert sent_media(server) == []


def test_received_media_show_in_the_history_and_the_chat_view(page, server):
    open_widget(page, server)
    show_widget(page)
    history = open_history(page, ROMASHKA)
    thumbnail = history.locator('[data-media="image"] img')
    expect(thumbnail).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
    expect(history.locator('[data-media="file"]')).to_have_text("прайс.pdf")
    audio = history.locator('audio[data-media="audio"]')
    expect(audio).to_have_count(1)
    answer = page.evaluate("src => fetch(src).then(r => [r.status, r.headers.get('content-type')])",
                           audio.get_attribute("src"))
    assert answer == [200, "audio/wav"]
    # The photo opens large in its own tab, without the widget's token.
    with page.context.expect_page() as opened:
        history.locator('[data-media="image"]').click()
    large = opened.value
    large.wait_for_load_state()
    assert large.evaluate("document.images[0].naturalWidth") == 96  # the demo photo, full size
    large.close()

    page.goto(f"{server.url}/app/chat?entity_type=2&entity_id=10&phone=%2B74951234567&line=sales")
    chat = page.locator(".chat-view")
    expect(chat.locator('[data-media="image"] img')).to_be_visible()
    expect(chat.locator('audio[data-media="audio"]')).to_have_count(1)

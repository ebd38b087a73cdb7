"""Issue 13 in Chromium: pick a template from the keyboard and see the card's values in the text; a variable the
card has no value for is highlighted and the message cannot be sent until it is edited."""
from __future__ import annotations

import pytest

from olchat_widget.models import MessageTemplate, Portal, db
from tests.test_browser import (  # noqa: F401 -- browser, serve, server, page: the shared Chromium and app fixtures
    ANNA, browser, expect, idle, open_compose, open_history, open_widget, page, requests_to, row, serve, server,
    show_widget)

pytestmark = pytest.mark.browser

try:
    from tests.test_browser_a11y import blocking_violations
except pytest.skip.Exception:  # axe-playwright-python is not installed: the rest of the test still runs
    blocking_violations = None


def add_templates(server, *templates):
    with server.app.app_context():
        portal_id = db.session.scalar(db.select(Portal.id).filter_by(kind="demo"))
        for name, text in templates:
            db.session.add(MessageTemplate(portal_id=portal_id, name=name, category="Продажи", text=text))
        db.session.commit()


def test_a_picked_template_fills_the_cards_values_and_an_open_variable_blocks_the_send(page, server):
    add_templates(server, ("Сроки поставки", "{{client.first_name}}, по сделке «{{deal.title}}» ({{company.name}}) "
                                             "отвечаю по заявке «{{lead.title}}»."),
                  ("Благодарность", "Спасибо, {{client.name}}!"))
    open_widget(page, server)
    show_widget(page)
    textarea = open_compose(page, ANNA)
    form = row(page, ANNA).locator("form.compose")
    sends = requests_to(page, "/widget/send")

    picker = form.get_by_label("Шаблон", exact=True)
    picker.click()
    page.keyboard.type("Сроки поставки")
    page.keyboard.press("Enter")  # fills the text; never sends the form
    expect(textarea).to_have_value("Анна, по сделке «Поставка» (ООО «Ромашка») отвечаю по заявке «{{lead.title}}».")
    idle(page)
    textarea = form.locator("textarea")
    notice = form.locator("[data-unresolved-notice]")
    expect(notice).to_be_visible()
    expect(notice.locator("mark")).to_have_text(["{{lead.title}}"])
    expect(textarea).to_have_attribute("aria-invalid", "true")
    send = form.get_by_role("button", name="Отправить сообщение")
    expect(send).to_be_disabled()
    if blocking_violations is not None:
        assert blocking_violations(page) == []  # the picker and the highlighted variable, as a screen reader meets them

    # The open variable is selected in the text: Ctrl+Enter sends nothing, typing replaces it.
    expect(textarea).to_be_focused()
    page.keyboard.press("Control+Enter")
    page.wait_for_timeout(200)
    assert sends == []
    page.keyboard.type("с сайта")
    expect(textarea).to_have_value("Анна, по сделке «Поставка» (ООО «Ромашка») отвечаю по заявке «с сайта».")
    expect(notice).to_be_hidden()
    expect(send).to_be_enabled()
    send.click()
    expect(row(page, ANNA).locator('[data-notice="ok"]')).to_have_text("Сообщение отправлено")
    assert len(sends) == 1
    history = open_history(page, ANNA)
    expect(history.locator("[data-message-id]").last.locator(".text")).to_have_text(
        "Анна, по сделке «Поставка» (ООО «Ромашка») отвечаю по заявке «с сайта».")

    # The template used last comes first next time; a template with every value filled sends at once.
    textarea = open_compose(page, ANNA)
    options = row(page, ANNA).locator("datalist option")
    expect(options).to_have_count(2)
    assert options.evaluate_all("os => os.map(o => o.value)") == ["Сроки поставки", "Благодарность"]
    picker = row(page, ANNA).get_by_label("Шаблон", exact=True)
    picker.fill("Благодарность")
    picker.press("Enter")
    expect(row(page, ANNA).locator("form.compose textarea")).to_have_value("Спасибо, Анна Смирнова!")
    expect(row(page, ANNA).locator("[data-unresolved-notice]")).to_have_count(0)
    expect(row(page, ANNA).get_by_role("button", name="Отправить сообщение")).to_be_enabled()


def test_the_settings_page_templates_section_from_the_keyboard(page, server):
    add_templates(server, ("Сроки поставки", "Поставка в {{deal.title}}"))
    page.goto(f"{server.url}/admin/settings")
    section = page.locator("section#templates")
    expect(section.get_by_role("heading", name="Шаблоны")).to_be_visible()
    expect(section.locator("[data-template-variables]")).to_contain_text("{{client.name}}")
    section.get_by_label("Название", exact=True).fill("Счёт")
    section.get_by_label("Текст", exact=True).fill("Счёт для {{company.nmae}}")
    section.get_by_label("Только администраторам").check()
    section.get_by_role("button", name="Добавить шаблон").click()
    error = section.locator('[data-field-error="text"]')
    expect(error).to_contain_text("{{company.nmae}}")
    expect(section.get_by_label("Название", exact=True)).to_have_value("Счёт")  # the input is kept
    expect(section.get_by_label("Только администраторам")).to_be_checked()
    if blocking_violations is not None:
        assert blocking_violations(page) == []
    section.get_by_label("Текст", exact=True).fill("Счёт для {{company.name}}")
    section.get_by_role("button", name="Добавить шаблон").click()
    expect(section.locator('tr[data-template-name="Счёт"]')).to_contain_text("только администраторам")
    expect(section.locator("[data-field-error]")).to_have_count(0)

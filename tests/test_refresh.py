"""«Обновить данные виджета» spends no checks needlessly; the widget opens by itself when nothing needs checking.

Every count here is what the line's daily budget would see: WhatsApp number
checks made through the guard (the demo gateway counts them, LineDay keeps
the day's total the admin sees).
"""
from __future__ import annotations

import pytest

from olchat_widget.clock import clock_of
from olchat_widget.models import LineDay, db
from tests.clock import NOON
from tests.conftest import Widget, make_app, set_settings
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}  # five distinct numbers, all on WhatsApp in the demo
COMPANY = {"entity_type": 4, "entity_id": 6}  # +49301234567 has no WhatsApp
NO_WHATSAPP = "+49301234567"
MINUTE = 60


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, clock_at=NOON)


def rows(html) -> dict:
    return {li.get("data-phone"): li for li in parse(html).find_all("li", data_phone=True)}


def load_lazy_rows(widget, html, card=DEAL) -> dict:
    """Load every row that asks for itself, as the browser would; return all rows as finally shown."""
    shown = rows(html)
    for phone, li in list(shown.items()):
        if li.get("data-checking") == "true" or li.get("hx-trigger"):
            answer = widget.get("/widget/phone", phone=phone, **card)
            assert answer.status_code == 200
            shown[phone] = parse(answer.data).find("li", data_phone=phone)
    return shown


def open_widget(widget, card=DEAL) -> dict:
    body = widget.get("/widget/body", **card)
    assert body.status_code == 200
    return load_lazy_rows(widget, body.data, card)


def refresh(widget, card=DEAL) -> dict:
    answer = widget.post("/widget/refresh", **card)
    assert answer.status_code == 200
    return load_lazy_rows(widget, answer.data, card)


def checks(demo_gateway) -> int:
    return demo_gateway.calls.get("check_exists", 0)


def budget_used(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.coalesce(db.func.sum(LineDay.checks), 0)))


# ---------------------------------------------------------------- refresh (point 6)


def test_four_refreshes_within_ten_minutes_make_no_new_checks(app, widget, demo_gateway):
    clock = clock_of(app)
    found = open_widget(widget)
    assert len(found) == 5 and checks(demo_gateway) == 5 and budget_used(app) == 5
    for _ in range(4):
        clock.advance(2 * MINUTE)
        found = refresh(widget)
        assert {li.get("data-whatsapp") for li in found.values()} == {"yes"}
    assert checks(demo_gateway) == 5  # was 5 + 4 × 5 = 25 before the re-check age
    assert budget_used(app) == 5


def test_refresh_reloads_card_and_lines_at_once(app, widget, demo_gateway):
    open_widget(widget)
    lines_asked = demo_gateway.calls.get("list_lines", 0)
    answer = widget.post("/widget/refresh", **DEAL)
    assert answer.status_code == 200
    # The lines are asked again by the refresh itself; the lines block and the rows then read them.
    assert demo_gateway.calls.get("list_lines", 0) == lines_asked + 1
    assert widget.get("/widget/lines", **DEAL).status_code == 200
    load_lazy_rows(widget, answer.data)
    assert demo_gateway.calls.get("list_lines", 0) == lines_asked + 1
    assert checks(demo_gateway) == 5


def test_refresh_rechecks_once_the_age_has_passed(app, widget, demo_gateway):
    clock = clock_of(app)
    open_widget(widget)
    clock.advance(10 * MINUTE + 5)
    found = refresh(widget)
    assert checks(demo_gateway) == 10 and budget_used(app) == 10
    assert {li.find("time", data_checked_at=True).text for li in found.values()} == {"проверено только что"}


def test_recheck_age_is_the_portals_setting(app, client, demo_gateway):
    clock = clock_of(app)
    set_settings(app, recheck_minutes=60)
    open_widget(Widget(client))
    clock.advance(30 * MINUTE)
    refresh(Widget(client))  # a token lives 15 minutes: the frame has renewed it meanwhile
    assert checks(demo_gateway) == 5
    clock.advance(31 * MINUTE)
    refresh(Widget(client))
    assert checks(demo_gateway) == 10
    set_settings(app, recheck_minutes=0)  # 0: every refresh checks again, as before
    refresh(Widget(client))
    assert checks(demo_gateway) == 15


@pytest.mark.parametrize("lang,text", [("ru", "проверено 5 мин назад"), ("en", "checked 5 min ago")])
def test_row_says_when_it_was_checked(app, client, lang, text):
    widget = Widget(client, lang=lang)
    open_widget(widget)
    clock_of(app).advance(5 * MINUTE + 5)
    for li in rows(widget.get("/widget/body", **DEAL).data).values():
        checked = li.find("time", data_checked_at=True)
        assert checked.text == text
        assert checked.get("datetime").endswith("Z")
    clock_of(app).advance(3 * 60 * MINUTE)
    ivan = rows(Widget(client, lang=lang).get("/widget/body", **DEAL).data)["+79161234567"]
    assert ivan.find("time", data_checked_at=True).text == ("проверено 3 ч назад" if lang == "ru" else "checked 3 h ago")


def test_phones_block_is_not_served_with_a_stale_checked_time(app, widget):
    open_widget(widget)
    first = rows(widget.get("/widget/phones", **DEAL).data)["+79161234567"]
    clock_of(app).advance(2 * MINUTE)
    later = rows(widget.get("/widget/phones", **DEAL).data)["+79161234567"]
    assert first.find("time", data_checked_at=True).text == "проверено только что"
    assert later.find("time", data_checked_at=True).text == "проверено 2 мин назад"


# ---------------------------------------------------------------- opens by itself (point 7)


def test_every_status_known_opens_without_the_button_and_checks_nothing(app, client, demo_gateway):
    Widget(client, "operator").get("/widget/start", **DEAL)  # a colleague's first look: the button
    open_widget(Widget(client, "operator"))
    made = checks(demo_gateway)
    widget = Widget(client, "admin")
    start = widget.get("/widget/start", **DEAL)
    page = parse(start.data)
    assert page.find("button", data_action="show-widget") is None
    shown = load_lazy_rows(widget, start.data)
    assert len(shown) == 5 and {li.get("data-whatsapp") for li in shown.values()} == {"yes"}
    assert checks(demo_gateway) == made


def test_one_unknown_number_keeps_the_button(app, widget, demo_gateway):
    open_widget(widget, COMPANY)
    assert parse(widget.get("/widget/start", **COMPANY).data).find("button", data_action="show-widget") is None
    # "No WhatsApp" is remembered for a day, "has WhatsApp" for a week: a day later one number is unknown.
    clock_of(app).advance(24 * 60 * MINUTE + MINUTE)
    made = checks(demo_gateway)
    page = parse(Widget(widget.client).get("/widget/start", **COMPANY).data)
    assert page.find("button", data_action="show-widget").text == "Отобразить виджет"
    assert page.find("li", data_phone=True) is None
    assert checks(demo_gateway) == made


def test_first_open_of_a_card_keeps_the_button(widget, demo_gateway):
    page = parse(widget.get("/widget/start", **DEAL).data)
    assert page.find("button", data_action="show-widget") is not None
    assert checks(demo_gateway) == 0


def test_auto_show_off_always_shows_the_button(app, widget, demo_gateway):
    set_settings(app, auto_show=False)
    open_widget(widget)
    page = parse(widget.get("/widget/start", **DEAL).data)
    assert page.find("button", data_action="show-widget") is not None
    assert page.find("li", data_phone=True) is None

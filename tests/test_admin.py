"""F16 admin-only settings page; B1 checks vs sends per line; numbering plan status."""
from __future__ import annotations

import pytest

from tests.clock import NOON
from tests.conftest import Widget, make_app
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}
FORM = {"orange_start": "08:00", "green_start": "09:00", "green_end": "20:00", "orange_end": "22:00",
        "max_phones": "", "default_region": "", "check_budget": ""}


@pytest.fixture
def app(tmp_path):
    # Noon in Moscow: the statistics test sends, and the light test starts from a green hour.
    return make_app(tmp_path, clock_at=NOON)


def test_settings_are_for_admins_only(client):
    operator = Widget(client, "operator")
    answer = operator.get("/admin/settings/form")
    assert answer.status_code == 403 and "Только для администратора" in answer.data.decode()
    assert operator.post("/admin/settings/form", {**FORM, "always_show": "1"}).status_code == 403
    # ...and the operator's widget is still hidden by default.
    page = parse(operator.get("/widget/start", **DEAL).data)
    assert page.find("button", data_action="show-widget") is not None


def test_settings_without_token_say_no_auth(client):
    answer = client.get("/admin/settings/form", headers={"HX-Request": "true"})
    assert answer.status_code == 401 and "Нет данных авторизации от Битрикс24" in answer.data.decode()


def test_admin_turns_always_show_on_with_a_ban_warning(client):
    admin = Widget(client, "admin")
    form = parse(admin.get("/admin/settings/form").data)
    assert "риск блокировки" in form.text
    saved = admin.post("/admin/settings/form", {**FORM, "always_show": "1"})
    assert saved.status_code == 200 and "Сохранено" in saved.data.decode()
    page = parse(admin.get("/widget/start", **DEAL).data)
    assert page.find("button", data_action="show-widget") is None
    assert page.find("li", data_phone=True) is not None


def test_thresholds_change_the_light(client):
    admin = Widget(client, "admin")
    # Everything red.
    admin.post("/admin/settings/form", {**FORM, "orange_start": "00:00", "green_start": "00:00",
                                        "green_end": "00:00", "orange_end": "00:00"})
    lights = {s.get("data-light") for s in parse(admin.get("/widget/body", **DEAL).data).find_all("span", data_light=True)}
    assert lights == {"red"}


def test_invalid_settings_are_refused_and_nothing_changes(client):
    admin = Widget(client, "admin")
    answer = admin.post("/admin/settings/form", {**FORM, "green_start": "25:00", "max_phones": "abc",
                                                 "default_region": "RUS"})
    assert answer.status_code == 422
    errors = parse(answer.data).find("p", data_errors=True).get("data-errors").split(",")
    assert {"green_start", "max_phones", "default_region"} <= set(errors)
    assert parse(admin.get("/admin/settings/form").data).find("input", name="green_start").get("value") == "09:00"
    order = admin.post("/admin/settings/form", {**FORM, "green_start": "21:00"})
    assert order.status_code == 422 and "order" in parse(order.data).find("p", data_errors=True).get("data-errors")


def test_checks_and_sends_per_line_are_shown(client):
    admin = Widget(client, "admin")
    admin.get("/widget/body", **DEAL)
    for phone in ("+79161234567", "+79261112233"):
        admin.get("/widget/phone", phone=phone, **DEAL)
    compose = parse(admin.get("/widget/compose", phone="+79261112233", line="sales", **DEAL).data)
    key = compose.find("input", name="key").get("value")
    admin.post("/widget/send", {"text": "Привет", "key": key, "phone": "+79261112233", "line": "sales"}, **DEAL)
    table = parse(admin.get("/admin/settings/form").data)
    row = table.find("tr", data_stats_line="sales")
    assert row.get("data-checks") == "2" and row.get("data-sends") == "1"
    assert "2.0" in row.text


def test_numbering_plan_status(tmp_path, client):
    assert parse(Widget(client).get("/admin/settings/form").data).find(data_numbering="loaded") is not None
    (tmp_path / "bare").mkdir()
    bare = make_app(tmp_path / "bare", OLCHAT_NUMBERING_PATH=str(tmp_path / "missing.csv"))
    page = parse(Widget(bare.test_client()).get("/admin/settings/form").data)
    missing = page.find(data_numbering="missing")
    assert missing is not None and "libphonenumber" in missing.text


def test_settings_page_shell_and_debug_link(client):
    assert client.get("/admin/settings").status_code == 200
    debug = parse(client.get("/").data)
    assert debug.find("a", data_settings_link=True).get("href").startswith("/admin/settings")


def test_debug_page_can_be_turned_off(tmp_path):
    app = make_app(tmp_path, OLCHAT_DEBUG_PAGE=False)
    client = app.test_client()
    assert client.get("/").status_code == 404
    assert client.post("/debug/token", json={}).status_code == 404
    assert client.get("/widget?entity_type=2&entity_id=10").status_code == 404
    assert client.get("/app/chat?entity_type=2&entity_id=10&phone=%2B79161234567&line=sales").status_code == 404
    assert client.get("/admin/settings").status_code == 404

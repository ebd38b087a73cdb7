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


def test_rejected_save_keeps_what_the_admin_typed_and_says_per_field_what_is_wrong(client):
    admin = Widget(client, "admin")
    typed = {**FORM, "always_show": "1", "orange_start": "07:30", "green_start": "25:00", "max_phones": "60",
             "default_region": "RUS", "check_budget": "abc", "recheck_minutes": "30"}
    answer = admin.post("/admin/settings/form", typed)
    assert answer.status_code == 422
    page = parse(answer.data)
    # Every field shows the admin's input, the good ones and the bad ones alike (nothing was saved).
    for name in ("orange_start", "green_start", "max_phones", "default_region", "check_budget", "recheck_minutes"):
        assert page.find("input", name=name).get("value") == typed[name], name
    assert "checked" in page.find("input", name="always_show").attrs
    assert "checked" not in page.find("input", name="auto_show").attrs  # unticked by the admin
    said = {e.get("data-field-error"): e.text for e in page.find_all("small", data_field_error=True)}
    assert said == {"green_start": "Время — в виде ЧЧ:ММ, от 00:00 до 23:59",
                    "max_phones": "Целое число от 1 до 50 или пусто",
                    "default_region": "Две латинские буквы — код страны ISO, например RU",
                    "check_budget": "Целое число от 0 до 10000 или пусто"}
    bad = page.find("input", name="max_phones")
    assert bad.get("aria-invalid") == "true" and bad.get("aria-describedby") == "error-max_phones"
    assert page.find("input", name="orange_start").get("aria-invalid") is None
    # The stored settings did not change.
    stored = parse(admin.get("/admin/settings/form").data)
    assert stored.find("input", name="orange_start").get("value") == "08:00"
    assert stored.find("input", name="recheck_minutes").get("value") == "10"
    assert "checked" in stored.find("input", name="auto_show").attrs


def test_thresholds_out_of_order_are_named_on_the_times(client):
    answer = Widget(client, "admin").post("/admin/settings/form", {**FORM, "green_start": "21:00"})
    page = parse(answer.data)
    assert answer.status_code == 422 and page.find("input", name="green_start").get("value") == "21:00"
    assert "по порядку" in page.find("small", data_field_error="order").text
    assert all(page.find("input", name=n).get("aria-invalid") == "true"
               for n in ("orange_start", "green_start", "green_end", "orange_end"))


def test_recheck_age_and_auto_show_are_saved(client):
    admin = Widget(client, "admin")
    refused = admin.post("/admin/settings/form", {**FORM, "auto_show": "1", "recheck_minutes": "-5"})
    assert refused.status_code == 422
    assert parse(refused.data).find("small", data_field_error="recheck_minutes").text == "Целое число от 0 до 1440"
    saved = admin.post("/admin/settings/form", {**FORM, "recheck_minutes": "45"})
    assert saved.status_code == 200
    page = parse(saved.data)
    assert page.find("input", name="recheck_minutes").get("value") == "45"
    assert "checked" not in page.find("input", name="auto_show").attrs
    empty = parse(admin.post("/admin/settings/form", {**FORM, "auto_show": "1", "recheck_minutes": ""}).data)
    assert empty.find("input", name="recheck_minutes").get("value") == "10"  # empty: the default
    assert "checked" in empty.find("input", name="auto_show").attrs


def test_rejected_gateway_url_is_shown_back(client):
    answer = Widget(client, "admin").post("/admin/gateway", {"base_url": "ftp://waha.example", "api_key": "k"})
    assert answer.status_code == 422
    page = parse(answer.data)
    assert page.find("input", name="base_url").get("value") == "ftp://waha.example"
    assert page.find("small", data_field_error="base_url") is not None


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
    # The line by the name people know it by, not the gateway's id.
    assert row.find("td", data_line_name=True).text == "Продажи"


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

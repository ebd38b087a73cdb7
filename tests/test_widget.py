"""The widget on the embedded demo portal: what an operator sees and does (F1–F16)."""
from __future__ import annotations

import json
import time

import pytest

from olchat_widget.models import NumberCheck, UserPreference, db
from tests.clock import LATE, NOON
from tests.conftest import Widget, make_app, runtime_of, set_settings, write_demo
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}
IVAN = "+79161234567"


def rows(html):
    return {li.get("data-phone"): li for li in parse(html).find_all("li", data_phone=True)}


def load_rows(widget, card=DEAL):
    """Open the widget, then load every lazy row as the browser would."""
    body = widget.get("/widget/body", **card)
    assert body.status_code == 200
    result = {}
    for phone in rows(body.data):
        answer = widget.get("/widget/phone", phone=phone, **card)
        assert answer.status_code == 200
        result[phone] = parse(answer.data).find("li", data_phone=phone)
    return result


# ---------------------------------------------------------------- debug page, shell


def test_debug_page_lists_every_demo_card(client):
    page = parse(client.get("/").data)
    links = page.find_all("a", data_entity_type=True)
    kinds = {(a.get("data-entity-type"), a.get("data-entity-id")) for a in links}
    assert {("1", "7"), ("2", "10"), ("3", "1"), ("4", "5"), ("183", "3"), ("31", "1"), ("7", "2")} <= kinds
    deal = page.find("a", data_entity_type="2", data_entity_id="10")
    assert deal.get("href").startswith("/widget?") and deal.get("target") == "card-frame"
    assert page.find("iframe", name="card-frame") is not None


def test_shell_page_configures_htmx_to_show_error_fragments(client):
    answer = client.get("/widget", query_string=DEAL)
    assert answer.status_code == 200
    meta = parse(answer.data).find("meta", name="htmx-config")
    config = json.loads(meta.get("content"))
    assert config["allowEval"] is False and config["allowScriptTags"] is False
    assert {"code": "[45]..", "swap": True, "error": True} in config["responseHandling"]
    assert "frame-ancestors 'self'" in answer.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in answer.headers


def test_bad_card_parameters_answer_400_with_a_message(client):
    answer = client.get("/widget", query_string={"entity_type": "x", "entity_id": "1"})
    assert answer.status_code == 400
    assert "Некорректный запрос" in answer.data.decode()


# ---------------------------------------------------------------- F13 hidden by default


def test_widget_is_hidden_until_asked_and_nothing_is_checked(widget, demo_gateway):
    start = widget.get("/widget/start", **DEAL)
    page = parse(start.data)
    button = page.find("button", data_action="show-widget")
    assert button is not None and button.text == "Отобразить виджет"
    assert page.find("li", data_phone=True) is None
    assert demo_gateway.calls == {}


def test_always_show_skips_the_button(app, widget):
    widget.get("/widget/start", **DEAL)
    set_settings(app, always_show=True)
    page = parse(widget.get("/widget/start", **DEAL).data)
    assert page.find("button", data_action="show-widget") is None
    assert page.find("li", data_phone="+79161234567") is not None


# ---------------------------------------------------------------- F7 phones, F2–F4 description


def test_phones_are_normalised_deduplicated_and_labelled_with_owners(widget):
    found = rows(widget.get("/widget/body", **DEAL).data)
    # Ivan (8 (916) 123-45-67) and Anna (8-916-123-45-67) share one number: one row, two owners.
    assert list(found) == ["+79161234567", "+79031234567", "+79261112233", "+79857654321", "+74951234567"]
    owners = found["+79161234567"].find("span", **{"class": "owner"}).text
    assert "Иван Петров" in owners and "Анна Смирнова" in owners
    assert "ООО «Ромашка»" in found["+74951234567"].text


def test_invalid_entries_are_listed_not_dropped(widget):
    page = parse(widget.get("/widget/body", **DEAL).data)
    invalid = page.find_all("li", data_invalid_phone=True)
    assert [li.get("data-invalid-phone") for li in invalid] == ["12"]
    assert "ООО «Ромашка»" in invalid[0].text
    assert "слишком короткий" in invalid[0].text and "исправьте в карточке" in invalid[0].text


def test_description_shows_region_operator_and_time(widget):
    row = rows(widget.get("/widget/body", **DEAL).data)["+79161234567"]
    assert "Москва" in row.find("span", **{"class": "region"}).text
    assert row.find("span", **{"class": "operator"}).text == "МТС"
    assert "(UTC+3)" in row.find("span", **{"class": "client-time"}).text


COMPANY = {"entity_type": 4, "entity_id": 6}  # Berlin, a German mobile and New York
MOSCOW_LANDLINE = "+74951234567"  # on deal 10; Moscow by its area code, with or without the numbering plan


@pytest.mark.parametrize("when,expected", [
    # Moscow noon: Berlin mid-morning, New York before dawn.
    (NOON, {MOSCOW_LANDLINE: ("12:00", "green"), "+49301234567": ("10:00", "green"), "+12125550100": ("04:00", "red")}),
    # Half past eleven in Moscow: too late there, evening in Berlin, afternoon in New York.
    (LATE, {MOSCOW_LANDLINE: ("23:30", "red"), "+49301234567": ("21:30", "orange"), "+12125550100": ("15:30", "green")}),
], ids=["noon-moscow", "late-moscow"])
def test_client_time_and_light_follow_the_clients_zone(tmp_path, when, expected):
    app = make_app(tmp_path, clock_at=when)
    widget = Widget(app.test_client())
    shown = {**rows(widget.get("/widget/body", **DEAL).data), **rows(widget.get("/widget/body", **COMPANY).data)}
    for phone, (time_text, light) in expected.items():
        assert shown[phone].find("span", **{"class": "client-time"}).text.startswith(time_text), phone
        assert shown[phone].find("span", data_light=True).get("data-light") == light, phone


def test_client_time_does_not_depend_on_the_servers_time_zone(tmp_path, monkeypatch):
    # A server set up in Los Angeles shows a Moscow client's time, not its own.
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        app = make_app(tmp_path, clock_at=LATE)
        row = rows(Widget(app.test_client()).get("/widget/body", **DEAL).data)[MOSCOW_LANDLINE]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert row.find("span", **{"class": "client-time"}).text.startswith("23:30")
    assert row.find("span", data_light=True).get("data-light") == "red"


def test_cap_limits_the_number_of_phones(app, widget):
    widget.get("/widget/start", **DEAL)
    set_settings(app, max_phones=2)
    answer = widget.get("/widget/body", **DEAL)
    assert list(rows(answer.data)) == ["+79161234567", "+79031234567"]
    assert "Показаны первые 2 номеров из 5" in answer.data.decode()


@pytest.mark.parametrize("card,expected", [
    ({"entity_type": 1, "entity_id": 7}, {"+79161234567", "+78005553535"}),
    ({"entity_type": 3, "entity_id": 3}, {"+77012345678"}),
    ({"entity_type": 4, "entity_id": 6}, {"+49301234567", "+4915112345678", "+12125550100"}),
    ({"entity_type": 183, "entity_id": 3}, {"+79161234567", "+79031234567", "+74951234567"}),
    ({"entity_type": 31, "entity_id": 1}, {"+77012345678"}),
    ({"entity_type": 7, "entity_id": 2}, {"+79147001234"}),
])
def test_every_entity_type_gathers_its_phones(widget, card, expected):
    assert set(rows(widget.get("/widget/body", **card).data)) == expected


def test_a_card_without_phones_says_so(widget):
    answer = widget.get("/widget/body", entity_type=1, entity_id=11)
    assert "нет телефонов" in answer.data.decode()


def test_new_card_being_created_shows_no_phones(widget):
    answer = widget.get("/widget/body", entity_type=2, entity_id=0)
    assert answer.status_code == 200 and "Сохраните карточку" in answer.data.decode()


def test_extension_is_kept_apart(widget):
    found = rows(widget.get("/widget/body", entity_type=3, entity_id=8).data)
    assert found["+74951234567"].find("span", **{"class": "ext"}).text == "доб. 123"


# ---------------------------------------------------------------- F1 statuses, F8/F9


def test_first_paint_does_not_wait_for_the_gateway(app, widget, demo_gateway):
    demo_gateway.check_delay = 5.0  # a check would take 5 s
    body = widget.get("/widget/body", **DEAL)
    assert body.status_code == 200
    assert demo_gateway.calls.get("check_exists", 0) == 0
    for li in rows(body.data).values():
        assert li.get("data-whatsapp") == "unknown" and li.get("data-checking") == "true"
        assert li.get("hx-get").startswith("/widget/phone?") and li.get("hx-trigger") == "load"


def test_statuses_and_chat_buttons(widget):
    found = load_rows(widget)
    assert {p: li.get("data-whatsapp") for p, li in found.items()} == {
        "+79161234567": "yes", "+79031234567": "yes", "+79261112233": "yes",
        "+79857654321": "yes", "+74951234567": "yes"}
    ivan = found["+79161234567"]
    # A chat exists on the default line (sales) for Ivan: «Открыть чат», not «Создать чат».
    assert ivan.find("button", data_action="open-chat").text == "Открыть чат"
    assert ivan.find("button", data_action="create-chat") is None
    anna = found["+79261112233"]
    assert anna.find("button", data_action="create-chat").text == "Создать чат"
    labels = {b.text for b in anna.find_all("button")}
    assert {"Написать в чат", "Открыть историю чата", "Открыть приложение"} <= labels


def test_number_without_whatsapp_offers_no_chat(widget):
    found = load_rows(widget, {"entity_type": 4, "entity_id": 6})
    assert found["+49301234567"].get("data-whatsapp") == "no"
    assert found["+49301234567"].find("button") is None
    assert found["+4915112345678"].get("data-whatsapp") == "yes"


def test_chat_started_elsewhere_opens(widget):
    # The support line holds a chat with +79031234567 that the widget never created.
    widget.post("/widget/lines", {"line": "support"}, **DEAL)
    found = load_rows(widget)
    assert found["+79031234567"].find("button", data_action="open-chat") is not None


def test_create_chat_opens_it(widget):
    load_rows(widget)
    answer = widget.post("/widget/chat", phone="+79261112233", line="sales", **DEAL)
    assert answer.status_code == 200
    event = json.loads(answer.headers["HX-Trigger"])["olchat-open-chat"]
    assert event["phone"] == "+79261112233" and event["line"] == "sales"
    row = parse(answer.data).find("li", data_phone="+79261112233")
    assert row.find("button", data_action="open-chat") is not None


def test_a_number_not_on_the_card_cannot_be_checked(widget, demo_gateway):
    answer = widget.get("/widget/phone", phone="+79999999999", **DEAL)
    assert answer.status_code == 404
    assert demo_gateway.calls.get("check_exists", 0) == 0


def test_gateway_down_shows_unknown_not_an_error(app, widget, demo_gateway):
    demo_gateway.fail = {"all"}
    body = widget.get("/widget/body", **DEAL)
    assert body.status_code == 200
    answer = widget.get("/widget/phone", phone="+79161234567", **DEAL)
    assert answer.status_code == 200
    li = parse(answer.data).find("li", data_phone="+79161234567")
    assert li.get("data-whatsapp") == "unknown"
    assert "шлюз недоступен" in li.text
    lines = widget.get("/widget/lines", **DEAL)
    assert lines.status_code == 200 and "Шлюз WhatsApp недоступен" in lines.data.decode()


def test_budget_spent_shows_not_checked(app, widget):
    widget.get("/widget/start", **DEAL)
    set_settings(app, check_budget=1)
    found = load_rows(widget)
    states = [li.find("span", **{"class": "wa-status"}).text for li in found.values()]
    assert states.count("есть WhatsApp") == 1
    assert states.count("не проверен: лимит проверок") == 4


# ---------------------------------------------------------------- F6 lines


def test_lines_show_state_and_a_dead_line_cannot_send(widget):
    page = parse(widget.get("/widget/lines", **DEAL).data)
    options = {o.get("data-line"): o.get("data-status") for o in page.find_all("option", data_line=True)}
    assert options == {"sales": "WORKING", "support": "WORKING", "old": "SCAN_QR_CODE"}
    chosen = parse(widget.post("/widget/lines", {"line": "old"}, **DEAL).data)
    assert chosen.find("option", selected=True).get("data-line") == "old"
    assert "не может отправлять" in chosen.find("p", data_line_health="SCAN_QR_CODE").text
    row = parse(widget.get("/widget/phone", phone="+79161234567", **DEAL).data)
    # Status is still known from memory or unknown, but sending is disabled on a dead line.
    write = row.find("button", data_action="write")
    assert write is None or "disabled" in write.attrs


def test_chosen_line_is_remembered_per_user(app, client):
    admin, operator = Widget(client, "admin"), Widget(client, "operator")
    answer = admin.post("/widget/lines", {"line": "support"}, **DEAL)
    # The phones block follows the new line in the same answer.
    phones = parse(answer.data).find("section", id="olchat-phones")
    assert phones.get("hx-swap-oob") == "true"
    assert all("line=support" in li.get("hx-get", "line=support") for li in phones.find_all("li", data_phone=True))
    assert parse(admin.get("/widget/lines", **DEAL).data).find("option", selected=True).get("data-line") == "support"
    assert parse(operator.get("/widget/lines", **DEAL).data).find("option", selected=True).get("data-line") == "sales"
    with app.app_context():
        assert db.session.scalar(db.select(UserPreference.line_id).filter_by(user_id="1")) == "support"


# ---------------------------------------------------------------- F14 refresh


def test_refresh_reloads_the_card(app, widget, demo_gateway):
    # Re-checking numbers on refresh (only answers older than the portal's age) is tests/test_refresh.py.
    crm = runtime_of(app).demo_crm
    load_rows(widget)
    crm_calls = crm.calls
    widget.get("/widget/body", **DEAL)
    assert crm.calls == crm_calls  # fresh data is served from the cache
    answer = widget.post("/widget/refresh", **DEAL)
    assert answer.status_code == 200 and crm.calls == crm_calls + 1


def test_cache_ttl_is_configuration(tmp_path):
    app = make_app(tmp_path, OLCHAT_CACHE_TTL=0)
    crm = runtime_of(app).demo_crm
    widget = Widget(app.test_client())
    widget.get("/widget/body", **DEAL)
    import time
    time.sleep(1.1)
    widget.get("/widget/body", **DEAL)
    assert crm.calls == 2


# ---------------------------------------------------------------- F15 errors


def test_no_token_gives_the_no_auth_message(client):
    answer = client.get("/widget/body", query_string=DEAL, headers={"HX-Request": "true"})
    assert answer.status_code == 401
    text = answer.data.decode()
    assert "Нет данных авторизации от Битрикс24" in text
    assert "нет прав на приложение" in text and "сервером авторизации" in text


def test_forged_token_is_refused_and_renewable(client):
    answer = client.get("/widget/body", query_string=DEAL,
                        headers={"HX-Request": "true", "X-OLChat-Token": "gAAAAAforged"})
    assert answer.status_code == 401 and answer.headers["X-OLChat-Reauth"] == "1"


@pytest.mark.parametrize("fail,status,text", [
    ("unavailable", 200, "Битрикс24 не отвечает"),
    ("access_denied", 403, "Нет доступа"),
    ("not_found", 404, "Карточка не найдена"),
    ("rate_limited", 429, "временно ограничил запросы"),
])
def test_crm_failures_render_fragments_a_person_can_act_on(app, widget, fail, status, text):
    runtime_of(app).demo_crm.fail = fail
    answer = widget.get("/widget/body", **DEAL)
    assert answer.status_code == status
    page = parse(answer.data)
    block = page.find("div", **{"class": "error-block"})
    assert block is not None and text in block.text
    assert "Traceback" not in answer.data.decode()


def test_unexpected_error_is_a_friendly_500(app, widget, monkeypatch):
    from olchat_widget.widget import service

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "phone_list", broken)
    answer = widget.get("/widget/body", **DEAL)
    assert answer.status_code == 500
    assert "Что-то пошло не так" in answer.data.decode() and "boom" not in answer.data.decode()


# ---------------------------------------------------------------- escaping


def test_names_and_messages_are_escaped(tmp_path):
    data = {
        "portal": {"member_id": "demo", "domain": "demo.bitrix24.ru"},
        "lines": [{"id": "sales", "name": "<i>Продажи</i>", "phone": "+79000000001", "status": "WORKING"}],
        "whatsapp": ["+79161234567"],
        "crm": {"contacts": [{"id": 1, "name": "<script>alert(1)</script>", "phones": ["+79161234567"]}]},
        "chats": [{"line": "sales", "phone": "+79161234567", "messages": [
            {"id": "m1", "from_me": False, "text": "<img src=x onerror=alert(1)>", "timestamp": 1764000000}]}],
    }
    app = make_app(tmp_path, OLCHAT_DEMO_DATA=write_demo(tmp_path, data))
    widget = Widget(app.test_client())
    card = {"entity_type": 3, "entity_id": 1}
    body = widget.get("/widget/body", **card).data.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    widget.get("/widget/phone", phone="+79161234567", **card)
    lines = widget.get("/widget/lines", **card).data.decode()
    assert "<i>" not in lines and "&lt;i&gt;" in lines
    history = widget.get("/widget/history", phone="+79161234567", line="sales", **card).data.decode()
    assert "<img src=x" not in history and "&lt;img src=x onerror=alert(1)&gt;" in history
    assert "hx-disable" in history  # message text never becomes htmx markup


# ---------------------------------------------------------------- English


def test_english_locale(client):
    widget = Widget(client, lang="en")
    page = parse(widget.get("/widget/start", **DEAL).data)
    assert page.find("button", data_action="show-widget").text == "Show widget"
    found = load_rows(widget)
    assert found["+79261112233"].find("button", data_action="create-chat").text == "Create chat"


def test_markup_contract_attributes_mark_only_what_they_promise(widget):
    """data-phone only on phone rows, data-line/data-status only on line options (PRODUCT.md)."""
    load_rows(widget)
    widget.post("/widget/chat", phone="+79261112233", line="sales", **DEAL)
    pages = [widget.get("/widget/body", **DEAL), widget.get("/widget/lines", **DEAL),
             widget.get("/widget/compose", phone=IVAN, line="sales", **DEAL),
             widget.get("/widget/history", phone=IVAN, line="sales", **DEAL),
             widget.get("/app/chat/body", phone=IVAN, line="sales", **DEAL)]
    pages += [widget.get("/widget/phone", phone=p, **DEAL) for p in (IVAN, "+79261112233")]
    for answer in pages:
        page = parse(answer.data)
        assert {n.tag for n in page.find_all(data_phone=True)} <= {"li"}
        assert all(n.get("data-whatsapp") in ("yes", "no", "unknown") for n in page.find_all(data_phone=True))
        assert {n.tag for n in page.find_all(data_line=True)} <= {"option"}
        assert {n.tag for n in page.find_all(data_status=True)} <= {"option"}
        assert all(n.get("data-from-me") in ("true", "false") for n in page.find_all(data_message_id=True))

"""Issue 13, point 3: message templates — the admin's «Шаблоны» section, the send form's picker, filling a
template with the card's values (safely), and an unresolved variable that blocks the send (server side)."""
from __future__ import annotations

import json

import pytest

from olchat_widget.crm.bitrix import BitrixCrm
from olchat_widget.b24 import B24Client
from olchat_widget.models import MessageTemplate, OutgoingMessage, Portal, TemplateUse, db
from tests.clock import NOON
from tests.conftest import Widget, make_app, write_demo
from tests.html import parse
from tests.test_crm_bitrix import DATA as CRM_DATA

DEAL = {"entity_type": 2, "entity_id": 10}
ANNA = "+79261112233"
IVAN = "+79161234567"
DEMO = json.loads(open("olchat_widget/demo_data.json", encoding="utf-8").read())


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, clock_at=NOON)


@pytest.fixture
def admin(client):
    return Widget(client, "admin")


@pytest.fixture
def operator(client):
    return Widget(client, "operator")


def pick(node, tag=None, attrs=None):
    """The first element under ``node`` with ``tag`` and ``attrs`` (True: the attribute is there)."""
    for found in node.iter():
        if tag and found.tag != tag:
            continue
        if all((key in found.attrs) if value is True else found.attrs.get(key) == value
               for key, value in (attrs or {}).items()):
            return found
    return None


def has(node, name) -> bool:
    return name in node.attrs


def field_errors(page) -> dict:
    return {e.get("data-field-error"): e.text for e in page.iter() if "data-field-error" in e.attrs}


def add_template(widget, name, text, category="", visibility="everyone"):
    answer = widget.post("/admin/templates", {"name": name, "category": category, "text": text,
                                              "visibility": visibility})
    assert answer.status_code == 200, answer.data
    return parse(answer.data).find("tr", data_template_name=name).get("data-template")


def ready(widget, phone=ANNA, card=DEAL):
    widget.get("/widget/body", **card)
    assert parse(widget.get("/widget/phone", phone=phone, **card).data).find(
        "li", data_phone=phone).get("data-whatsapp") == "yes"


def compose(widget, phone=ANNA, card=DEAL):
    return parse(widget.get("/widget/compose", phone=phone, line="sales", **card).data).find("form")


def picker_names(form) -> list[str]:
    return [option.get("value") for option in form.find("datalist").find_all("option")]


def fill(widget, name, phone=ANNA, card=DEAL, text="", key="k" * 32):
    answer = widget.post("/widget/template", {"key": key, "phone": phone, "line": "sales", "text": text,
                                              "template_pick": name}, **card)
    assert answer.status_code == 200, answer.data
    return parse(answer.data).find("form")


def send_filled(widget, form, text=None, card=DEAL, **extra):
    """Post the send form as the browser would, with ``text`` as the operator left it."""
    data = {field.get("name"): field.get("value") or "" for field in form.find_all("input", type="hidden")}
    data["unresolved"] = [field.get("value") for field in form.find_all("input", name="unresolved")]
    data["text"] = form.find("textarea").text if text is None else text
    data.update(extra)
    return widget.post("/widget/send", data, **card)


# ---------------------------------------------------------------- the admin's section


def test_admin_creates_edits_and_deletes_a_template_and_the_page_lists_the_variables(admin):
    page = parse(admin.get("/admin/settings/form").data)
    section = page.find("section", id="templates")
    assert section.find("h2").text == "Шаблоны"
    listed = section.find("dl", data_template_variables=True).text
    for variable in ("{{client.name}}", "{{deal.title}}", "{{company.name}}", "{{user.name}}", "{{client.phone}}"):
        assert variable in listed

    template_id = add_template(admin, "Приветствие", "Здравствуйте, {{client.name}}!", category="Общие")
    edit = parse(admin.get(f"/admin/templates/{template_id}/edit").data)
    assert pick(edit, "input", {"name": "name"}).get("value") == "Приветствие"
    assert pick(edit, "textarea", {"name": "text"}).text == "Здравствуйте, {{client.name}}!"

    saved = parse(admin.post(f"/admin/templates/{template_id}", {
        "name": "Приветствие", "category": "Продажи", "text": "Добрый день, {{client.first_name}}!",
        "visibility": "admins"}).data)
    row = saved.find("tr", data_template=template_id)
    assert "Продажи" in row.text and "только администраторам" in row.text
    assert saved.find("p", data_templates_notice=True).text == "Шаблон сохранён"

    gone = parse(admin.post(f"/admin/templates/{template_id}/delete").data)
    assert gone.find("tr", data_template=template_id) is None
    assert "Шаблонов пока нет" in gone.text


def test_a_rejected_template_keeps_the_admins_input_and_says_per_field_what_is_wrong(admin):
    add_template(admin, "Счёт", "Счёт выставлен")
    answer = admin.post("/admin/templates", {"name": "Счёт", "category": "К" * 150,
                                             "text": "Здравствуйте, {{client.nmae}} и {{ oops oops }}",
                                             "visibility": "admins"})
    assert answer.status_code == 422
    page = parse(answer.data)
    errors = field_errors(page)
    assert errors["name"] == "Шаблон с таким названием уже есть"
    assert errors["category"] == "Не длиннее 100 символов"
    assert "{{client.nmae}}" in errors["text"] and "{{ oops oops }}" in errors["text"]
    form = pick(page, "form", {"class": "template-form"})
    assert pick(form, "input", {"name": "category"}).get("value") == "К" * 150
    assert pick(form, "textarea", {"name": "text"}).text == "Здравствуйте, {{client.nmae}} и {{ oops oops }}"
    assert pick(form, "input", {"name": "name"}).get("aria-invalid") == "true"
    assert has(form.find("input", value="admins"), "checked")

    empty = parse(admin.post("/admin/templates", {"name": "  ", "text": "", "visibility": "everyone"}).data)
    errors = field_errors(empty)
    assert errors == {"name": "Введите название шаблона", "text": "Введите текст шаблона"}


def test_only_portal_admins_change_templates(admin, operator, app):
    template_id = add_template(admin, "Общий", "Текст")
    for path, data in (("/admin/templates", {"name": "Мой", "text": "x"}),
                       (f"/admin/templates/{template_id}", {"name": "Чужой", "text": "y"}),
                       (f"/admin/templates/{template_id}/delete", {})):
        assert operator.post(path, data).status_code == 403
    assert operator.get("/admin/templates").status_code == 403
    with app.app_context():
        assert [t.name for t in db.session.scalars(db.select(MessageTemplate))] == ["Общий"]


def test_another_portals_template_is_not_found(admin, app):
    with app.app_context():
        other = Portal(member_id="other-portal", domain="other.bitrix24.ru", kind="bitrix", installed=True)
        db.session.add(other)
        db.session.flush()
        db.session.add(MessageTemplate(portal_id=other.id, name="Чужой", text="Секрет другого портала"))
        db.session.commit()
        foreign_id = db.session.scalar(db.select(MessageTemplate.id).filter_by(name="Чужой"))
    assert admin.get(f"/admin/templates/{foreign_id}/edit").status_code == 404
    assert admin.post(f"/admin/templates/{foreign_id}/delete").status_code == 404
    assert "Чужой" not in admin.get("/admin/settings/form").data.decode()
    ready(admin)
    assert compose(admin).find("datalist") is None  # this portal has no template: no picker at all
    for name in ("Чужой", str(foreign_id)):
        form = fill(admin, name, text="мой текст")
        assert form.find("p", data_notice="error").text == "Такого шаблона нет. Выберите шаблон из списка."
        assert form.find("textarea").text == "мой текст"


# ---------------------------------------------------------------- the picker


def test_picker_puts_the_users_five_latest_first_then_the_rest_a_to_z(admin, operator):
    for name in ("Вишня", "Арбуз", "Банан", "Гранат", "Дыня", "Ежевика", "Жимолость", "Земляника"):
        add_template(admin, name, f"{name}: текст")
    ready(operator)
    assert picker_names(compose(operator)) == ["Арбуз", "Банан", "Вишня", "Гранат", "Дыня", "Ежевика",
                                               "Жимолость", "Земляника"]
    for name in ("Ежевика", "Банан", "Земляника", "Дыня", "Вишня", "Жимолость"):
        fill(operator, name)
    form = compose(operator)
    assert picker_names(form) == ["Жимолость", "Вишня", "Дыня", "Земляника", "Банан",  # latest first
                                  "Арбуз", "Гранат", "Ежевика"]  # the rest A–Z (Ежевика is the sixth latest)
    recent = [o.get("value") for o in form.find("datalist").find_all("option", data_recent=True)]
    assert len(recent) == 5 and "недавний" in form.find("option", value="Жимолость").text
    # Another user's picks do not move this user's list.
    ready(admin)
    assert picker_names(compose(admin))[:3] == ["Арбуз", "Банан", "Вишня"]
    labelled = pick(form, "label", {"for": form.find("input", name="template_pick").get("id")})
    assert labelled.text == "Шаблон"


def test_admin_only_templates_are_hidden_from_other_users_on_the_server_too(admin, operator, app):
    add_template(admin, "Для всех", "Здравствуйте!")
    add_template(admin, "Скидка 30%", "Только для вас: скидка 30%", visibility="admins")
    ready(admin)
    assert picker_names(compose(admin)) == ["Для всех", "Скидка 30%"]
    ready(operator)
    assert picker_names(compose(operator)) == ["Для всех"]
    refused = fill(operator, "Скидка 30%", text="мой черновик")
    assert refused.find("p", data_notice="error").text == "Такого шаблона нет. Выберите шаблон из списка."
    assert refused.find("textarea").text == "мой черновик"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(TemplateUse.id))) == 0


# ---------------------------------------------------------------- filling


def test_picking_fills_the_text_with_this_rows_client_and_the_cards_values(admin, app):
    add_template(admin, "Поставка", "Здравствуйте, {{client.first_name}}! Сделка «{{deal.title}}» "
                                    "({{company.name}}), пишу на {{client.phone}}. {{user.name}}, {{line.name}}")
    ready(admin)
    form = fill(admin, "Поставка")
    assert form.find("textarea").text == ("Здравствуйте, Анна! Сделка «Поставка» (ООО «Ромашка»), пишу на "
                                          "+79261112233. Демо-администратор, Продажи")
    assert pick(form, None, {"data-unresolved-notice": True}) is None
    assert not has(form.find("button", data_action="send"), "disabled")
    ready(admin, IVAN)
    assert fill(admin, "Поставка", IVAN).find("textarea").text.startswith("Здравствуйте, Иван! ")


def test_a_variable_the_card_lacks_is_marked_and_blocks_the_send_until_edited(admin, app):
    add_template(admin, "Лид", "Здравствуйте, {{client.name}}! По заявке «{{lead.title}}».")
    ready(admin)
    form = fill(admin, "Лид")  # a deal card: no lead title
    text = form.find("textarea")
    assert text.text == "Здравствуйте, Анна Смирнова! По заявке «{{lead.title}}»."
    assert text.get("aria-invalid") == "true"
    notice = pick(form, None, {"data-unresolved-notice": True})
    assert [m.text for m in notice.find_all("mark")] == ["{{lead.title}}"]
    assert notice.get("id") in text.get("aria-describedby").split()
    assert has(form.find("button", data_action="send"), "disabled")

    # The server refuses it too (a script, a browser without our JS), keeping the text.
    refused = parse(send_filled(admin, form).data)
    assert "незаполненные переменные шаблона ({{lead.title}})" in refused.find("p", data_notice="error").text
    assert refused.find("textarea").text == text.text
    # Also when the page's own list of open variables is dropped: the server fills the template again.
    stripped = parse(send_filled(admin, form, unresolved=[]).data)
    assert stripped.find("p", data_notice="error") is not None
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(OutgoingMessage.id))) == 0

    edited = parse(send_filled(admin, form, text="Здравствуйте, Анна Смирнова! По заявке о поставке.").data)
    assert edited.find("p", data_notice="ok").text == "Сообщение отправлено"
    # The next message starts clean: no template, nothing open.
    assert pick(edited, "input", {"name": "template"}).get("value") == ""


def test_card_values_stay_literal_text(tmp_path):
    data = json.loads(json.dumps(DEMO))
    data["crm"]["contacts"][1]["name"] = "{{user.name}} <script>alert(1)</script>"
    data["crm"]["companies"][0]["name"] = "{{deal.title}} & Co"
    app = make_app(tmp_path, clock_at=NOON, OLCHAT_DEMO_DATA=write_demo(tmp_path, data))
    admin = Widget(app.test_client())
    add_template(admin, "Имя", "Клиент: {{client.name}}; компания: {{company.name}}")
    ready(admin)
    answer = admin.post("/widget/template", {"key": "k" * 32, "phone": ANNA, "line": "sales", "text": "",
                                             "template_pick": "Имя"}, **DEAL)
    html = answer.data.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    form = parse(answer.data).find("form")
    assert form.find("textarea").text == "Клиент: {{user.name}} <script>alert(1)</script>; компания: {{deal.title}} & Co"
    assert pick(form, None, {"data-unresolved-notice": True}) is None  # values are values, not variables
    sent = parse(send_filled(admin, form).data)
    assert sent.find("p", data_notice="ok").text == "Сообщение отправлено"
    with app.app_context():
        assert db.session.scalar(db.select(OutgoingMessage.text)) == (
            "Клиент: {{user.name}} <script>alert(1)</script>; компания: {{deal.title}} & Co")


def test_braces_typed_by_hand_are_the_operators_text(admin):
    ready(admin)
    form = compose(admin)
    sent = parse(send_filled(admin, form, text="Шаблон Jinja: {{ name }}").data)
    assert sent.find("p", data_notice="ok").text == "Сообщение отправлено"


def test_english_locale(client):
    admin = Widget(client, "admin", lang="en")
    page = parse(admin.get("/admin/settings/form").data)
    assert page.find("section", id="templates").find("h2").text == "Templates"
    assert "Client's name" in page.find("dl", data_template_variables=True).text
    refused = parse(admin.post("/admin/templates", {"name": "", "text": "{{nope}}"}).data)
    errors = field_errors(refused)
    assert errors["name"] == "Enter the template's name" and errors["text"].startswith("Unknown variables: {{nope}}")
    add_template(admin, "Deal", "Hello {{client.first_name}}, about {{lead.title}}")
    ready(admin)
    form = compose(admin)
    assert pick(form, "label", {"for": form.find("input", name="template_pick").get("id")}).text == "Template"
    assert form.find("button", data_action="insert-template").text == "Insert template"
    assert "Show employee name" in form.text and "Create activity" in form.text
    filled = fill(admin, "Deal")
    assert "Not filled:" in pick(filled, None, {"data-unresolved-notice": True}).text
    refused = parse(send_filled(admin, filled).data)
    assert refused.find("p", data_notice="error").text.startswith("The message was not sent")


# ---------------------------------------------------------------- the card's values come from its one fetch


def test_bitrix_cards_carry_the_template_values_in_their_one_batch():
    from tests.fakes.fake_bitrix24 import FakeBitrix24

    with FakeBitrix24(CRM_DATA) as fake:
        crm = BitrixCrm(B24Client(fake.domain, fake.issue_tokens(1)["access_token"], scheme="http"))
        deal = crm.get_card(2, 10)
        assert fake.requests == 1 and fake.log == ["batch"]
        assert deal.names["values"] == {"client.name": "Иван Петров", "client.first_name": "Иван",
                                        "company.name": "ООО «Ромашка»", "deal.title": "Поставка",
                                        "card.title": "Поставка"}
        assert deal.names["people"]["contact:2"] == ["Анна Смирнова", "Анна"]
        lead = crm.get_card(1, 7)
        assert lead.names["values"]["client.name"] == "Олег Лидов"
        assert lead.names["values"]["lead.title"] == "Заявка с сайта"
        assert lead.names["values"]["company.name"] == "Becker GmbH"
        assert fake.requests == 2
        from olchat_widget.crm.base import card_from_dict, card_to_dict

        assert card_from_dict(json.loads(json.dumps(card_to_dict(deal)))).names == deal.names  # the shared cache


def test_a_pick_never_throws_typed_words_away_but_replaces_another_untouched_template(admin):
    add_template(admin, "Привет", "Здравствуйте, {{client.first_name}}!")
    add_template(admin, "Пока", "До свидания, {{client.first_name}}!")
    ready(admin)
    after_draft = admin.post("/widget/template", {"key": "k" * 32, "phone": ANNA, "line": "sales",
                                                  "text": "Уточню сроки и вернусь.", "template_pick": "Привет"}, **DEAL)
    assert "Уточню сроки и вернусь.\n\nЗдравствуйте, Анна!</textarea>" in after_draft.data.decode()
    first = fill(admin, "Привет")
    swapped = admin.post("/widget/template", {"key": "k" * 32, "phone": ANNA, "line": "sales",
                                              "text": first.find("textarea").text, "template_pick": "Пока",
                                              "template": first.find("input", name="template").get("value")}, **DEAL)
    assert parse(swapped.data).find("textarea").text == "До свидания, Анна!"

"""Issue 11, points 5 and 6 over HTTP: what is sent elsewhere shows in Open Lines; «Создать чат» / «Открыть чат».

The served app, the fake portal and the fake WAHA as in test_bridge_e2e.py; the
widget is driven like its frame: a token from /b24/token for a Bitrix24 user,
then the widget's fragments with that token.
"""
from __future__ import annotations

import pytest
import requests

from olchat_widget.models import BridgeMessage, OutgoingMessage, db
from tests.bridge.test_bridge_e2e import IVAN, connect_open_line, served, waha  # noqa: F401 -- fixtures
from tests.fakes.fake_bitrix24 import CONTACT, LEAD
from tests.fakes.fake_waha import SEND_TEXT
from tests.html import parse
from tests.test_b24_app import fake  # noqa: F401 -- the portal fixture

PHONE = "+" + IVAN  # on contact 1, contact 2 and lead 7 of the demo CRM; has WhatsApp on the fake WAHA
CONTACT_CARD = {"entity_type": CONTACT, "entity_id": 1}
LEAD_CARD = {"entity_type": LEAD, "entity_id": 7}
DEAL_CARD = {"entity_type": 2, "entity_id": 10}  # deal «Поставка»: contacts 1 and 2, company 5


class Frame:
    """The widget frame of one Bitrix24 user on one card, over HTTP."""

    def __init__(self, url, fake, card, user_id=2):
        self.url, self.card = url, card
        pair = fake.issue_tokens(user_id)
        answer = requests.post(f"{url}/b24/token", timeout=10, json={
            "access_token": pair["access_token"], "domain": fake.domain, "member_id": fake.member_id,
            "expires_in": 3600, **card})
        assert answer.status_code == 200, answer.text[:300]
        self.headers = {"X-OLChat-Token": answer.json()["token"], "HX-Request": "true"}

    def get(self, path, **params):
        return requests.get(self.url + path, params={**self.card, **params}, headers=self.headers, timeout=10)

    def post(self, path, data=None, **params):
        return requests.post(self.url + path, params={**self.card, **params}, data=data or {},
                             headers=self.headers, timeout=15)

    def row(self, phone=PHONE):
        return parse(self.get("/widget/phone", phone=phone, line="sales").text).find("li", data_phone=phone)

    def compose(self, phone=PHONE):
        self.row(phone)
        return parse(self.get("/widget/compose", phone=phone, line="sales").text).find("form")

    def send(self, text, *, publish=True, phone=PHONE):
        form = self.compose(phone)
        data = {"text": text, "key": form.find("input", name="key").get("value"), "phone": phone,
                "line": "sales"}
        if publish:
            data["publish"] = "1"
        answer = self.post("/widget/send", data)
        assert answer.status_code == 200 and "Сообщение отправлено" in answer.text, answer.text[:500]
        return answer


def chats_of(fake, client=IVAN):
    return [c for c in fake.openline_chats() if c["user_external_id"] == client]


def test_a_widget_send_is_posted_to_the_clients_open_lines_chat_as_the_employee(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Добрый день")  # the client wrote first: their chat exists
    frame = Frame(url, fake, CONTACT_CARD, user_id=2)
    box = frame.compose().find("input", name="publish")
    assert box is not None and "checked" in box.attrs  # «Публиковать в чат», on by default
    assert "Публиковать в чат" in frame.compose().text
    frame.send("Ваш заказ готов")
    [chat] = chats_of(fake)  # one chat: the same user.id / chat.id as the client's own messages
    texts = [(m["author"], m["user_id"], m["text"]) for m in fake.messages_in(chat["CHAT_ID"])]
    assert texts == [("client", None, "Добрый день"), ("employee", 2, "Ваш заказ готов")]
    posted = fake.messages_in(chat["CHAT_ID"])[-1]
    assert posted["external_user"]["phone"] == PHONE and posted["chat_external_id"] == IVAN
    with app.app_context():
        sent = db.session.scalar(db.select(OutgoingMessage))
        assert posted["external_id"] == f"true_{IVAN}@c.us_{sent.message_id}"  # WhatsApp's id of the send


def test_without_publish_nothing_reaches_open_lines(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    Frame(url, fake, CONTACT_CARD).send("Только в WhatsApp", publish=False)
    assert waha.count(SEND_TEXT) == 1
    assert chats_of(fake) == [] and fake.ol_counters["messages"] == 0


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_echo_of_a_send_is_never_posted_twice(served, fake, waha, when):
    app, url = served
    connect_open_line(app, fake, url)
    waha.echo_sends = when  # WAHA posts message.any (fromMe, source api) before / after answering the send
    Frame(url, fake, CONTACT_CARD).send("Эхо")
    [chat] = chats_of(fake)
    assert [m["text"] for m in fake.messages_in(chat["CHAT_ID"])] == ["Эхо"]
    # An operator's reply from Open Lines comes back as an echo too: it must not return into the chat.
    fake.operator_reply(chat, "Ответ оператора", user_id=1)
    assert waha.count(SEND_TEXT) == 2
    texts = [m["text"] for m in fake.messages_in(chat["CHAT_ID"])]
    assert texts[0] == "Эхо" and len(texts) == 2 and texts[1].endswith("Ответ оператора")


def test_a_message_typed_on_the_phone_appears_in_the_chat(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Когда доставка?")
    typed = waha.phone_writes("sales", IVAN, "Завтра до обеда")
    waha.post_event("sales", "message.any", typed["payload"])  # WAHA delivered it twice
    [chat] = chats_of(fake)
    messages = fake.messages_in(chat["CHAT_ID"])
    assert [(m["author"], m["text"]) for m in messages] == [
        ("client", "Когда доставка?"), ("system", "Отправлено с телефона: Завтра до обеда")]


def test_a_failing_portal_never_breaks_the_send_and_the_post_is_retried(served, fake, waha):
    from olchat_widget.bridge.mirror import sweep

    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Привет")
    fake.fail_method("imconnector.send.messages", "INTERNAL_SERVER_ERROR", "down", status=500, count=None)
    Frame(url, fake, CONTACT_CARD).send("Несмотря ни на что")
    assert waha.count(SEND_TEXT) == 1
    fake._method_faults.clear()
    with app.app_context():
        [row] = db.session.scalars(db.select(BridgeMessage).filter_by(direction="mirror")).all()
        assert row.status == "queued"
        app.extensions["olchat_clock"].advance(60)
        assert sweep() == 1
    [chat] = chats_of(fake)
    assert [m["text"] for m in fake.messages_in(chat["CHAT_ID"])] == ["Привет", "Несмотря ни на что"]


def test_create_chat_starts_the_open_lines_chat_bound_to_this_card_and_opens_it(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    frame = Frame(url, fake, CONTACT_CARD, user_id=2)
    button = frame.row().find("button", data_action="create-chat")
    assert button is not None and button.text.strip() == "Создать чат"
    answer = frame.post("/widget/chat", {"phone": PHONE, "line": "sales"})
    assert answer.status_code == 200, answer.text[:300]
    [chat] = chats_of(fake)
    assert chat["chat_external_id"] == IVAN and chat["user_code"] == f"olchat_whatsapp|3|{IVAN}|{IVAN}"
    assert chat["crm"] == {"entity_type": "contact", "entity_id": 1}  # this card, not a new or another lead
    assert chat["lead_created"] is None
    # The frame opens it in the messenger: BX24.im.openMessenger('chat' + id) in widget.js.
    trigger = answer.headers["HX-Trigger"]
    assert f'"b24_chat": "{chat["CHAT_ID"]}"' in trigger
    assert f"IM_LINES=chat{chat['CHAT_ID']}" in answer.text  # a link where no frame can open it
    opened = parse(answer.text).find("button", data_action="open-chat")
    assert opened.get("data-b24-chat") == str(chat["CHAT_ID"])
    # The client's reply lands in that very chat.
    waha.client_writes("sales", IVAN, "Спасибо, получил")
    assert len(chats_of(fake)) == 1
    assert fake.messages_in(chat["CHAT_ID"])[-1]["text"] == "Спасибо, получил"
    # Pressed again: the same chat, nothing new in Bitrix24.
    before = fake.ol_counters["messages"]
    again = frame.post("/widget/chat", {"phone": PHONE, "line": "sales"})
    assert f'"b24_chat": "{chat["CHAT_ID"]}"' in again.headers["HX-Trigger"]
    assert fake.ol_counters["messages"] == before


def test_open_chat_opens_the_chat_bound_to_another_card(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Я по поводу заявки")  # the tracker binds it to lead 7 (same phone)
    [chat] = chats_of(fake)
    assert chat["crm"] == {"entity_type": "lead", "entity_id": 7}
    button = Frame(url, fake, CONTACT_CARD).row().find("button", data_action="open-chat")
    assert button is not None and button.text.strip() == "Открыть чат"
    assert button.get("data-b24-chat") == str(chat["CHAT_ID"])
    # The first paint of the card shows it too, without asking anybody.
    body = parse(Frame(url, fake, LEAD_CARD).get("/widget/body").text)
    row = body.find("li", data_phone=PHONE)
    assert row.find("button", data_action="open-chat").get("data-b24-chat") == str(chat["CHAT_ID"])


def test_create_chat_finds_a_chat_bitrix24_has_but_we_never_stored(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Алло")
    [chat] = chats_of(fake)
    with app.app_context():  # our mapping is lost (a restored backup, say)
        db.session.execute(db.delete(BridgeMessage))
        db.session.commit()
    frame = Frame(url, fake, CONTACT_CARD)
    assert frame.row().find("button", data_action="create-chat") is not None
    answer = frame.post("/widget/chat", {"phone": PHONE, "line": "sales"})
    assert f'"b24_chat": "{chat["CHAT_ID"]}"' in answer.headers["HX-Trigger"]  # imopenlines.session.open
    assert len(chats_of(fake)) == 1 and fake.messages_in(chat["CHAT_ID"])[-1]["text"] == "Алло"


def test_lines_without_an_open_line_keep_todays_behaviour(served, fake, waha):
    app, url = served
    frame = Frame(url, fake, CONTACT_CARD)
    assert frame.compose().find("input", name="publish") is None
    answer = frame.post("/widget/chat", {"phone": PHONE, "line": "sales"})
    assert answer.status_code == 200 and "b24_chat" not in answer.headers["HX-Trigger"]
    frame.send("Без Открытых линий")
    assert fake.ol_counters["messages"] == 0 and fake.openline_chats() == []
    # A phone-typed message on an unbound line goes nowhere either.
    waha.phone_writes("sales", IVAN, "С телефона")
    assert fake.openline_chats() == []


def test_a_send_to_a_client_without_a_chat_starts_the_chat_their_reply_reaches(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    Frame(url, fake, CONTACT_CARD, user_id=2).send("Напоминаем о встрече")
    waha.client_writes("sales", IVAN, "Буду")
    [chat] = chats_of(fake)  # not a second chat (and a duplicate lead) for the reply
    assert [(m["author"], m["text"]) for m in fake.messages_in(chat["CHAT_ID"])] == [
        ("employee", "Напоминаем о встрече"), ("client", "Буду")]
    assert fake.ol_counters["chats"] == 1


def test_create_chat_on_a_deal_binds_the_chat_to_the_contact_whose_number_it_is(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    answer = Frame(url, fake, DEAL_CARD).post("/widget/chat", {"phone": PHONE, "line": "sales"})
    [chat] = chats_of(fake)
    assert f'"b24_chat": "{chat["CHAT_ID"]}"' in answer.headers["HX-Trigger"]
    # Deals have no messenger field: the deal's contact with this number (Иван Петров) gets the address.
    assert chat["crm"] == {"entity_type": "contact", "entity_id": 1} and chat["lead_created"] is None
    assert [a["VALUE"] for a in fake.messenger_addresses(CONTACT, 1)] == [f"imol|{chat['user_code']}"]


def test_a_form_that_comes_back_keeps_the_operators_choice(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    frame = Frame(url, fake, CONTACT_CARD)
    key = frame.compose().find("input", name="key").get("value")
    back = parse(frame.post("/widget/send", {"text": "  ", "key": key, "phone": PHONE, "line": "sales"}).text)
    assert back.find("p", data_notice="error").text == "Введите текст сообщения"
    box = back.find("input", name="publish")
    assert box is not None and "checked" not in box.attrs  # unticked stays unticked
    ticked = parse(frame.post("/widget/send", {"text": "", "key": key, "phone": PHONE, "line": "sales",
                                               "publish": "1"}).text).find("input", name="publish")
    assert "checked" in ticked.attrs

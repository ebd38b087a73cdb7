"""F10 send, F11 history, F12 app view, B6 send-time guard."""
from __future__ import annotations

import threading

import pytest

from olchat_widget.gateway.base import GatewayTimeout
from olchat_widget.models import OutgoingMessage, db
from tests.clock import LATE, NOON, moscow
from tests.conftest import Widget, make_app
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}
ANNA = "+79261112233"
IVAN = "+79161234567"


@pytest.fixture
def app(tmp_path):
    # Noon in Moscow: these tests are about sending, and every client here can be written to.
    return make_app(tmp_path, clock_at=NOON)


def ready(widget, phone=ANNA):
    """Open the widget and let the row check its number, as the browser would."""
    widget.get("/widget/body", **DEAL)
    assert parse(widget.get("/widget/phone", phone=phone, **DEAL).data).find(
        "li", data_phone=phone).get("data-whatsapp") == "yes"


def compose(widget, phone=ANNA):
    form = parse(widget.get("/widget/compose", phone=phone, line="sales", **DEAL).data).find("form")
    return form.find("input", name="key").get("value")


def send(widget, text, key, phone=ANNA, **extra):
    data = {"text": text, "key": key, "phone": phone, "line": "sales", **extra}
    return widget.post("/widget/send", data, **DEAL)


def history_ids(widget, phone, **params):
    page = parse(widget.get("/widget/history", phone=phone, line="sales", **DEAL, **params).data)
    return [li.get("data-message-id") for li in page.find_all("li", data_message_id=True)], page


def test_send_reaches_the_client_and_clears_the_form(widget, demo_gateway):
    ready(widget)
    key = compose(widget)
    answer = send(widget, "Добрый день! Счёт отправлен.", key)
    page = parse(answer.data)
    assert page.find("p", data_notice="ok").text == "Сообщение отправлено"
    assert page.find("textarea").text == ""
    assert page.find("input", name="key").get("value") != key
    assert "olchat-message-sent" in answer.headers["HX-Trigger"]
    assert demo_gateway.calls["send_text"] == 1
    ids, history = history_ids(widget, ANNA)
    last = history.find_all("li", data_message_id=True)[-1]
    assert last.get("data-from-me") == "true" and "Счёт отправлен" in last.text


def test_double_click_sends_once(widget, demo_gateway):
    ready(widget)
    key = compose(widget)
    first = send(widget, "Один раз", key)
    second = send(widget, "Один раз", key)
    assert demo_gateway.calls["send_text"] == 1
    assert parse(second.data).find("p", data_notice="ok") is not None
    assert parse(first.data).find("p", data_notice="ok") is not None


def test_concurrent_duplicates_send_once(app, client, demo_gateway):
    widget = Widget(client)
    ready(widget)
    key = compose(widget)
    demo_gateway.delay = 0.2  # the first send is still in flight when the others arrive
    results = []

    def press():
        with app.test_client() as c:
            answer = c.post("/widget/send", query_string=DEAL, headers=widget.headers(),
                            data={"text": "Только одно", "key": key, "phone": ANNA, "line": "sales"})
            results.append((answer.status_code, parse(answer.data).find("p", data_notice=True).get("data-notice")))

    threads = [threading.Thread(target=press) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert demo_gateway.calls["send_text"] == 1
    assert results == [(200, "ok")] * 8
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(OutgoingMessage.id))) == 1


def test_failure_keeps_the_typed_text_and_says_why(widget, demo_gateway):
    ready(widget)
    key = compose(widget)
    demo_gateway.fail = {"send_text"}
    answer = send(widget, "Важный текст, не потеряйте", key)
    page = parse(answer.data)
    assert page.find("textarea").text == "Важный текст, не потеряйте"
    notice = page.find("p", data_notice="error")
    assert "не отправлено" in notice.text and "недоступен" in notice.text
    # The next press is a new attempt, and it goes out.
    demo_gateway.fail = set()
    retry = send(widget, "Важный текст, не потеряйте", page.find("input", name="key").get("value"))
    assert parse(retry.data).find("p", data_notice="ok") is not None
    assert demo_gateway.calls["send_text"] == 2


def test_timeout_is_unknown_and_a_retry_reconciles_instead_of_resending(app, widget, demo_gateway, monkeypatch):
    ready(widget)
    key = compose(widget)
    real_send = demo_gateway.send_text

    def send_then_time_out(*args, **kwargs):
        real_send(*args, **kwargs)  # it went out...
        raise GatewayTimeout("read timed out")  # ...but we never heard back

    monkeypatch.setattr(demo_gateway, "send_text", send_then_time_out)
    first = parse(send(widget, "Дошло?", key).data)
    assert first.find("p", data_notice="warning") is not None
    assert first.find("textarea").text == "Дошло?"
    assert first.find("input", name="key").get("value") == key  # same key: a retry reconciles
    monkeypatch.setattr(demo_gateway, "send_text", real_send)
    sends_before = demo_gateway.calls.get("send_text", 0)
    retry = parse(send(widget, "Дошло?", key).data)
    assert retry.find("p", data_notice="ok") is not None
    assert demo_gateway.calls.get("send_text", 0) == sends_before  # found by id, not sent again
    ids, _ = history_ids(widget, ANNA)
    with app.app_context():
        row = db.session.scalar(db.select(OutgoingMessage))
        assert row.status == "sent" and ids.count(row.message_id) == 1


def test_empty_and_too_long_messages_are_refused_with_the_text_kept(widget, demo_gateway):
    ready(widget)
    key = compose(widget)
    assert "Введите текст" in send(widget, "   ", key).data.decode()
    long_text = "я" * 4097
    page = parse(send(widget, long_text, key).data)
    assert "длиннее 4096" in page.find("p", data_notice="error").text
    assert page.find("textarea").text == long_text
    assert demo_gateway.calls.get("send_text", 0) == 0


# ---------------------------------------------------------------- B6: the client's clock at send time


def at(app, when):
    """Move the app's clock to ``when`` (Moscow), as if the operator came back then."""
    app.extensions["olchat_clock"].set(when)


def test_at_noon_in_moscow_a_send_goes_out_without_a_question(app, client, demo_gateway):
    at(app, moscow(12, 0))
    widget = Widget(client)  # opened now: a widget token lives minutes, not hours
    ready(widget)
    page = parse(send(widget, "Днём", compose(widget)).data)
    assert page.find("p", data_notice="ok").text == "Сообщение отправлено"
    assert page.find("p", data_notice="warning") is None
    assert demo_gateway.calls["send_text"] == 1


def test_at_half_past_eleven_in_moscow_a_send_asks_first_and_the_text_stays(app, client, demo_gateway):
    at(app, LATE)
    widget = Widget(client)  # opened now: a widget token lives minutes, not hours
    ready(widget)
    ask = parse(send(widget, "Поздно, но срочно", compose(widget)).data)
    warning = ask.find("p", data_notice="warning")
    assert "23:30" in warning.text  # the client's time is named, not just "late"
    assert ask.find("button", data_action="send").text == "Всё равно отправить"
    assert ask.find("textarea").text == "Поздно, но срочно"
    assert demo_gateway.calls.get("send_text", 0) == 0


def test_a_confirmed_late_send_goes_out_once(app, client, demo_gateway):
    at(app, LATE)
    widget = Widget(client)  # opened now: a widget token lives minutes, not hours
    ready(widget)
    key = compose(widget)
    ask = parse(send(widget, "Поздно", key).data)
    assert ask.find("input", name="key").get("value") == key  # the confirmation is the same message
    done = parse(send(widget, "Поздно", key, confirm="1").data)
    assert done.find("p", data_notice="ok") is not None
    assert demo_gateway.calls["send_text"] == 1
    ids, history = history_ids(widget, ANNA)
    last = history.find_all("li", data_message_id=True)[-1]
    assert "Поздно" in last.text and "02.12.2026 23:3" in last.find("time").text


def test_a_double_clicked_confirmation_still_sends_once(app, client, demo_gateway):
    at(app, LATE)
    widget = Widget(client)  # opened now: a widget token lives minutes, not hours
    ready(widget)
    key = compose(widget)
    send(widget, "Поздно", key)
    demo_gateway.delay = 0.2  # the first confirmation is still in flight when the second arrives
    results = []

    def confirm():
        with app.test_client() as c:
            answer = c.post("/widget/send", query_string=DEAL, headers=widget.headers(),
                            data={"text": "Поздно", "key": key, "phone": ANNA, "line": "sales", "confirm": "1"})
            results.append(parse(answer.data).find("p", data_notice=True).get("data-notice"))

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["ok", "ok"]
    assert demo_gateway.calls["send_text"] == 1
    # A third press after both answered is still the same message.
    assert parse(send(widget, "Поздно", key, confirm="1").data).find("p", data_notice="ok") is not None
    assert demo_gateway.calls["send_text"] == 1


def test_the_question_follows_the_clock_not_the_form_age(app, client, demo_gateway):
    # The form was opened in the evening, the operator pressed send after 22:00 Moscow.
    at(app, moscow(21, 55))
    widget = Widget(client)  # opened now: a widget token lives minutes, not hours
    ready(widget)
    key = compose(widget)
    at(app, moscow(22, 5))
    ask = parse(send(widget, "Уже поздно", key).data)
    assert ask.find("p", data_notice="warning") is not None
    assert demo_gateway.calls.get("send_text", 0) == 0


def test_send_to_a_dead_line_says_so(widget, demo_gateway):
    ready(widget)
    key = compose(widget)
    answer = widget.post("/widget/send", {"text": "x", "key": key, "phone": ANNA, "line": "old"}, **DEAL)
    text = answer.data.decode()
    assert "Линия WhatsApp не работает" in text or "не подключена" in text
    assert demo_gateway.calls.get("send_text", 0) == 0


def test_send_without_a_key_is_refused(widget):
    ready(widget)
    answer = widget.post("/widget/send", {"text": "x", "phone": ANNA, "line": "sales"}, **DEAL)
    assert answer.status_code == 400


def test_history_newest_last_with_older_pages(widget, demo_gateway):
    # The support line's chat with +79031234567 has 46 messages.
    widget.post("/widget/lines", {"line": "support"}, **DEAL)
    ready(widget, "+79031234567")
    page = parse(widget.get("/widget/history", phone="+79031234567", line="support", **DEAL).data)
    messages = page.find_all("li", data_message_id=True)
    assert len(messages) == 20
    assert messages[-1].get("data-message-id") == "s-last"
    last = messages[-1]
    assert last.get("data-from-me") == "true" and last.find("span", data_ack="DEVICE").text == "доставлено"
    older = page.find("button", data_action="older")
    assert older.text == "Показать более ранние" and "offset=20" in older.get("hx-get")
    second = parse(widget.get("/widget/history", phone="+79031234567", line="support", offset=20, **DEAL).data)
    second_ids = [li.get("data-message-id") for li in second.find_all("li", data_message_id=True)]
    assert len(second_ids) == 20 and not set(second_ids) & {m.get("data-message-id") for m in messages}
    third = parse(widget.get("/widget/history", phone="+79031234567", line="support", offset=40, **DEAL).data)
    assert len(third.find_all("li", data_message_id=True)) == 6
    assert third.find("button", data_action="older") is None


def test_history_of_a_number_without_whatsapp_is_refused(widget):
    widget.get("/widget/body", entity_type=4, entity_id=6)
    answer = widget.get("/widget/history", phone="+49301234567", line="sales", entity_type=4, entity_id=6)
    assert answer.status_code == 409 and "нет WhatsApp" in answer.data.decode()


def test_app_chat_view_shows_history_and_form(client, widget):
    ready(widget, IVAN)
    shell = parse(client.get("/app/chat", query_string={"phone": IVAN, "line": "sales", **DEAL}).data)
    assert shell.find("body").get("data-view") == "chat"
    body = parse(widget.get("/app/chat/body", phone=IVAN, line="sales", **DEAL).data)
    assert body.find("form", **{"class": "compose"}) is not None
    assert "/widget/history?" in body.find("div", **{"class": "panel"}).get("hx-get")


def test_a_send_abandoned_by_a_dead_worker_is_settled_not_stuck(app, widget, demo_gateway):
    from datetime import timedelta

    from olchat_widget.models import Portal, utcnow

    ready(widget)
    with app.app_context():
        portal_id = db.session.scalar(db.select(Portal.id))
        # A worker wrote the row, got an id, and died before it could send.
        db.session.add(OutgoingMessage(portal_id=portal_id, idempotency_key="k-dead", line_id="sales",
                                       phone=ANNA, chat_id="79261112233@c.us", text="Осиротевшее",
                                       message_id="true_dead_1", status="pending",
                                       updated_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
    answer = parse(send(widget, "Осиротевшее", "k-dead").data)
    assert answer.find("p", data_notice="ok") is not None
    assert demo_gateway.calls["send_text"] == 1  # looked up (not found), then sent once

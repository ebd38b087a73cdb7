"""Issue 13, points 4 and 5: «Показывать имя сотрудника» (remembered per user, the send stays idempotent) and
«Создавать дело» (one record in the card's timeline per sent message, posted by a job to the fake Bitrix24
over HTTP, retried with backoff, never doubled, never slowing or risking the WhatsApp send)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from olchat_widget.jobs import queue_of
from olchat_widget.models import OutgoingMessage, Portal, TimelineRecord, db
from olchat_widget.widget import timeline
from tests.clock import NOON
from tests.conftest import Widget, make_app
from tests.fakes.fake_waha import SEND_TEXT, FakeWaha
from tests.html import parse
from tests.test_b24_app import DEMO, B24Widget, install
from tests.fakes.fake_bitrix24 import FakeBitrix24

DEAL = {"entity_type": 2, "entity_id": 10}
ANNA = "+79261112233"
IVAN = "+79161234567"


def checked(form, flag) -> bool:
    box = form.find("input", **{f"data_{flag}": True})
    return box is not None and "checked" in box.attrs


def ready(widget, phone, card=DEAL):
    widget.get("/widget/body", **card)
    assert parse(widget.get("/widget/phone", phone=phone, **card).data).find(
        "li", data_phone=phone).get("data-whatsapp") == "yes"


def compose(widget, phone, card=DEAL):
    return parse(widget.get("/widget/compose", phone=phone, line="sales", **card).data).find("form")


def send(widget, phone, text, key, card=DEAL, **extra):
    data = {"text": text, "key": key, "phone": phone, "line": "sales", "show_name_offered": "1", **extra}
    return parse(widget.post("/widget/send", data, **card).data).find("form")


# ---------------------------------------------------------------- «Показывать имя сотрудника» (demo portal)


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, clock_at=NOON)


def test_show_name_sends_the_employees_name_first_and_is_remembered_per_user(app, client, demo_gateway):
    admin, operator = Widget(client, "admin"), Widget(client, "operator")
    ready(admin, ANNA)
    form = compose(admin, ANNA)
    assert not checked(form, "show_name")
    after = send(admin, ANNA, "Счёт отправлен", form.find("input", name="key").get("value"), show_name="1")
    assert after.find("p", data_notice="ok").text == "Сообщение отправлено"
    assert checked(after, "show_name")  # the next message of this form goes out the same way
    with app.app_context():
        assert db.session.scalar(db.select(OutgoingMessage.text)) == "*Демо-администратор*:\nСчёт отправлен"
    history = parse(admin.get("/widget/history", phone=ANNA, line="sales", **DEAL).data)
    assert "*Демо-администратор*:" in history.find_all("li", data_message_id=True)[-1].text
    assert checked(compose(admin, ANNA), "show_name")  # remembered for this user
    ready(operator, ANNA)
    assert not checked(compose(operator, ANNA), "show_name")  # not for another

    # Unticked and sent: remembered off.
    send(admin, ANNA, "Без имени", compose(admin, ANNA).find("input", name="key").get("value"))
    assert not checked(compose(admin, ANNA), "show_name")


def test_the_outbox_key_alone_decides_a_repeat_whatever_the_box_says(app, client, demo_gateway):
    admin = Widget(client, "admin")
    ready(admin, ANNA)
    key = compose(admin, ANNA).find("input", name="key").get("value")
    send(admin, ANNA, "Один раз", key, show_name="1")
    again = send(admin, ANNA, "Один раз", key)  # a late second press, the box unticked meanwhile
    assert again.find("p", data_notice="ok") is not None
    assert demo_gateway.calls["send_text"] == 1
    with app.app_context():
        assert db.session.scalars(db.select(OutgoingMessage.text)).all() == ["*Демо-администратор*:\nОдин раз"]


def test_a_text_that_fits_only_without_the_name_is_refused_and_kept(app, client, demo_gateway):
    admin = Widget(client, "admin")
    ready(admin, ANNA)
    text = "я" * 4090
    refused = send(admin, ANNA, text, compose(admin, ANNA).find("input", name="key").get("value"), show_name="1")
    assert refused.find("p", data_notice="error").text == (
        "Вместе с именем сотрудника текст длиннее 4096 символов. Сократите его на 16.")
    assert refused.find("textarea").text == text
    assert demo_gateway.calls.get("send_text", 0) == 0


def test_english_labels(client):
    admin = Widget(client, "admin", lang="en")
    ready(admin, ANNA)
    form = compose(admin, ANNA)
    assert "Show employee name" in form.find("input", data_show_name=True).parent.text
    assert "Create activity" in form.find("input", data_timeline=True).parent.text


# ---------------------------------------------------------------- «Создавать дело» (a Bitrix24 portal)


@pytest.fixture
def fake():
    with FakeBitrix24(DEMO["crm"]) as portal:
        yield portal


@pytest.fixture
def waha():
    with FakeWaha() as server:
        yield server


def b24_app(tmp_path, fake, waha, **jobs):
    app = make_app(tmp_path, clock_at=NOON, OLCHAT_B24_CLIENT_ID=fake.client_id,
                   OLCHAT_B24_CLIENT_SECRET=fake.client_secret, OLCHAT_B24_OAUTH_URL=fake.url,
                   OLCHAT_B24_SCHEME="http", OLCHAT_B24_TIMEOUT=3.0, OLCHAT_GATEWAY="waha", OLCHAT_WAHA_URL=waha.url,
                   OLCHAT_WAHA_API_KEY=waha.api_key, OLCHAT_WAHA_PORTALS=fake.member_id, **jobs)
    install(app.test_client(), fake)
    return app


@pytest.fixture
def portal_app(tmp_path, fake, waha):
    return b24_app(tmp_path, fake, waha, OLCHAT_JOBS_IMMEDIATE=True)


def operator_sends(app, fake, text, *, timeline_box=True, key=None, user_id=2):
    widget = B24Widget(app.test_client(), fake, user_id=user_id)
    ready(widget, IVAN)
    form = compose(widget, IVAN)
    key = key or form.find("input", name="key").get("value")
    extra = {"timeline": "1"} if timeline_box else {}
    return widget, key, send(widget, IVAN, text, key, **extra)


def test_a_send_with_create_activity_leaves_one_comment_in_the_cards_timeline(portal_app, fake, waha):
    widget, key, after = operator_sends(portal_app, fake, "Счёт №5 отправлен на почту")
    assert after.find("p", data_notice="ok").text == "Сообщение отправлено"
    [comment] = fake.timeline
    assert (comment["ENTITY_TYPE"], comment["ENTITY_ID"], comment["AUTHOR_ID"]) == ("deal", 10, 2)
    assert comment["COMMENT"] == ("Отправлено сообщение WhatsApp\nЛиния: sales (+7 911 111-11-11)\n"
                                  "Номер: +7 916 123-45-67\nОтправил: Оператор Первый\nТекст:\nСчёт №5 отправлен на почту")
    # A second press of the same form: one WhatsApp message, one record.
    send(widget, IVAN, "Счёт №5 отправлен на почту", key, timeline="1")
    assert waha.count(SEND_TEXT) == 1 and len(fake.timeline) == 1
    with portal_app.app_context():
        [record] = db.session.scalars(db.select(TimelineRecord)).all()
        assert record.status == "posted" and record.b24_id == str(comment["ID"])


def test_without_the_box_nothing_is_recorded_and_the_portal_default_ticks_it(portal_app, fake, waha):
    operator_sends(portal_app, fake, "Без записи", timeline_box=False)
    assert waha.count(SEND_TEXT) == 1 and fake.timeline == []
    admin = B24Widget(portal_app.test_client(), fake, user_id=1)
    ready(admin, IVAN)
    assert not checked(compose(admin, IVAN), "timeline")
    settings = parse(admin.get("/admin/settings/form").data)
    fields = {field.get("name"): field.get("value") for field in settings.find("form").find_all("input")
              if field.get("type") not in ("checkbox",) and field.get("name")}
    saved = admin.post("/admin/settings/form", dict(fields, auto_show="1", timeline_default="1"))
    assert saved.status_code == 200, saved.data
    assert checked(compose(admin, IVAN), "timeline")


def test_bitrix24_down_the_send_is_done_and_the_record_follows_once_it_is_back(portal_app, fake, waha):
    fake.fail_method("crm.timeline.comment.add", "INTERNAL_SERVER_ERROR", "Internal error", 500, count=1)
    _widget, _key, after = operator_sends(portal_app, fake, "Отправлено при сбое портала")
    assert after.find("p", data_notice="ok").text == "Сообщение отправлено"
    assert waha.count(SEND_TEXT) == 1 and fake.timeline == []
    with portal_app.app_context():
        record = db.session.scalar(db.select(TimelineRecord))
        assert (record.status, record.attempts) == ("queued", 1)
        portal_app.extensions["olchat_clock"].advance(120)
        assert timeline.sweep() == 1  # the minute's sweep takes what the job's retries left
        assert db.session.scalar(db.select(TimelineRecord.status)) == "posted"
        assert timeline.sweep() == 0
    assert len(fake.timeline) == 1 and waha.count(SEND_TEXT) == 1


def test_an_answer_lost_after_bitrix24_took_the_comment_does_not_make_a_second_one(portal_app, fake, waha):
    fake.lose_answers["crm.timeline.comment.add"] = 1  # Bitrix24 stored it; a proxy lost the answer (502)
    operator_sends(portal_app, fake, "Ответ потерялся")
    assert len(fake.timeline) == 1
    with portal_app.app_context():
        record = db.session.scalar(db.select(TimelineRecord))
        assert record.status == "queued" and record.maybe_posted
        portal_app.extensions["olchat_clock"].advance(120)
        timeline.sweep()
        db.session.expire_all()  # the job ran in an app context (and a session) of its own
        record = db.session.scalar(db.select(TimelineRecord))
        assert record.status == "posted" and record.b24_id == str(fake.timeline[0]["ID"])
    assert len(fake.timeline) == 1
    assert fake.calls.count("crm.timeline.comment.list") == 1  # looked up once, not posted again


def test_a_card_bitrix24_refuses_for_good_is_not_retried(portal_app, fake, waha):
    fake.fail_method("crm.timeline.comment.add", "ACCESS_DENIED", "Access denied", 403)
    _widget, _key, after = operator_sends(portal_app, fake, "Нет прав на карточку")
    assert after.find("p", data_notice="ok") is not None and waha.count(SEND_TEXT) == 1
    with portal_app.app_context():
        assert db.session.scalar(db.select(TimelineRecord.status)) == "failed"
        portal_app.extensions["olchat_clock"].advance(120)
        assert timeline.sweep() == 0


def test_on_the_queue_the_job_retries_with_backoff_and_posts_once(tmp_path, fake, waha):
    app = b24_app(tmp_path, fake, waha, OLCHAT_JOBS_IMMEDIATE=False, OLCHAT_JOB_RETRY_DELAY=0.2)
    fake.fail_method("crm.timeline.comment.add", "INTERNAL_SERVER_ERROR", "Internal error", 500, count=2)
    _widget, _key, after = operator_sends(app, fake, "Через очередь")
    assert after.find("p", data_notice="ok") is not None  # answered before anything reached the timeline
    assert fake.timeline == []
    consumer = queue_of(app).create_consumer(workers=1, worker_type="thread", periodic=False)
    consumer.start()
    try:
        deadline = time.monotonic() + 15
        while not fake.timeline and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        consumer.stop(graceful=True)
    assert len(fake.timeline) == 1 and waha.count(SEND_TEXT) == 1
    with app.app_context():
        record = db.session.scalar(db.select(TimelineRecord))
        assert (record.status, record.attempts) == ("posted", 3)  # the first try and two retries


def test_uninstall_deletes_the_portals_templates_and_records(portal_app, fake, waha):
    operator_sends(portal_app, fake, "Запись")
    admin = B24Widget(portal_app.test_client(), fake, user_id=1)
    assert admin.post("/admin/templates", {"name": "Шаблон", "text": "Текст"}).status_code == 200
    client = portal_app.test_client()
    assert client.post("/b24/events", data={"event": "ONAPPUNINSTALL", "auth[member_id]": fake.member_id,
                                            "auth[application_token]": "app-token-1"}).status_code == 200
    from olchat_widget.models import MessageTemplate, TemplateUse

    with portal_app.app_context():
        assert db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id)) is None
        for model in (MessageTemplate, TemplateUse, TimelineRecord):
            assert db.session.scalar(db.select(db.func.count(model.id))) == 0


def ack(app, message_id: str, value: int):
    """WAHA's message.ack for our send, as the deployment's WAHA posts it."""
    answer = app.test_client().post("/waha/webhook", json={
        "event": "message.ack", "session": "sales", "payload": {"id": message_id, "fromMe": True, "ack": value}})
    assert answer.status_code == 200


def test_the_record_says_once_whether_whatsapp_delivered_the_message(portal_app, fake, waha):
    from olchat_widget.models import OutgoingMessage

    operator_sends(portal_app, fake, "Счёт №5 отправлен на почту")
    operator_sends(portal_app, fake, "Второе сообщение")
    with portal_app.app_context():
        first, second = db.session.scalars(db.select(OutgoingMessage.message_id).order_by(OutgoingMessage.id)).all()
    ack(portal_app, first, 1)  # on WhatsApp's server: nothing to say yet
    assert [c.get("UPDATES", 0) for c in fake.timeline] == [0, 0]
    ack(portal_app, first, 2)  # on the client's phone
    ack(portal_app, first, 3)  # read: the record already says delivered, no second request
    ack(portal_app, first, 2)  # WAHA posts twice
    ack(portal_app, second, -1)  # ERROR
    one, two = fake.timeline
    assert one["COMMENT"].endswith("Текст:\nСчёт №5 отправлен на почту\nСтатус: доставлено клиенту")
    assert two["COMMENT"].endswith("Текст:\nВторое сообщение\nСтатус: не доставлено")
    assert [c["UPDATES"] for c in fake.timeline] == [1, 1]
    assert fake.log.count("crm.timeline.comment.update") == 2


def test_a_delivery_state_bitrix24_refused_for_now_is_written_by_the_sweep(portal_app, fake, waha):
    from olchat_widget.models import OutgoingMessage

    operator_sends(portal_app, fake, "Дойдёт позже")
    fake.fail_method("crm.timeline.comment.update", "INTERNAL_SERVER_ERROR", "Internal error", 500, count=1)
    with portal_app.app_context():
        message_id = db.session.scalar(db.select(OutgoingMessage.message_id))
    ack(portal_app, message_id, 2)
    [comment] = fake.timeline
    assert "Статус" not in comment["COMMENT"]  # Bitrix24 refused; the ack's answer was a 200 all the same
    with portal_app.app_context():
        portal_app.extensions["olchat_clock"].advance(120)
        assert timeline.sweep() == 1
        assert timeline.sweep() == 0
    assert comment["COMMENT"].endswith("\nСтатус: доставлено клиенту") and comment["UPDATES"] == 1

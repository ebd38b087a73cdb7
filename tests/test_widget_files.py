"""Issue 13, points 1 and 6 without a browser: files from the send form, and media in the history.

Sends go through the fake WAHA over HTTP (every request checked against the contract) or the demo
gateway; the history's media links are signed, short-lived and bound to portal, line, chat and message.
"""
from __future__ import annotations

import base64
import io
import os
import re
import threading

import pytest

from olchat_widget.gateway.demo_media import pdf, png, wav
from olchat_widget.models import OutgoingMessage, Portal, db
from tests import openapi_check
from tests.clock import LATE, NOON
from tests.conftest import Widget, make_app
from tests.fakes.fake_waha import MESSAGE, SEND_FILE, SEND_IMAGE, SEND_VIDEO, SEND_VOICE
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}
IVAN = "+79161234567"   # WhatsApp on the fake WAHA and in the demo
ROMASHKA = "+74951234567"  # the demo's chat with a photo, a price list and a voice note
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(3000)
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom(2000)
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm" + os.urandom(1000)


@pytest.fixture
def waha():
    with openapi_check.checked_fake_waha() as fake:
        yield fake


@pytest.fixture
def app(tmp_path, waha):
    return make_app(tmp_path, clock_at=NOON, OLCHAT_GATEWAY="waha", OLCHAT_WAHA_URL=waha.url,
                    OLCHAT_WAHA_API_KEY=waha.api_key, OLCHAT_GATEWAY_READ_TIMEOUT=2.0)


@pytest.fixture
def widget(app):
    return Widget(app.test_client())


def key_of(widget, phone=IVAN):
    widget.get("/widget/phone", phone=phone, **DEAL)
    form = parse(widget.get("/widget/compose", phone=phone, line="sales", **DEAL).data).find("form")
    return form.find("input", name="key").get("value")


def send_file(widget, key, content=None, name="файл.bin", text="", phone=IVAN, **extra):
    data = {"key": key, "phone": phone, "line": "sales", "text": text, **extra}
    if content is not None:
        data["file"] = (io.BytesIO(content), name, "application/octet-stream")  # the browser's type is not trusted
    return widget.client.post("/widget/send-file", query_string=DEAL, data=data, headers=widget.headers(),
                              content_type="multipart/form-data")


def notice(answer):
    found = parse(answer.data).find("p", data_notice=True)
    return found.get("data-notice"), found.text.strip()


def uploads_left(app):
    folder = app.config["OLCHAT_UPLOADS_PATH"]
    return [n for _, _, names in os.walk(folder) for n in names]


@pytest.mark.parametrize("content, name, endpoint, mime", [
    (JPEG, "photo.bin", SEND_IMAGE, "image/jpeg"),          # a photo by its bytes, whatever it is called
    (png(), "picture.png", SEND_IMAGE, "image/png"),
    (MP4, "clip.mp4", SEND_VIDEO, "video/mp4"),
    (pdf(), "Счёт № 5.pdf", SEND_FILE, "application/pdf"),
    (b"a;b\n1;2\n", "table.csv", SEND_FILE, "text/csv"),     # no signature: the name's type, as a document
])
def test_a_file_goes_as_its_bytes_say_once_with_its_caption(app, widget, waha, content, name, endpoint, mime):
    key = key_of(widget)
    answer = send_file(widget, key, content, name, text="Смотрите")
    assert notice(answer) == ("ok", "Сообщение отправлено")
    assert "olchat-message-sent" in answer.headers["HX-Trigger"]
    [exchange] = waha.exchanges(endpoint)
    body = exchange.json()
    assert base64.b64decode(body["file"]["data"]) == content
    assert body["file"]["mimetype"] == mime and body["file"]["filename"] == name
    assert body["caption"] == "Смотрите" and body["chatId"] == "79161234567@c.us"
    assert body.get("convert") is (True if endpoint == SEND_VIDEO else None)
    assert uploads_left(app) == []  # sent: the kept copy is gone


def test_a_recording_goes_as_voice_converted(app, widget, waha):
    answer = send_file(widget, key_of(widget), WEBM, "blob", voice="1")
    assert notice(answer)[0] == "ok"
    [exchange] = waha.exchanges(SEND_VOICE)
    assert exchange.json()["convert"] is True and exchange.json()["file"]["mimetype"] == "audio/webm"


@pytest.mark.parametrize("content, name", [
    (b"MZ\x90\x00" + os.urandom(200), "invoice.pdf"),      # a Windows program dressed as a PDF
    (b"%PDF-1.4 fine", "счёт.pdf.exe"),                    # a double extension
    (b"alert(1)", "script.js"),
    (b"#!/bin/sh\nrm -rf ~", "notes.txt"),                 # a script by its first line
    (b"PK\x03\x04" + os.urandom(100), "app.apk"),
])
def test_programs_and_scripts_are_refused_with_a_reason_and_nothing_sent(app, widget, waha, content, name):
    kind, text = notice(send_file(widget, key_of(widget), content, name))
    assert kind == "error" and "Программы и скрипты не отправляются" in text
    assert not any(waha.count(e) for e in (SEND_IMAGE, SEND_FILE, SEND_VIDEO, SEND_VOICE))
    assert uploads_left(app) == []


def test_a_photo_over_16_mb_is_refused_a_document_of_that_size_goes(app, widget, waha):
    big = b"\xff\xd8\xff\xe0" + bytes(16 * 1024 * 1024)
    kind, text = notice(send_file(widget, key_of(widget), big, "big.jpg"))
    assert kind == "error" and "16 МБ" in text and waha.count(SEND_IMAGE) == 0
    assert notice(send_file(widget, key_of(widget), b"%PDF-1.4\n" + bytes(17 * 1024 * 1024), "big.pdf"))[0] == "ok"
    assert waha.count(SEND_FILE) == 1


def test_the_upload_route_alone_takes_large_bodies(app, widget):
    # The text route keeps the app's 256 KB limit; the file route takes a 1 MB file.
    text = widget.client.post("/widget/send", query_string=DEAL, headers=widget.headers(),
                              data={"key": "k" * 32, "phone": IVAN, "line": "sales", "text": "x" * 300_000})
    assert text.status_code == 413
    assert notice(send_file(widget, key_of(widget), b"%PDF-1.4\n" + bytes(1024 * 1024), "a.pdf"))[0] == "ok"


def test_the_form_states_the_limits_before_any_upload(widget):
    widget.get("/widget/phone", phone=IVAN, **DEAL)
    form = parse(widget.get("/widget/compose", phone=IVAN, line="sales", **DEAL).data).find("form")
    hint = form.find("p", id="attach-hint-79161234567").text
    assert "до 16 МБ" in hint and "до 100 МБ" in hint and "exe" in hint
    assert form.find("input", type="file", name="file") is not None


def test_a_double_send_with_one_key_sends_the_file_once(app, widget, waha):
    key = key_of(widget)
    waha.delays[SEND_IMAGE] = 0.5
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(notice(send_file(Widget(app.test_client()), key,
                                                                                JPEG, "a.jpg"))))
               for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert waha.count(SEND_IMAGE) == 1
    assert [kind for kind, _ in answers].count("ok") == 3  # the others waited for the first one's result
    # A retry after a lost answer: the same key, the file again — nothing more goes out.
    assert notice(send_file(widget, key, JPEG, "a.jpg"))[0] == "ok"
    assert waha.count(SEND_IMAGE) == 1
    assert uploads_left(app) == []


def test_a_red_zone_question_keeps_the_file_and_sends_it_on_yes(tmp_path, waha):
    app = make_app(tmp_path, clock_at=LATE, OLCHAT_GATEWAY="waha", OLCHAT_WAHA_URL=waha.url,
                   OLCHAT_WAHA_API_KEY=waha.api_key)
    widget = Widget(app.test_client())
    key = key_of(widget)
    answer = send_file(widget, key, pdf(), "прайс.pdf", text="Прайс")
    kind, text = notice(answer)
    form = parse(answer.data).find("form")
    assert kind == "warning" and "нерабочее время" in text
    assert "прайс.pdf" in form.find(data_attach_name=True).text  # the form says the file waits
    assert form.find("textarea").text == "Прайс"
    assert waha.count(SEND_FILE) == 0 and len(uploads_left(app)) == 2  # the file and what we know of it
    # «Всё равно отправить»: no file in this request, the kept one goes.
    answer = send_file(widget, key, None, text="Прайс", confirm="1", held="1")
    assert notice(answer)[0] == "ok"
    [exchange] = waha.exchanges(SEND_FILE)
    assert base64.b64decode(exchange.json()["file"]["data"]) == pdf()
    assert uploads_left(app) == []


def test_a_failed_send_keeps_the_file_for_the_next_press(app, widget, waha):
    key = key_of(widget)
    waha.fail[SEND_FILE] = "500"
    answer = send_file(widget, key, pdf(), "a.pdf")
    assert notice(answer)[0] == "error"
    form = parse(answer.data).find("form")
    new_key = form.find("input", name="key").get("value")
    assert new_key != key and form.find("input", name="held") is not None
    waha.fail.clear()
    assert notice(send_file(widget, new_key, None, held="1"))[0] == "ok"
    assert waha.count(SEND_FILE) == 2 and uploads_left(app) == []


def test_a_send_with_no_file_says_so(widget):
    kind, text = notice(send_file(widget, key_of(widget), None, held="1"))
    assert kind == "error" and "Выберите файл" in text


# ---------------------------------------------------------------- media in the history


def media_of(widget, phone, line="sales"):
    page = parse(widget.get("/widget/history", phone=phone, line=line, **DEAL).data)
    return page, page.find_all(data_media=True)


def test_received_media_show_in_the_history_through_signed_links(app, widget, waha):
    waha.client_writes("sales", "79161234567", "Фото", media={"content": JPEG, "mimetype": "image/jpeg",
                                                              "filename": "a.jpg"})
    waha.client_writes("sales", "79161234567", "", media={"content": b"OggS" + bytes(500),
                                                          "mimetype": "audio/ogg; codecs=opus"})
    widget.get("/widget/phone", phone=IVAN, **DEAL)
    _, found = media_of(widget, IVAN)
    # The history is read without media (fast); each file's type is asked when it is shown.
    assert [f.get("data-media") for f in found] == ["probe", "probe"]
    cards = [parse(widget.client.get(f.get("hx-get"), headers=widget.headers()).data).find(data_media=True) for f in found]
    assert [c.get("data-media") for c in cards] == ["image", "audio"]
    image_src = cards[0].find("img").get("src")
    answer = app.test_client().get(image_src)  # no token header: an <img> sends none
    assert answer.status_code == 200 and answer.data == JPEG and answer.mimetype == "image/jpeg"
    assert "sandbox" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    voice = app.test_client().get(cards[1].get("src"), headers={"Range": "bytes=0-3"})
    assert voice.status_code == 206 and voice.data == b"OggS"


def test_a_file_whose_wahas_copy_expired_is_fetched_again(app, widget, waha):
    waha.client_writes("sales", "79161234567", "", media={"content": JPEG, "mimetype": "image/jpeg"})
    widget.get("/widget/phone", phone=IVAN, **DEAL)
    _, [probe] = media_of(widget, IVAN)
    src = parse(widget.client.get(probe.get("hx-get"), headers=widget.headers()).data).find("img").get("src")
    waha.expire_files()
    app.extensions.pop("olchat_media_info", None)  # a later look, past the short reuse of the file's address
    assert app.test_client().get(src).data == JPEG
    assert all(ex.params()["downloadMedia"] == ["true"] for ex in waha.exchanges(MESSAGE)
               if "downloadMedia" in ex.params() and ex.params()["downloadMedia"] != ["false"])


def test_forged_expired_and_foreign_links_are_404(tmp_path):
    from olchat_widget.widget.media_views import media_token

    app = make_app(tmp_path, clock_at=NOON)
    widget = Widget(app.test_client())
    widget.get("/widget/phone", phone=ROMASHKA, **DEAL)
    _, found = media_of(widget, ROMASHKA)
    src = found[0].find("img").get("src")
    client = app.test_client()
    assert client.get(src).status_code == 200
    token = src.rsplit("/", 1)[1]
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    assert client.get("/media/" + forged).status_code == 404
    with app.app_context():
        other = Portal(member_id="other-portal", domain="other.bitrix24.ru", kind="bitrix")
        db.session.add(other)
        db.session.commit()
        # The same line, chat and message under another portal's name: that portal has no such line.
        foreign = media_token(other.id, "sales", "74951234567@c.us", "r1")
    assert client.get("/media/" + foreign).status_code == 404
    app.extensions["olchat_clock"].advance(app.config["OLCHAT_WIDGET_MEDIA_TTL"] + 1)
    assert client.get(src).status_code == 404


def test_the_demo_chat_shows_a_photo_a_document_and_a_voice_note(tmp_path):
    app = make_app(tmp_path, clock_at=NOON)
    widget = Widget(app.test_client())
    widget.get("/widget/phone", phone=ROMASHKA, **DEAL)
    page, found = media_of(widget, ROMASHKA)
    assert [f.get("data-media") for f in found] == ["image", "file", "audio"]
    assert found[1].text == "прайс.pdf"
    client = app.test_client()
    assert client.get(found[0].find("img").get("src")).data == png()
    document = client.get(found[1].get("href"))
    assert document.data == pdf("Price list 2026") and "attachment" in document.headers["Content-Disposition"]
    assert client.get(found[2].get("src")).data == wav()
    # Both sides: the operator's price list and the client's photo.
    sides = [li.get("data-from-me") for li in page.find_all("li", data_message_id=True)]
    assert sides == ["false", "true", "false"]


def test_a_file_sent_through_the_demo_shows_in_its_history(tmp_path):
    app = make_app(tmp_path, clock_at=NOON)
    widget = Widget(app.test_client())
    assert notice(send_file(widget, key_of(widget), png(), "a.png", text="Вот"))[0] == "ok"
    _, found = media_of(widget, IVAN)
    assert found[-1].get("data-media") == "image"
    assert app.test_client().get(found[-1].find("img").get("src")).data == png()


def test_a_body_over_the_upload_limit_gets_a_413_that_names_that_limit(app, widget):
    from olchat_widget.widget import uploads

    too_big = b"%PDF" + bytes(uploads.UPLOAD_BODY_LIMIT)
    answer = send_file(widget, key_of(widget), too_big, "huge.pdf")
    assert answer.status_code == 413
    assert f"{uploads.UPLOAD_BODY_LIMIT // 1024} КБ" in answer.get_data(as_text=True)
    assert uploads_left(app) == []


def test_a_file_honours_the_forms_employee_name_and_keeps_its_boxes(app, widget, waha):
    answer = send_file(widget, key_of(widget), pdf(), "Счёт.pdf", text="Ваш счёт", show_name="1",
                       show_name_offered="1")
    assert notice(answer) == ("ok", "Сообщение отправлено")
    [exchange] = waha.exchanges(SEND_FILE)
    assert exchange.json()["caption"] == "*Демо-администратор*:\nВаш счёт"
    box = parse(answer.data).find("input", data_show_name=True)
    assert "checked" in box.attrs  # the next file of this form goes the same way
    again = parse(widget.get("/widget/compose", phone=IVAN, line="sales", **DEAL).data)
    assert "checked" in again.find("input", data_show_name=True).attrs  # remembered for this user


def test_a_file_sent_with_create_activity_leaves_its_record_with_caption_and_name(app, widget, waha):
    from olchat_widget.models import TimelineRecord

    answer = send_file(widget, key_of(widget), pdf(), "Счёт.pdf", text="Ваш счёт", timeline="1")
    assert notice(answer)[0] == "ok"
    with app.app_context():
        [record] = db.session.scalars(db.select(TimelineRecord)).all()
        assert record.comment.endswith("Ваш счёт\n[Счёт.pdf]") and (record.entity_type_id, record.entity_id) == (2, 10)

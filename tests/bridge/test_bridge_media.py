"""Files across the bridge over HTTP: a client's photo reaches Open Lines by our signed URL; an operator's
image and PDF reach WhatsApp once each.

Served like test_bridge_e2e (the app on 127.0.0.1, the fake portal and fake WAHA posting to it, jobs at
once). The fake portal downloads a message's file URL as Bitrix24 does, so a test sees what Bitrix24
would keep; a retried job is run by calling the task again, as the queue's retry would.
"""
from __future__ import annotations

import base64
import json

import pytest
import requests

from olchat_widget.bridge import media
from huey.exceptions import RetryTask
from olchat_widget.models import BridgeFile, BridgeMessage, Portal, db
from tests import openapi_check
from tests.bridge.test_bridge_e2e import IVAN, _serve, connect_open_line
from tests.fakes.fake_waha import FILE, SEND_FILE, SEND_IMAGE, SEND_TEXT, FakeWaha
from tests.test_b24_app import fake  # noqa: F401 -- the portal fixture

PHOTO = b"\xff\xd8\xff\xe0JFIF" + bytes(range(256)) * 64
PDF = b"%PDF-1.4\n" + b"0123456789" * 500 + b"\n%%EOF"


@pytest.fixture
def waha():
    with FakeWaha() as server:
        yield server
        if openapi_check.spec_available():
            # The file store (GET /api/files/...) is WAHA's static server, not part of its API contract.
            openapi_check.check_all(ex for ex in server.exchanges() if ex.endpoint != FILE)


@pytest.fixture
def served(tmp_path, fake, waha):
    yield from _serve(tmp_path, fake, waha, OLCHAT_JOBS_IMMEDIATE=True)


def run_task(app, name, *args):
    """Run a job again, as the queue's retry does; a job that asks for another retry returns None."""
    with app.app_context():
        try:
            return app.extensions["olchat_tasks"][name].call_local(*args)
        except RetryTask:
            return None


def deliver_chat_again(app, fake):
    with app.app_context():
        portal_id = db.session.scalar(db.select(Portal.id).filter_by(member_id=fake.member_id))
    return run_task(app, "deliver_inbound", portal_id, "sales", IVAN)


def only_chat(fake):
    [chat] = [c for c in fake.openline_chats() if c["user_external_id"] == IVAN]
    return chat


def client_sends_photo(waha, caption="Вот фото счёта"):
    return waha.client_writes("sales", IVAN, caption, media={"content": PHOTO, "mimetype": "image/jpeg",
                                                             "filename": "счёт.jpg"})


# ---------------------------------------------------------------- client → Open Lines


def test_a_clients_photo_reaches_the_open_line_as_our_file_with_its_caption(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    client_sends_photo(waha)
    [message] = fake.messages_in(only_chat(fake)["CHAT_ID"])
    assert message["text"] == "Вот фото счёта"
    [file] = message["files"]
    # Bitrix24 fetched our URL (not WAHA's, which needs the key and dies in minutes) and got the photo.
    assert file["url"].startswith(f"{url}/bridge/files/") and waha.url not in file["url"]
    assert (file["status"], file["content"], file["name"]) == (200, PHOTO, "счёт.jpg")
    [download] = waha.exchanges(FILE)
    assert download.headers.get("X-Api-Key") == waha.api_key
    # WAHA posts the event again: nothing is downloaded or delivered twice.
    waha.post_event("sales", "message.any", waha.messages("sales", f"{IVAN}@c.us")[-1])
    assert waha.count(FILE) == 1 and len(fake.messages_in(only_chat(fake)["CHAT_ID"])) == 1


def test_the_files_url_expires_and_opens_only_its_own_portals_file(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    client_sends_photo(waha)
    [file] = fake.messages_in(only_chat(fake)["CHAT_ID"])[0]["files"]
    fetched = requests.get(file["url"], timeout=10)
    assert fetched.status_code == 200 and fetched.content == PHOTO
    assert fetched.headers["Content-Disposition"].startswith("attachment")  # never rendered on our origin
    token = file["url"].rsplit("/", 1)[1]
    with app.app_context():
        kept = db.session.scalar(db.select(BridgeFile))
        other = Portal(member_id="another-portal", domain="b.bitrix24.ru", kind="bitrix")
        db.session.add(other)
        db.session.commit()
        elsewhere = media.file_token(other.id, kept.id)  # a genuine token, for the other portal
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    for wrong in (forged, elsewhere, "not-a-token"):
        refused = requests.get(f"{url}/bridge/files/{wrong}", timeout=10)
        assert refused.status_code == 404 and PHOTO[:16] not in refused.content
    app.extensions["olchat_clock"].advance(24 * 3600 + 1)
    expired = requests.get(file["url"], timeout=10)
    assert expired.status_code == 404 and PHOTO[:16] not in expired.content


def test_a_file_gone_from_waha_before_the_download_leaves_the_text_and_a_note(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.files_lifetime = 0  # deleted before anyone could fetch it
    client_sends_photo(waha, caption="Посмотрите вложение")
    [message] = fake.messages_in(only_chat(fake)["CHAT_ID"])
    assert message["text"].startswith("Посмотрите вложение")
    assert "получить его не удалось" in message["text"] and message["files"] == []


def test_a_download_that_fails_is_retried_and_after_the_tries_the_text_goes_alone(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.fail[FILE] = "500"  # WAHA's file store is down
    client_sends_photo(waha, caption="Первое")
    assert fake.openline_chats() == []  # waiting for the file: the job will retry
    waha.fail.clear()
    assert deliver_chat_again(app, fake) == 1
    [message] = fake.messages_in(only_chat(fake)["CHAT_ID"])
    assert message["files"][0]["content"] == PHOTO and message["text"] == "Первое"
    # A second photo whose download keeps failing: after the tries, its text still arrives, with a note.
    waha.fail[FILE] = "500"
    client_sends_photo(waha, caption="Второе")
    for _retry in range(app.config["OLCHAT_MEDIA_TRIES"] - 1):
        deliver_chat_again(app, fake)
    second = fake.messages_in(only_chat(fake)["CHAT_ID"])[1]
    assert second["text"].startswith("Второе") and "получить его не удалось" in second["text"]
    with app.app_context():
        assert {r.status for r in db.session.scalars(db.select(BridgeMessage).filter_by(direction="in"))} == \
            {"delivered"}


# ---------------------------------------------------------------- Open Lines → client


def operator_sends_image_and_pdf(fake, text="Счёт и фото"):
    return fake.operator_reply(only_chat(fake), text, user_id=1, files=[
        {"name": "фото.jpg", "content": PHOTO, "mime": "image/jpeg"},
        {"name": "счёт.pdf", "content": PDF, "mime": "application/pdf"}])


def replay(fake, reply):
    """Bitrix24 delivers the same ONIMCONNECTORMESSAGEADD again."""
    return fake.fire_event("ONIMCONNECTORMESSAGEADD", {
        "CONNECTOR": "olchat_whatsapp", "LINE": "3",
        "MESSAGES": [{"im": {"chat_id": reply["chat_id"], "message_id": reply["message_id"]},
                      "message": {"user_id": 1, "text": reply["text"], "files": reply["files"]},
                      "chat": {"id": IVAN}}]})


def file_sent(exchange):
    body = json.loads(exchange.body)
    return body["file"]["filename"], body["file"]["mimetype"], base64.b64decode(body["file"]["data"])


def phone_has_it(waha):
    """WhatsApp's ack DEVICE for the operator's message, its first part: Bitrix24's tick waits for it."""
    messages = waha.messages("sales", f"{IVAN}@c.us")
    last_client = max(n for n, m in enumerate(messages) if not m["fromMe"])
    waha.ack("sales", messages[last_client + 1]["id"], 2)


def test_an_operators_image_and_pdf_go_as_a_photo_and_a_document_once_each(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Пришлите счёт")
    reply = operator_sends_image_and_pdf(fake)
    assert [d["status"] for d in reply["deliveries"]] == [200]
    assert (waha.count(SEND_TEXT), waha.count(SEND_IMAGE), waha.count(SEND_FILE)) == (1, 1, 1)
    assert json.loads(waha.exchanges(SEND_TEXT)[0].body)["text"].endswith("Счёт и фото")
    assert file_sent(waha.exchanges(SEND_IMAGE)[0]) == ("фото.jpg", "image/jpeg", PHOTO)
    assert file_sent(waha.exchanges(SEND_FILE)[0]) == ("счёт.pdf", "application/pdf", PDF)
    # Bitrix24 delivers the event again: nothing more goes to WhatsApp.
    assert [d["status"] for d in replay(fake, reply)] == [200]
    assert (waha.count(SEND_TEXT), waha.count(SEND_IMAGE), waha.count(SEND_FILE)) == (1, 1, 1)
    phone_has_it(waha)
    [delivered] = [d for d in fake.delivered() if str(d["message_id"]) == str(reply["message_id"])]
    # Every part's WhatsApp id (the text's is the id we pre-generated, the last part of WAHA's).
    sent_ids = [m["id"] for m in waha.messages("sales", f"{IVAN}@c.us")[-3:]]
    assert len(delivered["external_ids"]) == 3
    assert all(sent == ours or sent.endswith("_" + ours) for sent, ours in zip(sent_ids, delivered["external_ids"]))


def test_a_retried_job_sends_only_the_part_that_failed(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Пришлите счёт")
    waha.fail[SEND_FILE] = "500"  # the second file fails once
    reply = operator_sends_image_and_pdf(fake)
    assert (waha.count(SEND_TEXT), waha.count(SEND_IMAGE), waha.count(SEND_FILE)) == (1, 1, 1)
    assert [d for d in fake.delivered() if str(d["message_id"]) == str(reply["message_id"])] == []
    waha.fail.clear()
    with app.app_context():
        row = db.session.scalar(db.select(BridgeMessage).filter_by(direction="out"))
    assert run_task(app, "deliver_outbound", row.id) == "delivered"
    assert (waha.count(SEND_TEXT), waha.count(SEND_IMAGE), waha.count(SEND_FILE)) == (1, 1, 2)
    mine = waha.messages("sales", f"{IVAN}@c.us")[-3:]
    assert [(m["fromMe"], m["hasMedia"]) for m in mine] == [(True, False), (True, True), (True, True)]
    assert [m["media"]["filename"] for m in mine[1:]] == ["фото.jpg", "счёт.pdf"]  # each once, in order
    # The job runs once more (a duplicate on the queue): nothing is sent again.
    run_task(app, "deliver_outbound", row.id)
    assert (waha.count(SEND_TEXT), waha.count(SEND_IMAGE), waha.count(SEND_FILE)) == (1, 1, 2)
    phone_has_it(waha)
    [delivered] = [d for d in fake.delivered() if str(d["message_id"]) == str(reply["message_id"])]
    assert len(delivered["external_ids"]) == 3


def test_a_file_link_off_the_portal_is_not_fetched_and_the_operator_is_told(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Пришлите счёт")
    chat = only_chat(fake)
    foreign = f"{waha.url}/api/files/sales/evil.pdf"  # another server (here: another port of this host)
    fake.fire_event("ONIMCONNECTORMESSAGEADD", {
        "CONNECTOR": "olchat_whatsapp", "LINE": "3",
        "MESSAGES": [{"im": {"chat_id": chat["CHAT_ID"], "message_id": 99001},
                      "message": {"user_id": 1, "text": "[b]Админ Порталов:[/b][br]Счёт во вложении",
                                  "files": [{"name": "evil.pdf", "type": "file", "mime": "application/pdf",
                                             "size": 10, "link": foreign}]},
                      "chat": {"id": IVAN}}]})
    assert waha.count(FILE) == 0 and waha.count(SEND_FILE) == 0  # never fetched, never sent
    assert waha.count(SEND_TEXT) == 1  # the words still go
    notes = [m["text"] for m in fake.messages_in(chat["CHAT_ID"]) if m["author"] == "system"]
    assert notes == ["Файл «evil.pdf» не доставлен в WhatsApp: ссылка ведёт не на ваш портал Bitrix24, "
                     "файл не загружен."]


def test_a_file_whose_send_outcome_is_unknown_is_not_sent_again_and_the_operator_is_asked_to_check(
        served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Пришлите счёт")
    waha.fail[SEND_FILE] = "drop"  # the connection breaks after the request left: it may have gone out
    reply = operator_sends_image_and_pdf(fake)
    waha.fail.clear()
    with app.app_context():
        row = db.session.scalar(db.select(BridgeMessage).filter_by(direction="out"))
    run_task(app, "deliver_outbound", row.id)  # a duplicate run of the job
    assert (waha.count(SEND_TEXT), waha.count(SEND_IMAGE), waha.count(SEND_FILE)) == (1, 1, 1)
    notes = [m["text"] for m in fake.messages_in(reply["chat_id"]) if m["author"] == "system"]
    assert len(notes) == 1 and notes[0].startswith("Файл «счёт.pdf» не доставлен") and "проверьте чат" in notes[0]
    phone_has_it(waha)
    [delivered] = [d for d in fake.delivered() if str(d["message_id"]) == str(reply["message_id"])]
    assert len(delivered["external_ids"]) == 2  # the text and the photo


def test_an_operators_voice_message_goes_as_voice_converted(served, fake, waha):
    from tests.fakes.fake_waha import SEND_VOICE

    app, url = served
    connect_open_line(app, fake, url)
    waha.client_writes("sales", IVAN, "Алло")
    fake.operator_reply(only_chat(fake), "", user_id=1, files=[
        {"name": "голос.ogg", "content": b"OggS" + bytes(300), "mime": "audio/ogg"}])
    # Only the signature besides the file: the file is the whole message.
    assert (waha.count(SEND_TEXT), waha.count(SEND_VOICE)) == (0, 1)
    assert json.loads(waha.exchanges(SEND_VOICE)[0].body)["convert"] is True


@pytest.mark.parametrize("mime, kind", [("image/jpeg", "image"), ("image/png", "image"), ("image/webp", "image"),
                                        ("image/gif", "file"), ("image/svg+xml", "file"), ("audio/mpeg", "voice"),
                                        ("audio/ogg; codecs=opus", "voice"), ("video/mp4", "video"),
                                        ("application/pdf", "file"), ("", "file")])
def test_what_a_file_is_sent_as(mime, kind):
    assert media.kind_of(mime) == kind


def test_kept_files_are_forgotten_once_no_url_to_them_can_be_valid(served, fake, waha):
    app, url = served
    connect_open_line(app, fake, url)
    client_sends_photo(waha)
    with app.app_context():
        assert media.forget_old_files() == 0
        app.extensions["olchat_clock"].advance(app.config["OLCHAT_MEDIA_URL_TTL"] + 2 * 3600)
        assert media.forget_old_files() == 1
        assert db.session.scalar(db.select(BridgeFile)) is None


@pytest.fixture
def served_on_a_queue(tmp_path, fake, waha):
    """Jobs on the SQLite queue, retried 0.2 s apart, run by a consumer the test starts."""
    yield from _serve(tmp_path, fake, waha, OLCHAT_JOBS_IMMEDIATE=False, OLCHAT_JOB_RETRY_DELAY=0.2)


def test_on_the_queue_the_retry_sends_the_failed_file_and_nothing_else_again(served_on_a_queue, fake, waha):
    from olchat_widget.jobs import queue_of
    from tests.bridge.test_bridge_e2e import wait_for

    app, url = served_on_a_queue
    connect_open_line(app, fake, url)
    consumer = queue_of(app).create_consumer(workers=1, worker_type="thread", periodic=False)
    consumer.start()
    try:
        waha.client_writes("sales", IVAN, "Пришлите счёт")
        assert wait_for(lambda: any(c["user_external_id"] == IVAN for c in fake.openline_chats()))
        waha.fail[SEND_FILE] = "500"
        reply = operator_sends_image_and_pdf(fake)
        assert wait_for(lambda: waha.count(SEND_FILE) >= 1)
        phone_has_it(waha)  # the text and the photo reached the phone
        waha.fail.clear()  # WAHA is back before the retries run out
        assert wait_for(lambda: any(str(d["message_id"]) == str(reply["message_id"]) for d in fake.delivered()))
    finally:
        consumer.stop(graceful=True)
    went = [ex for ex in waha.exchanges(SEND_FILE) if ex.status == 201]
    assert len(went) == 1 and file_sent(went[0])[0] == "счёт.pdf"
    assert (waha.count(SEND_TEXT), waha.count(SEND_IMAGE)) == (1, 1)

"""The WAHA adapter's files: sends through sendImage/sendVoice/sendVideo/sendFile, downloads of received media."""
from __future__ import annotations

import base64
import io
import json

import pytest

from olchat_widget.gateway.base import (DOCUMENT, IMAGE, VIDEO, VOICE, GatewayNotFound, LineNotConnected,
                                        MediaRefused, MediaTooLarge)
from olchat_widget.gateway.waha import WahaGateway
from tests import openapi_check
from tests.fakes.fake_waha import FILE, SEND_FILE, SEND_IMAGE, SEND_VIDEO, SEND_VOICE

CHAT = "79161234567@c.us"
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


@pytest.fixture
def waha():
    with openapi_check.checked_fake_waha() as fake:
        yield fake


@pytest.fixture
def gw(waha):
    g = WahaGateway(waha.url, waha.api_key, connect_timeout=0.5, read_timeout=2.0)
    yield g
    g.close()


@pytest.mark.parametrize("kind, endpoint, mime", [(IMAGE, SEND_IMAGE, "image/jpeg"), (VOICE, SEND_VOICE, "audio/ogg"),
                                                  (VIDEO, SEND_VIDEO, "video/mp4"),
                                                  (DOCUMENT, SEND_FILE, "application/pdf")])
def test_each_kind_of_file_goes_to_its_endpoint_with_the_bytes_inline(waha, gw, kind, endpoint, mime):
    sent = gw.send_media("sales", CHAT, kind, data=PHOTO, mimetype=mime, filename="файл.bin", caption="Смотрите")
    [ex] = waha.exchanges(endpoint)
    body = ex.json()
    assert base64.b64decode(body["file"]["data"]) == PHOTO
    assert body["file"]["mimetype"] == mime and body["file"]["filename"] == "файл.bin"
    assert body["session"] == "sales" and body["chatId"] == CHAT
    # WhatsApp needs OGG/Opus voice and H.264 video: WAHA converts; a voice message has no caption.
    assert body.get("convert") is (True if kind in (VOICE, VIDEO) else None)
    assert body.get("caption") == (None if kind == VOICE else "Смотрите")
    [stored] = [m for m in waha.messages("sales", CHAT) if m["id"] == sent.id]
    assert stored["hasMedia"] is True


def test_a_file_to_a_line_needing_a_qr_scan_is_refused_as_not_connected(waha, gw):
    with pytest.raises(LineNotConnected):
        gw.send_media("newline", CHAT, IMAGE, data=PHOTO, mimetype="image/jpeg", filename="a.jpg")


def _received(waha, content=PHOTO):
    return waha.client_writes("sales", "79161234567", "фото", media={"content": content, "mimetype": "image/jpeg",
                                                                     "filename": "a.jpg"})["payload"]["media"]


def test_a_received_file_is_downloaded_with_the_api_key(waha, gw):
    media = _received(waha)
    sink = io.BytesIO()
    assert gw.download_media("sales", media["url"], sink, max_bytes=1 << 20) == "image/jpeg"
    assert sink.getvalue() == PHOTO
    [ex] = waha.exchanges(FILE)
    assert ex.headers.get("X-Api-Key") == waha.api_key


def test_a_media_url_elsewhere_is_refused_without_a_request(waha, gw):
    media = _received(waha)
    elsewhere = [media["url"].replace("127.0.0.1", "localhost"),  # another host
                 media["url"].replace("http://", "https://"),  # another scheme
                 media["url"].replace(waha.url, "http://127.0.0.1:1"),  # another port
                 waha.url + "/api/sessions",  # not the file store
                 waha.url + "/api/files/../sessions"]
    for url in elsewhere:
        with pytest.raises(MediaRefused):
            gw.download_media("sales", url, io.BytesIO(), max_bytes=1 << 20)
    assert waha.count(FILE) == 0 and waha.count("sessions") == 0


def test_a_file_gone_after_its_lifetime_is_not_found(waha, gw):
    media = _received(waha)
    waha.expire_files()
    with pytest.raises(GatewayNotFound):
        gw.download_media("sales", media["url"], io.BytesIO(), max_bytes=1 << 20)


def test_a_file_over_the_cap_is_refused_and_not_kept(waha, gw):
    media = _received(waha)
    sink = io.BytesIO()
    with pytest.raises(MediaTooLarge):
        gw.download_media("sales", media["url"], sink, max_bytes=1000)
    assert len(sink.getvalue()) <= 1000


def test_a_send_answer_names_the_whatsapp_id_as_each_engine_does():
    from olchat_widget.gateway.waha import _sent_id

    assert _sent_id({"id": "true_1@c.us_AAA"}) == "true_1@c.us_AAA"
    assert _sent_id({"id": {"fromMe": True, "_serialized": "true_1@c.us_BBB"}}) == "true_1@c.us_BBB"  # WEBJS
    assert _sent_id({"key": {"id": "CCC"}}) == "CCC"  # NOWEB
    assert _sent_id({"_data": {"Info": {"ID": "DDD"}}}) == "DDD"  # GOWS
    assert _sent_id(json.loads("{}")) == ""

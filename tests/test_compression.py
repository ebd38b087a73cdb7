"""The widget's fragments go out compressed when the browser accepts it; answers with secrets never do."""
from __future__ import annotations

import gzip

import brotli
import pytest

DEAL = {"entity_type": 2, "entity_id": 10}
PHONE = "+79161234567"


def fetch(widget, path, coding, method="get", data=None, **params):
    headers = widget.headers(**({"Accept-Encoding": coding} if coding else {}))
    send = getattr(widget.client, method)
    return send(path, query_string={**DEAL, **params}, data=data, headers=headers)


def decoded(answer) -> bytes:
    coding = answer.headers.get("Content-Encoding")
    if coding == "br":
        return brotli.decompress(answer.data)
    if coding == "gzip":
        return gzip.decompress(answer.data)
    return answer.data


@pytest.mark.parametrize("coding", ["br", "gzip"])
@pytest.mark.parametrize("path, params", [("/widget/body", {}), ("/widget/lines", {}), ("/widget/phones", {}),
                                          ("/widget/phone", {"phone": PHONE})])
def test_fragments_are_compressed_when_asked_and_say_the_same(widget, path, params, coding):
    plain = fetch(widget, path, None, **params)
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    packed = fetch(widget, path, f"{coding}, identity", **params)
    assert packed.status_code == 200
    assert packed.headers["Content-Encoding"] == coding
    assert "Accept-Encoding" in packed.headers["Vary"] and "Accept-Encoding" in plain.headers["Vary"]
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data) / 2
    assert decoded(packed) == plain.data


def test_a_line_change_answer_is_compressed(widget):
    answer = fetch(widget, "/widget/lines", "br", method="post", data={"line": "support"})
    assert answer.headers["Content-Encoding"] == "br"
    assert b'data-chosen-line="support"' in decoded(answer) and b'id="olchat-phones"' in decoded(answer)


def test_answers_that_carry_a_secret_or_private_text_are_never_compressed(client, widget):
    # The widget token (in a JSON body), the send form's one-use key, the chat's messages, the settings (keys).
    token = client.post("/debug/token", json={"user": "admin"}, headers={"Accept-Encoding": "br, gzip"})
    assert token.status_code == 200 and "Content-Encoding" not in token.headers
    widget.get("/widget/phone", phone=PHONE, **DEAL)  # the status is known: the actions answer
    for path in ("/widget/compose", "/widget/history"):
        answer = fetch(widget, path, "br, gzip", phone=PHONE, line="sales")
        assert answer.status_code == 200, path
        assert "Content-Encoding" not in answer.headers, path
    settings = client.get("/admin/settings/form", headers=widget.headers(**{"Accept-Encoding": "br, gzip"}))
    assert settings.status_code == 200 and "Content-Encoding" not in settings.headers

"""The send form's length limit: the server refuses an over-long text and gives it back with its counter."""
from __future__ import annotations

import pytest

from tests.conftest import make_app
from tests.html import parse
from tests.test_send_history import DEAL, ANNA, compose, ready, send
from tests.clock import NOON


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, clock_at=NOON)


def test_a_fresh_form_has_a_post_action_and_no_silent_cut(widget):
    ready(widget)
    form = parse(widget.get("/widget/compose", phone=ANNA, line="sales", **DEAL).data).find("form")
    # Should the browser ever submit it itself, it is a POST to the send endpoint, not a GET with the text.
    assert form.get("method") == "post"
    assert form.get("action").startswith("/widget/send?") and form.get("action") == form.get("hx-post")
    textarea = form.find("textarea")
    assert textarea.get("maxlength") is None  # maxlength cuts a paste without a word
    assert textarea.get("data-max") == "4096"
    assert "hidden" in form.find("span", data_counter=True).attrs


def test_a_pasted_5000_character_text_is_refused_kept_and_counted(widget, demo_gateway):
    ready(widget)
    text = "Длинный текст. " * 333 + "abcde"  # 5000 characters
    assert len(text) == 5000
    page = parse(send(widget, text, compose(widget)).data)
    assert "длиннее 4096" in page.find("p", data_notice="error").text
    assert page.find("textarea").text == text
    assert page.find("textarea").get("aria-invalid") == "true"
    counter = page.find("span", data_counter=True)
    assert counter.text == "5000 / 4096" and "hidden" not in counter.attrs
    assert "counter-over" in counter.get("class")
    assert demo_gateway.calls.get("send_text", 0) == 0


def test_line_breaks_count_once_however_the_browser_sends_them(widget, demo_gateway):
    ready(widget)
    text = "\r\n".join(["x" * 99] * 41)  # 4099 characters as typed; 4139 with each break sent as CRLF
    text = text[: len(text) - 4]  # 4095 as the operator counts: 99*41 + 40 breaks - 4
    assert len(text.replace("\r\n", "\n")) == 4095
    page = parse(send(widget, text, compose(widget)).data)
    assert page.find("p", data_notice="ok") is not None
    assert demo_gateway.calls["send_text"] == 1

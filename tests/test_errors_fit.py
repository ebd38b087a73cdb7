"""Issue 12, point 8: errors fit the situation.

«Повторить» only where a second try can mend it; the header with «Обновить данные виджета» stays over
every error of the widget's body (the CRM messages tell to refresh); «Открыть историю чата» is disabled,
with the reason, on a line that cannot read its chats.
"""
from __future__ import annotations

from tests.conftest import runtime_of
from tests.html import parse
from tests.test_widget import DEAL, load_rows

ANNA = "+79261112233"  # WhatsApp, no chat yet


def buttons(html) -> list[str]:
    return [" ".join(b.text.split()) for b in parse(html).find_all("button")]


def refresh_button(html):
    return parse(html).find("button", data_action="refresh")


def test_crm_down_keeps_the_header_with_refresh_and_offers_no_nested_retry(app, widget):
    runtime_of(app).demo_crm.fail = "unavailable"
    answer = widget.get("/widget/body", **DEAL)
    assert answer.status_code == 200
    page = parse(answer.data)
    body = page.find("div", id="olchat-body")
    assert body is not None and body.find("div", data_error="crm_unavailable") is not None
    assert "обновить виджет" in body.text  # what the message asks for is on screen:
    assert refresh_button(answer.data).get("aria-label") == "Обновить данные виджета"
    assert page.find("h1").text.strip() == "WhatsApp — статусы и чаты"
    assert "Повторить" not in buttons(answer.data)

    # The refresh fails the same way: the header is still there to press once the CRM is back.
    refreshed = widget.post("/widget/refresh", **DEAL)
    assert refresh_button(refreshed.data) is not None
    assert parse(refreshed.data).find("div", data_error="crm_unavailable") is not None
    runtime_of(app).demo_crm.fail = ""
    back = widget.post("/widget/refresh", **DEAL)
    assert parse(back.data).find("li", data_phone=ANNA) is not None


def test_no_access_keeps_its_status_and_the_header_but_offers_no_retry(app, widget):
    runtime_of(app).demo_crm.fail = "access_denied"
    answer = widget.get("/widget/body", **DEAL)
    assert answer.status_code == 403
    assert parse(answer.data).find("div", data_error="forbidden") is not None
    assert refresh_button(answer.data) is not None
    assert "Повторить" not in buttons(answer.data)


def test_lines_retry_is_offered_when_the_gateway_is_down_not_when_its_key_is_wrong(app, widget, demo_gateway):
    demo_gateway.fail = {"list_lines"}
    demo_gateway.fail_as = "unavailable"
    down = widget.get("/widget/lines", **DEAL)
    assert parse(down.data).find("div", data_error="gateway") is not None
    assert "Повторить" in buttons(down.data)

    demo_gateway.fail_as = "unauthorized"
    wrong_key = widget.get("/widget/lines", line="x", **DEAL)
    block = parse(wrong_key.data).find("div", data_error="gateway_auth")
    assert block is not None, wrong_key.data.decode()
    assert "Повторить" not in buttons(wrong_key.data)


def test_a_line_needing_a_qr_code_offers_no_history_and_says_why(app, widget):
    rows = load_rows(widget)  # on the working line: the numbers are checked, a working line reads its chats
    assert "disabled" not in rows[ANNA].find("button", data_action="history").attrs
    widget.post("/widget/lines", {"line": "old"}, **DEAL)
    row = parse(widget.get("/widget/phone", phone=ANNA, **DEAL).data)
    history = row.find("button", data_action="history")
    assert "disabled" in history.attrs
    # An icon button: its tooltip names the action, then why it is off; its name stays the action's.
    assert history.get("title") == "Открыть историю чата: линия не подключена — история чата недоступна"
    assert history.get("aria-label") == "Открыть историю чата"

"""«Создать чат» on a line bound to an Open Line, in headless Chromium inside the Bitrix24 card frame:
the chat Bitrix24 now has is opened in its messenger through BX24 (issue 11, point 6)."""
from __future__ import annotations

import pytest

from tests.test_browser_b24 import (  # noqa: F401 -- fixtures: browser, context, fake, portal, serve, waha
    IVAN, browser, context, expect, fake, portal, serve, waha)
from tests.test_browser import row

pytestmark = pytest.mark.browser


def bind_line(server, fake, line="sales", openline="3"):
    """What «Подключить» on the connector page leaves behind (tested over HTTP in test_bridge_e2e.py)."""
    from olchat_widget.models import OpenLineBinding, Portal, db

    fake.set_line_active("olchat_whatsapp", openline, True)
    with server.app.app_context():
        portal_row = db.session.scalar(db.select(Portal).filter_by(member_id=fake.member_id))
        db.session.add(OpenLineBinding(portal_id=portal_row.id, line_id=line, openline_id=openline))
        db.session.commit()


def test_create_chat_opens_the_new_open_lines_chat_in_the_messenger(portal, serve, fake):
    server = serve()
    bind_line(server, fake)
    tab = portal(server).open()
    tab.show_widget()
    frame_url = tab.frame.url
    row(tab.root, IVAN).get_by_role("button", name="Создать чат").click()
    tab.wait_for_call("im.openMessenger")
    [chat] = [c for c in fake.openline_chats() if c["user_external_id"] == IVAN.lstrip("+")]
    assert [c["args"] for c in tab.calls("im.openMessenger")] == [[f"chat{chat['CHAT_ID']}"]]
    assert tab.frame.url == frame_url  # the frame stays on the card
    # The row now opens that chat.
    again = row(tab.root, IVAN).locator(f'[data-b24-chat="{chat["CHAT_ID"]}"]')
    expect(again).to_contain_text("Открыть чат")
    again.click()
    assert len(tab.calls("im.openMessenger")) == 2

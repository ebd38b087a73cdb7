"""A burst of a chat's messages queues one delivery job per wave, not one per message (bridge/inbound.py)."""
from __future__ import annotations

from olchat_widget.bridge import inbound
from olchat_widget.models import BridgeMessage, ChatActivity, OpenLineBinding, Portal, db
from tests.clock import NOON
from tests.conftest import make_app

CLIENT = "79161234567"


def envelope(message_id: str) -> dict:
    return {"event": "message.any", "session": "sales",
            "payload": {"id": message_id, "from": f"{CLIENT}@c.us", "fromMe": False, "body": "Здравствуйте"}}


def stores_once_and_queues_one_job_per_wave(app) -> None:
    """Shared with tests/test_postgres.py: the same statements on SQLite and PostgreSQL."""
    with app.app_context():
        portal = Portal(member_id="queue-member", domain="queue.bitrix24.ru", kind="bitrix", installed=True)
        db.session.add(portal)
        db.session.flush()
        db.session.add(OpenLineBinding(portal_id=portal.id, line_id="sales", openline_id="3"))
        db.session.commit()
        portal_id = portal.id
        chat = [(portal_id, "sales", CLIENT)]
        assert inbound.accept(envelope("false_A1"), [portal_id]) == chat  # the first message queues a job
        assert inbound.accept(envelope("false_A1"), [portal_id]) == []  # WAHA's retry: nothing new
        assert inbound.accept(envelope("false_A2"), [portal_id]) == []  # the waiting job will take it too
        inbound._started(portal_id, "sales", CLIENT)  # the job runs: its claim may not see what comes next
        assert inbound.accept(envelope("false_A3"), [portal_id]) == chat  # so this one queues again
        assert db.session.scalar(db.select(db.func.count()).select_from(BridgeMessage)) == 3
        # Every stored message moved the open histories' counter once.
        assert db.session.scalar(db.select(ChatActivity.seq).filter_by(portal_id=portal_id, client=CLIENT)) == 3


def test_a_burst_of_one_chat_queues_one_job_per_wave_on_sqlite(tmp_path):
    stores_once_and_queues_one_job_per_wave(make_app(tmp_path, clock_at=NOON))

"""Checks spent by «Обновить данные виджета» (issue 12, point 6), on the 5-phone demo deal.

    .venv/bin/python tests/bench/bench_refresh.py [--repo PATH] [--refreshes 4] [--gap-minutes 2]

Opens the deal as an operator would (every row loaded), then presses refresh
N times G minutes apart on the app clock, loading every row that asks for
itself after each press. Prints the WhatsApp number checks the refreshes made
(the demo gateway's count and the line's daily counter, LineDay) and whether
the next card open still shows «Отобразить виджет». ``--repo`` runs another
checkout's app (e.g. the main branch) for a before/after figure.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]))
parser.add_argument("--refreshes", type=int, default=4)
parser.add_argument("--gap-minutes", type=float, default=2.0)
args = parser.parse_args()
sys.path.insert(0, str(Path(args.repo).resolve()))

from olchat_widget.clock import clock_of  # noqa: E402
from olchat_widget.models import LineDay, db  # noqa: E402
from tests.clock import NOON  # noqa: E402
from tests.conftest import Widget, make_app, runtime_of  # noqa: E402
from tests.html import parse  # noqa: E402

DEAL = {"entity_type": 2, "entity_id": 10}


def load_lazy_rows(widget, html) -> int:
    rows = parse(html).find_all("li", data_phone=True)
    for li in rows:
        if li.get("data-checking") == "true" or li.get("hx-trigger"):
            widget.get("/widget/phone", phone=li.get("data-phone"), **DEAL)
    return len(rows)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), clock_at=NOON)
        gateway, clock = runtime_of(app).demo_gateway, clock_of(app)
        client = app.test_client()
        widget = Widget(client)
        phones = load_lazy_rows(widget, widget.get("/widget/body", **DEAL).data)
        opened = gateway.calls.get("check_exists", 0)
        for _ in range(args.refreshes):
            clock.advance(args.gap_minutes * 60)
            widget = Widget(client)  # the frame renews its token as it goes
            load_lazy_rows(widget, widget.post("/widget/refresh", **DEAL).data)
        refreshed = gateway.calls.get("check_exists", 0) - opened
        with app.app_context():
            budget = db.session.scalar(db.select(db.func.sum(LineDay.checks)))
        start = parse(Widget(client).get("/widget/start", **DEAL).data)
        button = start.find("button", data_action="show-widget") is not None
    print(f"checkout: {args.repo}")
    print(f"deal phones: {phones}; checks on first open: {opened}")
    print(f"{args.refreshes} refreshes {args.gap_minutes:g} min apart: {refreshed} new checks "
          f"(line's daily counter {budget} in all)")
    print(f"next card open shows «Отобразить виджет»: {'yes' if button else 'no'}")


if __name__ == "__main__":
    main()

"""Live history figures (issue 11, point 7): what a "nothing new" poll costs, and how soon a message shows.

    .venv/bin/python tests/bench/bench_live_history.py [--polls 500] [--rounds 10] [--interval 2.0]

The app is served on 127.0.0.1 (werkzeug, a thread) with the fake Bitrix24 and
the fake WAHA posting signed webhooks, as in tests/bridge/test_bridge_e2e.py.
Prints:
  1. answer time of a "nothing new" poll (p50/p95 over --polls) on a line bound to an Open Line (the
     webhook's counter answers) and on a line without our webhook (the gateway's page, reused for 2 s),
     with the WAHA requests those polls made, next to a full history load for comparison;
  2. the delay from a client's message on the fake WAHA to a poller (every --interval s, like the
     widget) receiving it: p50/p95/max over --rounds (bound: the interval plus one answer).
"""
from __future__ import annotations

import argparse
import html
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bridge.test_bridge_e2e import IVAN, _serve, connect_open_line  # noqa: E402
from tests.fakes.fake_bitrix24 import FakeBitrix24  # noqa: E402
from tests.fakes.fake_waha import FakeWaha  # noqa: E402
from tests.test_b24_app import DEMO  # noqa: E402

CONTACT = 501


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms   p95 {p95 * 1000:7.2f} ms   (n={len(ordered)})"


def poll_of(fragment: str) -> str:
    return html.unescape(re.search(r'data-live-history\s+hx-get="([^"]+)"', fragment).group(1))


def time_polls(session, url: str, headers: dict, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        answer = session.get(url, headers=headers, timeout=10)
        samples.append(time.perf_counter() - start)
        if answer.status_code != 204:
            raise SystemExit(f"expected 204, got {answer.status_code}: {answer.text[:200]}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()

    fake = FakeBitrix24(DEMO["crm"]).start()
    waha = FakeWaha().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    served = _serve(tmp, fake, waha, OLCHAT_JOBS_IMMEDIATE=True)
    app, url = next(served)
    try:
        headers = connect_open_line(app, fake, url)  # «sales» → Open Line 3: its webhook is ours
        fake.add_item(3, CONTACT, phones=["+" + IVAN], NAME="Иван")
        session = requests.Session()
        bound = {"entity_type": 3, "entity_id": CONTACT, "phone": "+" + IVAN, "line": "sales"}
        unbound = dict(bound, line="support")

        loads = []
        for _ in range(50):
            start = time.perf_counter()
            page = session.get(f"{url}/widget/history", params=bound, headers=headers, timeout=10)
            loads.append(time.perf_counter() - start)
        print("1. a poll with nothing new")
        print(f"   full history load (for comparison) {quantiles(loads)}")
        for name, card in (("bound line (webhook counter)", bound), ("line without our webhook", unbound)):
            page = session.get(f"{url}/widget/history", params=card, headers=headers, timeout=10)
            poll = url + poll_of(page.text)
            time_polls(session, poll, headers, 20)  # warm
            before = sum(waha.calls.values())
            samples = time_polls(session, poll, headers, args.polls)
            asked = sum(waha.calls.values()) - before
            print(f"   {name:<33} {quantiles(samples)}   WAHA requests: {asked}")

        print(f"2. client message on the fake WAHA → seen by a poller every {args.interval:g} s")
        delays = []
        page = session.get(f"{url}/widget/history", params=bound, headers=headers, timeout=10)
        state = {"poll": url + poll_of(page.text), "want": None, "seen": None}
        stop = threading.Event()

        def poller():
            own = requests.Session()
            while not stop.wait(args.interval):
                answer = own.get(state["poll"], headers=headers, timeout=10)
                if answer.status_code == 200:
                    state["poll"] = url + poll_of(answer.text)
                    if state["want"] and state["want"] in answer.text:
                        state["seen"] = time.perf_counter()

        thread = threading.Thread(target=poller, daemon=True)
        thread.start()
        for n in range(args.rounds):
            time.sleep(random.uniform(0, args.interval))
            text = f"bench message {n} {random.random():.6f}"
            state["want"], state["seen"] = text, None
            written = time.perf_counter()
            waha.client_writes("sales", IVAN, text)
            while state["seen"] is None:
                time.sleep(0.01)
            delays.append(state["seen"] - written)
        stop.set()
        thread.join(args.interval + 10)
        ordered = sorted(delays)
        print(f"   {quantiles(delays)}   max {ordered[-1] * 1000:7.0f} ms")
    finally:
        try:
            next(served)
        except StopIteration:
            pass
        waha.stop()
        fake.stop()


if __name__ == "__main__":
    main()

"""Open Lines bridge figures of issue 11: the app under gunicorn (with its queue consumer) between
a fake WAHA and ten fake portals.

    .venv/bin/python tests/bench/bench_bridge.py [--portals 10] [--chats 50] [--messages 500]
                                                 [--replies 100] [--posters 20] [--workers 2] [--threads 16]

Everything speaks HTTP on 127.0.0.1: the fake WAHA (tests/fakes/fake_waha.py) posts signed
``message.any`` webhooks to /waha/webhook; the consumer gunicorn.conf.py starts beside the server
delivers them to the fake portals (tests/fakes/fake_bitrix24.py, each with Bitrix24's own bucket:
50 burst, 2 requests/s), which fire ONIMCONNECTORMESSAGEADD back for operator replies.

Prints:
  1. a burst of N client messages across P portals and C chats, posted by --posters threads at
     once: delivered, duplicates, refused by the portals' buckets, webhook → Bitrix24 latency
     p50/p95 (goal p95 <= 2 s), Bitrix24 requests per message (goal <= 1), webhook answer time
     p50/p95 under the burst as WAHA sees it (goal p95 <= 100 ms) and the app's share of it
     (gunicorn's request time: the rest is connecting and waiting for a free thread);
  2. R operator replies, each ONIMCONNECTORMESSAGEADD delivered twice: WhatsApp sends (goal
     exactly R), replies marked delivered in Bitrix24.
Exits 1 and prints "GOAL MISSED: ..." when a goal is missed.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.server import check_log, gunicorn  # noqa: E402
from tests.fakes.fake_bitrix24 import FakeBitrix24  # noqa: E402
from tests.fakes.fake_waha import SEND_TEXT, FakeWaha  # noqa: E402

KEY = "bench-webhook-key"
OPENLINE = "1"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def portals(count: int) -> list[FakeBitrix24]:
    return [FakeBitrix24(member_id=f"benchmember{n:021d}").start() for n in range(count)]


class OAuthRouter:
    """One OAuth server for all the fake portals, as oauth.bitrix.info is for all real ones."""

    def __init__(self, fakes: list[FakeBitrix24]):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qsl, urlsplit

        def answer(handler, params):
            status, body = 400, {"error": "invalid_grant"}
            for fake in fakes:
                status, body = fake.handle_oauth(params)
                if status == 200:
                    break
            data = json.dumps(body).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                answer(self, dict(parse_qsl(urlsplit(self.path).query)))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                answer(self, dict(parse_qsl(urlsplit(self.path).query))
                       | dict(parse_qsl(self.rfile.read(length).decode())))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def install_and_connect(base: str, fake: FakeBitrix24, line: str) -> None:
    """Install on the fake portal, then bind the portal's WhatsApp line to its Open Line 1."""
    pair = fake.issue_tokens(1)
    fake.application_token = f"bench-app-{fake.member_id[-4:]}"
    page = requests.post(f"{base}/b24/install?DOMAIN={fake.domain}&PROTOCOL=0&LANG=ru", timeout=30, data={
        "AUTH_ID": pair["access_token"], "REFRESH_ID": pair["refresh_token"],
        "APPLICATION_TOKEN": fake.application_token, "member_id": fake.member_id})
    if page.status_code != 200:
        words = re.sub(r"<[^>]+>|\s+", " ", page.text)[-400:]
        raise SystemExit(f"install failed on {fake.domain}: {page.status_code} {words}")
    pair = fake.issue_tokens(1)
    token = requests.post(f"{base}/b24/token", timeout=30, json={
        "access_token": pair["access_token"], "domain": fake.domain, "member_id": fake.member_id,
        "expires_in": 3600}).json()["token"]
    done = requests.post(f"{base}/bridge/connector", params={"openline": OPENLINE}, data={"line": line},
                         headers={"X-OLChat-Token": token, "HX-Request": "true"}, timeout=30)
    if done.status_code != 200 or "Подключено" not in done.text:
        raise SystemExit(f"connect failed on {fake.domain}: {done.status_code} {done.text[:300]}")


def arrived(fakes: list[FakeBitrix24]) -> dict[str, list[float]]:
    """WhatsApp message id → when each copy of it reached a portal (monotonic)."""
    seen: dict[str, list[float]] = {}
    for fake in fakes:
        for chat in fake.openline_chats():
            for message in fake.messages_in(chat["CHAT_ID"]):
                if message.get("external_id") and message.get("author") == "client":
                    seen.setdefault(message["external_id"], []).append(message["received"])
    return seen


def server_times(log: Path, start: int) -> list[float]:
    """Webhook answer times (s) gunicorn's access log gave after byte ``start``: the app's own share of them."""
    with open(log, "rb") as file:
        file.seek(start)
        text = file.read().decode(errors="replace")
    return [int(ms) / 1000 for ms in re.findall(r'"POST /waha/webhook" \d+ \S+ (\d+)ms', text)]


def burst(args, waha: FakeWaha, fakes: list[FakeBitrix24], problems: list[str], log: Path) -> list[tuple[int, dict]]:
    log_start = log.stat().st_size
    chats = [(n % args.portals, f"7916{n:07d}") for n in range(args.chats)]
    per_chat = args.messages // args.chats
    for fake in fakes:
        fake.reset_counters()
    posted: dict[str, float] = {}
    answers: list[float] = []
    statuses: list[int | None] = []

    def write(chat):
        portal_n, number = chat
        for k in range(per_chat):
            started = time.monotonic()
            result = waha.client_writes(f"line{portal_n}", number, f"Сообщение {k + 1} от {number}")
            posted[result["id"]] = started
            for delivery in result["deliveries"]:
                answers.append(delivery["seconds"])
                statuses.append(delivery["status"])

    began = time.monotonic()
    with cf.ThreadPoolExecutor(args.posters) as pool:
        list(pool.map(write, chats))
    posting = time.monotonic() - began
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = arrived(fakes)
        if all(mid in seen for mid in posted):
            break
        time.sleep(0.2)
    seen = arrived(fakes)
    time.sleep(2)  # anything still on its way would be a duplicate
    seen = arrived(fakes)
    delivered = sum(1 for mid in posted if mid in seen)
    duplicates = sum(len(times) - 1 for times in seen.values())
    latencies = [min(seen[mid]) - posted[mid] for mid in posted if mid in seen]
    refused = sum(f.refused for f in fakes)
    rest = sum(f.requests for f in fakes)
    send_requests = sum(f.log.count("imconnector.send.messages") for f in fakes)
    bad = [s for s in statuses if s != 200]
    print(f"1. burst: {len(posted)} client messages, {args.portals} portals, {args.chats} chats, "
          f"posted by {args.posters} threads in {posting:.2f} s")
    print(f"   delivered {delivered}/{len(posted)}, duplicates {duplicates}, refused by the buckets {refused}")
    print(f"   webhook → Bitrix24: p50 {pct(latencies, .5) * 1000:.0f} ms, p95 {pct(latencies, .95) * 1000:.0f} ms, "
          f"max {max(latencies, default=0) * 1000:.0f} ms")
    print(f"   Bitrix24 requests: {rest} in all ({rest / max(1, len(posted)):.2f} per message), "
          f"send.messages {send_requests} ({send_requests / max(1, len(posted)):.2f} per message)")
    print(f"   webhook answers: p50 {pct(answers, .5) * 1000:.1f} ms, p95 {pct(answers, .95) * 1000:.1f} ms, "
          f"max {max(answers, default=0) * 1000:.1f} ms; not 200: {len(bad)}")
    inside = server_times(log, log_start)
    print(f"   of which in the app (gunicorn's access log, {len(inside)} answers): p50 {pct(inside, .5) * 1000:.0f} ms, "
          f"p95 {pct(inside, .95) * 1000:.0f} ms, max {max(inside, default=0) * 1000:.0f} ms")
    if delivered != len(posted):
        problems.append(f"{len(posted) - delivered} messages not delivered")
    if duplicates:
        problems.append(f"{duplicates} duplicates")
    if refused:
        problems.append(f"{refused} requests refused by the portals' buckets")
    if pct(latencies, .95) > 2.0:
        problems.append(f"latency p95 {pct(latencies, .95):.2f} s > 2 s")
    if rest / max(1, len(posted)) > 1.0:
        problems.append(f"{rest / len(posted):.2f} Bitrix24 requests per message > 1")
    if pct(answers, .95) > 0.1:
        problems.append(f"webhook answer p95 {pct(answers, .95) * 1000:.0f} ms > 100 ms")
    if bad:
        problems.append(f"{len(bad)} webhook answers were not 200")
    return [(n, chat) for n, fake in enumerate(fakes) for chat in fake.openline_chats()]


def replies(args, waha: FakeWaha, fakes: list[FakeBitrix24], chats: list[tuple[int, dict]],
            problems: list[str]) -> None:
    before = waha.count(SEND_TEXT)
    targets = [chats[n % len(chats)] for n in range(args.replies)]
    texts = [f"Ответ оператора номер {n + 1}" for n in range(args.replies)]
    event_statuses: list[int | None] = []

    def reply(n):
        portal_n, chat = targets[n]
        fake = fakes[portal_n]
        sent = fake.operator_reply(chat, texts[n], user_id=1)
        again = fake.fire_event("ONIMCONNECTORMESSAGEADD", {
            "CONNECTOR": chat["connector"], "LINE": chat["line"],
            "MESSAGES": [{"im": {"chat_id": sent["chat_id"], "message_id": sent["message_id"]},
                          "message": {"user_id": 1, "text": sent["text"]}, "chat": {"id": chat["chat_external_id"]}}]})
        event_statuses.extend(d["status"] for d in sent["deliveries"] + again)

    with cf.ThreadPoolExecutor(10) as pool:
        list(pool.map(reply, range(args.replies)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and waha.count(SEND_TEXT) - before < args.replies:
        time.sleep(0.2)
    # The client's phones get the replies: WAHA posts ack DEVICE for each (Bitrix24's tick waits for it).
    sent = waha.exchanges(SEND_TEXT)[before:]
    with cf.ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda ex: waha.ack(json.loads(ex.body)["session"], json.loads(ex.response_body)["id"], 2),
                      [ex for ex in sent if ex.status == 201]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(len(f.delivered()) for f in fakes) < args.replies:
        time.sleep(0.2)
    time.sleep(3)  # a second send of any reply would show by now
    sends = waha.count(SEND_TEXT) - before
    sent_texts = [json.loads(e.body).get("text", "") for e in waha.exchanges(SEND_TEXT)]
    each = [sum(1 for sent in sent_texts if sent.endswith(text)) for text in texts]
    marked = sum(len(f.delivered()) for f in fakes)
    print(f"2. operator replies: {args.replies}, each event delivered twice → WhatsApp sends {sends} "
          f"(replies sent once: {sum(1 for c in each if c == 1)}, twice or more: {sum(1 for c in each if c > 1)}); "
          f"marked delivered in Bitrix24: {marked}; event answers not 200: "
          f"{sum(1 for s in event_statuses if s != 200)}")
    if sends != args.replies:
        problems.append(f"{sends} WhatsApp sends for {args.replies} replies")
    if marked < args.replies:
        problems.append(f"only {marked} of {args.replies} replies marked delivered")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portals", type=int, default=10)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--replies", type=int, default=100)
    parser.add_argument("--posters", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    problems: list[str] = []
    fakes = portals(args.portals)
    sessions = {f"line{n}": {"status": "WORKING", "me": {"id": f"7900000{n:04d}@c.us", "pushName": f"Line {n}"}}
                for n in range(args.portals)}
    oauth = OAuthRouter(fakes)
    jobs = Path(tempfile.mkdtemp(prefix="olchat-bench-jobs-")) / "jobs.sqlite3"
    try:
        with FakeWaha(sessions=sessions) as waha:
            env = {"OLCHAT_B24_CLIENT_ID": fakes[0].client_id, "OLCHAT_B24_CLIENT_SECRET": fakes[0].client_secret,
                   "OLCHAT_B24_OAUTH_URL": oauth.url, "OLCHAT_B24_SCHEME": "http", "OLCHAT_B24_TIMEOUT": 5,
                   "OLCHAT_GATEWAY": "waha", "OLCHAT_WAHA_URL": waha.url, "OLCHAT_WAHA_API_KEY": waha.api_key,
                   "OLCHAT_WAHA_PORTALS": ",".join(f.member_id for f in fakes), "OLCHAT_WAHA_WEBHOOK_KEY": KEY,
                   "OLCHAT_JOBS_PATH": str(jobs), "OLCHAT_GATEWAY_ALLOWED_HOSTS": "127.0.0.1"}
            with gunicorn(env, args.workers, args.threads) as (base, log):
                for n, fake in enumerate(fakes):
                    install_and_connect(base, fake, f"line{n}")
                # Connecting a line set its session's webhook (message.any, message.ack, session.status).
                chats = burst(args, waha, fakes, problems, log)
                replies(args, waha, fakes, chats, problems)
                check_log(log, problems)
    finally:
        oauth.close()
        for fake in fakes:
            fake.stop()
    for problem in problems:
        print("GOAL MISSED:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""What one WAHA webhook costs the app itself, in-process (no gunicorn, no other process on the CPU).

    .venv/bin/python tests/bench/bench_webhook.py [--portals 10] [--chats 50] [--messages 500] [--profile]

Ten portals served by the deployment's WAHA, each with its line bound to an Open Line; signed
``message.any`` webhooks for 50 chats posted one after another through the Flask test client onto an
SQLite file and the SQLite queue. Prints the time per webhook (median of three rounds); --profile
adds cProfile's top functions by cumulative time. The figure under load is bench_bridge.py's.
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

KEY = "bench-webhook-key"


def make(portals: int):
    from olchat_widget import create_app
    from olchat_widget.cli import init_db
    from olchat_widget.models import OpenLineBinding, Portal, db

    tmp = Path(tempfile.mkdtemp(prefix="olchat-bench-webhook-"))
    members = [f"benchmember{n:021d}" for n in range(portals)]
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'bench.sqlite3'}", "OLCHAT_SECRET_KEY": "bench",
                      "OLCHAT_GATEWAY": "waha", "OLCHAT_WAHA_URL": "http://127.0.0.1:9", "OLCHAT_WAHA_API_KEY": "k",
                      "OLCHAT_WAHA_WEBHOOK_KEY": KEY, "OLCHAT_JOBS_PATH": str(tmp / "jobs.sqlite3"),
                      "OLCHAT_WAHA_PORTALS": ",".join(members)})
    with app.app_context():
        init_db()
        for n, member in enumerate(members):
            portal = Portal(member_id=member, domain=f"bench{n}.bitrix24.ru", kind="bitrix", installed=True)
            db.session.add(portal)
            db.session.flush()
            db.session.add(OpenLineBinding(portal_id=portal.id, line_id=f"line{n}", openline_id="1"))
        db.session.commit()
    return app


def poster(app, portals: int, chats: int):
    client = app.test_client()

    def post(n: int) -> None:
        number = f"7916{n % chats:07d}"
        envelope = {"event": "message.any", "session": f"line{n % portals}", "payload": {
            "id": f"false_{number}@c.us_{n:020d}", "from": f"{number}@c.us", "fromMe": False,
            "body": f"Сообщение {n}", "timestamp": 1764000000 + n, "hasMedia": False,
            "_data": {"notifyName": "Иван"}}}
        raw = json.dumps(envelope, ensure_ascii=False).encode()
        answer = client.post("/waha/webhook", data=raw, headers={
            "Content-Type": "application/json", "X-Webhook-Hmac": hmac.new(KEY.encode(), raw, hashlib.sha512).hexdigest()})
        if answer.status_code != 200:
            raise SystemExit(f"webhook answered {answer.status_code}")

    return post


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portals", type=int, default=10)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OLCHAT_LOG_LEVEL", "warning")
    rounds = []
    for round_ in range(3):
        app = make(args.portals)
        post = poster(app, args.portals, args.chats)
        post(10_000_000)  # first request: templates, connections, caches
        profile = cProfile.Profile() if args.profile and round_ == 2 else None
        started = time.perf_counter()
        if profile:
            profile.enable()
        for n in range(args.messages):
            post(n)
        if profile:
            profile.disable()
        rounds.append((time.perf_counter() - started) / args.messages)
    print(f"one webhook in-process: {statistics.median(rounds[:2] if args.profile else rounds) * 1000:.2f} ms "
          f"(rounds: {', '.join(f'{r * 1000:.2f}' for r in rounds)} ms; {args.messages} messages, "
          f"{args.portals} portals, {args.chats} chats)")
    if args.profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

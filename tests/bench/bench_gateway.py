"""WhatsApp gateway figures of issue 6: the widget under gunicorn against a fake WAHA.

    .venv/bin/python tests/bench/bench_gateway.py [--loads 200] [--numbers 20] [--concurrency 16]
                                                  [--workers 4] [--threads 4] [--sends 20] [--status-requests 50]

The fake WAHA (tests/fakes/fake_waha.py) runs in this process; the app runs under gunicorn in a
subprocess (fresh instance folder, SQLite file) on the demo portal with OLCHAT_GATEWAY=waha and a
demo data file written here (OLCHAT_DEMO_DATA): 20 contacts and 20 deals whose phones are drawn
from a pool of N numbers, about half of which have WhatsApp on the fake. OLCHAT_CHECK_PAUSE=0.01
(the pause between two checks on one line in a worker) keeps the run short.

Prints, in one run:
  1. LOADS widget loads (body, lines, every lazy row until none is checking; rows of a load in
     parallel like a browser's 6 connections; a new connection per request, so any worker serves
     any request), CONCURRENCY at a time, over 40 cards sharing N numbers, check-exists taking
     CHECK_DELAY on the fake: check-exists calls the
     fake WAHA received (goal: exactly N), other calls, answers' status codes, total time, loads/s;
  2. SENDS concurrent POST /widget/send with one idempotency key (from GET /widget/compose):
     sendText calls on the fake (goal: exactly 1) and how many answers said sent;
  3. breaker open, on a fresh server with OLCHAT_BREAKER_FAILURES=3, cool-down 60 s: the fake drops
     every connection after 0.5 s; /widget/lines is driven until no request reaches the fake any
     more (every worker's breaker open), then STATUS_REQUESTS status requests (GET /widget/phone) for
     numbers nobody has seen, one after another: median and max time (goal: <= 50 ms), each 200
     with data-whatsapp="unknown".
Exits 1 and prints "GOAL MISSED: ..." when a goal is missed. Takes about 30 s.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import html
import json
import random
import re
import shutil
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

from tests.fakes.fake_waha import CHECK_EXISTS, SEND_TEXT, FakeWaha  # noqa: E402
from tests.bench.server import check_log, gunicorn  # noqa: E402

ROW_URL = re.compile(r'hx-get="(/widget/phone\?[^"]+)"')
CHECKING = 'data-checking="true"'
STATE = re.compile(r'data-phone="([^"]+)" data-whatsapp="(\w+)"')
LINE = "sales"  # the fake's first WORKING session without a reach-out lock: the line the widget picks
BREAKER_CARDS = range(101, 111)  # contacts with 5 numbers each that only part 3 asks about


def pool(numbers: int) -> list[str]:
    return [f"+7916777{n:04d}" for n in range(numbers)]


def digits(e164: str) -> str:
    return e164.lstrip("+")


def demo_data(path: Path, numbers: list[str], status_numbers: int) -> list[tuple[int, int]]:
    """Write the demo portal: contacts with 4 pool numbers each, deals of two contacts; return the 40 cards."""
    base = json.loads((REPO / "olchat_widget" / "demo_data.json").read_text(encoding="utf-8"))
    n = len(numbers)
    contacts = []
    for c in range(20):
        # Numbers c, c+5, c+10, c+15 (mod the pool): every number is on several cards.
        phones = [numbers[(c + k * 5) % n] for k in range(4)]
        contacts.append({"id": c + 1, "name": f"Клиент {c + 1}", "phones": phones, "company_ids": []})
    deals = [{"id": d + 1, "title": f"Сделка {d + 1}", "contact_ids": [d + 1, (d + 1) % 20 + 1], "company_id": None}
             for d in range(20)]
    unseen = [f"+7916888{k:04d}" for k in range(status_numbers)]
    per_card = -(-status_numbers // len(BREAKER_CARDS))
    for i, cid in enumerate(BREAKER_CARDS):
        contacts.append({"id": cid, "name": f"Новый {cid}", "phones": unseen[i * per_card:(i + 1) * per_card],
                         "company_ids": []})
    data = {"portal": base["portal"], "lines": base["lines"], "whatsapp": [], "chats": [],
            "crm": {"contacts": contacts, "companies": [], "leads": [], "deals": deals, "items": []}}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return [(3, c + 1) for c in range(20)] + [(2, d + 1) for d in range(20)]


# ---------------------------------------------------------------- the app under gunicorn








def token(base: str) -> str:
    return requests.post(base + "/debug/token", json={"user": "admin"}, timeout=10).json()["token"]


def headers(tok: str) -> dict:
    return {"X-OLChat-Token": tok, "HX-Request": "true"}


# ---------------------------------------------------------------- 1. checks per number


def widget_load(base: str, tok: str, card: tuple[int, int], rows_pool: cf.Executor) -> tuple[list[int], dict]:
    """One widget load; rows load in parallel and re-poll while checking. Return (codes, phone -> state)."""
    query = f"entity_type={card[0]}&entity_id={card[1]}"
    body = requests.get(f"{base}/widget/body?{query}", headers=headers(tok), timeout=30)
    codes = [body.status_code,
             requests.get(f"{base}/widget/lines?{query}", headers=headers(tok), timeout=30).status_code]
    states = dict(STATE.findall(body.text))

    def settle(url: str) -> tuple[list[int], dict]:
        row_codes = []
        while True:
            answer = requests.get(base + url, headers=headers(tok), timeout=30)
            row_codes.append(answer.status_code)
            if CHECKING not in answer.text:
                return row_codes, dict(STATE.findall(answer.text))
            more = ROW_URL.findall(answer.text)
            url = html.unescape(more[0]) if more else url
            time.sleep(0.05)

    urls = [html.unescape(u) for u in ROW_URL.findall(body.text)]
    for row_codes, row_states in rows_pool.map(settle, urls):
        codes += row_codes
        states.update(row_states)
    return codes, states


def bench_checks(base: str, waha: FakeWaha, cards: list, numbers: list[str], args, problems: list[str]) -> None:
    tok = token(base)
    order = [cards[i % len(cards)] for i in range(args.loads)]
    random.Random(6).shuffle(order)
    codes: collections.Counter = collections.Counter()
    final: dict[str, set] = collections.defaultdict(set)
    lock = threading.Lock()
    waha.reset()
    # Checks that take a while keep concurrent loads of cards sharing numbers overlapping.
    waha.delays[CHECK_EXISTS] = args.check_delay

    def one(card):
        load_codes, states = widget_load(base, tok, card, rows_pool)
        with lock:
            codes.update(load_codes)
            for phone, state in states.items():
                final[phone].add(state)

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(args.concurrency * 6) as rows_pool, cf.ThreadPoolExecutor(args.concurrency) as loads:
        list(loads.map(one, order))
    wall = time.perf_counter() - started
    checks = waha.count(CHECK_EXISTS)
    per_number = collections.Counter(e.params().get("phone", ["?"])[0] for e in waha.exchanges(CHECK_EXISTS))
    twice = {p: c for p, c in per_number.items() if c > 1}
    print(f"1. {args.loads} widget loads, {args.concurrency} at a time, over {len(cards)} cards sharing "
          f"{len(numbers)} numbers ({len(waha.whatsapp)} with WhatsApp); gunicorn --workers {args.workers} "
          f"--threads {args.threads}; OLCHAT_CHECK_PAUSE=0.01, check-exists takes {args.check_delay * 1000:.0f} ms")
    print(f"   check-exists calls: {checks}   (goal: exactly {len(numbers)}); numbers checked more than once: "
          f"{len(twice)}")
    print(f"   all WAHA calls: {dict(sorted(waha.calls.items()))}")
    print(f"   answers: {dict(sorted(codes.items()))}; total {wall:.2f} s, {args.loads / wall:.1f} loads/s")
    if checks != len(numbers):
        problems.append(f"check-exists calls: {checks}, goal exactly {len(numbers)}"
                        + (f" (repeated: {twice})" if twice else ""))
    if set(codes) - {200}:
        problems.append(f"widget answers during the loads: {dict(codes)} (goal: all 200)")
    # What the widget finally said must be what the fake knows, for every number.
    wrong = {}
    for phone in numbers:
        expected = "yes" if digits(phone) in waha.whatsapp else "no"
        said = final.get(phone, set()) - {"unknown"}  # first paints say unknown before the row loads
        if said != {expected}:
            wrong[phone] = sorted(final.get(phone, set()))
    if wrong:
        print(f"   numbers whose final status is not the fake's: {wrong}")
        problems.append(f"{len(wrong)} numbers ended with a wrong or no status")


# ---------------------------------------------------------------- 2. one send per key


def bench_sends(base: str, waha: FakeWaha, numbers: list[str], args, problems: list[str]) -> None:
    tok = token(base)
    phone = next(p for p in numbers if digits(p) in waha.whatsapp)
    card = next(c + 1 for c in range(20) if phone in [numbers[(c + k * 5) % len(numbers)] for k in range(4)])
    query = {"entity_type": 3, "entity_id": card}
    compose = requests.get(base + "/widget/compose", headers=headers(tok), timeout=30,
                           params={**query, "phone": phone, "line": LINE})
    found = re.search(r'name="key" value="([0-9a-f]+)"', compose.text)
    if compose.status_code != 200 or not found:
        problems.append(f"GET /widget/compose: {compose.status_code} {compose.text[:200]}")
        return
    key = found.group(1)
    waha.reset()
    waha.delays[SEND_TEXT] = 0.2  # the first send is still in flight when the others arrive
    gate = threading.Barrier(args.sends)

    def press(_):
        gate.wait()
        # confirm=1: the client's clock may be in the red zone when this runs; that asks first.
        answer = requests.post(base + "/widget/send", params=query, headers=headers(tok), timeout=30,
                               data={"text": "Один раз", "key": key, "phone": phone, "line": LINE, "confirm": "1"})
        notice = re.search(r'data-notice="(\w+)"', answer.text)
        return answer.status_code, notice.group(1) if notice else None

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(args.sends) as pool_:
        answers = list(pool_.map(press, range(args.sends)))
    wall = time.perf_counter() - started
    sends = waha.count(SEND_TEXT)
    notices = collections.Counter(n for _, n in answers)
    statuses = collections.Counter(s for s, _ in answers)
    print(f"2. {args.sends} concurrent sends with one idempotency key ({phone}, line {LINE}, sendText takes 0.2 s)")
    print(f"   sendText calls: {sends}   (goal: exactly 1)")
    print(f"   answers: {dict(statuses)}; notices: {dict(notices)} (ok = «отправлено»); {wall:.2f} s")
    if sends != 1:
        problems.append(f"sendText calls: {sends}, goal exactly 1")
    if set(statuses) - {200}:
        problems.append(f"send answers: {dict(statuses)} (goal: all 200)")


# ---------------------------------------------------------------- 3. breaker open


def bench_breaker(base: str, waha: FakeWaha, args, problems: list[str]) -> None:
    tok = token(base)
    waha.reset()
    waha.fail["*"] = "drop"
    waha.delay = 0.5  # a request that still reaches WAHA costs >= 0.5 s: the breaker must spare that
    drive = f"{base}/widget/lines?entity_type=3&entity_id=1"

    def hit(_):
        return requests.get(drive, headers=headers(tok), timeout=30).status_code

    rounds, silent, codes = 0, 0, collections.Counter()
    while silent < 2 and rounds < 20:  # two rounds in a row that reach nothing: every worker's breaker is open
        before = sum(waha.calls.values())
        with cf.ThreadPoolExecutor(8 * args.workers) as pool_:
            codes.update(pool_.map(hit, range(8 * args.workers)))
        rounds += 1
        silent = silent + 1 if sum(waha.calls.values()) == before else 0
    reached = sum(waha.calls.values())
    print(f"3. breaker open: gunicorn --workers {args.workers} --threads {args.threads}, "
          f"OLCHAT_BREAKER_FAILURES=3, cool-down 60 s; the fake drops every connection after 0.5 s")
    print(f"   driving: {rounds} rounds of {8 * args.workers} concurrent GET /widget/lines, {reached} calls reached "
          f"the fake before every breaker opened; answers {dict(codes)}")
    if silent < 2:
        problems.append("the breakers did not all open")
    if set(codes) - {200}:
        problems.append(f"/widget/lines with the gateway down: {dict(codes)} (goal: no 5xx, 200)")
    cards = [(cid, phone) for cid in BREAKER_CARDS for phone in _card_numbers(base, tok, cid)]
    cards = cards[:args.status_requests]
    times, bad = [], []
    before = sum(waha.calls.values())
    for cid, phone in cards:
        started = time.perf_counter()
        answer = requests.get(base + "/widget/phone", headers=headers(tok), timeout=30,
                              params={"entity_type": 3, "entity_id": cid, "phone": phone})
        times.append((time.perf_counter() - started) * 1000)
        state = dict(STATE.findall(answer.text)).get(phone)
        if answer.status_code != 200 or state != "unknown" or "шлюз недоступен" not in answer.text:
            bad.append((phone, answer.status_code, state))
    leaked = sum(waha.calls.values()) - before
    print(f"   {len(times)} status requests for unseen numbers (new connection each): median "
          f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms   (goal <= 50 ms); calls that reached "
          f"the fake meanwhile: {leaked}; not 200 + unknown «шлюз недоступен»: {len(bad)}")
    if max(times) > 50:
        problems.append(f"status with the breaker open: max {max(times):.1f} ms (goal <= 50 ms)")
    if bad:
        problems.append(f"status answers with the breaker open: {bad[:5]}")
    if len(times) < args.status_requests:
        problems.append(f"only {len(times)} unseen numbers to ask about")


def _card_numbers(base: str, tok: str, cid: int) -> list[str]:
    """The card's numbers as the widget lists them (its first paint never asks the gateway)."""
    body = requests.get(f"{base}/widget/body?entity_type=3&entity_id={cid}", headers=headers(tok), timeout=30)
    return [phone for phone, _ in STATE.findall(body.text)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=200)
    parser.add_argument("--numbers", type=int, default=20, help="distinct numbers on the cards (at least 5)")
    parser.add_argument("--concurrency", type=int, default=16, help="widget loads at a time")
    parser.add_argument("--check-delay", type=float, default=0.05,
                        help="seconds the fake WAHA takes per check-exists (a real one takes longer)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--sends", type=int, default=20)
    parser.add_argument("--status-requests", type=int, default=50)
    args = parser.parse_args()
    problems: list[str] = []
    numbers = pool(args.numbers)
    whatsapp = {digits(p): f"{digits(p)}@c.us" for p in numbers[::2]}
    tmp = Path(tempfile.mkdtemp(prefix="olchat-bench-gw-data-"))
    try:
        data = tmp / "demo.json"
        cards = demo_data(data, numbers, args.status_requests)
        with FakeWaha(whatsapp=whatsapp, timeout_sleep=1.0) as waha:
            env = {"OLCHAT_DEMO_DATA": data, "OLCHAT_GATEWAY": "waha", "OLCHAT_WAHA_URL": waha.url,
                   "OLCHAT_WAHA_API_KEY": waha.api_key, "OLCHAT_CHECK_PAUSE": 0.01}
            with gunicorn(env, args.workers, args.threads) as (base, log):
                bench_checks(base, waha, cards, numbers, args, problems)
                bench_sends(base, waha, numbers, args, problems)
                check_log(log, problems)
            env.update(OLCHAT_BREAKER_FAILURES=3, OLCHAT_BREAKER_COOL_DOWN=60)
            with gunicorn(env, args.workers, args.threads) as (base, log):
                bench_breaker(base, waha, args, problems)
                check_log(log, problems)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for problem in problems:
        print("GOAL MISSED: " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

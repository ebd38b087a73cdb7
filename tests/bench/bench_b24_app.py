"""Bitrix24 figures of issue 5 at the app level: the widget under gunicorn against the fake portal.

    .venv/bin/python tests/bench/bench_b24_app.py [--latency 0.05] [--operators 50] [--seconds 10]
                                                  [--workers 2] [--threads 8]

The fake Bitrix24 portal + OAuth server (tests/fakes/fake_bitrix24.py) runs in this process;
the app runs under gunicorn in a subprocess (fresh instance folder, SQLite file), installed on
the fake like a real portal installs it (ONAPPINSTALL + install page). A widget load is what the
browser does after «Отобразить виджет»: GET /widget/body, GET /widget/lines, then every lazy
phone row until none says data-checking="true".

Prints, in one run:
  1. the token exchange (POST /b24/token): requests for a new user token, and for the same token again;
  2. a table: Bitrix24 HTTP requests per cold and per warm widget load for every entity type
     (lead, deal, contact, company, smart process, quote, smart invoice, and a deal with more
     contacts than one batch reads), measured twice -- once with the whole load on one keep-alive
     connection (one gunicorn worker serves it), once with a new connection per request (as behind
     a proxy without upstream keep-alive: any worker serves any request).
     Goal: <= 2 cold, 0 warm, for every type;
  3. N operators of one portal (each its own user token -> widget token) opening N different
     cards within S seconds: requests sent to the fake (token checks and card loads apart),
     refused by its 50-burst, 2-per-second bucket (goal 0), and the status codes of every
     widget answer (goal: all 200).
Exits 1 and prints "GOAL MISSED: ..." when a goal is missed. Takes about 30 s.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import html
import json
import re
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes.fake_bitrix24 import CONTACT, DEAL, FakeBitrix24  # noqa: E402
from tests.bench.server import check_log, gunicorn  # noqa: E402

ROW_URL = re.compile(r'hx-get="(/widget/phone\?[^"]+)"')
PHONE_ROW = re.compile(r'<li[^>]*\sdata-phone="')
CHECKING = 'data-checking="true"'

# (label, entity type id, record id): the records come from demo_data.json's "crm" section,
# plus the big deal added by portal().
CARDS = [("lead", 1, 7), ("deal", 2, 10), ("contact", 3, 1), ("company", 4, 5), ("smart process", 183, 3),
         ("quote", 7, 2), ("smart invoice", 31, 1), ("deal, 7 contacts", 2, 77)]
OPERATOR_BASE = 1000  # operators' user ids, contact ids and deal ids start here


class CountingFake(FakeBitrix24):
    """The fake portal, also telling token checks (app.info + profile) from card loads, refusals included."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kinds: collections.Counter = collections.Counter()
        self.refused_kinds: collections.Counter = collections.Counter()

    def handle_rest(self, method, params):
        # Classify before the fake pops "auth" and runs it: a refused request runs nothing.
        text = str(params)
        kind = ("token check + card" if "app.info" in text and "crm.item" in text else
                "token check" if "app.info" in text else "card" if "crm.item" in text else "other")
        status, body = super().handle_rest(method, params)
        with self._lock:
            self.kinds[kind] += 1
            if isinstance(body, dict) and body.get("error") == "QUERY_LIMIT_EXCEEDED":
                self.refused_kinds[kind] += 1
        return status, body


def portal(operators: int) -> CountingFake:
    """The demo CRM, a deal past the batch's contact slots, an Open Lines chat, and one deal per operator."""
    demo = json.loads((REPO / "olchat_widget" / "demo_data.json").read_text(encoding="utf-8"))
    fake = CountingFake(demo["crm"])
    for n in range(7):  # the batch reads 5 contacts; 7 make BitrixCrm send its second request
        fake.add_item(CONTACT, 70 + n, name=f"Контакт{n}", lastName="Большой", companyIds=[],
                      phones=[f"+7 916 700-00-{n:02d}"])
    fake.add_item(DEAL, 77, title="Сделка с 7 контактами", contactIds=list(range(70, 77)), companyId=5)
    fake.add_chat("deal", 10, "1010")
    for n in range(operators):
        uid = OPERATOR_BASE + n
        fake.add_user(uid, f"Оператор{n}", "Тестов")
        fake.add_item(CONTACT, uid, name=f"Клиент{n}", lastName="Операторский", companyIds=[],
                      phones=[f"+7 916 8{n // 100 % 10}{n // 10 % 10}-{n % 10}0-00"])
        fake.add_item(DEAL, uid, title=f"Сделка оператора {n}", contactIds=[uid], companyId=0)
    return fake


# ---------------------------------------------------------------- the app under gunicorn






def app_env(fake: FakeBitrix24) -> dict:
    return {"OLCHAT_B24_CLIENT_ID": fake.client_id, "OLCHAT_B24_CLIENT_SECRET": fake.client_secret,
            "OLCHAT_B24_OAUTH_URL": fake.url, "OLCHAT_B24_SCHEME": "http", "OLCHAT_B24_TIMEOUT": 5}


def install(base: str, fake: FakeBitrix24) -> None:
    """Install the app on the fake portal the way Bitrix24 does: ONAPPINSTALL, then the install page."""
    pair = fake.issue_tokens(1)
    event = requests.post(base + "/b24/events", timeout=30, data={
        "event": "ONAPPINSTALL", "auth[refresh_token]": pair["refresh_token"],
        "auth[application_token]": "bench-app-token", "auth[member_id]": fake.member_id,
        "auth[domain]": fake.domain})
    page = requests.post(f"{base}/b24/install?DOMAIN={fake.domain}&PROTOCOL=0&LANG=ru", timeout=30, data={
        "AUTH_ID": pair["access_token"], "REFRESH_ID": fake.issue_tokens(1)["refresh_token"],
        "member_id": fake.member_id, "PLACEMENT": "DEFAULT"})
    if event.status_code != 200 or page.status_code != 200 or 'data-install="ok"' not in page.text:
        raise SystemExit(f"install failed: event {event.status_code} {event.text[:200]}; "
                         f"page {page.status_code} {page.text[:300]}")


def exchange(base: str, fake: FakeBitrix24, access_token: str, card: tuple[int, int] | None = None) -> requests.Response:
    """POST /b24/token: what widget.js does with BX24.getAuth()'s answer and the card it is in."""
    payload = {"access_token": access_token, "domain": fake.domain, "member_id": fake.member_id, "expires_in": 3600}
    if card:
        payload.update(entity_type=card[0], entity_id=card[1])
    return requests.post(base + "/b24/token", timeout=30, json=payload)


def headers(token: str) -> dict:
    return {"X-OLChat-Token": token, "HX-Request": "true"}


def widget_load(base: str, token: str, entity_type: int, entity_id: int,
                session: requests.Session | None = None, *, fake: FakeBitrix24 | None = None,
                access_token: str | None = None) -> tuple[list[int], int]:
    """One widget load as the browser makes it; return (status codes of every answer, phone rows).

    With ``access_token``, the frame's start is included: a new frame trades the
    user's Bitrix24 token (and names its card) at /b24/token before anything else.
    """
    get = session.get if session is not None else requests.get  # requests.get: a new connection each time
    card = f"entity_type={entity_type}&entity_id={entity_id}"
    codes = []
    if access_token is not None:
        answer = exchange(base, fake, access_token, (entity_type, entity_id))
        codes.append(answer.status_code)
        if answer.status_code == 200:
            token = answer.json()["token"]
    body = get(f"{base}/widget/body?{card}", headers=headers(token), timeout=30)
    codes.append(body.status_code)
    codes.append(get(f"{base}/widget/lines?{card}", headers=headers(token), timeout=30).status_code)
    pending = [html.unescape(u) for u in ROW_URL.findall(body.text)]
    rows = len(PHONE_ROW.findall(body.text))
    while pending:
        again = []
        for url in pending:
            answer = get(base + url, headers=headers(token), timeout=30)
            codes.append(answer.status_code)
            if CHECKING in answer.text:
                more = ROW_URL.findall(answer.text)
                again.append(html.unescape(more[0]) if more else url)
        if again:
            time.sleep(0.05)
        pending = again
    return codes, rows


# ---------------------------------------------------------------- figures


def token_figures(base: str, fake: CountingFake) -> tuple[int, list[int]]:
    """Requests of a first exchange of a user token, and of the same token again (new connections)."""
    access = fake.issue_tokens(2)["access_token"]
    before = fake.requests
    assert exchange(base, fake, access).status_code == 200
    first = fake.requests - before
    repeats = []
    for _ in range(4):
        before = fake.requests
        assert exchange(base, fake, access).status_code == 200
        repeats.append(fake.requests - before)
    return first, repeats


def table(base: str, fake: CountingFake, keep_alive: bool, problems: list[str]) -> list[tuple]:
    """Requests per cold and warm load of each card; one operator session for the whole table."""
    access = fake.issue_tokens(1)["access_token"]
    token = exchange(base, fake, access).json()["token"]  # the operator's session starts before the table
    session = requests.Session() if keep_alive else None
    mode = "one keep-alive connection" if keep_alive else "new connection per request"
    rows = []
    try:
        for label, entity_type, entity_id in CARDS:
            before = fake.requests
            codes, phones = widget_load(base, token, entity_type, entity_id, session, fake=fake, access_token=access)
            cold = fake.requests - before
            before = fake.requests
            warm_codes, _ = widget_load(base, token, entity_type, entity_id, session, fake=fake,
                                        access_token=access)
            warm = fake.requests - before
            bad = [c for c in codes + warm_codes if c != 200]
            rows.append((label, entity_type, entity_id, phones, cold, warm, len(codes), bad))
            if cold > 2:
                problems.append(f"{label} ({mode}): {cold} requests per cold load (goal <= 2)")
            if warm:
                problems.append(f"{label} ({mode}): {warm} requests per warm load (goal 0)")
            if bad:
                problems.append(f"{label} ({mode}): answers {bad} (goal: all 200)")
            if not phones:
                problems.append(f"{label} ({mode}): the widget showed no phones")
    finally:
        if session is not None:
            session.close()
    return rows


def print_table(title: str, rows: list[tuple]) -> None:
    print(title)
    print(f"   {'entity':<18} {'type':>4} {'id':>4} {'phones':>6} {'cold':>5} {'warm':>5} {'answers':>7}  non-200")
    for label, entity_type, entity_id, phones, cold, warm, answers, bad in rows:
        print(f"   {label:<18} {entity_type:>4} {entity_id:>4} {phones:>6} {cold:>5} {warm:>5} {answers:>7}  "
              f"{','.join(map(str, bad)) or '-'}")


def operators(base: str, fake: CountingFake, count: int, seconds: float, problems: list[str]) -> None:
    """N operators, each its own token, open N different deals, arrivals spread evenly over S seconds."""
    fake.reset_counters()
    fake.kinds.clear()
    fake.refused_kinds.clear()
    fake.empty_bucket()
    codes: collections.Counter = collections.Counter()
    token_codes: collections.Counter = collections.Counter()
    durations: list[float] = []
    lock = threading.Lock()

    def operator(n: int) -> None:
        time.sleep(seconds * n / count)
        uid = OPERATOR_BASE + n
        started = time.perf_counter()
        answer = exchange(base, fake, fake.issue_tokens(uid)["access_token"], (DEAL, uid))
        with lock:
            token_codes[answer.status_code] += 1
        if answer.status_code != 200:
            return
        load_codes, _ = widget_load(base, answer.json()["token"], DEAL, uid)
        with lock:
            codes.update(load_codes)
            durations.append(time.perf_counter() - started)

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(count) as pool:
        list(pool.map(operator, range(count)))
    wall = time.perf_counter() - started
    durations.sort()
    p95 = durations[max(int(len(durations) * 0.95) - 1, 0)] * 1000 if durations else 0.0
    print(f"3. {count} operators of one portal open {count} different deals within {seconds:.0f} s "
          f"(each its own user token; new connection per request)")
    print(f"   requests sent to Bitrix24: {fake.requests} = token check with the card in the same batch "
          f"{fake.kinds['token check + card']} + token checks alone {fake.kinds['token check']} "
          f"+ card loads {fake.kinds['card']} + other {fake.kinds['other']}")
    print(f"   refused by the bucket:     {fake.refused} (token checks {fake.refused_kinds['token check + card']}"
          f" + {fake.refused_kinds['token check']}, card loads {fake.refused_kinds['card']})   (goal 0)")
    print(f"   /b24/token answers:        {dict(sorted(token_codes.items()))}")
    print(f"   widget answers:            {dict(sorted(codes.items()))}   (goal: all 200)")
    print(f"   wall {wall:.1f} s; per operator (token + whole load): p95 {p95:.0f} ms, "
          f"max {durations[-1] * 1000 if durations else 0:.0f} ms; bucket at the end "
          f"{fake.bucket_level:.1f}/{fake.burst}")
    if fake.refused:
        problems.append(f"operators: {fake.refused} requests refused by the portal's bucket (goal 0)")
    if set(codes) - {200} or set(token_codes) - {200}:
        problems.append(f"operators: answers /b24/token {dict(token_codes)}, widget {dict(codes)} (goal: all 200)")




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake portal takes per request")
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="operators' arrivals are spread over this")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    problems: list[str] = []
    print(f"gunicorn --workers {args.workers} --threads {args.threads}; fake Bitrix24 at {args.latency * 1000:.0f} ms "
          f"per request, bucket 50 burst / 2 per s; demo gateway")
    with portal(args.operators) as fake:
        fake.latency = args.latency
        # Each part on its own fresh server: nothing cached from the part before.
        with gunicorn(app_env(fake), args.workers, args.threads) as (base, log):
            install(base, fake)
            first, repeats = token_figures(base, fake)
            print(f"1. token exchange POST /b24/token: {first} request(s) for a new user token; the same token "
                  f"again (new connection each): {repeats} -- once per user token "
                  f"(the verdict is kept in the database for the token's life, for every worker)")
            if first > 1:
                problems.append(f"token exchange: {first} requests (expected 1)")
            rows = table(base, fake, True, problems)
            check_log(log, problems)
        print_table("2a. Bitrix24 requests per widget load, whole load on one keep-alive connection "
                    "(goal: cold <= 2, warm 0)", rows)
        with gunicorn(app_env(fake), args.workers, args.threads) as (base, log):
            install(base, fake)
            rows = table(base, fake, False, problems)
            check_log(log, problems)
        print_table("2b. the same, a new connection per request (any worker may serve any request)", rows)
        with gunicorn(app_env(fake), args.workers, args.threads) as (base, log):
            install(base, fake)
            operators(base, fake, args.operators, args.seconds, problems)
            check_log(log, problems)
    for problem in problems:
        print("GOAL MISSED: " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

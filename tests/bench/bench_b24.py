"""Bitrix24 request figures of BitrixCrm (issue 5), measured against the fake portal.

    .venv/bin/python tests/bench/bench_b24.py [--latency 0.05] [--operators 50] [--seconds 10]

Prints:
  1. for each entity type, HTTP requests to Bitrix24 per cold load of BitrixCrm.get_card
     (goal: at most 2), the commands in them, the phones found and the time;
  2. the source alone (no app cache in front): N operators of one portal opening N different
     cards within S seconds -- requests sent and refused by the portal's 50/2-per-second
     bucket (goal: 0 refused). Warm loads (0 requests) come from the app's cache, measured
     by the app's own benchmark.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from olchat_widget.b24 import B24Client  # noqa: E402
from olchat_widget.crm.base import CrmError  # noqa: E402
from olchat_widget.crm.bitrix import BitrixCrm  # noqa: E402
from tests.fakes.fake_bitrix24 import FakeBitrix24  # noqa: E402

SMART = 183


def portal_data(cards_per_type: int = 10) -> dict:
    """A portal with contacts, companies and cards of every type, phones typed like people do."""
    contacts, companies, leads, deals, quotes, invoices, items = [], [], [], [], [], [], []
    for n in range(1, 61):
        contacts.append({"id": n, "name": f"Имя{n}", "last_name": f"Фамилия{n}",
                         "phones": [f"8 (916) {n:03d}-45-67", f"+7 903 {n:03d} 45 67 доб. {n}"],
                         "company_ids": [100 + n % 10] if n <= 30 else ([110] if n <= 38 else [])})
    for n in range(100, 111):  # 100..109 with 3 contacts each, 110 with 8 (past the slots)
        companies.append({"id": n, "name": f"ООО «Компания {n}»", "phones": [f"+7 495 {n}-45-67"]})
    for n in range(1, cards_per_type + 1):
        leads.append({"id": n, "title": f"Лид {n}", "name": "Олег", "phones": [f"8 800 555 35 {n:02d}"],
                      "contact_ids": [n], "company_id": 100 + n % 10})
        deals.append({"id": n, "title": f"Сделка {n}", "contact_ids": [n, n + 1, n + 2], "company_id": 100 + n % 10})
        quotes.append({"id": n, "title": f"Предложение {n}", "contact_ids": [n], "company_id": 100})
        invoices.append({"id": n, "title": f"Счёт {n}", "contact_ids": [n + 3], "company_id": None})
        items.append({"entity_type_id": SMART, "id": n, "title": f"Договор {n}", "contact_ids": [n, n + 4],
                      "company_id": 101})
    # One deal past the contact slots, to show the second request.
    deals.append({"id": 99, "title": "Сделка с 7 контактами", "contact_ids": list(range(30, 37)), "company_id": 100})
    ol_chats = [{"entity_type": "deal", "entity_id": n, "chat_id": str(1000 + n)} for n in range(1, 4)]
    return {"crm": {"contacts": contacts, "companies": companies, "leads": leads, "deals": deals, "quotes": quotes,
                    "invoices": invoices, "items": items, "ol_chats": ol_chats}}


CARDS = [("lead", 1, 1), ("deal", 2, 1), ("deal, 7 contacts", 2, 99), ("contact", 3, 1), ("company", 4, 101),
         ("company, 8 contacts", 4, 110), ("quote", 7, 1), ("smart invoice", 31, 1), ("smart process", SMART, 1)]


def cold_loads(fake: FakeBitrix24) -> None:
    print("1. HTTP requests to Bitrix24 per cold load of BitrixCrm.get_card")
    print(f"   {'entity':<20} {'type':>4} {'requests':>8} {'commands':>8} {'phones':>6} {'chats':>5} {'ms':>6}")
    for label, type_id, item_id in CARDS:
        crm = BitrixCrm(B24Client(fake.domain, fake.issue_tokens(1)["access_token"], scheme="http"))
        fake.reset_counters()
        started = time.perf_counter()
        card = crm.get_card(type_id, item_id)
        ms = (time.perf_counter() - started) * 1000
        print(f"   {label:<20} {type_id:>4} {fake.requests:>8} {len(fake.calls):>8} {len(card.phones):>6} "
              f"{len(card.chats):>5} {ms:>6.1f}")


def operators(fake: FakeBitrix24, count: int, seconds: float) -> None:
    print(f"2. {count} operators open {count} different cards within {seconds:.0f} s (source alone, no app cache)")
    ids = {1: range(1, 11), 2: range(1, 11), 3: range(1, 11), 4: range(100, 110), 7: range(1, 11),
           31: range(1, 11), SMART: range(1, 11)}
    cards = [(t, i) for n in range(10) for t, r in ids.items() for i in (r[n],)][:count]
    fake.reset_counters()
    fake.empty_bucket()
    errors: list[str] = []
    durations: list[float] = []
    lock = threading.Lock()

    def operator(n: int, card: tuple[int, int]) -> None:
        time.sleep(seconds * n / count)  # evenly spread arrivals
        crm = BitrixCrm(B24Client(fake.domain, fake.issue_tokens(1 + n % 2)["access_token"], scheme="http"))
        started = time.perf_counter()
        try:
            crm.get_card(*card)
        except CrmError as exc:
            with lock:
                errors.append(type(exc).__name__)
        with lock:
            durations.append(time.perf_counter() - started)

    threads = [threading.Thread(target=operator, args=(n, card)) for n, card in enumerate(cards)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    durations.sort()
    p95 = durations[int(len(durations) * 0.95) - 1] * 1000 if durations else 0.0
    print(f"   cards: {len(cards)}, requests sent: {fake.requests}, refused by the bucket: {fake.refused}, "
          f"failed cards: {len(errors)}, wall: {wall:.1f} s, p95 load: {p95:.0f} ms, "
          f"bucket level at the end: {fake.bucket_level:.1f}/{fake.burst}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake portal takes per request")
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with FakeBitrix24(portal_data()) as fake:
        fake.latency = args.latency
        cold_loads(fake)
        operators(fake, args.operators, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

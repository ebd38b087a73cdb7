"""Widget figures (issue 3), measured against the app under gunicorn with the demo backends.

    .venv/bin/python tests/bench/bench_widget.py [--seconds 10] [--rounds 5] [--workers 2] [--threads 8]

Prints, in one run:
  1. requests/s of the warm phones fragment and of a trivial route (/healthz), and their ratio (goal ≥ 0.5);
  2. server time of the phone list's first paint with the demo gateway at 2 s per call (goal ≤ 50 ms);
  3. time until all statuses of 10 unseen numbers are known at 100 ms per check (goal ≤ 1.5 s).
Load comes from wrk when it is installed (apt-get install wrk), else from a Python thread pool.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.server import gunicorn  # noqa: E402
DEAL = "entity_type=2&entity_id=10"






def token(base: str) -> str:
    return requests.post(base + "/debug/token", json={"user": "admin"}, timeout=5).json()["token"]


def headers(tok: str) -> dict:
    return {"X-OLChat-Token": tok, "HX-Request": "true"}


def rate(url: str, hdrs: dict, seconds: float, connections: int = 16) -> float:
    """Requests per second for ``url``."""
    if shutil.which("wrk"):
        cmd = ["wrk", "-t2", f"-c{connections}", f"-d{max(int(seconds), 1)}s"]
        for key, value in hdrs.items():
            cmd += ["-H", f"{key}: {value}"]
        out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out:
            raise SystemExit("wrk saw error answers:\n" + out)
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    deadline = time.monotonic() + seconds

    def worker():
        n = 0
        with requests.Session() as s:
            while time.monotonic() < deadline:
                s.get(url, headers=hdrs, timeout=10).raise_for_status()
                n += 1
        return n

    with cf.ThreadPoolExecutor(connections) as pool:
        total = sum(pool.map(lambda _: worker(), range(connections)))
    return total / seconds


def bench_throughput(args) -> tuple[float, float]:
    with gunicorn({}, args.workers, args.threads) as (base, _log):
        tok = token(base)
        phones = f"{base}/widget/phones?{DEAL}"
        # Warm: the card is cached and every row's status is known, as after the first open.
        first = requests.get(phones, headers=headers(tok), timeout=10)
        for url in re.findall(r'hx-get="(/widget/phone\?[^"]+)"', first.text):
            requests.get(base + url.replace("&amp;", "&"), headers=headers(tok), timeout=10).raise_for_status()
        rate(phones, headers(tok), 1)
        # Alternate the two routes in short rounds and keep each one's median: a burst of
        # other load on the machine then hits both alike instead of skewing the ratio.
        fragments, trivials = [], []
        for _ in range(args.rounds):
            fragments.append(rate(phones, headers(tok), args.seconds / args.rounds))
            trivials.append(rate(base + "/healthz", {}, args.seconds / args.rounds))
    print("rounds (fragment/trivial req/s): " + ", ".join(f"{f:.0f}/{t:.0f}" for f, t in zip(fragments, trivials)))
    return statistics.median(fragments), statistics.median(trivials)


def bench_first_paint(args) -> list[float]:
    """Server time of the phone list with a gateway that takes 2 s per call, over cold cards."""
    cards = ["entity_type=2&entity_id=10", "entity_type=2&entity_id=12", "entity_type=3&entity_id=1",
             "entity_type=4&entity_id=5", "entity_type=1&entity_id=7", "entity_type=183&entity_id=3",
             "entity_type=31&entity_id=1", "entity_type=7&entity_id=2", "entity_type=3&entity_id=4",
             "entity_type=4&entity_id=6"]
    times = []
    with gunicorn({"OLCHAT_DEMO_GATEWAY_DELAY": 2.0}, args.workers, args.threads) as (base, _log):
        tok = token(base)
        with requests.Session() as s:
            s.get(base + "/healthz")
            for card in cards:  # each card is cold: first load of its phones
                started = time.perf_counter()
                answer = s.get(f"{base}/widget/body?{card}", headers=headers(tok), timeout=30)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.ok and "data-phone" in answer.text, answer.text[:300]
    return times


def ten_numbers_data(path: Path) -> None:
    src = json.loads((REPO / "olchat_widget" / "demo_data.json").read_text(encoding="utf-8"))
    numbers = [f"+7916555{n:04d}" for n in range(10)]
    src["whatsapp"] = numbers[::2]
    src["crm"]["contacts"].append({"id": 99, "name": "Десять номеров", "phones": numbers})
    path.write_text(json.dumps(src, ensure_ascii=False), encoding="utf-8")


def bench_statuses(args) -> list[float]:
    """Time from opening the widget until every row's status is known, 10 unseen numbers, 100 ms a check."""
    tmp = Path(tempfile.mkdtemp(prefix="olchat-bench-data-"))
    data = tmp / "demo.json"
    ten_numbers_data(data)
    runs = []
    env = {"OLCHAT_DEMO_DATA": data, "OLCHAT_DEMO_GATEWAY_CHECK_DELAY": 0.1}
    for attempt in range(3):
        with gunicorn(env, args.workers, args.threads) as (base, _log):
            tok = token(base)
            requests.get(f"{base}/widget/lines?entity_type=3&entity_id=99", headers=headers(tok), timeout=10)
            started = time.perf_counter()
            body = requests.get(f"{base}/widget/body?entity_type=3&entity_id=99", headers=headers(tok), timeout=10)
            urls = re.findall(r'hx-get="(/widget/phone\?[^"]+)"', body.text)
            assert len(urls) == 10, len(urls)

            def settle(url):
                url = url.replace("&amp;", "&")
                with requests.Session() as s:
                    while True:
                        html = s.get(base + url, headers=headers(tok), timeout=20).text
                        if 'data-checking="true"' not in html:
                            return re.search(r'data-whatsapp="(\w+)"', html).group(1)
                        time.sleep(0.05)

            # A browser opens at most 6 connections to one host.
            with cf.ThreadPoolExecutor(6) as pool:
                states = list(pool.map(settle, urls))
            runs.append(time.perf_counter() - started)
            assert states.count("yes") == 5 and states.count("no") == 5, states
    shutil.rmtree(tmp, ignore_errors=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="load time per route, split into rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    print(f"gunicorn --workers {args.workers} --threads {args.threads}; load: {'wrk' if shutil.which('wrk') else 'python'}")
    fragment, trivial = bench_throughput(args)
    print(f"warm phones fragment: {fragment:8.0f} req/s")
    print(f"trivial route:        {trivial:8.0f} req/s")
    print(f"ratio:                {fragment / trivial:8.2f}   (goal >= 0.5)")
    paint = bench_first_paint(args)
    print(f"first paint, gateway 2 s/call: median {statistics.median(paint):.1f} ms, max {max(paint):.1f} ms "
          f"over {len(paint)} cold cards   (goal <= 50 ms)")
    runs = bench_statuses(args)
    print(f"10 unseen numbers at 100 ms/check, all statuses known: "
          f"{', '.join(f'{r:.2f}' for r in runs)} s; median {statistics.median(runs):.2f} s   (goal <= 1.5 s)")


if __name__ == "__main__":
    main()

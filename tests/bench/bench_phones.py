"""Benchmark of the phones package: registry load time and memory, describe() latency.

Run:  .venv/bin/python tests/bench/bench_phones.py [--csv PATH] [--count 20000] [--seed 4]

Prints, from one run: the time and resident memory it takes to load
DEF-9xx.csv, and the median / p95 time to describe one number after load —
from the numbering plan, and from libphonenumber alone for the same numbers
(cold: first sight of each number; warm: repeated, served from the cache).
Goals (issue 4): load <= 1 s, memory <= 30 MB, describe median <= 20 us.
Not collected by pytest (the file name does not start with test_).
"""
from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run from anywhere without installing the package

import psutil  # noqa: E402

from olchat_widget.phones import NumberingPlan, describe, normalise  # noqa: E402
from olchat_widget.phones.describe import clear_cache  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared/data/ru-numbering/DEF-9xx.csv"
GOAL_LOAD_S, GOAL_RSS_MB, GOAL_MEDIAN_US = 1.0, 30.0, 20.0


def _rss() -> int:
    """Return this process's resident memory in bytes after a full collection."""
    gc.collect()
    return psutil.Process().memory_info().rss


def _sample_numbers(csv_path: Path, count: int, seed: int) -> list[str]:
    """Pick numbers spanning the ranges: a random row, then a random number inside it."""
    rows = []
    with open(csv_path, encoding="utf-8-sig") as f:
        next(f)
        for line in f:
            cells = line.rstrip("\r\n").split(";")
            if len(cells) > 2:
                rows.append((cells[0], int(cells[1]), int(cells[2])))
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        code, start, end = rng.choice(rows)
        out.append(f"+7{code}{rng.randint(start, end):07d}")
    return out


def _time_each(fn, items) -> list[float]:
    """Return the time of fn(item) for every item, in microseconds."""
    clock = time.perf_counter_ns
    out = []
    for item in items:
        t0 = clock()
        fn(item)
        out.append((clock() - t0) / 1000)
    return out


def _stats(label: str, samples: list[float], goal: float | None = None) -> str:
    """Format median / p95 / mean of microsecond samples."""
    median = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[18]
    mark = "" if goal is None else ("  [ok]" if median <= goal else f"  [OVER goal {goal:g} us]")
    return f"  {label:<44} median {median:8.2f} us   p95 {p95:8.2f} us   mean {statistics.fmean(samples):8.2f} us{mark}"


def main(argv=None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="DEF-9xx.csv to load")
    parser.add_argument("--count", type=int, default=20_000, help="numbers to describe")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        print(f"no registry file at {args.csv}; pass --csv PATH", file=sys.stderr)
        return 2

    numbers = _sample_numbers(args.csv, args.count, args.seed)
    # Warm imports and libphonenumber's lazily loaded data so they are not billed to the plan.
    describe("+74951234567", "ru")
    describe("+79161234567", "ru")
    normalise("8 (916) 123-45-67")

    print(f"phones benchmark — Python {sys.version.split()[0]}, {args.count} numbers, seed {args.seed}")
    print(f"registry: {args.csv} ({args.csv.stat().st_size / 1e6:.1f} MB)")

    rss0 = _rss()
    t0 = time.perf_counter()
    plan = NumberingPlan.load(args.csv)
    load_s = time.perf_counter() - t0
    rss_mb = (_rss() - rss0) / 2**20
    reloads = []
    for _ in range(3):
        t = time.perf_counter()
        NumberingPlan.load(args.csv)
        reloads.append(time.perf_counter() - t)
    gc.collect()

    print("\nLoad")
    print(f"  ranges loaded                                {plan.rows}  ({plan.codes} codes, "
          f"{len(plan.operators)} operator names, {len(plan.territories)} territories)")
    print(f"  first load                                   {load_s * 1000:8.1f} ms"
          f"{'  [ok]' if load_s <= GOAL_LOAD_S else f'  [OVER goal {GOAL_LOAD_S:g} s]'}")
    print(f"  reload (best of 3)                           {min(reloads) * 1000:8.1f} ms")
    print(f"  resident memory added (RSS delta)            {rss_mb:8.2f} MB"
          f"{'  [ok]' if rss_mb <= GOAL_RSS_MB else f'  [OVER goal {GOAL_RSS_MB:g} MB]'}")

    describe(numbers[0], "ru", plan)  # first call: nothing lazy left, but keep it out of the sample
    plan_us = _time_each(lambda e: describe(e, "ru", plan), numbers)
    from_plan = sum(describe(e, "ru", plan).source == "numbering_plan" for e in numbers)
    plan_en_us = _time_each(lambda e: describe(e, "en", plan), numbers)

    clear_cache()
    lib_cold_us = _time_each(lambda e: describe(e, "ru", None), numbers)
    lib_warm_us = _time_each(lambda e: describe(e, "ru", None), numbers)

    typed = [f"8 ({e[2:5]}) {e[5:8]}-{e[8:10]}-{e[10:]}" for e in numbers]
    normalise_us = _time_each(normalise, typed)

    print("\nDescribe one number after load")
    print(_stats("numbering plan (locale ru)", plan_us, GOAL_MEDIAN_US))
    print(_stats("numbering plan (locale en)", plan_en_us, GOAL_MEDIAN_US))
    print(_stats("libphonenumber only, cold (first sight)", lib_cold_us))
    print(_stats("libphonenumber only, warm (lru cache)", lib_warm_us))
    print(f"  answered from the plan                       {from_plan}/{len(numbers)}")
    print("\nNormalise what people type ('8 (9xx) xxx-xx-xx')")
    print(_stats("normalise()", normalise_us))

    example = numbers[0]
    print("\nExample")
    print(f"  plan:           {describe(example, 'ru', plan)}")
    print(f"  libphonenumber: {describe(example, 'ru', None)}")
    ok = load_s <= GOAL_LOAD_S and rss_mb <= GOAL_RSS_MB and statistics.median(plan_us) <= GOAL_MEDIAN_US
    print(f"\nAll goals met: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

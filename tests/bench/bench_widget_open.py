"""Browser figures of a widget open (issue 12): what an operator's browser transfers and waits for.

    .venv/bin/python tests/bench/bench_widget_open.py [--rounds 3] [--check-delay 0]

Each round starts the app under gunicorn on a fresh database (tests/bench/server.py, the demo
portal and gateway; ``--check-delay`` seconds per WhatsApp number check, default 0: the app's own
time only), lets it serve another card once as a running server has (``--fresh-server``: not, the
deal is then its first card and pays for compiling the templates) and opens the 5-phone demo deal
in Chromium (/usr/bin/chromium) in a card 380 px wide:

  cold  a fresh browser profile, the numbers unknown: the card shows «Отобразить виджет», it is
        clicked, every number is checked;
  warm  the same profile, the card opened again: static files come from the browser's cache and
        every status is remembered, so the widget shows by itself.

Per open it prints the requests that reached the network and the bytes they transferred (headers
and bodies as sent, DevTools' "transferred"), split into static files, the frame page with its
token, and the widget's fragments; the time from the click on «Отобразить виджет» (warm: from the
start of navigation) until the phones are painted and until every status is final; the widget's
height at 380 px (and 600 px); and axe-core's violations on the final screen grouped by impact.
Goals (issue 12): cold ≤ 45 KB in all, warm 0 static requests, height ≤ 480 px at 380 px, no
serious or critical violation.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from tests.bench.server import CHROMIUM, CHROMIUM_ARGS as ARGS, check_log, gunicorn  # noqa: E402

DEAL = "entity_type=2&entity_id=10"
OTHER_CARD = "entity_type=4&entity_id=6"  # a company with other numbers: warms the server, not the deal
GOAL_BYTES = 45 * 1024
GOAL_HEIGHT = 480

# Runs in the page before its own scripts: when «Отобразить виджет» is clicked, when the first
# phone row is in the document and when none is checking any more (performance.now(), ms since
# navigation start). requestAnimationFrame: the moment the browser paints what it was given.
WATCH = """(() => {
  const marks = window.__olchat = {};
  const painted = name => requestAnimationFrame(() => { marks[name] = marks[name] || performance.now(); });
  document.addEventListener("click", e => {
    if (e.target.closest && e.target.closest('[data-action="show-widget"]')) { marks.click = performance.now(); }
  }, true);
  new MutationObserver(() => {
    const rows = document.querySelectorAll("#olchat-phones li.phone");
    if (rows.length && !marks.rowsSeen) { marks.rowsSeen = true; painted("phones"); }
    if (rows.length && !document.querySelector("#olchat-phones [data-checking]") && !marks.finalSeen) {
      marks.finalSeen = true; painted("final");
    }
  }).observe(document, {childList: true, subtree: true, attributes: true, attributeFilter: ["data-checking"]});
})();"""


class Network:
    """Every request of a page that reached the network (not the browser's cache), from DevTools events."""

    def __init__(self, context, page):
        self.seen = {}
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.requestServedFromCache", lambda e: self.seen.get(e["requestId"], {}).update(cached=True))
        cdp.on("Network.responseReceived", self._received)
        cdp.on("Network.loadingFinished", lambda e: self.seen.get(e["requestId"], {}).update(bytes=e["encodedDataLength"]))

    def _sent(self, event):
        self.seen[event["requestId"]] = {"path": urlsplit(event["request"]["url"]).path, "cached": False, "bytes": 0,
                                         "encoding": ""}

    def _received(self, event):
        entry = self.seen.get(event["requestId"])
        if entry is None:
            return
        response = event["response"]
        if response.get("fromDiskCache") or response.get("fromPrefetchCache") or response.get("fromServiceWorker"):
            entry["cached"] = True
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        entry["encoding"] = headers.get("content-encoding", "")
        timing = response.get("timing")
        if timing:  # request sent → answer's headers received: the server's time plus the loopback
            entry["wait"] = timing["receiveHeadersEnd"] - timing["sendStart"]

    def clear(self):
        self.seen.clear()

    def groups(self) -> dict[str, list[dict]]:
        fetched = [e for e in self.seen.values() if not e["cached"] and e["path"] != "/favicon.ico"]
        return {
            "static": [e for e in fetched if e["path"].startswith("/static/")],
            "page+token": [e for e in fetched if e["path"] in ("/widget", "/debug/token")],
            "fragments": [e for e in fetched if not e["path"].startswith("/static/")
                          and e["path"] not in ("/widget", "/debug/token")],
        }


def violations_by_impact(page) -> dict[str, tuple[int, int]]:
    """axe-core on the page as it is: {impact: (rules, nodes)}."""
    from axe_playwright_python.sync_playwright import Axe

    found = {impact: (0, 0) for impact in ("critical", "serious", "moderate", "minor")}
    for violation in Axe().run(page).response["violations"]:
        rules, nodes = found.get(violation["impact"], (0, 0))
        found[violation["impact"]] = (rules + 1, nodes + len(violation["nodes"]))
    return found


def widget_height(page) -> int:
    return page.evaluate("document.documentElement.scrollHeight")


def open_card(page, expect, base: str, network: Network, cold: bool) -> dict:
    network.clear()
    page.goto(f"{base}/widget?{DEAL}")
    if cold:
        button = page.get_by_role("button", name="Отобразить виджет")
        expect(button).to_be_visible()
        # htmx wires swapped-in content in its settle step: click once nothing is settling.
        expect(page.locator(".htmx-added, .htmx-settling, .htmx-request")).to_have_count(0)
        button.click()
    page.wait_for_function("() => window.__olchat && window.__olchat.final")
    page.wait_for_load_state("networkidle")
    marks = page.evaluate("window.__olchat")
    start = marks.get("click", 0.0) if cold else 0.0
    return {"groups": network.groups(), "phones": marks["phones"] - start, "final": marks["final"] - start,
            "height": widget_height(page), "axe": violations_by_impact(page)}


def warm_up(base: str) -> None:
    """Serve another card once, as a running server has: templates compiled, lines listed. The deal stays unseen."""
    token = requests.post(base + "/debug/token", json={"user": "admin"}, timeout=10).json()["token"]
    headers = {"X-OLChat-Token": token, "HX-Request": "true"}
    for path in ("/widget/body", "/widget/lines"):
        requests.get(f"{base}{path}?{OTHER_CARD}", headers=headers, timeout=30).raise_for_status()


def one_round(playwright, expect, check_delay: float, fresh_server: bool) -> dict:
    env = {"OLCHAT_DEMO_GATEWAY_CHECK_DELAY": check_delay, "OLCHAT_DEMO_GATEWAY_DELAY": 0}
    with gunicorn(env, workers=1, threads=16) as (base, log):
        if not fresh_server:
            warm_up(base)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            # A low viewport: the document is then exactly as tall as the widget.
            context = browser.new_context(locale="ru-RU", viewport={"width": 380, "height": 200})
            context.set_default_timeout(30_000)
            context.add_init_script(WATCH)
            page = context.new_page()
            network = Network(context, page)
            cold = open_card(page, expect, base, network, cold=True)
            warm = open_card(page, expect, base, network, cold=False)
            wide = browser.new_context(locale="ru-RU", viewport={"width": 600, "height": 200})
            wide.add_init_script(WATCH)
            wide_page = wide.new_page()
            wide_page.goto(f"{base}/widget?{DEAL}")  # every status is known now: it shows by itself
            wide_page.wait_for_function("() => window.__olchat && window.__olchat.final")
            height_600 = widget_height(wide_page)
        finally:
            browser.close()
        problems = []
        check_log(log, problems)
        if problems:
            raise SystemExit("; ".join(problems))
    return {"cold": cold, "warm": warm, "height_600": height_600}


def size(entries) -> int:
    return sum(e["bytes"] for e in entries)


def report(rounds: list[dict], check_delay: float, fresh_server: bool) -> None:
    server = "the server's first card" if fresh_server else "the server has served another card before"
    print(f"5-phone demo deal, {len(rounds)} round(s), {check_delay:g} s per number check, {server}; "
          "bytes as transferred (headers + bodies); times: median (min–max) of the rounds")
    for name in ("cold", "warm"):
        last = rounds[-1][name]
        print(f"\n{name}:")
        print(f"  {'part':<12}{'requests':>9}{'bytes':>10}  encodings")
        total_requests = total_bytes = 0
        for group, entries in last["groups"].items():
            codings = ", ".join(sorted({e['encoding'] or 'identity' for e in entries})) or "-"
            print(f"  {group:<12}{len(entries):>9}{size(entries):>10,}  {codings}")
            total_requests += len(entries)
            total_bytes += size(entries)
        print(f"  {'all':<12}{total_requests:>9}{total_bytes:>10,}")
        since = "click «Отобразить виджет»" if name == "cold" else "navigation start"
        for mark, label in (("phones", "phones painted"), ("final", "all statuses final")):
            values = [r[name][mark] for r in rounds]
            print(f"  {since} → {label}: {statistics.median(values):.0f} ms ({min(values):.0f}–{max(values):.0f})")
        waits = [e.get("wait", 0) for r in rounds for e in r[name]["groups"]["fragments"] if e["path"] == "/widget/body"
                 or (name == "warm" and e["path"] == "/widget/start")]
        if waits:
            which = "/widget/body" if name == "cold" else "/widget/start"
            print(f"  of which the server's answer to {which}: {statistics.median(waits):.0f} ms "
                  f"({min(waits):.0f}–{max(waits):.0f})")
        print(f"  widget height at 380 px: {last['height']} px")
        axe = last["axe"]
        print("  axe violations (rules/nodes): " + ", ".join(f"{k} {r}/{n}" for k, (r, n) in axe.items()))
    print(f"\nwidget height at 600 px: {rounds[-1]['height_600']} px")
    cold, warm = rounds[-1]["cold"], rounds[-1]["warm"]
    cold_bytes = sum(size(e) for e in cold["groups"].values())
    goals = [
        (f"cold ≤ {GOAL_BYTES:,} B in all", cold_bytes <= GOAL_BYTES),
        ("warm 0 static requests", not warm["groups"]["static"]),
        (f"height ≤ {GOAL_HEIGHT} px at 380 px", cold["height"] <= GOAL_HEIGHT),
        ("0 serious, 0 critical", all(r["cold"]["axe"][k][0] == 0 and r["warm"]["axe"][k][0] == 0
                                      for r in rounds for k in ("serious", "critical"))),
    ]
    print("goals: " + "; ".join(f"{label}: {'met' if ok else 'MISSED'}" for label, ok in goals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--check-delay", type=float, default=0.0, help="seconds per WhatsApp number check")
    parser.add_argument("--fresh-server", action="store_true",
                        help="open the deal as the server's very first card (its templates not compiled yet)")
    args = parser.parse_args()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        raise SystemExit("playwright is not installed: .venv/bin/pip install -e '.[test]'")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        rounds = [one_round(playwright, expect, args.check_delay, args.fresh_server) for _ in range(args.rounds)]
    report(rounds, args.check_delay, args.fresh_server)


if __name__ == "__main__":
    main()

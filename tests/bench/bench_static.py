"""Static file figures (issue 12, point 11): what a cold and a warm widget open transfer.

    .venv/bin/python tests/bench/bench_static.py

The app is served on 127.0.0.1 (tests/served.py Server, werkzeug in a thread) with the
demo backends; Chromium (/usr/bin/chromium, through Playwright) opens the 5-phone demo
deal's widget, presses «Отобразить виджет» and waits for every status: in a fresh
browser profile (cold, brotli: Chromium's default on 127.0.0.1), once more in the same
profile (warm), and in another fresh profile sending only "gzip, deflate". The server
counts every answer it sends: requests, header and body bytes, Content-Encoding.
Goals: warm 0 static requests; cold ≤ 45 KB in all (issue 12, point 11). The opens after the first
find the statuses known (the server remembers them), so their HTML answers differ; the
static files do not. Then, from the headers alone (requests, no browser): each static
file's size as it is, gzipped and brotli'd, and its Cache-Control.
Without Chromium or Playwright only the header figures are printed.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.conftest import make_app  # noqa: E402
from tests.served import Server  # noqa: E402
from tests.bench.server import CHROMIUM, CHROMIUM_ARGS as ARGS  # noqa: E402

DEAL = "entity_type=2&entity_id=10"
GOAL = 45 * 1024


class Wire:
    """WSGI middleware: every answer's path, status, Content-Encoding, header and body bytes."""

    def __init__(self, app):
        self.inner = app.wsgi_app
        self.answers = []
        app.wsgi_app = self

    def __call__(self, environ, start_response):
        record = {"path": environ["PATH_INFO"], "body": 0, "accept": environ.get("HTTP_ACCEPT_ENCODING", "")}

        def start(status, headers, exc_info=None):
            record["status"] = status.split()[0]
            record["encoding"] = dict(headers).get("Content-Encoding", "")
            # HTTP/1.1 framing as sent: status line, "name: value\r\n" per header, blank line.
            record["head"] = len(f"HTTP/1.1 {status}\r\n") + sum(len(f"{k}: {v}\r\n") for k, v in headers) + 2
            return start_response(status, headers, exc_info)

        self.answers.append(record)
        for chunk in self.inner(environ, start):
            if environ["REQUEST_METHOD"] != "HEAD":
                record["body"] += len(chunk)
            yield chunk


def summary(answers) -> str:
    static = [a for a in answers if a["path"].startswith("/static/")]

    def size(items):
        return sum(a["head"] + a["body"] for a in items)

    lines = [f"  static: {len(static)} requests, {size(static):,} B"
             f" ({', '.join(sorted({a['encoding'] or 'identity' for a in static})) or '-'})",
             f"  all:    {len(answers)} requests, {size(answers):,} B"]
    for a in answers:
        lines.append(f"    {a['status']} {a['path']}  {a['head']:,} + {a['body']:,} B {a['encoding']}")
    return "\n".join(lines)


def widget_open(page, server, expect) -> None:
    page.goto(f"{server.url}/widget?{DEAL}")
    # goto waited for "load": the deferred scripts have run. Once every status is remembered the
    # widget opens by itself (issue 12, point 7): the button is pressed only where it is shown.
    page.locator('[data-action="show-widget"], li[data-phone]').first.wait_for()
    button = page.get_by_role("button", name="Отобразить виджет")
    if button.count():
        button.click()
    page.locator("li[data-phone]").first.wait_for()
    expect(page.locator("[data-checking]")).to_have_count(0)  # every status known
    page.wait_for_load_state("networkidle")


def browser_figures(server, wire) -> None:
    if not os.path.exists(CHROMIUM):
        print(f"(no {CHROMIUM}: browser figures skipped)")
        return
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        print("(no playwright: browser figures skipped)")
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        runs = [("cold, fresh profile", None, False),
                ("warm, same profile, the card opened again", None, True),
                ("cold, fresh profile, gzip only (Accept-Encoding: gzip, deflate)", "gzip, deflate", False)]
        context = None
        for label, accept, same_profile in runs:
            if not same_profile:
                if context is not None:
                    context.close()
                context = browser.new_context(locale="ru-RU", viewport={"width": 380, "height": 900},
                                              extra_http_headers={"Accept-Encoding": accept} if accept else {})
                context.set_default_timeout(10_000)
                page = context.new_page()
            wire.answers.clear()
            widget_open(page, server, expect)
            static = [a for a in wire.answers if a["path"].startswith("/static/")]
            all_bytes = sum(a["head"] + a["body"] for a in wire.answers)
            print(f"{label}:")
            print(f"  the browser's Accept-Encoding: {wire.answers[0]['accept']!r}")
            print(summary(wire.answers))
            if same_profile:
                print(f"  goal 0 static requests: {'met' if not static else 'MISSED'}")
            else:
                print(f"  goal ≤ {GOAL:,} B in all: {'met' if all_bytes <= GOAL else 'MISSED'}"
                      " (static files and the widget's fragments compressed; frame page and token plain)")
        context.close()
        browser.close()


def header_figures(server) -> None:
    html = requests.get(f"{server.url}/widget?{DEAL}", timeout=5).text
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    print("from the headers (no browser):")
    totals = {"identity": 0, "gzip": 0, "br": 0}
    for url in urls:
        row = []
        for coding in totals:
            response = requests.get(server.url + url, headers={"Accept-Encoding": coding}, stream=True, timeout=5)
            body = len(response.raw.read(decode_content=False))
            totals[coding] += body
            row.append(f"{coding} {body:,} B")
        print(f"  {url}: {', '.join(row)}; Cache-Control: {response.headers['Cache-Control']}")
    print(f"  bodies in all: {', '.join(f'{k} {v:,} B' for k, v in totals.items())}")
    plain = requests.get(server.url + "/static/widget.js", timeout=5).headers["Cache-Control"]
    print(f"  /static/widget.js (no hash): Cache-Control: {plain}")


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app = make_app(Path(directory))
        wire = Wire(app)
        server = Server(app)
        try:
            browser_figures(server, wire)
            header_figures(server)
        finally:
            server.close()


if __name__ == "__main__":
    main()

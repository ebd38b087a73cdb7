"""The README's picture of the widget: the 5-phone demo deal in Chromium, in a 600 px wide card.

    .venv/bin/python tests/tools/readme_screenshot.py [static/readme/widget.png]

It serves the app on its demo portal (a fresh database, noon in Moscow), opens the
widget page as the card frame does, presses «Отобразить виджет», waits until every
row knows its status, and saves a screenshot of the whole widget (a low viewport: the page is as tall as the widget).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.clock import NOON  # noqa: E402
from tests.conftest import make_app  # noqa: E402
from tests.served import Server  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, DEAL, expect, show_widget  # noqa: E402


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "static" / "readme" / "widget.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="olchat-shot-") as tmp:
        server = Server(make_app(Path(tmp), clock_at=NOON))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={"width": 600, "height": 200}, locale="ru-RU")
                expect.set_options(timeout=10_000)
                page.goto(f"{server.url}/widget?{DEAL}")
                show_widget(page)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            server.close()
    print(f"saved {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

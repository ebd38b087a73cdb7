"""In Chromium: a second card open asks the server for no static file, the first one gets them compressed."""
from __future__ import annotations

import pytest

from tests.test_browser import (  # noqa: F401 -- browser, serve, server, page: the shared Chromium and app fixtures
    browser, open_widget, page, serve, server, show_widget, shown_by_itself)

pytestmark = pytest.mark.browser


def count_static(app) -> list[tuple[str, str]]:
    """Record (path, Content-Encoding) of every /static answer the server sends, as seen on the wire."""
    seen = []
    inner = app.wsgi_app

    def counting(environ, start_response):
        def start(status, headers, exc_info=None):
            if environ["PATH_INFO"].startswith("/static/"):
                seen.append((environ["PATH_INFO"], dict(headers).get("Content-Encoding", "")))
            return start_response(status, headers, exc_info)
        return inner(environ, start)

    app.wsgi_app = counting
    return seen


def test_warm_card_open_asks_for_no_static_file(page, server):
    seen = count_static(server.app)
    open_widget(page, server)
    show_widget(page)
    cold = list(seen)
    assert {path.rsplit("/", 1)[-1].split(".")[0] for path, _ in cold} >= {"widget", "htmx-2"}
    assert all(encoding in ("br", "gzip") for _, encoding in cold), cold

    seen.clear()
    open_widget(page, server)  # the operator opens the card again: every status is known, it shows by itself
    shown_by_itself(page)
    assert seen == []

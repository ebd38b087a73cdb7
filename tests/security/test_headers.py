"""Every response carries the strict CSP and the other security headers."""
from __future__ import annotations

import pytest

from tests.conftest import Widget

PATHS = ["/", "/healthz", "/widget?entity_type=2&entity_id=10", "/static/widget.js", "/nowhere",
         "/widget/phones?entity_type=2&entity_id=10"]


def directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", PATHS)
def test_strict_csp_on_every_response(client, path):
    response = client.get(path)
    csp = directives(response)
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self' https://api.bitrix24.com"
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
    assert csp["style-src"] == "'self'"
    assert csp["object-src"] == "'none'"
    assert csp["base-uri"] == "'self'"
    assert csp["form-action"] == "'self'"
    assert csp["frame-ancestors"] == "'self'"  # the demo portal: only ourselves
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "X-Frame-Options" not in response.headers


def test_csp_on_error_and_fragment_answers(client):
    widget = Widget(client)
    for response in (widget.get("/widget/phones", entity_type="²", entity_id=1),  # 400 fragment
                     client.post("/b24/token", json=[1])):  # 400 JSON
        assert directives(response)["default-src"] == "'self'"


def test_templates_hold_no_inline_script_handler_or_style():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    for path in root.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"inline <script> in {path}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline handler in {path}"
        assert not re.search(r"\sstyle\s*=", text), f"style attribute in {path}"
        assert "hx-on" not in text, f"hx-on (needs eval) in {path}"

"""Static files: fingerprinted URLs cached for a year, compressed answers, old names never pinned."""
from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest

from olchat_widget.static_files import index_static
from tests.conftest import make_app

STATIC = Path(__file__).resolve().parents[1] / "static"
SHELL = "/widget?entity_type=2&entity_id=10"
YEAR = "public, max-age=31536000, immutable"


def static_urls(client, path=SHELL) -> dict[str, str]:
    """The static files a page links to: {file name under static/: URL in the page}."""
    html = client.get(path).get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    return {re.sub(r"\.[0-9a-f]{12}(?=\.[^./]+$)", "", url.removeprefix("/static/")): url for url in urls}


def test_the_widget_links_its_files_by_content_hash(client):
    urls = static_urls(client)
    assert set(urls) == {"widget.css", "widget.js", "widget-media.js", "vendor/htmx-2.0.11.min.js"}
    for name, url in urls.items():
        assert url != f"/static/{name}" and "?" not in url
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == YEAR
        assert response.data == (STATIC / name).read_bytes()  # no Accept-Encoding: the file as it is
        assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize("name", ["widget.js", "widget.css", "vendor/htmx-2.0.11.min.js"])
def test_gzip_when_asked_and_it_decompresses_to_the_file(client, name):
    url = static_urls(client)[name]
    response = client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == YEAR
    assert gzip.decompress(response.data) == (STATIC / name).read_bytes()
    assert len(response.data) < (STATIC / name).stat().st_size / 2
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_brotli_when_asked_and_it_decompresses_to_the_file(client):
    brotli = pytest.importorskip("brotli")
    url = static_urls(client)["vendor/htmx-2.0.11.min.js"]
    response = client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.headers["Content-Encoding"] == "br"
    assert brotli.decompress(response.data) == (STATIC / "vendor/htmx-2.0.11.min.js").read_bytes()
    refused = client.get(url, headers={"Accept-Encoding": "br;q=0, gzip"})
    assert refused.headers["Content-Encoding"] == "gzip"
    plain = client.get(url, headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in plain.headers and plain.data == (STATIC / "vendor/htmx-2.0.11.min.js").read_bytes()


def test_the_plain_name_and_an_unknown_hash_work_but_are_never_cached_for_a_year(client):
    body = (STATIC / "widget.js").read_bytes()
    for url in ("/static/widget.js", "/static/widget.0123456789ab.js"):
        response = client.get(url)
        assert response.status_code == 200 and response.data == body
        assert response.headers["Cache-Control"] == "no-cache"
        assert "immutable" not in response.headers["Cache-Control"]
        assert response.headers["ETag"]


def test_missing_files_and_paths_outside_static_are_404(client):
    for url in ("/static/nope.js", "/static/nope.0123456789ab.js", "/static/../setup.cfg",
                "/static/%2e%2e/setup.cfg", "/static/vendor"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "immutable" not in response.headers.get("Cache-Control", "")


def test_head_and_if_none_match(client):
    url = static_urls(client)["widget.css"]
    got = client.get(url, headers={"Accept-Encoding": "gzip"})
    head = client.head(url, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(got.data))
    for header in ("Content-Encoding", "ETag", "Cache-Control", "Content-Type"):
        assert head.headers[header] == got.headers[header]

    again = client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": got.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == got.headers["ETag"]
    # The plain name is revalidated the same way: a 304 instead of the file.
    plain = client.get("/static/widget.css")
    assert client.get("/static/widget.css", headers={"If-None-Match": plain.headers["ETag"]}).status_code == 304
    # The gzip answer's validator does not stand for the uncompressed one.
    other = client.get(url, headers={"If-None-Match": got.headers["ETag"]})
    assert other.status_code == 200 and other.data == (STATIC / "widget.css").read_bytes()


def test_the_url_changes_when_the_file_changes(tmp_path):
    folder = tmp_path / "static"
    shutil.copytree(STATIC, folder)
    app = make_app(tmp_path)
    app.static_folder = str(folder)
    index_static(app)
    client = app.test_client()
    before = static_urls(client)

    (folder / "widget.js").write_text("console.log('new widget');\n", encoding="utf-8")
    index_static(app)  # what a restart does
    after = static_urls(client)

    assert after["widget.js"] != before["widget.js"]
    assert after["widget.css"] == before["widget.css"]  # an untouched file keeps its URL (and cache)
    fresh = client.get(after["widget.js"])
    assert fresh.data == b"console.log('new widget');\n" and fresh.headers["Cache-Control"] == YEAR
    # A page rendered before the change still loads, but the old URL is no longer pinned.
    stale = client.get(before["widget.js"])
    assert stale.status_code == 200 and stale.data == fresh.data
    assert stale.headers["Cache-Control"] == "no-cache"


def test_debug_mode_picks_up_an_edit_without_a_restart(tmp_path):
    folder = tmp_path / "static"
    shutil.copytree(STATIC, folder)
    app = make_app(tmp_path, DEBUG=True)
    app.static_folder = str(folder)
    index_static(app)
    client = app.test_client()
    before = static_urls(client)["widget.css"]
    (folder / "widget.css").write_text("body { color: red; }\n", encoding="utf-8")
    after = static_urls(client)["widget.css"]
    assert after != before
    assert client.get(after).data == b"body { color: red; }\n"


def test_serving_writes_nothing_into_the_static_folder(client):
    files = sorted(p.relative_to(STATIC) for p in STATIC.rglob("*"))
    for url in static_urls(client).values():
        client.get(url, headers={"Accept-Encoding": "br, gzip"})
    assert sorted(p.relative_to(STATIC) for p in STATIC.rglob("*")) == files


def test_other_pages_link_fingerprinted_files_too(client):
    debug = static_urls(client, "/")
    assert set(debug) >= {"widget.css", "debug.js"}
    assert all(client.get(url).headers["Cache-Control"] == YEAR for url in debug.values())

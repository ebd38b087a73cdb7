"""update_registry(): local files and a local HTTP server; a bad source never touches the active file."""
from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from olchat_widget.phones import NumberingPlan, NumberingPlanError, UpdateResult, update_registry
from olchat_widget.phones.update import DEFAULT_REGISTRY_URL


@pytest.fixture(autouse=True)
def _no_proxy_for_localhost(monkeypatch):
    """The local test server must be reached directly even where a proxy is configured."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    """Serve registered byte strings on 127.0.0.1; '/slow' answers after 2 s."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            if self.path == "/slow":
                time.sleep(2)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield base, files
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def active(tmp_path, make_csv):
    """An active registry with 1,100 ranges, as a deployment would have it."""
    target = tmp_path / "registry" / "DEF-9xx.csv"
    target.parent.mkdir()
    target.write_bytes(make_csv(1100))
    return target


def _leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".part")]


def _assert_untouched(target, before: bytes, stamp: int):
    assert target.read_bytes() == before
    assert target.stat().st_mtime_ns == stamp
    assert _leftovers(target.parent) == []


def test_default_url_is_the_open_data_one():
    assert DEFAULT_REGISTRY_URL == "https://opendata.digital.gov.ru/downloads/DEF-9xx.csv"


def test_local_file_replaces_the_active_copy(tmp_path, active, make_csv):
    source = tmp_path / "new.csv"
    source.write_bytes(make_csv(1200))
    inode_before = active.stat().st_ino
    result = update_registry(str(source), str(active))
    assert isinstance(result, UpdateResult)
    assert (result.rows, result.previous_rows, result.codes) == (1200, 1100, 1)
    assert active.read_bytes() == source.read_bytes()
    assert active.stat().st_ino != inode_before  # moved into place, not rewritten in place
    assert _leftovers(active.parent) == []
    assert NumberingPlan.load(active).rows == 1200
    assert "1200 ranges (was 1100)" in result.summary()


def test_first_install_creates_the_directory(tmp_path, make_csv):
    source = tmp_path / "new.csv"
    source.write_bytes(make_csv(1200))
    target = tmp_path / "instance" / "numbering" / "DEF-9xx.csv"
    result = update_registry(str(source), str(target))
    assert result.previous_rows is None
    assert target.read_bytes() == source.read_bytes()


def test_file_url(tmp_path, active, make_csv):
    source = tmp_path / "new file.csv"
    source.write_bytes(make_csv(1200))
    assert update_registry(source.as_uri(), str(active)).rows == 1200


def _overlap(lines):
    lines[10], lines[11] = lines[11], lines[10]
    return lines


@pytest.mark.parametrize(
    "content, reason",
    [
        (lambda make: make(1200, mutate=_overlap), "not sorted"),
        (lambda make: make(20), "only 20 ranges"),
        (lambda make: make(1200)[: len(make(1200)) // 2].rsplit(b"\n", 1)[0], "only"),  # truncated download
        (lambda make: b"<html><body>Service unavailable</body></html>", "header"),
        (lambda make: b"", "empty"),
        (lambda make: make(1200).decode("utf-8-sig").encode("utf-16"), "UTF-8"),
    ],
)
def test_bad_local_file_leaves_the_old_one(tmp_path, active, make_csv, content, reason):
    before, stamp = active.read_bytes(), active.stat().st_mtime_ns
    source = tmp_path / "bad.csv"
    source.write_bytes(content(make_csv))
    with pytest.raises(NumberingPlanError, match=reason):
        update_registry(str(source), str(active))
    _assert_untouched(active, before, stamp)


def test_a_much_smaller_file_is_refused(tmp_path, make_csv):
    target = tmp_path / "DEF-9xx.csv"
    target.write_bytes(make_csv(3000))
    before, stamp = target.read_bytes(), target.stat().st_mtime_ns
    source = tmp_path / "small.csv"
    source.write_bytes(make_csv(1200))
    with pytest.raises(NumberingPlanError, match="less than half"):
        update_registry(str(source), str(target))
    _assert_untouched(target, before, stamp)


def test_missing_or_odd_sources(tmp_path, active):
    before, stamp = active.read_bytes(), active.stat().st_mtime_ns
    with pytest.raises(NumberingPlanError, match="no such file"):
        update_registry(str(tmp_path / "absent.csv"), str(active))
    with pytest.raises(NumberingPlanError, match="directory"):
        update_registry(str(tmp_path), str(active))
    with pytest.raises(NumberingPlanError, match="no source"):
        update_registry("", str(active))
    with pytest.raises(NumberingPlanError, match="OLCHAT_NUMBERING_PATH"):
        update_registry(str(active), "")
    _assert_untouched(active, before, stamp)


def test_http_good_file(server, active, make_csv):
    base, files = server
    files["/DEF-9xx.csv"] = make_csv(1200)
    result = update_registry(f"{base}/DEF-9xx.csv", str(active), timeout=5)
    assert result.rows == 1200
    assert active.read_bytes() == files["/DEF-9xx.csv"]


def test_http_snapshot(server, tmp_path, snapshot_path):
    """The real registry, served locally, goes through the same validation."""
    base, files = server
    files["/DEF-9xx.csv"] = snapshot_path.read_bytes()
    target = tmp_path / "DEF-9xx.csv"
    assert update_registry(f"{base}/DEF-9xx.csv", str(target), timeout=10).rows == 17059


def test_http_bad_file_leaves_the_old_one(server, active, make_csv):
    base, files = server
    files["/bad.csv"] = make_csv(1200, mutate=_overlap)
    before, stamp = active.read_bytes(), active.stat().st_mtime_ns
    with pytest.raises(NumberingPlanError, match=r"bad\.csv is not a valid DEF-9xx.csv: line \d+"):
        update_registry(f"{base}/bad.csv", str(active), timeout=5)
    _assert_untouched(active, before, stamp)


def test_http_errors_leave_the_old_one(server, active):
    base, _ = server
    before, stamp = active.read_bytes(), active.stat().st_mtime_ns
    with pytest.raises(NumberingPlanError, match="HTTP 404"):
        update_registry(f"{base}/missing.csv", str(active), timeout=5)
    with pytest.raises(NumberingPlanError, match="no answer"):
        update_registry(f"{base}/slow", str(active), timeout=0.3)
    with pytest.raises(NumberingPlanError, match="download failed"):
        update_registry("http://127.0.0.1:9/DEF-9xx.csv", str(active), timeout=2)  # nothing listens on port 9
    _assert_untouched(active, before, stamp)

"""Upload figures of issue 13: a 10 MB file from the send form to «отправлено» through a fake WAHA.

    .venv/bin/python tests/bench/bench_upload.py [--mb 10] [--runs 3] [--no-browser]

The fake WAHA (tests/fakes/fake_waha.py) runs in this process; the app runs under gunicorn in a
subprocess (one worker, 4 threads, fresh instance folder) with OLCHAT_GATEWAY=waha on the demo
portal. Each run sends a fresh MB-megabyte document (a PDF header and random bytes, so nothing
compresses it) to +7 916 123-45-67 on line «sales», with «Всё равно отправить» already said
(confirm=1: the wall clock's hour must not ask the red-zone question mid-figure).

Prints, per run and as a median:
  1. in Chromium (unless --no-browser or it is missing): the operator's path — the file chosen in
     the form's file input, «Отправить сообщение» pressed, until the form says «Сообщение
     отправлено»: seconds;
  2. over plain HTTP (requests, multipart): seconds of POST /widget/send-file;
  3. the web worker's peak memory during each upload: its RSS high-water mark (VmHWM, reset before
     the upload through /proc/<pid>/clear_refs; where that is refused, RSS sampled every 2 ms)
     minus its RSS just before, against the file's size. Goal: the growth stays under the file's
     size (the file is streamed: spooled to disk by werkzeug, copied to the form's folder, sent to
     WAHA as base64 encoded block by block — never whole in memory, let alone twice);
  4. what WAHA received: sendFile calls (goal: exactly one per run) and that the bytes are intact.
Exits 1 and prints "GOAL MISSED: ..." when a goal is missed. Takes about 30 s.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.server import check_log, gunicorn  # noqa: E402
from tests.fakes.fake_waha import SEND_FILE, FakeWaha  # noqa: E402

CARD = {"entity_type": 2, "entity_id": 10}
IVAN = "+79161234567"
CHROMIUM = "/usr/bin/chromium"


def worker_of(base: str) -> psutil.Process:
    """The gunicorn worker serving ``base`` (the master's only child)."""
    port = int(base.rsplit(":", 1)[1])
    for proc in psutil.process_iter(["cmdline"]):
        if "gunicorn" in " ".join(proc.info["cmdline"] or []) and any(
                c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in proc.net_connections()):
            children = proc.children()
            if children:
                return children[0]
    raise SystemExit("no gunicorn worker found")


class PeakMemory:
    """The worker's RSS high-water mark across a block: VmHWM after a reset, or RSS sampled every 2 ms."""

    def __init__(self, proc: psutil.Process):
        self.proc = proc
        self.how = "VmHWM"

    def __enter__(self):
        self.before = self.proc.memory_info().rss
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # reset the high-water mark to now
        except OSError:
            self.how = "sampled"
        self.sampled = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            try:
                self.sampled = max(self.sampled, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        peak = self.sampled
        if self.how == "VmHWM":
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024)
        self.growth = peak - self.before


def token(base: str) -> str:
    return requests.post(base + "/debug/token", json={"user": "admin"}, timeout=10).json()["token"]


def fresh_key(base: str, headers: dict) -> str:
    requests.get(base + "/widget/phone", params=dict(CARD, phone=IVAN), headers=headers, timeout=30)
    form = requests.get(base + "/widget/compose", params=dict(CARD, phone=IVAN, line="sales"), headers=headers,
                        timeout=30).text
    return re.search(r'name="key" value="([^"]+)"', form).group(1)


def make_file(folder: Path, n: int, mb: int) -> Path:
    path = folder / f"Договор {n}.pdf"
    with open(path, "wb") as out:
        out.write(b"%PDF-1.4\n")
        out.write(os.urandom(mb * 1024 * 1024 - 9))
    return path


def http_upload(base: str, path: Path, measure) -> float:
    headers = {"X-OLChat-Token": token(base), "HX-Request": "true"}
    key = fresh_key(base, headers)
    with open(path, "rb") as data, measure:
        start = time.perf_counter()
        answer = requests.post(base + "/widget/send-file", params=CARD, headers=headers, timeout=120,
                               data={"key": key, "phone": IVAN, "line": "sales", "text": "", "confirm": "1"},
                               files={"file": (path.name, data, "application/pdf")})
        seconds = time.perf_counter() - start
    if 'data-notice="ok"' not in answer.text:
        raise SystemExit(f"upload not sent: HTTP {answer.status_code} {answer.text[:300]}")
    return seconds


class Browser:
    """The operator's path in Chromium: choose the file, press send, wait for «Сообщение отправлено»."""

    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])

    def upload(self, base: str, path: Path, measure) -> float:
        page = self._browser.new_page()
        try:
            page.goto(f"{base}/widget?entity_type=2&entity_id=10")
            row = page.locator(f'li[data-phone="{IVAN}"]')
            show = page.get_by_role("button", name="Отобразить виджет")
            show.or_(row).first.wait_for(timeout=30_000)
            if show.is_visible():  # a card whose statuses are all remembered shows itself
                show.click()
            row.get_by_role("button", name="Написать в чат").click(timeout=30_000)
            form = row.locator("form.compose")
            form.locator("textarea").wait_for()
            page.wait_for_timeout(100)  # htmx wires a swapped form in its settle step
            # «Всё равно отправить» said beforehand, as a server's clock may be in the client's night.
            form.evaluate("f => f.insertAdjacentHTML('beforeend', '<input type=hidden name=confirm value=1>')")
            with measure:  # the worker's memory from the choice to the answer, not the page's loading
                start = time.perf_counter()
                form.locator('input[type="file"]').set_input_files(str(path))
                form.get_by_role("button", name="Отправить сообщение").click()
                row.locator('[data-notice="ok"]').wait_for(timeout=120_000)
                return time.perf_counter() - start
        finally:
            page.close()

    def close(self):
        self._browser.close()
        self._pw.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    problems: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="olchat-upload-"))
    browser = None
    if not args.no_browser and os.path.exists(CHROMIUM):
        try:
            browser = Browser()
        except Exception as exc:  # noqa: BLE001 - no Playwright here: the HTTP figures alone
            print(f"   (no Chromium run: {exc})")
    with FakeWaha() as waha:
        env = {"OLCHAT_GATEWAY": "waha", "OLCHAT_WAHA_URL": waha.url, "OLCHAT_WAHA_API_KEY": waha.api_key,
               "OLCHAT_WORKER_PROCESS": "0", "OLCHAT_GATEWAY_READ_TIMEOUT": "60",
               # Nothing written beside the checkout: the waiting files and the queue in this run's folder.
               "OLCHAT_UPLOADS_PATH": str(folder / "uploads"), "OLCHAT_JOBS_PATH": str(folder / "jobs.sqlite3")}
        with gunicorn(env, workers=1, threads=4) as (base, log):
            worker = worker_of(base)
            warm = make_file(folder, 0, 1)
            # Code paths imported, pages rendered once, before anything is measured.
            http_upload(base, warm, PeakMemory(worker))
            if browser:
                browser.upload(base, warm, PeakMemory(worker))
            waha.reset()
            results = {"browser": [], "http": []}
            growths = []
            for n in range(1, args.runs + 1):
                for way in (["browser"] if browser else []) + ["http"]:
                    path = make_file(folder, n * 10 + len(results[way]), args.mb)
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    calls = waha.count(SEND_FILE)
                    memory = PeakMemory(worker)
                    seconds = (browser.upload if way == "browser" else http_upload)(base, path, memory)
                    results[way].append(seconds)
                    growths.append(memory.growth)
                    got = waha.exchanges(SEND_FILE)[-1].json()["file"]
                    intact = hashlib.sha256(base64.b64decode(got["data"])).hexdigest() == digest
                    sent = waha.count(SEND_FILE) - calls
                    print(f"   run {n} {way:7}: {seconds:6.2f} s to «отправлено», worker peak +{memory.growth / 2**20:5.1f} MB"
                          f" ({memory.how}), sendFile x{sent}, bytes {'intact' if intact else 'DAMAGED'}")
                    if sent != 1:
                        problems.append(f"{way} run {n}: {sent} sendFile calls")
                    if not intact:
                        problems.append(f"{way} run {n}: WAHA got other bytes")
                    path.unlink()
            check_log(log, problems)
    if browser:
        browser.close()
    shutil.rmtree(folder, ignore_errors=True)
    size = args.mb * 2**20
    print(f"\n{args.mb} MB document, {args.runs} run(s) each, fake WAHA on 127.0.0.1, one gunicorn worker:")
    for way, label in (("browser", "Chromium: chosen → «отправлено»"), ("http", "HTTP POST /widget/send-file")):
        if results[way]:
            print(f"  {label:34} median {statistics.median(results[way]):.2f} s "
                  f"(min {min(results[way]):.2f}, max {max(results[way]):.2f})")
    print(f"  worker peak memory growth          median {statistics.median(growths) / 2**20:.1f} MB, "
          f"max {max(growths) / 2**20:.1f} MB (file {size / 2**20:.0f} MB; its base64 {size * 4 / 3 / 2**20:.1f} MB)")
    if max(growths) >= size:
        problems.append(f"worker memory grew by {max(growths) / 2**20:.1f} MB: the file was held whole")
    for problem in problems:
        print("GOAL MISSED:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

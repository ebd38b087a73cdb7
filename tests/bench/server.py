"""The app under gunicorn for benchmarks: a fresh instance each time, its log checked for tracebacks."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
# Debian's Chromium, as the browser tests launch it (never a downloaded browser), quiet and repeatable.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(env_extra: dict, workers: int, threads: int):
    """Run the app under gunicorn on a fresh database; yield (base URL, log path)."""
    tmp = Path(tempfile.mkdtemp(prefix="olchat-bench-"))
    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}", OLCHAT_SECRET_KEY="bench",
               **{k: str(v) for k, v in env_extra.items()})
    log = tmp / "gunicorn.log"
    proc = None
    try:
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "init-db"], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        with open(log, "wb") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads",
                                     str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                                     "wsgi:app"], cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if requests.get(base + "/healthz", timeout=3).ok:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        else:
            raise SystemExit("gunicorn did not start:\n" + log.read_text(errors="replace"))
        yield base, log
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if os.environ.get("OLCHAT_BENCH_KEEP"):
            print("   kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def check_log(log: Path, problems: list[str]) -> None:
    """A traceback in the server's log is a bug even when the answer looked fine: show its last lines."""
    text = log.read_text(errors="replace")
    count = text.count("Traceback")
    if count:
        print(f"   server log: {count} traceback(s); the last one ends:")
        print("     " + "\n     ".join(text.strip().splitlines()[-6:]))
        problems.append(f"gunicorn logged {count} traceback(s)")

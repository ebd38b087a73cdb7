"""Production serving: the gunicorn config and the health check."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
from gunicorn.config import Config

from olchat_widget import create_app
from tests.conftest import NUMBERING_CSV

CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


@pytest.fixture
def conf(monkeypatch):
    for name in ("OLCHAT_BIND", "OLCHAT_WORKERS", "OLCHAT_THREADS", "OLCHAT_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    return {k: v for k, v in runpy.run_path(str(CONF)).items() if not k.startswith("_") and k not in ("os", "multiprocessing")}


def test_every_name_in_the_config_is_a_gunicorn_setting(conf):
    config = Config()
    for name, value in conf.items():
        assert name in config.settings, f"{name} is not a gunicorn setting"
        config.set(name, value)  # validates the value as gunicorn would
    assert config.worker_class_str == "gthread"


def test_threads_and_timeouts_fit_a_slow_gateway(conf):
    assert conf["wsgi_app"] == "wsgi:app"
    assert conf["worker_class"] == "gthread"
    assert conf["threads"] >= 16
    assert 1 <= conf["workers"] <= 8
    # Longer than the slowest legitimate request: gateway connect + read timeouts and the DB wait.
    assert conf["timeout"] > 3.05 + 10 + 3
    assert conf["graceful_timeout"] >= 10
    assert conf["preload_app"] is False


def test_access_log_has_the_path_only_no_query_string_and_no_headers(conf):
    fmt = conf["access_log_format"]
    assert "%(U)s" in fmt
    for atom in ("%(q)s", "%(r)s", "%(f)s", "%(a)s", "%(u)s"):
        assert atom not in fmt
    assert not re.search(r"%\(\{[^}]*\}[io]\)s", fmt), "no request or response headers"
    assert conf["accesslog"] == "-"


def test_access_log_line_shows_no_token_or_query(conf):
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.glogging import Logger

    config = Config()
    config.set("access_log_format", conf["access_log_format"])
    logger = Logger(config)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/widget/phones?AUTH_ID=secret-auth", "PATH_INFO": "/widget/phones",
               "QUERY_STRING": "AUTH_ID=secret-auth", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_X_OLCHAT_TOKEN": "secret-token", "HTTP_REFERER": "https://p/?AUTH_ID=secret-ref"}
    request = SimpleNamespace(headers=[("X-OLCHAT-TOKEN", "secret-token"), ("REFERER", environ["HTTP_REFERER"])])
    response = SimpleNamespace(status="200 OK", sent=12, headers=[])
    line = conf["access_log_format"] % logger.atoms(response, request, environ, timedelta(milliseconds=5))
    assert "/widget/phones" in line and " 200 " in line
    assert "secret" not in line


def test_settings_overridable_from_the_environment(monkeypatch):
    monkeypatch.setenv("OLCHAT_THREADS", "64")
    monkeypatch.setenv("OLCHAT_BIND", "0.0.0.0:9000")
    conf = runpy.run_path(str(CONF))
    assert conf["threads"] == 64 and conf["bind"] == "0.0.0.0:9000"


# ---------------------------------------------------------------- /healthz


def test_healthz_is_ok_with_a_working_database(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_data(as_text=True).strip() == "ok"
    assert answer.headers["Cache-Control"] == "no-store"


def test_healthz_needs_no_token_even_without_the_debug_page(tmp_path):
    from tests.conftest import make_app

    app = make_app(tmp_path, OLCHAT_DEBUG_PAGE=False)
    assert app.test_client().get("/healthz").status_code == 200


def test_healthz_is_503_with_a_broken_database_url(tmp_path):
    app = create_app({"TESTING": True, "OLCHAT_SECRET_KEY": "x", "OLCHAT_NUMBERING_PATH": str(NUMBERING_CSV),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'missing' / 'db.sqlite3'}"})
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 503
    assert "ok" not in answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread priorities from Linux's /proc")
def test_the_consumer_started_beside_the_server_runs_below_the_web_workers_priority(tmp_path, monkeypatch):
    """A webhook's answer (WAHA waits on it) goes before a delivery when both want the CPU of one machine."""
    import os
    import time
    from types import SimpleNamespace

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.sqlite3'}")
    monkeypatch.setenv("OLCHAT_JOBS_PATH", str(tmp_path / "jobs.sqlite3"))
    monkeypatch.setenv("OLCHAT_SECRET_KEY", "test-secret")
    monkeypatch.delenv("OLCHAT_WORKER_PROCESS", raising=False)
    monkeypatch.delenv("OLCHAT_WORKER_NICE", raising=False)
    monkeypatch.chdir(CONF.parent)
    hooks = runpy.run_path(str(CONF))
    hooks["on_starting"](SimpleNamespace(log=SimpleNamespace(info=lambda *args: None)))
    [consumer] = hooks["_consumer"]
    ours = os.getpriority(os.PRIO_PROCESS, 0)

    def priorities() -> list[int]:
        # Field 19 of a thread's stat is its nice value; the consumer's job threads each have their own.
        return [int(stat.read_text().rsplit(")", 1)[1].split()[16])
                for stat in Path(f"/proc/{consumer.pid}/task").glob("*/stat")]

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(priorities()) < 5 and consumer.poll() is None:
            time.sleep(0.05)  # until the consumer runs its job threads
        assert consumer.poll() is None, "the consumer stopped"
        seen = priorities()
        assert len(seen) >= 5 and all(nice == min(19, ours + 10) for nice in seen), seen
    finally:
        hooks["on_exit"](SimpleNamespace())
    assert consumer.poll() is not None

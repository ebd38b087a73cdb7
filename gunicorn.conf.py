"""Gunicorn settings for production: ``gunicorn -c gunicorn.conf.py``.

Every value can be changed without editing this file: OLCHAT_BIND, OLCHAT_WORKERS
and OLCHAT_THREADS here, or any gunicorn flag after ``-c gunicorn.conf.py``.
"""
import multiprocessing
import os

wsgi_app = "wsgi:app"
bind = os.environ.get("OLCHAT_BIND", "127.0.0.1:8000")  # behind a TLS-terminating reverse proxy

# Threads, not more processes: a request mostly waits — on WhatsApp's gateway (a check or a send
# may take the whole 10 s read timeout), on Bitrix24, on a check another request has in flight
# (up to OLCHAT_CHECK_WAIT, 8 s). 32 threads per worker keep a worker answering cards while 32 such
# requests wait; the worker's caches (portals, cards, rendered rows) are shared by its threads.
worker_class = "gthread"
workers = int(os.environ.get("OLCHAT_WORKERS", min(multiprocessing.cpu_count() * 2, 8)))
threads = int(os.environ.get("OLCHAT_THREADS", 32))
# create_app runs in each worker after the fork: no database connection or lock crosses a fork.
preload_app = False

# A worker that does not check in for this long is killed and replaced. Longer than the slowest
# legitimate request: gateway connect 3.05 s + read 10 s, plus the database wait (OLCHAT_DB_TIMEOUT).
timeout = 30
# On SIGTERM (deploy, scale-in) requests in flight — a send among them — get this long to finish.
graceful_timeout = 30
keepalive = 5  # seconds an idle proxy connection is kept

# Bound the request line and headers (gunicorn's defaults, said out loud); bodies are bounded
# by the app (OLCHAT_MAX_REQUEST_BYTES → 413).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# Access log: who, method, path, status, size, time. Only the path (%(U)s): query strings and
# the request line (%(r)s, %(q)s) may carry Bitrix24 AUTH_ID and similar; no headers at all —
# the widget token travels in X-OLChat-Token, and Referer and Authorization (%(f)s, %(u)s) can
# carry secrets too.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("OLCHAT_LOG_LEVEL", "info")
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'

# The background queue's consumer (Open Lines deliveries) starts and stops with the server, as a
# child process of the master: one command runs everything. OLCHAT_WORKER_PROCESS=0 when the
# consumers run elsewhere (`flask --app wsgi worker` on other machines, with OLCHAT_REDIS_URL).
_consumer = []


def on_starting(server):
    if os.environ.get("OLCHAT_WORKER_PROCESS", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    import subprocess
    import sys

    # Niced: on this machine a webhook's answer (WAHA waits on it, ≤ 100 ms) goes before a delivery.
    nice = os.environ.get("OLCHAT_WORKER_NICE", "10")
    _consumer.append(subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--nice", nice]))
    server.log.info("queue consumer started (pid %s)", _consumer[0].pid)


def on_exit(server):
    for process in _consumer:
        process.terminate()
        try:
            process.wait(timeout=graceful_timeout)
        except Exception:  # noqa: BLE001 - a consumer that will not stop is killed
            process.kill()

"""The background queue: huey, on SQLite in the instance folder by default, on Redis with OLCHAT_REDIS_URL.

Tasks are thin: each runs one function of the room that owns the work, inside
the app's context. Everything a task does is safe to run twice (a unique key
per effect), because huey delivers at least once: a consumer killed halfway
leaves the task to be run again.
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app, g
from huey import MemoryHuey, RedisHuey, SqliteHuey
from huey.storage import SqliteStorage

KEY = "olchat_huey"
# Set in g while a task runs: Bitrix24 clients made then wait for the portal's shared bucket (b24/bucket.py).
IN_WORKER = "olchat_in_worker"


class QueueFileStorage(SqliteStorage):
    """huey's SQLite storage (WAL) with synchronous=NORMAL, as the app's own database has (models.py).

    huey's own choice is a disk sync on every commit, which made queueing a
    webhook's delivery its slowest step (about 4 ms of ~6). A power cut can lose
    the last few queued tasks, never the messages: they are rows in the app's
    database, and the minute's sweep (bridge/inbound.sweep) queues any left.
    """

    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


class QueueFileHuey(SqliteHuey):
    storage_class = QueueFileStorage


def make_huey(app):
    """The huey instance this app's config asks for.

    ``results=False``: nothing reads a task's return value, and storing it cost
    every task a write to the queue's file, beside the webhooks queueing theirs.
    """
    cfg = app.config
    name = "olchat"
    if cfg["OLCHAT_JOBS_IMMEDIATE"]:
        # Tests and single-process demos: a task runs at once, in the caller's thread.
        return MemoryHuey(name, immediate=True, results=False)
    if cfg["OLCHAT_REDIS_URL"]:
        return RedisHuey(name, url=cfg["OLCHAT_REDIS_URL"], results=False)
    path = cfg["OLCHAT_JOBS_PATH"] or str(Path(app.instance_path) / "jobs.sqlite3")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return QueueFileHuey(name, filename=path, results=False)


def init_jobs(app) -> None:
    """Create the queue and register the tasks on ``app``."""
    huey = make_huey(app)
    app.extensions[KEY] = huey

    def in_app(func):
        def run(*args, **kwargs):
            with app.app_context():
                g.setdefault(IN_WORKER, True)
                return func(*args, **kwargs)

        return run

    from huey import crontab

    from .bridge import inbound, media, mirror, outbound, statuses
    from .widget import timeline

    retries, delay = app.config["OLCHAT_JOB_RETRIES"], app.config["OLCHAT_JOB_RETRY_DELAY"]
    jobs = {
        "deliver_inbound": inbound.deliver_chat,      # a client's messages to the Open Line, one chat in order
        "deliver_outbound": outbound.deliver,         # an operator's reply to WhatsApp, each part once
        "deliver_mirror": mirror.deliver,             # widget sends and the phone's own into the Open Lines chat
        "report_delivered": statuses.report_delivered,  # WhatsApp's ack told to Bitrix24, once
        "report_failed": statuses.report_failed,
        "update_timeline": timeline.update_delivery,  # its delivered / not delivered, once
        "post_timeline": timeline.post,               # «Создавать дело»: a sent message in its card's timeline, once
    }
    # A failing job waits twice as long each time (delay, 2×, 4× ...): a portal or WAHA that is down
    # is not hammered; the sweeps below take over what is left after the last retry.
    app.extensions["olchat_tasks"] = {
        name: huey.task(retries=retries, retry_delay=delay, retry_backoff=2.0, name=name)(in_app(func))
        for name, func in jobs.items()}
    # Every minute: chats whose job gave up or whose consumer died are queued again.
    huey.periodic_task(crontab(minute="*"), name="sweep_inbound")(in_app(inbound.sweep))
    huey.periodic_task(crontab(minute="*"), name="sweep_mirror")(in_app(mirror.sweep))
    huey.periodic_task(crontab(minute="*"), name="sweep_timeline")(in_app(timeline.sweep))
    # Hourly: clients' files whose signed URLs have all expired are deleted.
    huey.periodic_task(crontab(minute="17"), name="forget_bridge_files")(in_app(media.forget_old_files))
    # Hourly: Bitrix24 may drop a connector from a line (it then loses messages silently).
    huey.periodic_task(crontab(minute="17"), name="check_connectors")(in_app(statuses.check_connectors))


def enqueue(name: str, *args) -> None:
    """Queue the task ``name`` (run at once when the queue is immediate)."""
    current_app.extensions["olchat_tasks"][name](*args)


def queue_of(app):
    return app.extensions[KEY]

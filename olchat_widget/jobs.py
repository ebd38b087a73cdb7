"""The background queue: huey, on SQLite in the instance folder by default, on Redis with OLCHAT_REDIS_URL.

Tasks are thin: each runs one function of the room that owns the work, inside
the app's context. Everything a task does is safe to run twice (a unique key
per effect), because huey delivers at least once: a consumer killed halfway
leaves the task to be run again.
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app, g

KEY = "olchat_huey"
# Set in g while a task runs: Bitrix24 clients made then wait for the portal's shared bucket (b24/bucket.py).
IN_WORKER = "olchat_in_worker"


def make_huey(app):
    """The huey instance this app's config asks for."""
    from huey import MemoryHuey, RedisHuey, SqliteHuey

    cfg = app.config
    name = "olchat"
    if cfg["OLCHAT_JOBS_IMMEDIATE"]:
        # Tests and single-process demos: a task runs at once, in the caller's thread.
        return MemoryHuey(name, immediate=True)
    if cfg["OLCHAT_REDIS_URL"]:
        return RedisHuey(name, url=cfg["OLCHAT_REDIS_URL"])
    path = cfg["OLCHAT_JOBS_PATH"] or str(Path(app.instance_path) / "jobs.sqlite3")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=path)


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

    from .bridge import inbound, mirror, outbound

    retries, delay = app.config["OLCHAT_JOB_RETRIES"], app.config["OLCHAT_JOB_RETRY_DELAY"]
    app.extensions["olchat_tasks"] = {
        "deliver_inbound": huey.task(retries=retries, retry_delay=delay, name="deliver_inbound")(
            in_app(inbound.deliver_chat)),
        "deliver_outbound": huey.task(retries=retries, retry_delay=delay, name="deliver_outbound")(
            in_app(outbound.deliver)),
        "deliver_mirror": huey.task(retries=retries, retry_delay=delay, name="deliver_mirror")(
            in_app(mirror.deliver)),
    }
    from huey import crontab

    # Every minute: chats whose job gave up or whose consumer died are queued again.
    huey.periodic_task(crontab(minute="*"), name="sweep_inbound")(in_app(inbound.sweep))
    # Likewise for messages mirrored into Open Lines (widget sends, the phone's own).
    huey.periodic_task(crontab(minute="*"), name="sweep_mirror")(in_app(mirror.sweep))
    from .bridge import media

    # Hourly: clients' files whose signed URLs have all expired are deleted.
    huey.periodic_task(crontab(minute="17"), name="forget_bridge_files")(in_app(media.forget_old_files))

    from .bridge import statuses

    # WhatsApp's acks of operators' messages, told to Bitrix24 (each once: a gate in the row).
    app.extensions["olchat_tasks"].update({
        "report_delivered": huey.task(retries=retries, retry_delay=delay, name="report_delivered")(
            in_app(statuses.report_delivered)),
        "report_failed": huey.task(retries=retries, retry_delay=delay, name="report_failed")(
            in_app(statuses.report_failed)),
    })
    # Every hour: Bitrix24 may drop a connector from a line (it then loses messages silently).
    huey.periodic_task(crontab(minute="17"), name="check_connectors")(in_app(statuses.check_connectors))


def enqueue(name: str, *args) -> None:
    """Queue the task ``name`` (run at once when the queue is immediate)."""
    current_app.extensions["olchat_tasks"][name](*args)


def queue_of(app):
    return app.extensions[KEY]

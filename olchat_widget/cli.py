"""Flask commands: init-db, worker, numbering (update / status)."""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from .models import db


def init_db() -> list[str]:
    """Create missing tables, add the columns and indexes a newer release brought, make the demo portal;
    return what the upgrade changed."""
    from .schema import upgrade

    db.create_all()
    changed = upgrade(db.engine, db.metadata)
    from .admin.views import demo_portal
    from .b24.portal import seal_plain_tokens

    demo_portal()
    seal_plain_tokens()
    return changed


def seed_numbering() -> str | None:
    """Give a new deployment the shared numbering plan snapshot, if it has none yet; say what was done."""
    from .config import shared_numbering_snapshot
    from .phones import NumberingPlanError, update_registry

    target = Path(current_app.config["OLCHAT_NUMBERING_PATH"])
    snapshot = shared_numbering_snapshot()
    if target.exists() or snapshot is None:
        return None
    try:
        result = update_registry(str(snapshot), str(target))
    except NumberingPlanError as exc:
        return f"Numbering plan not seeded: {exc}"
    current_app.extensions.get("olchat_numbering_reset", lambda: None)()
    return f"Numbering plan seeded from {snapshot}: {result.rows} ranges"


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database tables, or bring existing ones up to this release (safe to run again)."""
    from .schema import SchemaError

    try:
        changed = init_db()
    except SchemaError as exc:
        raise click.ClickException(f"The database needs a migration this release cannot make itself: {exc}")
    for line in changed:
        click.echo(f"Database upgraded: {line}")
    note = seed_numbering()
    if note:
        click.echo(note)
    click.echo(f"Database ready: {current_app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}")


@click.command("worker")
@click.option("--workers", default=4, show_default=True, help="threads running jobs")
@click.option("--max-delay", default=0.25, show_default=True,
              help="longest pause, seconds, between two looks at an idle queue")
@click.option("--nice", "niceness", default=0, show_default=True, type=click.IntRange(0, 19),
              help="lower the consumer's CPU priority by this much (0-19)")
def worker_command(workers: int, max_delay: float, niceness: int):
    """Run the background queue's consumer (Open Lines deliveries) until stopped."""
    from .jobs import queue_of

    if niceness:
        # Before any thread starts: Linux keeps a priority per thread and new threads inherit it.
        # Beside the web server on one machine, a webhook's answer (WAHA waits on it) comes before a
        # delivery (which has seconds to spare): the consumer takes the CPU the answers leave.
        os.nice(niceness)

    huey = queue_of(current_app._get_current_object())
    click.echo(f"olchat worker: {type(huey).__name__}, {workers} threads")
    # Threads: the jobs wait on HTTP (Bitrix24, WAHA), not on the CPU. huey's default idle back-off
    # grows to 10 s, which a client's message would wait on the SQLite queue before it even starts
    # (Redis blocks on the queue instead); a look every quarter second is one cheap query.
    huey.create_consumer(workers=workers, worker_type="thread", periodic=True, initial_delay=0.05,
                         max_delay=max_delay).run()


def register_cli(app) -> None:
    app.cli.add_command(init_db_command)
    app.cli.add_command(worker_command)
    try:
        from .phones.cli import numbering_cli
    except ImportError:
        return
    app.cli.add_command(numbering_cli)

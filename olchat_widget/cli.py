"""Flask commands: init-db, numbering (update / status)."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from .models import db


def init_db() -> None:
    """Create missing tables and the demo portal."""
    db.create_all()
    from .admin.views import demo_portal

    demo_portal()


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database tables (safe to run again)."""
    init_db()
    click.echo(f"Database ready: {current_app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}")


def register_cli(app) -> None:
    app.cli.add_command(init_db_command)
    try:
        from .phones.cli import numbering_cli
    except ImportError:
        return
    app.cli.add_command(numbering_cli)

"""`flask numbering update|status`: refresh and inspect the numbering plan registry."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import click
from flask import current_app
from flask.cli import AppGroup

from .numbering import NumberingPlan, NumberingPlanError
from .update import DEFAULT_REGISTRY_URL, update_registry

numbering_cli = AppGroup(
    "numbering",
    help="Russian numbering plan (DEF-9xx.csv): exact region, operator and time zone of +7 9xx numbers.",
)


def _target() -> str:
    """Return the configured path of the active registry file."""
    return str(current_app.config.get("OLCHAT_NUMBERING_PATH") or "")


@numbering_cli.command("update")
@click.argument("source", required=False)
@click.option("--timeout", default=30.0, show_default=True, help="Download timeout, seconds.")
def update_command(source: str | None, timeout: float) -> None:
    """Fetch SOURCE (URL or file; default OLCHAT_NUMBERING_URL), validate it and make it active."""
    source = source or current_app.config.get("OLCHAT_NUMBERING_URL") or DEFAULT_REGISTRY_URL
    target = _target()
    if not target:
        click.echo("Update failed: OLCHAT_NUMBERING_PATH is not set; nowhere to keep the registry.", err=True)
        raise SystemExit(1)
    click.echo(f"Fetching {source} ...")
    try:
        result = update_registry(source, target, timeout=timeout)
    except NumberingPlanError as exc:
        click.echo(f"Update failed: {exc}", err=True)
        click.echo(f"The active registry at {target} was left unchanged.", err=True)
        raise SystemExit(1)
    click.echo(f"Loaded {result.summary()}")
    # Let this process's app drop its cached plan; other processes see the new mtime.
    current_app.extensions.get("olchat_numbering_reset", lambda: None)()


@numbering_cli.command("status")
def status_command() -> None:
    """Show which registry file is active and what it holds."""
    target = _target()
    click.echo(f"Registry path: {target or '(OLCHAT_NUMBERING_PATH is not set)'}")
    click.echo(f"Update source: {current_app.config.get('OLCHAT_NUMBERING_URL') or DEFAULT_REGISTRY_URL}")
    if not target or not os.path.exists(target):
        click.echo("No registry loaded: Russian mobiles are described by libphonenumber alone. "
                   "Run `flask numbering update` to fetch it.")
        return
    try:
        plan = NumberingPlan.load(target)
    except NumberingPlanError as exc:
        click.echo(f"The registry file is unusable: {exc}", err=True)
        raise SystemExit(1)
    stat = os.stat(target)
    modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    click.echo(f"Ranges: {plan.rows} in {plan.codes} codes; {len(plan.operators)} operator names, "
               f"{len(plan.territories)} territories")
    click.echo(f"File: {stat.st_size} bytes, updated {modified}")
    if plan.unknown_territories:
        click.echo("Territories without a time zone (shown as unknown time): "
                   + "; ".join(plan.unknown_territories))

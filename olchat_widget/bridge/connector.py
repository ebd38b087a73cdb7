"""Our Open Lines connector: registered at install, bound to an Open Line by a portal admin.

One WhatsApp line serves at most one Open Line (and one Open Line one WhatsApp
line): both are unique in OpenLineBinding.
"""
from __future__ import annotations

import json
from urllib.parse import quote

from flask import current_app, url_for
from sqlalchemy.exc import IntegrityError

from ..models import OpenLineBinding, db

NAME = "OLChat WhatsApp"
# Our own icon: a speech bubble with a phone handset, drawn for this connector.
ICON_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
            '<path fill="#fff" d="M32 8a24 24 0 0 0-20.6 36.3L8 56l12-3.2A24 24 0 1 0 32 8z"/>'
            '<path fill="#1a8f4c" d="M24.5 20.5c-.8 0-2 .3-3 1.5-1 1.1-3 3-3 7.4s3.1 8.6 3.5 9.2'
            'c.5.6 6 9.6 14.9 13.1 7.4 2.9 8.9 2.3 10.5 2.2 1.6-.2 5.2-2.1 5.9-4.2.7-2 .7-3.8.5-4.2'
            '-.2-.4-.8-.6-1.7-1.1l-5.6-2.7c-.8-.3-1.3-.4-1.9.4l-2.6 3.2c-.5.6-1 .6-1.8.2-.9-.4-3.6-1.3'
            '-6.9-4.3-2.5-2.3-4.3-5.1-4.8-6-.5-.8 0-1.3.4-1.7l1.3-1.5c.4-.5.6-.9.9-1.5.3-.6.1-1.1 0-1.6'
            'l-2.5-6.1c-.6-1.6-1.3-1.4-1.8-1.4z"/></svg>')


class ConnectorError(Exception):
    """Bitrix24 refused or could not be asked."""


class LineTaken(Exception):
    """That WhatsApp line already serves another Open Line."""


def connector_id() -> str:
    return current_app.config["OLCHAT_CONNECTOR_ID"]


def icon() -> dict:
    return {"DATA_IMAGE": "data:image/svg+xml;charset=US-ASCII," + quote(ICON_SVG, safe=""),
            "COLOR": "#1a8f4c", "SIZE": "90%", "POSITION": "center"}


def registration_commands() -> dict:
    """The batch commands install runs: the connector, then its events (safe to run again)."""
    events = url_for("b24.events", _external=True)
    commands = {"connector": ("imconnector.register", {
        "ID": connector_id(), "NAME": NAME, "ICON": icon(), "ICON_DISABLED": icon(),
        # Not grouped: chats are per client, so the CRM tracker binds them to leads and deals.
        "CHAT_GROUP": "N", "PLACEMENT_HANDLER": url_for("b24.connector_page", _external=True)})}
    for event in ("OnImConnectorMessageAdd", "OnImConnectorLineDelete", "OnImConnectorStatusDelete"):
        commands[f"unbind_{event}"] = ("event.unbind", {"event": event, "handler": events})
        commands[f"bind_{event}"] = ("event.bind", {"event": event, "handler": events})
    return commands


def bindings(portal_id: int) -> list[OpenLineBinding]:
    return db.session.scalars(db.select(OpenLineBinding).filter_by(portal_id=portal_id)).all()


def connect(portal, line_id: str, openline: str, line_name: str) -> str | None:
    """Bind ``line_id`` to Open Line ``openline`` and tell Bitrix24 the connector is active there.

    Then the line's webhook is set on WAHA; returns None, or why WAHA could not
    be told (the binding stands: the admin can paste the webhook by hand).
    """
    from ..b24.client import B24Error
    from ..models import Portal

    taken = db.session.scalar(db.select(OpenLineBinding).filter_by(portal_id=portal.id, line_id=line_id))
    if taken is not None and taken.openline_id != openline:
        raise LineTaken(line_id)
    row = db.session.scalar(db.select(OpenLineBinding).filter_by(portal_id=portal.id, openline_id=openline))
    if row is None:
        row = OpenLineBinding(portal_id=portal.id, line_id=line_id, openline_id=openline)
        db.session.add(row)
    row.line_id = line_id
    # Kept for the hourly check (a job, with no request to build our URLs from).
    row.connector_data = json.dumps(connector_data(line_id, line_name), ensure_ascii=False)
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise LineTaken(line_id) from exc
    portal_row = db.session.get(Portal, portal.id)
    try:
        activate(portal_row, row)
    except B24Error as exc:
        db.session.rollback()
        raise ConnectorError(str(exc)) from exc
    db.session.commit()
    from .webhooks import set_line_webhooks

    return set_line_webhooks(portal_row, [line_id])


def connector_data(line_id: str, line_name: str) -> dict:
    """imconnector.connector.data.set's DATA for a line (the whole object is replaced on every call)."""
    return {"ID": f"{connector_id()}_{line_id}"[:64], "NAME": f"WhatsApp · {line_name}"[:100],
            "URL": url_for("b24.connector_page", _external=True),
            "URL_IM": url_for("b24.connector_page", _external=True)}


def activate(portal, binding: OpenLineBinding) -> None:
    """Tell Bitrix24 our connector serves the binding's Open Line (at connect, and when it dropped it)."""
    from ..b24.portal import app_client

    client = app_client(portal)
    client.call("imconnector.activate", {"CONNECTOR": connector_id(), "LINE": binding.openline_id, "ACTIVE": 1})
    data = json.loads(binding.connector_data) if binding.connector_data else None
    if data:
        client.call("imconnector.connector.data.set", {"CONNECTOR": connector_id(), "LINE": binding.openline_id,
                                                        "DATA": data})


def disconnect(portal, openline: str) -> None:
    from ..b24.client import B24Error
    from ..b24.portal import app_client
    from ..models import Portal

    row = db.session.scalar(db.select(OpenLineBinding).filter_by(portal_id=portal.id, openline_id=openline))
    if row is None:
        return
    try:
        app_client(db.session.get(Portal, portal.id)).call(
            "imconnector.activate", {"CONNECTOR": connector_id(), "LINE": openline, "ACTIVE": 0})
    except B24Error as exc:
        raise ConnectorError(str(exc)) from exc
    db.session.delete(row)
    db.session.commit()


def forget_openline(portal_id: int, openline: str) -> None:
    """The connector was removed from an Open Line in Bitrix24 (OnImConnectorLineDelete/StatusDelete)."""
    db.session.execute(db.delete(OpenLineBinding).where(OpenLineBinding.portal_id == portal_id,
                                                       OpenLineBinding.openline_id == openline))
    db.session.commit()

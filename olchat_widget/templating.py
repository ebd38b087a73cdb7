"""Jinja filters and globals: how numbers, owners and times read on screen."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

import phonenumbers
from flask import request
from urllib.parse import urlencode

from .i18n import t

# Operators in Russia read times in Moscow time unless told otherwise.
MSK = timezone(timedelta(hours=3))


@lru_cache(maxsize=20_000)
def phone_display(e164: str) -> str:
    """Format an E.164 number the way people read it: +7 916 123-45-67."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, None),
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return e164


def owner_label(owner) -> str:
    return f"{t('owner_' + owner.kind)}: {owner.name}" if owner.name else t("owner_" + owner.kind)


def message_time(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(int(timestamp), MSK).strftime("%d.%m.%Y %H:%M")
    except (ValueError, OverflowError, OSError):
        return ""


def iso_time(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(int(timestamp), timezone.utc).isoformat()
    except (ValueError, OverflowError, OSError):
        return ""


def checked_ago(checked_at: datetime | None) -> str:
    """«проверено 5 мин назад»: how long ago a number's status was asked of WhatsApp, by the app clock."""
    if checked_at is None:
        return ""
    from .clock import utcnow

    minutes = max(int((utcnow() - checked_at).total_seconds() // 60), 0)
    if minutes < 1:
        return t("checked_just_now")
    if minutes < 60:
        return t("checked_min_ago", n=minutes)
    if minutes < 24 * 60:
        return t("checked_h_ago", n=minutes // 60)
    return t("checked_d_ago", n=minutes // (24 * 60))


def digits(e164: str) -> str:
    return "".join(ch for ch in e164 if ch.isdigit())


def line_state(status: str) -> str:
    """The line state in words; an unknown state (newer gateway) shows as the gateway says it."""
    text = t("state_" + status)
    return status if text == "state_" + status else text


def retry_helps(reason: str) -> bool:
    """Whether «Повторить» can mend this failure (errors.py decides; imported late, it imports the app's web layer)."""
    from .errors import retry_helps as helps
    return helps(reason)


def error_text(reason: str, part: str) -> str:
    """Title or body of the error ``reason`` (see errors.ERRORS)."""
    from .errors import ERRORS

    return t(ERRORS.get(reason, ERRORS["internal"])[1] + "_" + part, state="")


def tr(ru: str, en: str) -> str:
    """Pick the Russian or English text inline (admin pages' one-off sentences)."""
    from .i18n import locale

    return en if locale() == "en" else ru


def row_urls(entity_type: int, entity_id: int, phone: str, line_id: str | None) -> dict[str, str]:
    """The URLs of one phone row's actions.

    Built with one urlencode instead of five url_for calls: rows are the hot
    part of the warm widget load, and url_for dominated its time.
    """
    params = {"entity_type": entity_type, "entity_id": entity_id, "phone": phone}
    if line_id:
        params["line"] = line_id
    query = urlencode(params)
    root = request.script_root
    return {name: f"{root}/widget/{name}?{query}" for name in ("phone", "chat", "compose", "history")}


def register_templating(app) -> None:
    app.jinja_env.filters.update(phone_display=phone_display, owner_label=owner_label,
                                 message_time=message_time, iso_time=iso_time, digits=digits)
    app.jinja_env.globals.update(t=t, tr=tr, row_urls=row_urls, line_state=line_state, error_text=error_text,
                                 checked_ago=checked_ago, retry_helps=retry_helps)
    app.jinja_env.globals["MSK"] = MSK

"""The widget's work, free of HTTP: a card's phones, lines, chats.

The path of a widget load reads top to bottom here: card (cached per portal +
entity) → normalise, de-duplicate, cap → describe each number (pure, in
memory). WhatsApp presence is the guard's job; views only glue these together.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, time as dtime, timedelta

from flask import current_app

from .. import clock
from ..crm.base import Card, Owner, card_from_dict, card_to_dict
from ..gateway.base import ChatRef, GatewayError, Line, WORKING
from ..models import CachedCard, CardAccess, Chat, Settings, UserPreference, db, get_or_create, utcnow
from ..phones import ClientTime, PhoneInfo, Thresholds, client_time, describe, parse_phone_field
from ..phones.numbering import plan_for_app
from ..runtime import crm_for, gateway_for, runtime


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class SettingsView:
    """A portal's settings as the widget reads them (a snapshot, cached briefly)."""

    always_show: bool
    max_phones: int | None
    default_region: str | None
    check_budget: int | None
    orange_start: str
    green_start: str
    green_end: str
    orange_end: str
    auto_show: bool = True
    recheck_minutes: int = 10


def settings_row(portal_id: int) -> Settings:
    """Return the portal's settings row, creating the defaults on first use."""
    return get_or_create(Settings, portal_id=portal_id)


def settings_of(portal) -> SettingsView:
    """Return the portal's settings; other workers see a change within 30 seconds."""
    cache = runtime().settings
    view = cache.get(portal.id)
    if view is None:
        row = settings_row(portal.id)
        view = SettingsView(row.always_show, row.max_phones, row.default_region, row.check_budget,
                            row.orange_start, row.green_start, row.green_end, row.orange_end,
                            row.auto_show, row.recheck_minutes)
        cache.set(portal.id, view)
    return view


def forget_settings(portal_id: int) -> None:
    runtime().settings.pop(portal_id)


def _hhmm(value: str, default: dtime) -> dtime:
    try:
        hours, minutes = value.split(":")
        return dtime(int(hours), int(minutes))
    except (ValueError, AttributeError):
        return default


@lru_cache(maxsize=4096)
def thresholds_of(settings: SettingsView) -> Thresholds:
    base = Thresholds()
    return Thresholds(
        orange_start=_hhmm(settings.orange_start, base.orange_start),
        green_start=_hhmm(settings.green_start, base.green_start),
        green_end=_hhmm(settings.green_end, base.green_end),
        orange_end=_hhmm(settings.orange_end, base.orange_end),
    )


def max_phones_of(settings: SettingsView) -> int:
    return settings.max_phones or current_app.config["OLCHAT_MAX_PHONES"]


def budget_of(settings: SettingsView) -> int:
    return settings.check_budget if settings.check_budget is not None else current_app.config["OLCHAT_CHECK_BUDGET"]


def recheck_age(settings: SettingsView) -> timedelta:
    """How old a number's last check must be before «Обновить данные виджета» checks it again."""
    return timedelta(minutes=settings.recheck_minutes)


def region_of(settings: SettingsView) -> str:
    return settings.default_region or current_app.config["OLCHAT_DEFAULT_REGION"]


# ---------------------------------------------------------------- phones of a card


@dataclass
class PhoneRow:
    e164: str
    extension: str | None
    owners: list[Owner]
    info: PhoneInfo | None
    time: ClientTime | None
    # The row before has the same owners: the widget writes them once (screen readers still hear them).
    same_owner: bool = False


@dataclass
class InvalidPhone:
    raw: str
    owner: Owner
    reason: str


@dataclass
class PhoneList:
    card: Card
    rows: list[PhoneRow]
    invalid: tuple[InvalidPhone, ...]
    total: int  # distinct valid numbers before the cap
    fetched_at: datetime
    capped: bool = field(init=False)

    def __post_init__(self):
        self.capped = self.total > len(self.rows)

    def row(self, e164: str) -> PhoneRow | None:
        return next((r for r in self.rows if r.e164 == e164), None)


@lru_cache(maxsize=50_000)
def _parse_field(value: str, region: str) -> tuple:
    # Pure and hot: every widget load parses the same few CRM values again.
    return tuple(parse_phone_field(value, region))


def load_card(portal, user_id: str, entity_type_id: int, entity_id: int, *,
              fresh: bool = False) -> tuple[Card, datetime]:
    """Return the card for ``user_id`` and when it was fetched; the CRM is asked at most once per freshness window.

    Process cache, then the table shared by all workers, then the CRM. Where
    Bitrix24 decides per user, the shared copy is served only to a user whose
    own right to read the card was verified within the window; anyone else's
    request reads the card with their own token (CrmAccessDenied if refused).
    """
    if not fresh:
        entry = _shared_card(portal, entity_type_id, entity_id)
        if entry is not None and may_read(portal, user_id, entity_type_id, entity_id):
            return entry
    return remember_card(portal, crm_for(portal).get_card(entity_type_id, entity_id), reader=user_id)


def _shared_card(portal, entity_type_id: int, entity_id: int) -> tuple[Card, datetime] | None:
    cards = runtime().cards
    key = (portal.id, entity_type_id, entity_id)
    hit = cards.get(key)
    if hit is not None:
        return hit
    stored = db.session.scalar(db.select(CachedCard).filter_by(
        portal_id=portal.id, entity_type_id=entity_type_id, entity_id=entity_id))
    if stored is None or utcnow() - stored.fetched_at >= _freshness():
        return None
    try:
        entry = (card_from_dict(json.loads(stored.data)), stored.fetched_at)
    except (ValueError, KeyError, TypeError):
        return None  # written by another version of the app: ask the CRM again
    cards.set(key, entry)
    return entry


def _freshness() -> timedelta:
    return timedelta(seconds=current_app.config["OLCHAT_CACHE_TTL"])


def _rights_per_user(portal) -> bool:
    # The demo CRM shows every card to everyone; Bitrix24 has per-user CRM rights.
    return portal.kind != "demo"


def may_read(portal, user_id: str, entity_type_id: int, entity_id: int) -> bool:
    """Tell whether ``user_id``'s right to read the card was verified within the freshness window."""
    if not _rights_per_user(portal):
        return True
    key = (portal.id, user_id, entity_type_id, entity_id)
    checked = runtime().card_access.get(key)
    if checked is None:
        row = db.session.scalar(db.select(CardAccess).filter_by(
            portal_id=portal.id, user_id=user_id, entity_type_id=entity_type_id, entity_id=entity_id))
        checked = row.checked_at if row is not None else None
    if checked is None or utcnow() - checked >= _freshness():
        return False
    runtime().card_access.set(key, checked)
    return True


def remember_card(portal, card: Card, *, reader: str | None = None) -> tuple[Card, datetime]:
    """Keep a card fetched from the CRM for every worker; ``reader`` read it with their own token."""
    entry = (card, utcnow())
    runtime().cards.set((portal.id, card.entity_type_id, card.entity_id), entry)
    data = json.dumps(card_to_dict(card), ensure_ascii=False)
    # Inserted whole: another worker must never read a row whose data is not written yet.
    row = get_or_create(CachedCard, {"data": data, "fetched_at": entry[1]}, portal_id=portal.id,
                        entity_type_id=card.entity_type_id, entity_id=card.entity_id)
    row.data = data
    row.fetched_at = entry[1]
    if reader is not None and _rights_per_user(portal):
        access = get_or_create(CardAccess, {"checked_at": entry[1]}, portal_id=portal.id, user_id=reader,
                               entity_type_id=card.entity_type_id, entity_id=card.entity_id)
        access.checked_at = entry[1]
        runtime().card_access.set((portal.id, reader, card.entity_type_id, card.entity_id), entry[1])
    db.session.commit()
    return entry


def phone_list(portal, settings: SettingsView, card: Card, fetched_at: datetime, *, locale: str,
               now: datetime | None = None) -> PhoneList:
    """Normalise, de-duplicate, cap and describe the card's phones; clients' clocks are read now."""
    now = now or clock.now()
    region, limit = region_of(settings), max_phones_of(settings)
    cache = runtime().phone_lists
    key = (portal.id, card.entity_type_id, card.entity_id, fetched_at, region, limit, locale)
    described = cache.get(key)
    if described is None:
        described = _describe_card(card, region, limit, locale)
        cache.set(key, described)
    rows, invalid, total = described
    thresholds = thresholds_of(settings)
    timed = [PhoneRow(r.e164, r.extension, r.owners, r.info, client_time(r.info.zones, now, thresholds),
                      same_owner=i > 0 and rows[i - 1].owners == r.owners)
             for i, r in enumerate(rows)]
    return PhoneList(card, timed, invalid, total, fetched_at)


def _describe_card(card: Card, region: str, limit: int, locale: str):
    """The card's distinct valid numbers (described, capped), its invalid entries and the count before the cap."""
    plan = plan_for_app(current_app)
    by_number: dict[str, PhoneRow] = {}
    invalid: list[InvalidPhone] = []
    for raw in card.phones:
        for entry in _parse_field(raw.value, region):
            if entry.e164 is None:
                invalid.append(InvalidPhone(entry.raw, raw.owner, entry.error or "invalid"))
                continue
            row = by_number.get(entry.e164)
            if row is None:
                # Described below, and only for the rows that make the cap.
                by_number[entry.e164] = PhoneRow(entry.e164, entry.extension, [raw.owner], None, None)
            elif raw.owner not in row.owners:
                row.owners.append(raw.owner)
    shown = list(by_number.values())[:limit]
    for row in shown:
        row.info = describe(row.e164, locale, plan)
    return tuple(shown), tuple(invalid), len(by_number)


# ---------------------------------------------------------------- lines


@dataclass
class LineChoice:
    lines: list[Line]
    chosen: Line | None
    error: GatewayError | None = None


def portal_lines(portal, *, fresh: bool = False) -> list[Line]:
    """Return the portal's lines (cached briefly: line health changes)."""
    from ..bridge.statuses import told_states, with_told_states

    cache = runtime().lines
    # What session.status webhooks told (any worker may have taken them): read before WAHA is asked, so a
    # state told meanwhile is newer than the list and shows at the next read.
    told = told_states(portal.id)
    if not fresh:
        hit = cache.get(portal.id)
        if hit is not None:
            lines, seen = hit
            if told != seen:
                lines = with_told_states(lines, seen, told)
                cache.set(portal.id, (lines, told))
            return lines
    lines = gateway_for(portal).list_lines()
    cache.set(portal.id, (lines, told))
    return lines


def choose_line(portal, user_id: str, requested: str | None, *, fresh: bool = False) -> LineChoice:
    """Pick the line: the one asked for, else the user's default, else the first working one."""
    try:
        lines = portal_lines(portal, fresh=fresh)
    except GatewayError as exc:
        return LineChoice([], None, exc)
    by_id = {line.id: line for line in lines}
    if requested and requested in by_id:
        return LineChoice(lines, by_id[requested])
    preferred = preferred_line(portal, user_id)
    if preferred in by_id:
        return LineChoice(lines, by_id[preferred])
    working = [line for line in lines if line.status == WORKING]
    return LineChoice(lines, (working or lines or [None])[0])


def preferred_line(portal, user_id: str) -> str | None:
    """The user's default line (F6); cached, as every widget load asks."""
    cache = runtime().preferences
    key = (portal.id, user_id)
    line_id = cache.get(key)
    if line_id is None:
        line_id = db.session.scalar(
            db.select(UserPreference.line_id).filter_by(portal_id=portal.id, user_id=user_id)) or ""
        cache.set(key, line_id)
    return line_id or None


def remember_line(portal, user_id: str, line_id: str) -> None:
    pref = get_or_create(UserPreference, portal_id=portal.id, user_id=user_id)
    pref.line_id = line_id
    db.session.commit()
    runtime().preferences.set((portal.id, user_id), line_id)


def show_name_of(portal, user_id: str) -> bool:
    """Whether the user's messages go out under their name («Показывать имя сотрудника»)."""
    return bool(db.session.scalar(db.select(UserPreference.show_name).filter_by(portal_id=portal.id, user_id=user_id)))


def remember_show_name(portal, user_id: str, on: bool) -> None:
    pref = get_or_create(UserPreference, portal_id=portal.id, user_id=user_id)
    if pref.show_name != on:
        pref.show_name = on
        db.session.commit()


# ---------------------------------------------------------------- chats


def find_chat(portal, line_id: str, phone: str, chat_id: str) -> ChatRef | None:
    """Return the chat with ``phone`` on the line, if one exists (also when started elsewhere)."""
    own = db.session.scalar(db.select(Chat).filter_by(portal_id=portal.id, line_id=line_id, phone=phone))
    if own is not None:
        return ChatRef(own.chat_id)
    cache = runtime().chats
    key = (portal.id, line_id, chat_id)
    hit = cache.get(key)
    if hit is not None:
        return hit or None  # False caches "no chat"
    try:
        ref = gateway_for(portal).find_chat(line_id, chat_id)
    except GatewayError:
        return None  # unknown: «Создать чат» opens the chat anyway if it exists
    if ref is not None:
        # Remembered for every worker: a chat, once it exists, does not stop existing.
        get_or_create(Chat, {"chat_id": ref.chat_id}, portal_id=portal.id, line_id=line_id, phone=phone)
    cache.set(key, ref or False)
    return ref


def create_chat(portal, line_id: str, phone: str, chat_id: str) -> Chat:
    """Record the chat as started from the widget; WhatsApp creates it with the first message."""
    chat = get_or_create(Chat, {"chat_id": chat_id}, portal_id=portal.id, line_id=line_id, phone=phone)
    runtime().chats.set((portal.id, line_id, chat_id), ChatRef(chat_id))
    return chat


def forget_card(portal, entity_type_id: int, entity_id: int) -> None:
    """Drop everything cached for the card and the portal's lines and chats («Обновить данные виджета»)."""
    rt = runtime()
    rt.cards.pop((portal.id, entity_type_id, entity_id))
    db.session.execute(db.delete(CachedCard).where(CachedCard.portal_id == portal.id,
                                                   CachedCard.entity_type_id == entity_type_id,
                                                   CachedCard.entity_id == entity_id))
    db.session.commit()
    rt.lines.pop(portal.id)
    rt.chats.pop_where(lambda key: key[0] == portal.id)

"""Where a card's phones come from: the CRM source interface.

A card is an entity type id plus a record id (Bitrix24's numbering: 1 lead,
2 deal, 3 contact, 4 company, 7 quote, 31 smart invoice, 128+ smart
processes). A source returns the raw phone values of the card itself and of
every linked contact and company, each with its owner, exactly as people typed
them; normalising is the phones package's job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..inputs import parse_id

LEAD, DEAL, CONTACT, COMPANY, QUOTE, SMART_INVOICE = 1, 2, 3, 4, 7, 31

# Bitrix24 object codes used by placements (PLACEMENT_OPTIONS.ENTITY_ID).
ENTITY_CODES = {
    "CRM_LEAD": LEAD,
    "CRM_DEAL": DEAL,
    "CRM_CONTACT": CONTACT,
    "CRM_COMPANY": COMPANY,
    "CRM_QUOTE": QUOTE,
    "CRM_SMART_INVOICE": SMART_INVOICE,
}
# Short names used by imopenlines.crm.chat.get and our own URLs.
ENTITY_NAMES = {LEAD: "lead", DEAL: "deal", CONTACT: "contact", COMPANY: "company", QUOTE: "quote",
                SMART_INVOICE: "smart_invoice"}


def entity_type_from_code(code: str) -> int | None:
    """Map ``CRM_DEAL`` / ``CRM_183`` / ``DEAL`` / ``2`` to an entity type id; None for anything else.

    Numbers are ASCII digits within Bitrix24's id range: '²' or a 25-digit
    id is not a card of any portal (and would not fit the database either).
    """
    code = (code or "").strip().upper()
    if code in ENTITY_CODES:
        return ENTITY_CODES[code]
    if "CRM_" + code in ENTITY_CODES:
        return ENTITY_CODES["CRM_" + code]
    for prefix in ("CRM_", "DYNAMIC_"):
        if code.startswith(prefix):
            code = code[len(prefix):]
            break
    if code[:1] in ("+", "-"):
        return None
    return parse_id(code)


@dataclass(frozen=True)
class Owner:
    """Whose phone it is: the card itself, a contact or a company."""

    kind: str  # 'lead' | 'contact' | 'company' | 'deal' | 'item'
    id: int
    name: str


@dataclass(frozen=True)
class RawPhone:
    value: str  # as typed in the CRM field
    owner: Owner
    value_type: str | None = None  # WORK, MOBILE, HOME, ...


@dataclass(frozen=True)
class CrmChat:
    """An Open Lines chat already bound to the card in the CRM (Bitrix24)."""

    chat_id: str
    connector_id: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class Card:
    entity_type_id: int
    entity_id: int
    title: str
    phones: tuple[RawPhone, ...] = ()
    chats: tuple[CrmChat, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)
    # What message templates may say about the card, from the same fetch as the phones
    # (widget/message_templates.py): {"values": {"deal.title": …}, "people": {"contact:1": [full, first]}}.
    names: dict = field(default_factory=dict, compare=False)


def card_names(values: dict, people: dict) -> dict:
    """The card's template values without the empty ones (an empty value is no value: the variable stays open)."""
    return {"values": {k: str(v).strip() for k, v in values.items() if v and str(v).strip()},
            "people": {k: [str(full).strip(), str(first).strip()] for k, (full, first) in people.items()
                       if full and str(full).strip()}}


def card_to_dict(card: Card) -> dict:
    """A JSON-ready form of the card, for the cache shared by workers."""
    return {
        "t": card.entity_type_id, "id": card.entity_id, "title": card.title,
        "phones": [[p.value, p.owner.kind, p.owner.id, p.owner.name, p.value_type] for p in card.phones],
        "chats": [[c.chat_id, c.connector_id, c.title] for c in card.chats],
        "names": card.names,
    }


def card_from_dict(data: dict) -> Card:
    return Card(
        int(data["t"]), int(data["id"]), str(data.get("title") or ""),
        tuple(RawPhone(v, Owner(kind, int(oid), name), vt) for v, kind, oid, name, vt in data.get("phones", [])),
        tuple(CrmChat(str(cid), conn, title) for cid, conn, title in data.get("chats", [])),
        names=data.get("names") if isinstance(data.get("names"), dict) else {},
    )


class CrmError(Exception):
    reason = "crm_error"


class CardNotFound(CrmError):
    """The card does not exist (deleted, or never did)."""

    reason = "not_found"


class CrmAccessDenied(CrmError):
    """The user has no rights to this card or to the app."""

    reason = "access_denied"


class CrmAuthExpired(CrmError):
    """The user's Bitrix24 token expired and could not be renewed."""

    reason = "auth_expired"


class CrmRateLimited(CrmError):
    """The portal is over its REST request limit; retry after a pause."""

    reason = "rate_limited"


class CrmUnavailable(CrmError):
    """The CRM cannot be reached, timed out, or is overloaded."""

    reason = "unavailable"


class CrmSource(Protocol):
    def get_card(self, entity_type_id: int, entity_id: int) -> Card: ...

"""Cards of a real Bitrix24 portal over REST, in one HTTP request per cold load (two at most).

The request plan, for every entity type, is ONE batch:

    item      crm.item.get?entityTypeId=T&id=N
    c0..c4    crm.item.get?entityTypeId=3&id=$result[item][item][contactIds][i]   (T != contact)
    co0..co2  crm.item.get?entityTypeId=4&id=$result[item][item][companyIds][i]   (T == contact)
    co0       crm.item.get?entityTypeId=4&id=$result[item][item][companyId]       (other T but company)
    chats     imopenlines.crm.chat.get?CRM_ENTITY_TYPE=<name>&CRM_ENTITY=N&ACTIVE_ONLY=N
              (quotes, invoices, smart processes have no chats of their own: those of the
               first contact, CRM_ENTITY=$result[item][item][contactIds][0])

Why single slots rather than ``crm.item.list?filter[@id]=$result[item][item][contactIds]``:
Bitrix24 does pass a whole array through such a reference, but for a card without
contacts the filter becomes ``@id = []`` and what a list does with an empty IN is not
documented; a missing slot, on the other hand, only makes that one command fail
(Bitrix stops resolving at the missing key). Every slot's answer is accepted only when
it is the id the card itself names, so a slot that went wrong can never put a stranger's
phone on the card. A second request is made only for links beyond the slots (a deal
with six contacts) or for a slot that failed for a reason other than rights/absence.

One request per card is what keeps 50 operators opening 50 cards within 10 s under
the portal's 50-burst, 2-per-second bucket.
"""
from __future__ import annotations

import logging
from typing import Any

from ..b24.client import (B24AccessDenied, B24AuthError, B24Client, B24Error, B24NotFound, B24Overload,
                          B24PortalDeleted, B24QueryLimit, B24Unavailable, BatchResult)
from .base import (COMPANY, CONTACT, DEAL, LEAD, Card, card_names, CardNotFound, CrmAccessDenied, CrmAuthExpired, CrmChat,
                   CrmError, CrmRateLimited, CrmUnavailable, Owner, RawPhone)

log = logging.getLogger(__name__)

OWN_CHAT_TYPES = {LEAD: "lead", DEAL: "deal", CONTACT: "contact", COMPANY: "company"}
OWNER_KINDS = {LEAD: "lead", DEAL: "deal", CONTACT: "contact", COMPANY: "company"}
LIST_PAGE = 50


def crm_error(exc: B24Error) -> CrmError:
    """Map a Bitrix24 error to the CRM error a person can act on."""
    text = str(exc)
    if isinstance(exc, B24NotFound):
        return CardNotFound(text)
    if isinstance(exc, B24AuthError):
        if exc.code.lower() == "user_access_error":
            return CrmAccessDenied(text)
        return CrmAuthExpired(text)
    if isinstance(exc, B24AccessDenied):
        return CrmAccessDenied(text)
    if isinstance(exc, B24QueryLimit):
        return CrmRateLimited(text)
    if isinstance(exc, (B24Overload, B24Unavailable, B24PortalDeleted)):
        return CrmUnavailable(text)
    return CrmError(text)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _id_list(value: Any) -> list[int]:
    """Read contactIds/companyIds: positive ints, in order, without repeats."""
    if not isinstance(value, (list, tuple)):
        return []
    seen: list[int] = []
    for v in value:
        n = _int(v)
        if n is not None and n not in seen:
            seen.append(n)
    return seen


def _person_name(record: dict) -> str:
    return " ".join(str(p).strip() for p in (record.get("name"), record.get("lastName")) if p and str(p).strip())


def _phones(record: dict, owner: Owner) -> list[RawPhone]:
    phones = []
    for entry in record.get("fm") or []:
        if not isinstance(entry, dict) or str(entry.get("typeId", "")).upper() != "PHONE":
            continue
        value = entry.get("value")
        if value is None or str(value).strip() == "":
            continue
        phones.append(RawPhone(str(value), owner, entry.get("valueType") or None))
    return phones


def _item_of(answer: Any) -> dict | None:
    if isinstance(answer, dict) and isinstance(answer.get("item"), dict):
        return answer["item"]
    return None


class BitrixCrm:
    """A CrmSource over one user's Bitrix24 token (so the user's CRM rights apply)."""

    def __init__(self, client: B24Client, *, contact_slots: int = 5, company_slots: int = 3):
        self.client = client
        self.contact_slots = contact_slots
        self.company_slots = company_slots

    # -- CrmSource

    def get_card(self, entity_type_id: int, entity_id: int) -> Card:
        """Return the card's own phones and those of its contacts and company, plus its Open Lines chats."""
        entity_type_id, entity_id = int(entity_type_id), int(entity_id)
        if entity_id <= 0:  # a card being created: nothing to ask yet
            return Card(entity_type_id, 0, "")
        sent_before = self.client.requests_sent
        return self.card_from(entity_type_id, entity_id, self._run(self.plan(entity_type_id, entity_id)),
                              sent_before=sent_before)

    def card_from(self, entity_type_id: int, entity_id: int, res: BatchResult, *, sent_before: int | None = None) -> Card:
        """Read the card out of a batch that ran :meth:`plan` (possibly with other commands beside it)."""
        if sent_before is None:
            sent_before = self.client.requests_sent - 1
        if "item" in res.errors:
            raise crm_error(res.errors["item"])
        item = _item_of(res.get("item"))
        if item is None:
            raise CrmUnavailable("crm.item.get answered without an item")

        contact_ids = [] if entity_type_id == CONTACT else _id_list(item.get("contactIds"))
        company_ids = self._company_ids(entity_type_id, item)
        contacts, hidden_c, missing_c = self._collect(res, "c", contact_ids, self.contact_slots)
        companies, hidden_co, missing_co = self._collect(res, "co", company_ids, self.company_slots)
        if missing_c or missing_co:
            more_contacts, more_companies, hidden_more = self._fetch_rest(missing_c, missing_co)
            contacts.update(more_contacts)
            companies.update(more_companies)
            hidden_c += hidden_more
        phones = self._own_phones(entity_type_id, entity_id, item)
        for cid in contact_ids:
            if cid in contacts:
                owner = Owner("contact", cid, _person_name(contacts[cid]) or f"Контакт #{cid}")
                phones += _phones(contacts[cid], owner)
        for cid in company_ids:
            if cid in companies:
                owner = Owner("company", cid, str(companies[cid].get("title") or "").strip() or f"Компания #{cid}")
                phones += _phones(companies[cid], owner)
        chats, chats_error = self._chats(entity_type_id, res, contact_ids)
        extra = {
            "requests": self.client.requests_sent - sent_before,
            "contact_ids": contact_ids,
            "company_ids": company_ids,
            "hidden": hidden_c + hidden_co,  # linked records the user may not read (or gone)
        }
        if chats_error:
            extra["chats_error"] = chats_error
        names = self._names(entity_type_id, entity_id, item, [contacts[c] for c in contact_ids if c in contacts],
                            [companies[c] for c in company_ids if c in companies])
        return Card(entity_type_id, entity_id, self._title(entity_type_id, entity_id, item), tuple(phones),
                    tuple(chats), extra, names)

    # -- the plan

    def plan(self, t: int, n: int) -> dict:
        """The first batch's commands for card (t, n); keys: item, c0.., co0.., chats."""
        ref = "$result[item][item]"
        cmds: dict[str, tuple[str, dict]] = {"item": ("crm.item.get", {"entityTypeId": t, "id": n})}
        if t != CONTACT:
            for i in range(self.contact_slots):
                cmds[f"c{i}"] = ("crm.item.get", {"entityTypeId": CONTACT, "id": f"{ref}[contactIds][{i}]"})
        if t == CONTACT:
            for i in range(self.company_slots):
                cmds[f"co{i}"] = ("crm.item.get", {"entityTypeId": COMPANY, "id": f"{ref}[companyIds][{i}]"})
        elif t != COMPANY:
            cmds["co0"] = ("crm.item.get", {"entityTypeId": COMPANY, "id": f"{ref}[companyId]"})
        if t in OWN_CHAT_TYPES:
            cmds["chats"] = ("imopenlines.crm.chat.get",
                             {"CRM_ENTITY_TYPE": OWN_CHAT_TYPES[t], "CRM_ENTITY": n, "ACTIVE_ONLY": "N"})
        else:
            cmds["chats"] = ("imopenlines.crm.chat.get",
                             {"CRM_ENTITY_TYPE": "contact", "CRM_ENTITY": f"{ref}[contactIds][0]", "ACTIVE_ONLY": "N"})
        return cmds

    def _run(self, cmds: dict) -> BatchResult:
        try:
            return self.client.batch(cmds)
        except B24Error as exc:
            raise crm_error(exc) from None

    @staticmethod
    def _company_ids(t: int, item: dict) -> list[int]:
        if t == COMPANY:
            return []
        if t == CONTACT:
            ids = _id_list(item.get("companyIds"))
            first = _int(item.get("companyId"))
            return ids or ([first] if first else [])
        first = _int(item.get("companyId"))
        return [first] if first else []

    @staticmethod
    def _collect(res: BatchResult, prefix: str, wanted: list[int], slots: int):
        """Take the slot answers that match the ids the card names; say what is hidden and what is missing."""
        found: dict[int, dict] = {}
        hidden, missing = 0, []
        for i, wanted_id in enumerate(wanted):
            key = f"{prefix}{i}"
            if i >= slots:
                missing.append(wanted_id)
                continue
            err = res.errors.get(key)
            if err is not None:
                if isinstance(err, (B24AccessDenied, B24NotFound)):
                    hidden += 1
                else:
                    missing.append(wanted_id)
                continue
            record = _item_of(res.get(key))
            if record is not None and _int(record.get("id")) == wanted_id:
                found[wanted_id] = record
            else:
                missing.append(wanted_id)  # the reference did not resolve as expected: ask by id
        return found, hidden, missing

    def _fetch_rest(self, contact_ids: list[int], company_ids: list[int]):
        """Fetch linked records the first batch did not bring, by explicit ids, in one more batch."""
        cmds: dict[str, tuple[str, dict]] = {}
        for prefix, type_id, ids in (("lc", CONTACT, contact_ids), ("lo", COMPANY, company_ids)):
            for n, start in enumerate(range(0, len(ids), LIST_PAGE)):
                # No select: fm (the phones) comes only with the full item.
                cmds[f"{prefix}{n}"] = ("crm.item.list",
                                        {"entityTypeId": type_id, "filter": {"@id": ids[start:start + LIST_PAGE]}})
        if len(cmds) > 50:
            cmds = dict(list(cmds.items())[:50])
        res = self._run(cmds)
        found: dict[str, dict[int, dict]] = {"lc": {}, "lo": {}}
        for key, answer in res.result.items():
            items = answer.get("items") if isinstance(answer, dict) else None
            for record in items or []:
                rid = _int(record.get("id")) if isinstance(record, dict) else None
                wanted = contact_ids if key.startswith("lc") else company_ids
                if rid in wanted:
                    found[key[:2]][rid] = record
        for key, err in res.errors.items():
            if not isinstance(err, (B24AccessDenied, B24NotFound)):
                log.info("b24 card: linked records not fetched (%s): %s", key, err)
        hidden = len(contact_ids) - len(found["lc"]) + len(company_ids) - len(found["lo"])
        return found["lc"], found["lo"], hidden

    # -- reading the answer

    @staticmethod
    def _own_phones(t: int, n: int, item: dict) -> list[RawPhone]:
        if t == CONTACT:
            name = _person_name(item) or f"Контакт #{n}"
        elif t == COMPANY:
            name = str(item.get("title") or "").strip() or f"Компания #{n}"
        elif t == LEAD:
            name = _person_name(item) or str(item.get("title") or "").strip() or f"Лид #{n}"
        else:
            name = str(item.get("title") or "").strip() or f"#{n}"
        return _phones(item, Owner(OWNER_KINDS.get(t, "item"), n, name))

    @staticmethod
    def _names(t: int, n: int, item: dict, contacts: list[dict], companies: list[dict]) -> dict:
        """What templates may say about the card, read from the records the batch already brought (no request)."""
        people = {f"contact:{_int(c.get('id'))}": (_person_name(c), c.get("name") or _person_name(c))
                  for c in contacts}
        if t in (CONTACT, LEAD):
            people[f"{OWNER_KINDS[t]}:{n}"] = (_person_name(item), item.get("name") or _person_name(item))
        client = people.get(f"{OWNER_KINDS.get(t, 'item')}:{n}") if t in (CONTACT, LEAD) else None
        if not client or not client[0]:
            client = next(iter(people.values()), ("", ""))
        company = (str(item.get("title") or "") if t == COMPANY
                   else str(companies[0].get("title") or "") if companies else str(item.get("companyTitle") or ""))
        title = str(item.get("title") or "")
        return card_names({"client.name": client[0], "client.first_name": client[1], "company.name": company,
                           "deal.title": title if t == DEAL else "", "lead.title": title if t == LEAD else "",
                           "card.title": BitrixCrm._title(t, n, item)}, people)

    @staticmethod
    def _title(t: int, n: int, item: dict) -> str:
        if t == CONTACT:
            return _person_name(item) or f"Контакт #{n}"
        return str(item.get("title") or "").strip() or _person_name(item) or f"#{n}"

    @staticmethod
    def _chats(t: int, res: BatchResult, contact_ids: list[int]) -> tuple[list[CrmChat], str | None]:
        if t not in OWN_CHAT_TYPES and not contact_ids:
            return [], None  # the contact reference had nothing to point at: ignore whatever came back
        if "chats" in res.errors:
            return [], res.errors["chats"].code or "error"
        chats = []
        for row in res.get("chats") or []:
            if isinstance(row, dict) and row.get("CHAT_ID") not in (None, "", 0, "0"):
                chats.append(CrmChat(str(row["CHAT_ID"]), row.get("CONNECTOR_ID") or None,
                                     row.get("CONNECTOR_TITLE") or None))
        return chats, None

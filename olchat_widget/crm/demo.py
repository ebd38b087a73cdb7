"""The demo CRM: cards of the demo portal, read from the demo data file."""
from __future__ import annotations

import time

from .base import (COMPANY, CONTACT, DEAL, LEAD, Card, card_names, CardNotFound, CrmAccessDenied, CrmRateLimited,
                   CrmUnavailable, Owner, RawPhone)

_FAILURES = {
    "unavailable": CrmUnavailable,
    "access_denied": CrmAccessDenied,
    "not_found": CardNotFound,
    "rate_limited": CrmRateLimited,
}


def _ids(value) -> list[int]:
    if value in (None, "", 0):
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if v not in (None, "", 0)]
    return [int(value)]


def _phones(record: dict) -> list[str]:
    phones = record.get("phones") or []
    if isinstance(phones, str):
        phones = [phones]
    return [str(p) for p in phones if p is not None]


class DemoCrm:
    """Answers like the Bitrix24 CRM would, from the demo data; can be slow or fail on purpose."""

    def __init__(self, data: dict, *, delay: float = 0.0, fail: str = ""):
        crm = data.get("crm", {})
        self.contacts = {int(c["id"]): c for c in crm.get("contacts", [])}
        self.companies = {int(c["id"]): c for c in crm.get("companies", [])}
        self.leads = {int(c["id"]): c for c in crm.get("leads", [])}
        self.deals = {int(c["id"]): c for c in crm.get("deals", [])}
        self.items: dict[tuple[int, int], dict] = {}
        for item in crm.get("items", []):
            self.items[(int(item["entity_type_id"]), int(item["id"]))] = item
        # Quotes and smart invoices may also come as their own sections.
        for section, type_id in (("quotes", 7), ("invoices", 31), ("smart_invoices", 31)):
            for item in crm.get(section, []):
                self.items[(type_id, int(item["id"]))] = item
        self.delay = delay
        self.fail = fail
        self.calls = 0

    # -- CrmSource

    def get_card(self, entity_type_id: int, entity_id: int) -> Card:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise _FAILURES.get(self.fail, CrmUnavailable)(f"demo CRM told to fail: {self.fail}")
        if entity_id == 0:
            return Card(entity_type_id, 0, "")
        if entity_type_id == LEAD:
            record = self._get(self.leads, entity_id)
            own = [RawPhone(p, Owner("lead", entity_id, record.get("title") or record.get("name") or f"#{entity_id}"))
                   for p in _phones(record)]
            return self._card(entity_type_id, entity_id, record, own)
        if entity_type_id == DEAL:
            record = self._get(self.deals, entity_id)
            return self._card(entity_type_id, entity_id, record, [])
        if entity_type_id == CONTACT:
            record = self._get(self.contacts, entity_id)
            own = [RawPhone(p, Owner("contact", entity_id, record.get("name", ""))) for p in _phones(record)]
            companies = _ids(record.get("company_ids")) + _ids(record.get("company_id"))
            return self._card(entity_type_id, entity_id, record, own, contact_ids=[], company_ids=companies)
        if entity_type_id == COMPANY:
            record = self._get(self.companies, entity_id)
            own = [RawPhone(p, Owner("company", entity_id, record.get("name", ""))) for p in _phones(record)]
            # A company's contacts are those that name it.
            contacts = [cid for cid, c in self.contacts.items()
                        if entity_id in _ids(c.get("company_ids")) + _ids(c.get("company_id"))]
            return self._card(entity_type_id, entity_id, record, own, contact_ids=contacts, company_ids=[])
        record = self.items.get((entity_type_id, entity_id))
        if record is None:
            raise CardNotFound(f"no item {entity_type_id}/{entity_id}")
        own = [RawPhone(p, Owner("item", entity_id, record.get("title", ""))) for p in _phones(record)]
        return self._card(entity_type_id, entity_id, record, own)

    # -- helpers

    @staticmethod
    def _get(table: dict, entity_id: int) -> dict:
        try:
            return table[entity_id]
        except KeyError:
            raise CardNotFound(f"no record {entity_id}") from None

    def _card(self, entity_type_id, entity_id, record, own, *, contact_ids=None, company_ids=None) -> Card:
        if contact_ids is None:
            contact_ids = _ids(record.get("contact_ids")) + _ids(record.get("contact_id"))
        if company_ids is None:
            company_ids = _ids(record.get("company_ids")) + _ids(record.get("company_id"))
        phones = list(own)
        for cid in contact_ids:
            contact = self.contacts.get(cid)
            if contact:
                phones += [RawPhone(p, Owner("contact", cid, contact.get("name", ""))) for p in _phones(contact)]
        for cid in company_ids:
            company = self.companies.get(cid)
            if company:
                phones += [RawPhone(p, Owner("company", cid, company.get("name", ""))) for p in _phones(company)]
        title = record.get("title") or record.get("name") or f"#{entity_id}"
        return Card(entity_type_id, entity_id, title, tuple(phones),
                    names=self._names(entity_type_id, entity_id, record, contact_ids, company_ids, title))

    def _names(self, t, n, record, contact_ids, company_ids, title) -> dict:
        """What templates may say about the card (the demo file has full names only: the first word is the first name)."""
        def person(full):
            full = str(full or "").strip()
            return (full, full.split(" ")[0] if full else "")

        people = {f"contact:{cid}": person(self.contacts[cid].get("name")) for cid in contact_ids if cid in self.contacts}
        if t == CONTACT:
            people[f"contact:{n}"] = person(record.get("name"))
        if t == LEAD and record.get("name"):
            people[f"lead:{n}"] = person(record.get("name"))
        client = people.get(f"contact:{n}" if t == CONTACT else f"lead:{n}") or next(iter(people.values()), ("", ""))
        companies = [self.companies[c] for c in company_ids if c in self.companies]
        company = record.get("name") if t == COMPANY else (companies[0].get("name") if companies else "")
        return card_names({"client.name": client[0], "client.first_name": client[1], "company.name": company,
                           "deal.title": record.get("title") if t == DEAL else "",
                           "lead.title": record.get("title") if t == LEAD else "", "card.title": title}, people)

    def list_cards(self) -> list[tuple[int, int, str]]:
        """Every card of the demo portal, for the debug page: (entity type, id, title)."""
        cards = [(LEAD, i, r.get("title", "")) for i, r in self.leads.items()]
        cards += [(DEAL, i, r.get("title", "")) for i, r in self.deals.items()]
        cards += [(CONTACT, i, r.get("name", "")) for i, r in self.contacts.items()]
        cards += [(COMPANY, i, r.get("name", "")) for i, r in self.companies.items()]
        cards += [(t, i, r.get("title", "")) for (t, i), r in self.items.items()]
        return cards

"""BitrixCrm over the fake portal: every entity type's phones with owners, in at most 2 requests."""
from __future__ import annotations

import time

import pytest

from olchat_widget.b24 import B24Client
from olchat_widget.crm.base import (Card, CardNotFound, CrmAccessDenied, CrmAuthExpired, CrmChat, CrmRateLimited,
                                    CrmUnavailable)
from olchat_widget.crm.bitrix import BitrixCrm
from tests.fakes.fake_bitrix24 import FakeBitrix24

SMART = 183

DATA = {
    "crm": {
        "contacts": [
            {"id": 1, "name": "Иван", "last_name": "Петров",
             "phones": [{"value": "8 (916) 123-45-67", "type": "MOBILE"}, "+7 903 123 45 67"], "company_ids": [5]},
            {"id": 2, "name": "Анна", "last_name": "Смирнова", "phones": ["9261112233 доб. 12"], "company_ids": [5]},
            {"id": 3, "name": "", "last_name": "", "phones": ["не помню"]},
            {"id": 4, "name": "Klaus", "last_name": "Becker", "phones": ["+49 151 12345678"], "company_ids": [5, 6]},
        ] + [{"id": 20 + n, "name": f"Гость{n}", "last_name": "", "phones": [f"+7 900 000 00 {n:02d}"]}
             for n in range(7)],
        "companies": [
            {"id": 5, "name": "ООО «Ромашка»", "phones": ["+7 495 123-45-67", "12"]},
            {"id": 6, "name": "Becker GmbH", "phones": ["+49 30 1234567"]},
        ],
        "leads": [
            {"id": 7, "title": "Заявка с сайта", "name": "Олег", "last_name": "Лидов",
             "phones": ["+7 916 123 45 67", "8 (800) 555-35-35"], "contact_ids": [2], "company_id": 6},
            {"id": 8, "title": "Звонок без номера", "phones": []},
        ],
        "deals": [
            {"id": 10, "title": "Поставка", "contact_ids": [1, 2], "company_id": 5},
            {"id": 11, "title": "Большая сделка", "contact_ids": [20, 21, 22, 23, 24, 25, 26], "company_id": 0},
            {"id": 12, "title": "Сделка без клиента", "contact_ids": [], "company_id": 0},
        ],
        "quotes": [{"id": 2, "title": "Предложение", "contact_ids": [3], "company_id": 6}],
        "invoices": [{"id": 1, "title": "Счёт № 1", "contact_ids": [4], "company_id": None}],
        "items": [{"entity_type_id": SMART, "id": 3, "title": "Договор", "contact_ids": [1], "company_id": 5},
                  {"entity_type_id": SMART, "id": 4, "title": "Без клиента", "contact_ids": [], "company_id": None}],
        "ol_chats": [
            {"entity_type": "deal", "entity_id": 10, "chat_id": "1763", "connector_id": "olchat_wa",
             "connector_title": "WhatsApp"},
            {"entity_type": "lead", "entity_id": 7, "chat_id": "1800", "connector_id": "livechat",
             "connector_title": "Онлайн-чат", "active": False},
            {"entity_type": "contact", "entity_id": 3, "chat_id": "1900"},
            {"entity_type": "contact", "entity_id": 1, "chat_id": "2000"},
        ],
    }
}

IVAN = {("8 (916) 123-45-67", "contact", 1, "Иван Петров"), ("+7 903 123 45 67", "contact", 1, "Иван Петров")}
ANNA = {("9261112233 доб. 12", "contact", 2, "Анна Смирнова")}
ROMASHKA = {("+7 495 123-45-67", "company", 5, "ООО «Ромашка»"), ("12", "company", 5, "ООО «Ромашка»")}
BECKER_GMBH = {("+49 30 1234567", "company", 6, "Becker GmbH")}
KLAUS = {("+49 151 12345678", "contact", 4, "Klaus Becker")}

# entity type, id -> (title, phones as (value, owner kind, owner id, owner name), chat ids)
EXPECTED = {
    (1, 7): ("Заявка с сайта",
             {("+7 916 123 45 67", "lead", 7, "Олег Лидов"), ("8 (800) 555-35-35", "lead", 7, "Олег Лидов")}
             | ANNA | BECKER_GMBH, ["1800"]),
    (2, 10): ("Поставка", IVAN | ANNA | ROMASHKA, ["1763"]),
    (3, 1): ("Иван Петров", IVAN | ROMASHKA, ["2000"]),
    (3, 4): ("Klaus Becker", KLAUS | ROMASHKA | BECKER_GMBH, []),
    (4, 5): ("ООО «Ромашка»", ROMASHKA | IVAN | ANNA | KLAUS, []),
    (7, 2): ("Предложение", {("не помню", "contact", 3, "Контакт #3")} | BECKER_GMBH, ["1900"]),
    (31, 1): ("Счёт № 1", KLAUS, []),
    (SMART, 3): ("Договор", IVAN | ROMASHKA, ["2000"]),
}


@pytest.fixture
def fake():
    with FakeBitrix24(DATA) as portal:
        yield portal


def crm_for(fake: FakeBitrix24, user_id: int = 1, **client_options) -> BitrixCrm:
    token = fake.issue_tokens(user_id)["access_token"]
    return BitrixCrm(B24Client(fake.domain, token, scheme="http", **client_options))


def phones_of(card: Card) -> set:
    return {(p.value, p.owner.kind, p.owner.id, p.owner.name) for p in card.phones}


@pytest.mark.parametrize("entity", sorted(EXPECTED), ids=lambda e: f"{e[0]}-{e[1]}")
def test_every_entity_type_in_one_request(fake, entity):
    title, phones, chats = EXPECTED[entity]
    crm = crm_for(fake)
    card = crm.get_card(*entity)
    assert (card.entity_type_id, card.entity_id, card.title) == (entity[0], entity[1], title)
    assert phones_of(card) == phones
    assert len(card.phones) == len(phones)  # nothing twice
    assert [c.chat_id for c in card.chats] == chats
    assert fake.requests == 1 and fake.log == ["batch"]
    assert card.extra["requests"] == 1 and card.extra["hidden"] == 0


def test_phone_types_are_kept(fake):
    card = crm_for(fake).get_card(3, 1)
    types = {p.value: p.value_type for p in card.phones}
    assert types["8 (916) 123-45-67"] == "MOBILE" and types["+7 903 123 45 67"] == "WORK"


def test_chats_carry_connector(fake):
    card = crm_for(fake).get_card(2, 10)
    assert card.chats == (CrmChat("1763", "olchat_wa", "WhatsApp"),)


def test_deal_with_more_contacts_than_slots_takes_two_requests(fake):
    card = crm_for(fake).get_card(2, 11)
    assert {p.owner.id for p in card.phones} == set(range(20, 27))
    assert [p.owner.id for p in card.phones] == list(range(20, 27))  # the deal's order
    assert fake.requests == 2 and fake.log == ["batch", "batch"]
    assert "crm.item.list" in fake.calls


def test_cards_without_links_ask_nothing_more(fake):
    for entity in ((1, 8), (2, 12), (SMART, 4)):
        fake.reset_counters()
        card = crm_for(fake).get_card(*entity)
        assert card.phones == () and card.chats == ()
        assert fake.requests == 1


def test_card_being_created_costs_no_request(fake):
    card = crm_for(fake).get_card(2, 0)
    assert card == Card(2, 0, "") and fake.requests == 0


def test_missing_card(fake):
    with pytest.raises(CardNotFound):
        crm_for(fake).get_card(2, 404)
    with pytest.raises(CardNotFound):
        crm_for(fake).get_card(999, 1)  # no such smart process
    assert fake.requests == 2


def test_card_the_user_may_not_read(fake):
    fake.deny(2, 2)
    with pytest.raises(CrmAccessDenied):
        crm_for(fake, user_id=2).get_card(2, 10)
    assert crm_for(fake, user_id=1).get_card(2, 10).phones  # the admin still sees it


def test_linked_contact_the_user_may_not_read_is_left_out(fake):
    fake.deny(2, 3, 2)  # contact 2 only
    card = crm_for(fake, user_id=2).get_card(2, 10)
    assert phones_of(card) == IVAN | ROMASHKA
    assert card.extra["hidden"] == 1 and fake.requests == 1


def test_chats_the_user_may_not_see_leave_the_phones(fake):
    fake.deny(2, 3, 3)  # the quote's only contact: its phones and its chats are hidden
    card = crm_for(fake, user_id=2).get_card(7, 2)
    assert phones_of(card) == BECKER_GMBH
    assert card.chats == () and card.extra["chats_error"] == "ACCESS_DENIED"
    assert card.extra["hidden"] == 1 and fake.requests == 1


def test_chats_error_does_not_fail_the_card(fake):
    fake.fail_method("imopenlines.crm.chat.get", "insufficient_scope", "", 401)
    card = crm_for(fake).get_card(2, 10)
    assert card.chats == () and card.extra["chats_error"] == "insufficient_scope"
    assert phones_of(card) == IVAN | ANNA | ROMASHKA


def test_references_that_go_wrong_never_bring_strangers(fake):
    # If Bitrix cast an unresolved array id to 1 like PHP's (int)[...], empty slots would
    # fetch contact/company #1; only ids the card names are taken.
    fake.lenient_ids = True
    card = crm_for(fake).get_card(31, 1)  # invoice: contact 4, company null
    assert phones_of(card) == KLAUS
    card = crm_for(fake).get_card(SMART, 4)  # no contacts: the chat slot points nowhere
    assert card.phones == () and card.chats == ()


def test_slot_that_failed_oddly_is_asked_again_by_id(fake):
    # Contact 2's slot fails with an unexpected error: one more request asks for it by id.
    fake.fail_method("crm.item.get", "INTERNAL_SERVER_ERROR", "temporary", 500, count=1,
                     match=lambda p: p.get("entityTypeId") == "3" and p.get("id") == 2)
    card = crm_for(fake).get_card(2, 10)
    assert phones_of(card) == IVAN | ANNA | ROMASHKA
    assert fake.requests == 2


def test_expired_token_without_refresh(fake):
    pair = fake.issue_tokens(1)
    fake.expire(pair["access_token"])
    crm = BitrixCrm(B24Client(fake.domain, pair["access_token"], scheme="http"))
    with pytest.raises(CrmAuthExpired):
        crm.get_card(2, 10)


def test_expired_token_with_refresh(fake):
    from olchat_widget.b24 import refresh_tokens
    pair = fake.issue_tokens(1)
    fake.expire(pair["access_token"])
    store = {"refresh": pair["refresh_token"]}

    def renew():
        new = refresh_tokens(fake.oauth_url, fake.client_id, fake.client_secret, store["refresh"], timeout=5)
        store["refresh"] = new["refresh_token"]
        return new["access_token"]

    crm = BitrixCrm(B24Client(fake.domain, pair["access_token"], scheme="http", on_expired=renew))
    assert phones_of(crm.get_card(2, 10)) == IVAN | ANNA | ROMASHKA
    assert fake.requests == 2 and fake.oauth_requests == 1
    assert not fake.refresh_token_valid(pair["refresh_token"])


def test_invalid_token(fake):
    crm = BitrixCrm(B24Client(fake.domain, "forged", scheme="http"))
    with pytest.raises(CrmAuthExpired):
        crm.get_card(2, 10)


def test_rate_limited_after_two_retries(fake):
    fake.drain_per_second = 0.0
    fake.fill_bucket()
    pauses = []
    started = time.monotonic()
    with pytest.raises(CrmRateLimited):
        crm_for(fake, sleep=pauses.append).get_card(2, 10)
    assert fake.requests == 3 and pauses == [0.5, 1.5]
    assert time.monotonic() - started < 3.0


def test_rate_limit_that_clears_in_time(fake):
    fake.fill_bucket()
    started = time.monotonic()
    card = crm_for(fake).get_card(2, 10)
    assert phones_of(card) == IVAN | ANNA | ROMASHKA
    assert fake.requests == 2 and fake.refused == 1 and time.monotonic() - started < 3.0


def test_overload_is_unavailable_without_retry(fake):
    fake.overload = True
    with pytest.raises(CrmUnavailable):
        crm_for(fake).get_card(2, 10)
    assert fake.requests == 1


def test_portal_deleted_is_unavailable(fake):
    fake.portal_deleted = True
    with pytest.raises(CrmUnavailable):
        crm_for(fake).get_card(2, 10)


def test_stopped_portal_is_unavailable_fast(fake):
    crm = crm_for(fake, connect_timeout=0.5, read_timeout=0.5)
    fake.stop()
    started = time.monotonic()
    with pytest.raises(CrmUnavailable):
        crm.get_card(2, 10)
    assert time.monotonic() - started < 1.0


def test_slow_portal_is_unavailable(fake):
    fake.latency = 0.6
    with pytest.raises(CrmUnavailable):
        crm_for(fake, read_timeout=0.2).get_card(2, 10)


def test_demo_data_file_loads_into_the_fake():
    import json
    from pathlib import Path
    data = json.loads((Path(__file__).resolve().parents[1] / "olchat_widget" / "demo_data.json").read_text("utf-8"))
    with FakeBitrix24(data) as portal:
        card = crm_for(portal).get_card(2, 10)
        assert {p.owner.id for p in card.phones} == {1, 2, 5} and portal.requests == 1

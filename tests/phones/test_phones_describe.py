"""describe(): the plan for Russian mobiles, libphonenumber for everything else, never an exception."""
from __future__ import annotations

import time

import phonenumbers
import pytest
from hypothesis import given, settings, strategies as st

from olchat_widget.phones import PhoneInfo, describe
from olchat_widget.phones.describe import clear_cache

KZ_ZONES = {"Asia/Almaty", "Asia/Aqtobe", "Asia/Aqtau", "Asia/Atyrau", "Asia/Oral", "Asia/Qostanay", "Asia/Qyzylorda"}


def test_russian_mobile_from_the_plan(plan):
    info = describe("+79161234567", "ru", plan)
    # The range is «Город Москва, Московская область»: people (and the Moscow landline) say «Москва».
    assert info == PhoneInfo("+79161234567", "RU", "Москва", "МТС",
                             "numbering_plan", ("Europe/Moscow",), "mobile")


def test_russian_mobile_in_english(plan):
    info = describe("+79161234567", "en", plan)
    assert (info.region, info.operator) == ("Moscow", "MTS")
    assert describe("+79161234567", "en_US", plan).region == "Moscow"


def test_far_east_mobile_gets_its_own_zone(plan, snapshot_rows):
    row = next(r for r in snapshot_rows if r.territory == "Камчатский край")
    info = describe(f"+7{row.code}{row.start:07d}", "ru", plan)
    assert info.zones == ("Asia/Kamchatka",)
    assert info.region == "Камчатский край"


def test_plan_numbers_are_mobile_for_libphonenumber_too(snapshot_rows):
    """describe() says 'mobile' for plan numbers without asking libphonenumber; check that it agrees."""
    for row in snapshot_rows[::50]:
        number = phonenumbers.parse(f"+7{row.code}{row.start:07d}")
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE, row


def test_russian_mobile_without_a_plan_is_country_level():
    info = describe("+79161234567", "ru", None)
    assert (info.country, info.region, info.source) == ("RU", "Россия", "libphonenumber")
    # libphonenumber lists 16 zones for +7 9xx, Kazakh and Bucharest ones included: keep Russia's.
    assert len(info.zones) > 5
    assert not set(info.zones) & KZ_ZONES
    assert "Europe/Bucharest" not in info.zones
    assert info.number_type == "mobile"


def test_gap_in_the_plan_falls_back_to_libphonenumber(plan, snapshot_rows):
    for a, b in zip(snapshot_rows, snapshot_rows[1:]):
        if a.code == b.code and b.start > a.end + 1:
            e164 = f"+7{a.code}{a.end + 1:07d}"
            break
    info = describe(e164, "ru", plan)
    assert info.source == "libphonenumber"
    assert info.country == "RU"


@pytest.mark.parametrize("locale, region", [("ru", "Казахстан"), ("en", "Kazakhstan")])
def test_kazakhstan_is_not_russia(plan, locale, region):
    info = describe("+77012345678", locale, plan)
    assert (info.country, info.region, info.source) == ("KZ", region, "libphonenumber")
    assert info.zones and set(info.zones) <= KZ_ZONES
    assert info.operator  # libphonenumber knows Kazakh carriers


def test_landlines_and_foreign_numbers(plan):
    moscow = describe("+74951234567", "ru", plan)
    assert (moscow.country, moscow.zones, moscow.number_type) == ("RU", ("Europe/Moscow",), "fixed_line")
    assert moscow.region == "Москва"
    spb = describe("+78121234567", "ru", plan)
    assert spb.region == "Санкт-Петербург"
    berlin = describe("+4930123456", "ru", plan)
    assert (berlin.country, berlin.region, berlin.zones) == ("DE", "Берлин, Германия", ("Europe/Berlin",))
    assert describe("+4930123456", "en").region == "Berlin, Germany"


def test_several_zones_are_all_listed():
    info = describe("+18002530000", "en")  # toll-free: anywhere in the NANP
    assert len(info.zones) > 3


def test_etc_unknown_becomes_empty():
    info = describe("+80012345678", "en")  # international freephone: no place, no zone
    assert info.zones == ()
    assert "Etc/Unknown" not in describe("+70000000000", "ru").zones


@pytest.mark.parametrize("value", ["", "+", "abc", "+999", "+0123", "+7916", "+" + "9" * 20, "79161234567"])
def test_junk_does_not_raise(plan, value):
    info = describe(value, "ru", plan)
    assert info.e164 == value


@settings(settings.get_profile("phones"))
@given(st.integers(1, 10**15 - 1), st.sampled_from(["ru", "en", "de", "", "x"]))
def test_never_raises_for_e164(plan, n, locale):
    e164 = f"+{n}"
    for p in (plan, None):
        info = describe(e164, locale, p)
        assert info.e164 == e164
        assert info.source in ("numbering_plan", "libphonenumber")
        assert "Etc/Unknown" not in info.zones


@settings(settings.get_profile("phones"))
@given(st.text(max_size=20))
def test_never_raises_for_any_text(plan, value):
    describe(value, "ru", plan)


def test_plan_describe_is_fast(plan, snapshot_rows):
    """A loose guard; the figures themselves come from tests/bench/bench_phones.py."""
    numbers = [f"+7{r.code}{r.start:07d}" for r in snapshot_rows]
    started = time.perf_counter()
    for e164 in numbers:
        describe(e164, "ru", plan)
    per_call = (time.perf_counter() - started) / len(numbers)
    assert per_call < 100e-6


def test_cache_can_be_cleared():
    describe("+4930123456", "en")
    clear_cache()
    assert describe("+4930123456", "en").country == "DE"

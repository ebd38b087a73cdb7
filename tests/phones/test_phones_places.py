"""One language per screen: a number's place reads in the interface's language, and the same city reads the same."""
from __future__ import annotations

import re

import pytest

from olchat_widget.phones import describe
from olchat_widget.phones.zones import resolve_territory

CYRILLIC = re.compile(r"[А-Яа-яЁё]")
LATIN = re.compile(r"[A-Za-z]")

GERMAN, US, BRAZILIAN, KAZAKH = "+493012345678", "+12125551234", "+5511987654321", "+77172123456"
MOSCOW_LANDLINE, MOSCOW_MOBILE = "+74951234567", "+79161234567"
SPB_LANDLINE = "+78121234567"
GERMAN_MOBILE = "+4915112345678"  # the geocoder knows no city for mobiles: country only


def spb_mobile(snapshot_rows) -> str:
    row = next(r for r in snapshot_rows if r.territory == "Город Санкт-Петербург, Ленинградская область")
    return f"+7{row.code}{row.start:07d}"


@pytest.mark.parametrize("e164, ru, en", [
    (GERMAN, "Берлин, Германия", "Berlin, Germany"),
    (US, "Нью-Йорк, Соединенные Штаты", "New York, NY, United States"),
    (BRAZILIAN, "Сан-Паулу, Бразилия", "São Paulo, Brazil"),
    (KAZAKH, "Астана, Казахстан", "Astana, Kazakhstan"),
])
def test_foreign_cities_and_countries_in_the_locale(plan, e164, ru, en):
    assert describe(e164, "ru", plan).region == ru
    assert describe(e164, "en", plan).region == en


def test_moscow_landline_and_mobile_read_the_same(plan):
    assert describe(MOSCOW_LANDLINE, "ru", plan).region == describe(MOSCOW_MOBILE, "ru", plan).region == "Москва"
    assert describe(MOSCOW_LANDLINE, "en", plan).region == describe(MOSCOW_MOBILE, "en", plan).region == "Moscow"
    # Without the registry the mobile is only «Россия», but the landline still says «Москва».
    assert describe(MOSCOW_LANDLINE, "ru", None).region == "Москва"


def test_saint_petersburg_landline_and_mobile_read_the_same(plan, snapshot_rows):
    mobile = spb_mobile(snapshot_rows)
    assert describe(mobile, "ru", plan).source == "numbering_plan"
    assert describe(SPB_LANDLINE, "ru", plan).region == describe(mobile, "ru", plan).region == "Санкт-Петербург"
    assert describe(SPB_LANDLINE, "en", plan).region == describe(mobile, "en", plan).region == "Saint Petersburg"


def test_moscow_oblast_codes_are_the_oblast():
    """libphonenumber's Russian data calls 495 the oblast and 496 the city; it is the other way round."""
    assert describe("+74961234567", "ru").region == "Московская область"
    assert describe("+74961234567", "en").region == "Moscow Oblast"


def test_other_russian_landlines_use_the_plan_s_subject_names():
    # libphonenumber: «Калининградская обл.» in Russian, «Kaliningrad» (the city) in English.
    assert describe("+74012123456", "ru").region == "Калининградская область"
    assert describe("+74012123456", "en").region == "Kaliningrad Oblast"


@pytest.mark.parametrize("locale, country", [("ru", "Германия"), ("en", "Germany")])
def test_number_without_a_city_still_names_its_country(plan, locale, country):
    assert describe(GERMAN_MOBILE, locale, plan).region == country


def test_without_the_locale_s_city_name_the_country_alone_is_shown():
    """Rio has no Russian name in any of our sources: «Бразилия», not «Rio de Janeiro, Бразилия»."""
    assert describe("+5521912345678", "ru").region == "Бразилия"
    assert describe("+5521912345678", "en").region == "Rio de Janeiro, Brazil"


def test_no_line_mixes_two_scripts(plan, snapshot_rows):
    numbers = [GERMAN, US, BRAZILIAN, KAZAKH, MOSCOW_LANDLINE, SPB_LANDLINE, GERMAN_MOBILE,
               "+5521912345678", "+861012345678", "+380441234567", "+74012123456", "+73412123456",
               "+77012345678", "+33142345678", "+390612345678", "+81312345678"]
    numbers += [f"+7{r.code}{r.start:07d}" for r in snapshot_rows[::200]]
    for e164 in numbers:
        ru, en = describe(e164, "ru", plan).region, describe(e164, "en", plan).region
        assert ru and not LATIN.search(ru), (e164, ru)
        assert en and not CYRILLIC.search(en), (e164, en)


def test_every_plan_territory_has_an_english_name(plan):
    for territory in plan.territories:
        assert territory.known, territory.raw
        assert not CYRILLIC.search(territory.en), territory.raw


def test_unknown_territory_is_transliterated_in_english():
    assert resolve_territory("Атлантида").en == "Atlantida"
    assert resolve_territory("Атлантида").ru == "Атлантида"

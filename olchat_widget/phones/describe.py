"""Where a number is registered, whose it is, and in which time zones its owner can be.

Russian mobiles (+7 9xx) come from the numbering plan when one is loaded: a
binary search, no libphonenumber parse, so describing a number is a few
microseconds. Everything else — and +7 9xx numbers outside every allocated
range — comes from libphonenumber's geocoder, carrier and time-zone data,
cached per number because parsing is the slow part. Place names are in the
locale's language throughout (places.py, zones.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, carrier, geocoder
from phonenumbers import timezone as pn_timezone

from .numbering import national_9xx
from .places import place

if TYPE_CHECKING:
    from .numbering import NumberingPlan

SOURCE_PLAN = "numbering_plan"
SOURCE_LIBPHONENUMBER = "libphonenumber"


@dataclass(frozen=True)
class PhoneInfo:
    """What is known about one E.164 number."""

    e164: str
    country: str | None
    region: str | None
    operator: str | None
    source: str
    zones: tuple[str, ...]
    number_type: str | None = None


_NUMBER_TYPES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}

# +7 is shared by Russia and Kazakhstan, and libphonenumber gives every +7
# mobile the zones of both (plus Europe/Bucharest). Keep the ones of the
# number's own country so a Kazakh number does not get Kamchatka time.
_SHARED_CODE_ZONES = {
    "KZ": frozenset({"Asia/Almaty", "Asia/Aqtobe", "Asia/Aqtau", "Asia/Atyrau", "Asia/Oral",
                     "Asia/Qostanay", "Asia/Qyzylorda"}),
    "RU": frozenset({"Europe/Kaliningrad", "Europe/Moscow", "Europe/Simferopol", "Europe/Kirov",
                     "Europe/Volgograd", "Europe/Astrakhan", "Europe/Saratov", "Europe/Ulyanovsk",
                     "Europe/Samara", "Asia/Yekaterinburg", "Asia/Omsk", "Asia/Novosibirsk",
                     "Asia/Barnaul", "Asia/Tomsk", "Asia/Novokuznetsk", "Asia/Krasnoyarsk",
                     "Asia/Irkutsk", "Asia/Chita", "Asia/Yakutsk", "Asia/Khandyga",
                     "Asia/Vladivostok", "Asia/Ust-Nera", "Asia/Magadan", "Asia/Sakhalin",
                     "Asia/Srednekolymsk", "Asia/Kamchatka", "Asia/Anadyr"}),
}
_UNKNOWN_ZONE = "Etc/Unknown"


def _lang(locale: str | None) -> str:
    """Return the two-letter language of a locale ('ru_RU' -> 'ru'); 'ru' when unusable."""
    if not isinstance(locale, str) or len(locale) < 2:
        return "ru"
    return locale[:2].lower()


def _zones(number: phonenumbers.PhoneNumber, country: str | None) -> tuple[str, ...]:
    """Return libphonenumber's zones for a number, () when it does not know."""
    zones = tuple(z for z in pn_timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE)
    own = _SHARED_CODE_ZONES.get(country or "") if number.country_code == 7 else None
    if own is not None:
        kept = tuple(z for z in zones if z in own)
        zones = kept or zones
    return zones


@lru_cache(maxsize=65536)
def _describe_libphonenumber(e164: str, lang: str) -> PhoneInfo:
    """Describe a number from libphonenumber's data alone."""
    try:
        number = phonenumbers.parse(e164, None)
    except (NumberParseException, Exception):
        return PhoneInfo(e164, None, None, None, SOURCE_LIBPHONENUMBER, ())
    try:
        country = phonenumbers.region_code_for_number(number)
        if country in (None, "", "ZZ", "001"):
            country = None
        operator = carrier.name_for_number(number, lang) or None
        number_type = _NUMBER_TYPES.get(phonenumbers.number_type(number))
        zones = _zones(number, country)
        # One language per line: the place in lang, or the country alone (places.py).
        region = place(number, country, zones, lang)
    except Exception:  # data quirks in libphonenumber must not break a card
        return PhoneInfo(e164, None, None, None, SOURCE_LIBPHONENUMBER, ())
    return PhoneInfo(e164, country, region, operator, SOURCE_LIBPHONENUMBER, zones, number_type)


def describe(e164: str, locale: str = "ru", plan: "NumberingPlan | None" = None) -> PhoneInfo:
    """Describe an E.164 number: country, region, operator, zones; never raise."""
    lang = _lang(locale)
    if plan is not None:
        national = national_9xx(e164)
        if national is not None:
            i = plan.index_of(national)
            if i >= 0:
                operator, territory = plan.row_parts(i)
                if lang == "ru":
                    region, brand = territory.ru, operator.brand
                else:
                    region, brand = territory.en, operator.brand_en
                return PhoneInfo(e164, "RU", region or None, brand or None,
                                 SOURCE_PLAN, territory.zones, "mobile")
    if not isinstance(e164, str):
        e164 = str(e164)
    return _describe_libphonenumber(e164, lang)


def clear_cache() -> None:
    """Forget cached libphonenumber descriptions (for tests and benchmarks)."""
    _describe_libphonenumber.cache_clear()

"""A number's place — city or region, and country — named in one language.

The meta line of a phone row must not read «Berlin» beside «Германия». Our
sources, best first:

- Russian numbers: the federal subject, by the numbering plan (mobiles, see
  describe.py) or by libphonenumber's Russian geocoder text mapped onto the
  same subjects (landlines), then named by zones.py — so a Moscow landline and
  a Moscow mobile both read «Москва» / «Moscow».
- Other numbers: libphonenumber's geocoder in the locale's language when it
  has it (ru covers +7, Kazakhstan included); otherwise its English city when
  that is a city CLDR (through Babel) names in the locale's language as the
  exemplar city of the number's time zone (Berlin → Берлин, New York → Нью-Йорк).
- Countries: Babel (CLDR has every country in Russian and English), then
  libphonenumber's own country names.

Where no source has the locale's name for the city, the city is left out and
the country alone is shown: one language per line beats one more detail.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

import phonenumbers
from babel import Locale, UnknownLocaleError
from phonenumbers import geocoder

from .zones import subject_for, subject_name, transliterate

# libphonenumber's Russian data swaps Moscow's codes (495 «Московская обл.»,
# 496 «г. Москва»); 495 and 499 are the city's, 496 and 498 the oblast's.
_RU_AREA_SUBJECTS = {
    "495": "Город Москва",
    "499": "Город Москва",
    "496": "Московская область",
    "498": "Московская область",
    "812": "Город Санкт-Петербург",
    "813": "Ленинградская область",
}


@lru_cache(maxsize=8)
def _babel_locale(lang: str) -> Locale | None:
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def written_in(text: str, lang: str) -> bool:
    """Whether text's letters are in the script of lang (Cyrillic for ru, Latin for en)."""
    script = {"ru": "CYRILLIC", "en": "LATIN"}.get(lang)
    if script is None:
        return True  # no way to tell for other languages; trust the source
    return all(unicodedata.name(ch, "").startswith(script) for ch in text if ch.isalpha())


def country_name(code: str | None, lang: str) -> str | None:
    """Return a country's name in lang (ISO code 'DE' -> 'Германия'), None when unknown."""
    if not code:
        return None
    locale = _babel_locale(lang)
    name = locale.territories.get(code) if locale is not None else None
    if name:
        return name
    example = phonenumbers.example_number(code)
    if example is not None:
        name = geocoder.country_name_for_number(example, lang)
        if name and written_in(name, lang):
            return name
    return None


def _fold(text: str) -> str:
    """Compare city names loosely: case and accents folded ('São Paulo' == 'Sao Paulo')."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().strip()


def _exemplar_city(zone: str, lang: str) -> str | None:
    """Return CLDR's name of a time zone's city in lang ('Europe/Berlin' -> 'Берлин')."""
    locale = _babel_locale(lang)
    if locale is None:
        return None
    city = locale.time_zones.get(zone, {}).get("city")
    if not city and lang == "en":
        city = zone.rsplit("/", 1)[-1].replace("_", " ")  # CLDR leaves English names to the zone id
    return city or None


def _area(number: phonenumbers.PhoneNumber, lang: str) -> str | None:
    """Return the geocoder's place below country level in lang's data (or its English fallback)."""
    text = geocoder.description_for_number(number, lang)
    if not text or text == geocoder.country_name_for_number(number, lang):
        return None  # the geocoder fell back to the country: no city known
    return text


def city_name(number: phonenumbers.PhoneNumber, zones: tuple[str, ...], lang: str) -> str | None:
    """Return a foreign number's city in lang, None when no source names it in lang."""
    own = _area(number, lang)
    if own is not None and written_in(own, lang):
        return own
    english = own if lang == "en" else _area(number, "en")
    if english is None:
        return None
    # 'New York, NY' is New York: the exemplar city of America/New_York.
    wanted = _fold(english.split(",")[0])
    for zone in zones:
        en_city = _exemplar_city(zone, "en")
        if en_city and _fold(en_city) == wanted:
            city = _exemplar_city(zone, lang)
            if city and written_in(city, lang):
                return city
    return None


def russian_area(number: phonenumbers.PhoneNumber, lang: str) -> str | None:
    """Return a Russian landline's subject (or locality) in lang, named like the numbering plan's."""
    national = phonenumbers.national_significant_number(number)
    subject = _RU_AREA_SUBJECTS.get(national[:3])
    ru_text = _area(number, "ru")
    if subject is None and ru_text is not None:
        subject = subject_for(ru_text)
    if subject is not None:
        return subject_name(subject, lang)
    if lang == "ru":
        return ru_text if ru_text and written_in(ru_text, "ru") else None
    en_text = _area(number, "en")
    if en_text and written_in(en_text, "en"):
        return en_text
    return transliterate(ru_text) if ru_text else None


def place(number: phonenumbers.PhoneNumber, country: str | None, zones: tuple[str, ...],
          lang: str) -> str | None:
    """Return the place text of a number in lang: 'Москва', 'Берлин, Германия', 'Germany'."""
    name = country_name(country, lang)
    if country == "RU":
        return russian_area(number, lang) or name
    city = city_name(number, zones, lang)
    if city is not None and name is not None and _fold(city) != _fold(name):
        return f"{city}, {name}"
    return name or city

"""Federal subjects of Russia: English names and IANA time zones.

The numbering plan's «Территория ГАР» column names one or more federal
subjects ('Город Москва, Московская область'), rarely a locality with its
subject ('г. Норильск|г.о. город Норильск|Красноярский край'), or the whole
country ('Российская Федерация'). This module turns such a value into display
text and the set of zones where the number's owner can be.

Zones are the ones the subject uses today (tzdata 2025): where one subject
spans several offsets (Yakutia) all of them are listed, so that the clock shows
a range instead of a confident wrong time. The four subjects added in 2022
(DNR, LNR, Zaporozhye and Kherson regions) are listed with Moscow time, the
time Russian-allocated numbers there are used in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MOSCOW = "Europe/Moscow"

# ГАР name -> (English name, zones). One entry per federal subject.
SUBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    # Republics
    "Республика Адыгея": ("Republic of Adygea", (MOSCOW,)),
    "Республика Алтай": ("Altai Republic", ("Asia/Barnaul",)),
    "Республика Башкортостан": ("Republic of Bashkortostan", ("Asia/Yekaterinburg",)),
    "Республика Бурятия": ("Republic of Buryatia", ("Asia/Irkutsk",)),
    "Республика Дагестан": ("Republic of Dagestan", (MOSCOW,)),
    "Донецкая Народная Республика": ("Donetsk People's Republic", (MOSCOW,)),
    "Республика Ингушетия": ("Republic of Ingushetia", (MOSCOW,)),
    "Кабардино-Балкарская Республика": ("Kabardino-Balkarian Republic", (MOSCOW,)),
    "Республика Калмыкия": ("Republic of Kalmykia", (MOSCOW,)),
    "Карачаево-Черкесская Республика": ("Karachay-Cherkess Republic", (MOSCOW,)),
    "Республика Карелия": ("Republic of Karelia", (MOSCOW,)),
    "Республика Коми": ("Komi Republic", (MOSCOW,)),
    "Республика Крым": ("Republic of Crimea", ("Europe/Simferopol",)),
    "Луганская Народная Республика": ("Luhansk People's Republic", (MOSCOW,)),
    "Республика Марий Эл": ("Mari El Republic", (MOSCOW,)),
    "Республика Мордовия": ("Republic of Mordovia", (MOSCOW,)),
    # Yakutia spans UTC+9 (Yakutsk), UTC+10 (Oymyakon, Verkhoyansk) and UTC+11 (Srednekolymsk).
    "Республика Саха (Якутия)": (
        "Sakha (Yakutia) Republic",
        ("Asia/Yakutsk", "Asia/Ust-Nera", "Asia/Srednekolymsk"),
    ),
    "Республика Северная Осетия - Алания": ("Republic of North Ossetia-Alania", (MOSCOW,)),
    "Республика Татарстан": ("Republic of Tatarstan", (MOSCOW,)),
    "Республика Тыва": ("Tuva Republic", ("Asia/Krasnoyarsk",)),
    "Удмуртская Республика": ("Udmurt Republic", ("Europe/Samara",)),
    "Республика Хакасия": ("Republic of Khakassia", ("Asia/Krasnoyarsk",)),
    "Чеченская Республика": ("Chechen Republic", (MOSCOW,)),
    "Чувашская Республика - Чувашия": ("Chuvash Republic", (MOSCOW,)),
    # Krais
    "Алтайский край": ("Altai Krai", ("Asia/Barnaul",)),
    "Забайкальский край": ("Zabaykalsky Krai", ("Asia/Chita",)),
    "Камчатский край": ("Kamchatka Krai", ("Asia/Kamchatka",)),
    "Краснодарский край": ("Krasnodar Krai", (MOSCOW,)),
    "Красноярский край": ("Krasnoyarsk Krai", ("Asia/Krasnoyarsk",)),
    "Пермский край": ("Perm Krai", ("Asia/Yekaterinburg",)),
    "Приморский край": ("Primorsky Krai", ("Asia/Vladivostok",)),
    "Ставропольский край": ("Stavropol Krai", (MOSCOW,)),
    "Хабаровский край": ("Khabarovsk Krai", ("Asia/Vladivostok",)),
    # Oblasts
    "Амурская область": ("Amur Oblast", ("Asia/Yakutsk",)),
    "Архангельская область": ("Arkhangelsk Oblast", (MOSCOW,)),
    "Астраханская область": ("Astrakhan Oblast", ("Europe/Astrakhan",)),
    "Белгородская область": ("Belgorod Oblast", (MOSCOW,)),
    "Брянская область": ("Bryansk Oblast", (MOSCOW,)),
    "Владимирская область": ("Vladimir Oblast", (MOSCOW,)),
    "Волгоградская область": ("Volgograd Oblast", ("Europe/Volgograd",)),
    "Вологодская область": ("Vologda Oblast", (MOSCOW,)),
    "Воронежская область": ("Voronezh Oblast", (MOSCOW,)),
    "Запорожская область": ("Zaporozhye Oblast", (MOSCOW,)),
    "Ивановская область": ("Ivanovo Oblast", (MOSCOW,)),
    "Иркутская область": ("Irkutsk Oblast", ("Asia/Irkutsk",)),
    "Калининградская область": ("Kaliningrad Oblast", ("Europe/Kaliningrad",)),
    "Калужская область": ("Kaluga Oblast", (MOSCOW,)),
    "Кемеровская область - Кузбасс": ("Kemerovo Oblast (Kuzbass)", ("Asia/Novokuznetsk",)),
    "Кировская область": ("Kirov Oblast", ("Europe/Kirov",)),
    "Костромская область": ("Kostroma Oblast", (MOSCOW,)),
    "Курганская область": ("Kurgan Oblast", ("Asia/Yekaterinburg",)),
    "Курская область": ("Kursk Oblast", (MOSCOW,)),
    "Ленинградская область": ("Leningrad Oblast", (MOSCOW,)),
    "Липецкая область": ("Lipetsk Oblast", (MOSCOW,)),
    "Магаданская область": ("Magadan Oblast", ("Asia/Magadan",)),
    "Московская область": ("Moscow Oblast", (MOSCOW,)),
    "Мурманская область": ("Murmansk Oblast", (MOSCOW,)),
    "Нижегородская область": ("Nizhny Novgorod Oblast", (MOSCOW,)),
    "Новгородская область": ("Novgorod Oblast", (MOSCOW,)),
    "Новосибирская область": ("Novosibirsk Oblast", ("Asia/Novosibirsk",)),
    "Омская область": ("Omsk Oblast", ("Asia/Omsk",)),
    "Оренбургская область": ("Orenburg Oblast", ("Asia/Yekaterinburg",)),
    "Орловская область": ("Oryol Oblast", (MOSCOW,)),
    "Пензенская область": ("Penza Oblast", (MOSCOW,)),
    "Псковская область": ("Pskov Oblast", (MOSCOW,)),
    "Ростовская область": ("Rostov Oblast", (MOSCOW,)),
    "Рязанская область": ("Ryazan Oblast", (MOSCOW,)),
    "Самарская область": ("Samara Oblast", ("Europe/Samara",)),
    "Саратовская область": ("Saratov Oblast", ("Europe/Saratov",)),
    "Сахалинская область": ("Sakhalin Oblast", ("Asia/Sakhalin",)),
    "Свердловская область": ("Sverdlovsk Oblast", ("Asia/Yekaterinburg",)),
    "Смоленская область": ("Smolensk Oblast", (MOSCOW,)),
    "Тамбовская область": ("Tambov Oblast", (MOSCOW,)),
    "Тверская область": ("Tver Oblast", (MOSCOW,)),
    "Томская область": ("Tomsk Oblast", ("Asia/Tomsk",)),
    "Тульская область": ("Tula Oblast", (MOSCOW,)),
    "Тюменская область": ("Tyumen Oblast", ("Asia/Yekaterinburg",)),
    "Ульяновская область": ("Ulyanovsk Oblast", ("Europe/Ulyanovsk",)),
    "Херсонская область": ("Kherson Oblast", (MOSCOW,)),
    "Челябинская область": ("Chelyabinsk Oblast", ("Asia/Yekaterinburg",)),
    "Ярославская область": ("Yaroslavl Oblast", (MOSCOW,)),
    # Federal cities
    "Город Москва": ("Moscow", (MOSCOW,)),
    "Город Санкт-Петербург": ("Saint Petersburg", (MOSCOW,)),
    "Город Севастополь": ("Sevastopol", ("Europe/Simferopol",)),
    # Autonomous oblast and okrugs
    "Еврейская автономная область": ("Jewish Autonomous Oblast", ("Asia/Vladivostok",)),
    "Ненецкий автономный округ": ("Nenets Autonomous Okrug", (MOSCOW,)),
    "Ханты-Мансийский автономный округ - Югра": ("Khanty-Mansi Autonomous Okrug – Yugra", ("Asia/Yekaterinburg",)),
    "Чукотский автономный округ": ("Chukotka Autonomous Okrug", ("Asia/Anadyr",)),
    "Ямало-Ненецкий автономный округ": ("Yamalo-Nenets Autonomous Okrug", ("Asia/Yekaterinburg",)),
}

# One zone per offset Russia uses, UTC+2 … UTC+12: a nationwide range (satellite
# operators, federal numbers) can be anywhere in the country.
RUSSIA_ZONES: tuple[str, ...] = (
    "Europe/Kaliningrad",
    MOSCOW,
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Magadan",
    "Asia/Kamchatka",
)
COUNTRY_NAMES = ("Российская Федерация", "Россия")

# Other spellings the registry (or a person) has used for the same subjects.
ALIASES: dict[str, str] = {
    "Москва": "Город Москва",
    "г. Москва": "Город Москва",
    "Санкт-Петербург": "Город Санкт-Петербург",
    "г. Санкт-Петербург": "Город Санкт-Петербург",
    "Севастополь": "Город Севастополь",
    "г. Севастополь": "Город Севастополь",
    "Республика Адыгея (Адыгея)": "Республика Адыгея",
    "Республика Татарстан (Татарстан)": "Республика Татарстан",
    "Республика Саха": "Республика Саха (Якутия)",
    "Якутия": "Республика Саха (Якутия)",
    "Республика Северная Осетия-Алания": "Республика Северная Осетия - Алания",
    "Северная Осетия": "Республика Северная Осетия - Алания",
    "Чувашская Республика": "Чувашская Республика - Чувашия",
    "Чувашия": "Чувашская Республика - Чувашия",
    "Кемеровская область": "Кемеровская область - Кузбасс",
    "Кузбасс": "Кемеровская область - Кузбасс",
    "Ханты-Мансийский автономный округ": "Ханты-Мансийский автономный округ - Югра",
    "Югра": "Ханты-Мансийский автономный округ - Югра",
    "ДНР": "Донецкая Народная Республика",
    "ЛНР": "Луганская Народная Республика",
    "Крым": "Республика Крым",
    # libphonenumber's Russian geocoder spells some subjects its own way.
    "Республика Удмуртская": "Удмуртская Республика",
    "Ханты-Мансийский-Югра АО": "Ханты-Мансийский автономный округ - Югра",
    "Республика Саха /Якутия/": "Республика Саха (Якутия)",
    "Республика Кабардино-Балкарская": "Кабардино-Балкарская Республика",
    "Республика Чеченская": "Чеченская Республика",
    "Республика Карачаево-Черкесская": "Карачаево-Черкесская Республика",
}

# How the federal cities read in Russian: «Москва», not the register's «Город Москва»,
# so that a Moscow landline and a Moscow mobile say the same word.
SHORT_RU: dict[str, str] = {
    "Город Москва": "Москва",
    "Город Санкт-Петербург": "Санкт-Петербург",
    "Город Севастополь": "Севастополь",
}

# A federal city and the subject around it share their mobile ranges
# ('Город Москва, Московская область'); people call such a number by the city,
# and a landline of the city must read the same, so the display keeps the city.
CITY_SURROUNDINGS: dict[str, str] = {
    "Город Москва": "Московская область",
    "Город Санкт-Петербург": "Ленинградская область",
    "Город Севастополь": "Республика Крым",
}


def subject_name(subject: str, lang: str) -> str:
    """Return the display name of a canonical subject in 'ru' or (any other language) English."""
    if lang == "ru":
        return SHORT_RU.get(subject, subject)
    return SUBJECTS[subject][0]


def _shown_subjects(subjects) -> list[str]:
    """Return the subjects worth naming: a federal city's surrounding subject is left out."""
    present = set(subjects)
    hidden = {around for city, around in CITY_SURROUNDINGS.items() if city in present}
    return [s for s in subjects if s not in hidden]


def _key(name: str) -> str:
    """Return a spelling-insensitive key: case, 'ё', dashes, spaces and 'обл.' folded."""
    key = name.casefold().replace("ё", "е").replace("\u0301", "")  # stress marks: 'Луга́нская'
    key = re.sub(r"\s*[-\u2010-\u2015\u2212]\s*", "-", key)
    key = re.sub(r"\s+", " ", key).strip()
    key = re.sub(r"\bобл\.?$", "область", key)
    key = re.sub(r"\bао$", "автономный округ", key)
    return key


_BY_KEY: dict[str, str] = {_key(name): name for name in SUBJECTS}
_BY_KEY.update({_key(alias): name for alias, name in ALIASES.items()})
_COUNTRY_KEYS = frozenset(_key(name) for name in COUNTRY_NAMES)

_TRANSLIT = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh",
        "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
        "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
        "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
        "я": "ya",
    }
)


def transliterate(text: str) -> str:
    """Return a Latin spelling of Russian text, for English display of locality names."""
    out = []
    for word in re.split(r"(\W+)", text):
        latin = word.lower().translate(_TRANSLIT)
        out.append(latin[:1].upper() + latin[1:] if word[:1].isupper() else latin)
    return "".join(out)


def subject_for(name: str) -> str | None:
    """Return the canonical ГАР name of a federal subject, or None when unknown."""
    return _BY_KEY.get(_key(name))


@dataclass(frozen=True)
class Territory:
    """What a «Территория ГАР» value means for display and for the clock."""

    raw: str
    ru: str  # display text in Russian
    en: str  # display text in English
    subjects: tuple[str, ...]  # canonical subject names; () for the whole country or unknown
    zones: tuple[str, ...]  # () when any part of the value is unknown
    known: bool


def _merge_zones(groups) -> tuple[str, ...]:
    """Return the zones of all groups, first occurrence first, without repeats."""
    seen: dict[str, None] = {}
    for zones in groups:
        for zone in zones:
            seen.setdefault(zone, None)
    return tuple(seen)


@lru_cache(maxsize=1024)
def resolve_territory(value: str) -> Territory:
    """Resolve a «Территория ГАР» value into display names and time zones."""
    raw = (value or "").strip()
    if not raw or raw == "-":
        return Territory(raw, "", "", (), (), False)
    if _key(raw) in _COUNTRY_KEYS:
        return Territory(raw, "Россия", "Russia", (), RUSSIA_ZONES, True)
    if "|" in raw:
        return _resolve_locality(raw)
    subjects: list[str] = []
    known = True
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name = subject_for(part)
        if name is None:
            known = False
        else:
            subjects.append(name)
    if not known or not subjects:
        # A partly unknown value must not yield a confident time from the known part;
        # in English it is spelt in Latin letters rather than left in Russian.
        return Territory(raw, raw, transliterate(raw), tuple(subjects), (), False)
    shown = _shown_subjects(subjects)
    ru = ", ".join(subject_name(s, "ru") for s in shown)
    en = ", ".join(subject_name(s, "en") for s in shown)
    zones = _merge_zones(SUBJECTS[s][1] for s in subjects)
    return Territory(raw, ru, en, tuple(subjects), zones, True)


def _resolve_locality(raw: str) -> Territory:
    """Resolve the 'г. Норильск|г.о. город Норильск|Красноярский край' form."""
    localities: list[str] = []
    subjects: list[str] = []
    for part in (p.strip() for p in raw.split("|")):
        if not part:
            continue
        name = subject_for(part)
        if name is not None:
            subjects.append(name)
        elif re.match(r"^(г\.о\.|м\.о\.|м\.р\.|городской округ|муниципальн)", part, re.IGNORECASE):
            continue  # the municipal unit repeats the locality in officialese
        else:
            localities.append(part)
    if not subjects:
        shown = raw.replace("|", ", ")
        return Territory(raw, shown, transliterate(shown), (), (), False)
    ru = ", ".join(localities + [subject_name(s, "ru") for s in _shown_subjects(subjects)])
    en_localities = [transliterate(re.sub(r"^(г\.|город|пгт\.?|с\.|пос\.)\s*", "", loc)) for loc in localities]
    en = ", ".join(en_localities + [subject_name(s, "en") for s in _shown_subjects(subjects)])
    zones = _merge_zones(SUBJECTS[s][1] for s in subjects)
    return Territory(raw, ru, en, tuple(subjects), zones, True)

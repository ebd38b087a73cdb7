"""Territory -> time zones: complete for the snapshot, right for the subjects that matter."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest

from olchat_widget.phones.zones import RUSSIA_ZONES, SUBJECTS, resolve_territory, subject_for, transliterate


def test_every_territory_in_the_snapshot_maps_to_zones(snapshot_rows):
    territories = sorted({r.territory for r in snapshot_rows})
    assert len(territories) == 98
    unmapped = [t for t in territories if not resolve_territory(t).zones]
    assert unmapped == []
    for t in territories:
        resolved = resolve_territory(t)
        assert resolved.known and resolved.ru and resolved.en, t


def test_every_subject_of_a_multi_subject_value_is_known(snapshot_rows):
    for t in {r.territory for r in snapshot_rows}:
        if "," in t and "|" not in t:
            parts = [p.strip() for p in t.split(",")]
            assert all(subject_for(p) for p in parts), t
            assert len(resolve_territory(t).subjects) == len(parts)


def test_all_zone_names_exist_in_tzdata():
    names = available_timezones()
    for subject, (_, zones) in SUBJECTS.items():
        assert zones, subject
        for zone in zones:
            assert zone in names, (subject, zone)
    assert set(RUSSIA_ZONES) <= names


def test_there_are_89_subjects():
    assert len(SUBJECTS) == 89


def _offset_hours(zone: str) -> float:
    """Current-rules offset (Russia has had no DST since 2014)."""
    when = datetime(2026, 1, 15, tzinfo=timezone.utc)
    return when.astimezone(ZoneInfo(zone)).utcoffset().total_seconds() / 3600


@pytest.mark.parametrize(
    "territory, hours",
    [
        ("Город Москва, Московская область", {3}),
        ("Калининградская область", {2}),
        ("Самарская область", {4}),
        ("Удмуртская Республика", {4}),
        ("Свердловская область", {5}),
        ("Республика Башкортостан", {5}),
        ("Омская область", {6}),
        ("Новосибирская область", {7}),
        ("Кемеровская область - Кузбасс", {7}),
        ("Иркутская область", {8}),
        ("Забайкальский край", {9}),
        ("Амурская область", {9}),
        ("Приморский край", {10}),
        ("Магаданская область", {11}),
        ("Сахалинская область", {11}),
        ("Камчатский край", {12}),
        ("Чукотский автономный округ", {12}),
        ("Республика Саха (Якутия)", {9, 10, 11}),
        ("Волгоградская область", {3}),
        ("Город Севастополь, Республика Крым", {3}),
        ("Донецкая Народная Республика", {3}),
        ("г. Норильск|г.о. город Норильск|Красноярский край", {7}),
        ("Российская Федерация", set(range(2, 13))),
    ],
)
def test_zone_offsets(territory, hours):
    zones = resolve_territory(territory).zones
    assert {_offset_hours(z) for z in zones} == hours


def test_multi_subject_values_merge_zones_without_repeats():
    resolved = resolve_territory("Город Москва, Московская область")
    assert resolved.zones == ("Europe/Moscow",)
    assert resolved.subjects == ("Город Москва", "Московская область")
    assert resolve_territory("Московская область, Город Москва").zones == ("Europe/Moscow",)


def test_locality_form():
    resolved = resolve_territory("г. Норильск|г.о. город Норильск|Красноярский край")
    assert resolved.ru == "г. Норильск, Красноярский край"
    assert resolved.en == "Norilsk, Krasnoyarsk Krai"
    assert resolved.subjects == ("Красноярский край",)


def test_display_names():
    assert resolve_territory("Город Москва, Московская область").en == "Moscow"
    assert resolve_territory("Российская Федерация").ru == "Россия"


@pytest.mark.parametrize(
    "spelling, subject",
    [
        ("Кемеровская область", "Кемеровская область - Кузбасс"),
        ("кемеровская область — кузбасс", "Кемеровская область - Кузбасс"),
        ("Республика Северная Осетия-Алания", "Республика Северная Осетия - Алания"),
        ("Псковская обл.", "Псковская область"),
        ("г. Москва", "Город Москва"),
        ("Ханты-Мансийский АО", "Ханты-Мансийский автономный округ - Югра"),
        ("Страна Оз", None),
    ],
)
def test_spelling_variants(spelling, subject):
    assert subject_for(spelling) == subject


@pytest.mark.parametrize("value", ["", "-", "Атлантида", "Город Москва, Атлантида"])
def test_unknown_territories_have_no_zones(value):
    """A partly known value must not give a confident time from the known part."""
    resolved = resolve_territory(value)
    assert resolved.zones == ()
    assert not resolved.known


def test_transliterate():
    assert transliterate("Псков") == "Pskov"
    assert transliterate("Южно-Сахалинск") == "Yuzhno-Sakhalinsk"

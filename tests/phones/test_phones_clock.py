"""client_time(): local time, traffic light, ranges for uncertain zones, DST."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from olchat_widget.phones import ClientTime, Thresholds, client_time
from olchat_widget.phones.clock import light_for, utc_label
from olchat_widget.phones.zones import RUSSIA_ZONES

UTC = timezone.utc


def at(hour, minute=0, *, day=(2026, 1, 15)):
    return datetime(*day, hour, minute, tzinfo=UTC)


def test_single_zone():
    assert client_time(["Europe/Moscow"], at(11, 5)) == ClientTime("14:05", "green", "UTC+3", True)


@pytest.mark.parametrize(
    "local, light",
    [
        (time(0, 0), "red"),
        (time(7, 59), "red"),
        (time(8, 0), "orange"),
        (time(8, 59), "orange"),
        (time(9, 0), "green"),
        (time(19, 59), "green"),
        (time(20, 0), "orange"),
        (time(21, 59), "orange"),
        (time(22, 0), "red"),
        (time(23, 59), "red"),
    ],
)
def test_default_thresholds(local, light):
    assert light_for(local) == light
    # The same through client_time with a zone whose offset is 0.
    now = datetime.combine(datetime(2026, 1, 15).date(), local, tzinfo=UTC)
    assert client_time(["Atlantic/Reykjavik"], now).light == light


def test_portal_thresholds():
    strict = Thresholds(orange_start=time(9), green_start=time(10), green_end=time(18), orange_end=time(19))
    assert light_for(time(9, 30), strict) == "orange"
    assert light_for(time(17, 59), strict) == "green"
    assert light_for(time(18, 30), strict) == "orange"
    assert light_for(time(19, 0), strict) == "red"
    assert client_time(["Europe/Moscow"], at(6, 30), strict).light == "orange"  # 09:30 Moscow


def test_night_shift_thresholds_wrap_midnight():
    night = Thresholds(orange_start=time(21), green_start=time(22), green_end=time(6), orange_end=time(7))
    assert light_for(time(23), night) == "green"
    assert light_for(time(3), night) == "green"
    assert light_for(time(6, 30), night) == "orange"
    assert light_for(time(12), night) == "red"


def test_zones_with_the_same_offset_give_one_certain_time():
    result = client_time(["Europe/Moscow", "Europe/Simferopol", "Europe/Kirov", "Europe/Volgograd"], at(9))
    assert result == ClientTime("12:00", "green", "UTC+3", True)


def test_different_offsets_give_a_range_and_the_worst_light():
    yakutia = ["Asia/Yakutsk", "Asia/Ust-Nera", "Asia/Srednekolymsk"]  # +9, +10, +11
    result = client_time(yakutia, at(10, 30))
    assert result == ClientTime("19:30–21:30", "orange", "UTC+9…UTC+11", False)
    # 21:00 (+9) is orange but 23:00 (+11) is red: red wins.
    assert client_time(yakutia, at(12)).light == "red"
    # An intermediate offset counts too: +2 green 18:00, +7 red 23:00, +3 green 19:00 ... worst is red.
    assert client_time(["Europe/Kaliningrad", "Asia/Novosibirsk", "Europe/Moscow"], at(16)).light == "red"


def test_whole_russia_is_a_wide_range():
    result = client_time(RUSSIA_ZONES, at(9))
    assert result.text == "11:00–21:00"
    assert result.zone_label == "UTC+2…UTC+12"
    assert result.light == "orange"
    assert not result.certain


@pytest.mark.parametrize(
    "zone, before, after, labels",
    [
        # Europe: clocks go forward at 01:00 UTC on the last Sunday of March.
        ("Europe/Berlin", datetime(2026, 3, 29, 0, 59, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
         ("01:59", "03:00", "UTC+1", "UTC+2")),
        # ... and back at 01:00 UTC on the last Sunday of October.
        ("Europe/Berlin", datetime(2026, 10, 25, 0, 59, tzinfo=UTC), datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
         ("02:59", "02:00", "UTC+2", "UTC+1")),
        # USA: second Sunday of March, 02:00 local (07:00 UTC).
        ("America/New_York", datetime(2026, 3, 8, 6, 59, tzinfo=UTC), datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
         ("01:59", "03:00", "UTC-5", "UTC-4")),
    ],
)
def test_dst_transitions(zone, before, after, labels):
    a, b = client_time([zone], before), client_time([zone], after)
    assert (a.text, b.text, a.zone_label, b.zone_label) == labels


def test_dst_changes_the_light_at_the_same_utc_instant():
    # 08:30 UTC is 08:30 in London in winter (orange) and 09:30 in summer (green).
    assert client_time(["Europe/London"], datetime(2026, 1, 15, 8, 30, tzinfo=UTC)).text == "08:30"
    assert client_time(["Europe/London"], datetime(2026, 7, 15, 8, 30, tzinfo=UTC)).text == "09:30"
    assert client_time(["Europe/London"], datetime(2026, 1, 15, 8, 30, tzinfo=UTC)).light == "orange"
    assert client_time(["Europe/London"], datetime(2026, 7, 15, 8, 30, tzinfo=UTC)).light == "green"


def test_dst_decides_whether_two_zones_agree():
    zones = ["Europe/London", "Atlantic/Reykjavik"]  # London has DST, Iceland does not
    winter = client_time(zones, datetime(2026, 1, 15, 12, tzinfo=UTC))
    summer = client_time(zones, datetime(2026, 7, 15, 12, tzinfo=UTC))
    assert winter == ClientTime("12:00", "green", "UTC", True)
    assert summer == ClientTime("12:00–13:00", "green", "UTC…UTC+1", False)


def test_fractional_and_negative_offsets():
    assert client_time(["Asia/Kolkata"], at(3, 0)).zone_label == "UTC+5:30"
    assert client_time(["Asia/Kathmandu"], at(3, 0)).text == "08:45"
    assert utc_label(timedelta(hours=-3, minutes=-30)) == "UTC-3:30"


@pytest.mark.parametrize("zones", [[], (), ["Etc/Unknown"], ["Not/AZone"], ["../../etc/passwd"], [None], [""]])
def test_unknown_zones(zones):
    assert client_time(zones, at(12)) == ClientTime("", "unknown", "", False)


def test_invalid_zones_are_skipped_next_to_valid_ones():
    assert client_time(["Not/AZone", "Europe/Moscow"], at(12)).text == "15:00"


def test_naive_and_non_utc_datetimes():
    assert client_time(["Europe/Moscow"], datetime(2026, 1, 15, 12)).text == "15:00"
    plus5 = timezone(timedelta(hours=5))
    assert client_time(["Europe/Moscow"], datetime(2026, 1, 15, 17, tzinfo=plus5)).text == "15:00"


TEXT = re.compile(r"^\d\d:\d\d(–\d\d:\d\d)?$")


@settings(settings.get_profile("phones"))
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)),
    st.lists(st.sampled_from(list(RUSSIA_ZONES) + ["Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
             min_size=1, max_size=5),
)
def test_properties(now, zones):
    result = client_time(zones, now)
    assert TEXT.match(result.text)
    assert result.light in ("green", "orange", "red")
    assert result.certain == ("–" not in result.text) == ("…" not in result.zone_label)
    # The light is never better than the light of any single zone.
    order = {"green": 0, "orange": 1, "red": 2}
    assert all(order[result.light] >= order[client_time([z], now).light] for z in zones)

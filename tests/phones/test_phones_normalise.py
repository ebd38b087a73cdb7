"""Normalisation of what people type into CRM phone fields."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from olchat_widget.phones import PhoneEntry, normalise, parse_phone_field
from olchat_widget.phones.normalise import ERROR_CODES

E164 = re.compile(r"^\+[1-9]\d{1,14}$")


@pytest.mark.parametrize(
    "value, e164, ext",
    [
        ("8 (916) 123-45-67", "+79161234567", None),
        ("+7 916 1234567", "+79161234567", None),
        ("9161234567", "+79161234567", None),
        ("79161234567", "+79161234567", None),
        ("+7 (495) 123-45-67 доб. 123", "+74951234567", "123"),
        ("+7 (495) 123-45-67 доб 123", "+74951234567", "123"),
        ("+7 (495) 123-45-67 добавочный 45", "+74951234567", "45"),
        ("+7 495 123-45-67 ext. 5", "+74951234567", "5"),
        ("+7 495 123-45-67 x5", "+74951234567", "5"),
        ("+7 495 123-45-67 #12", "+74951234567", "12"),
        ("+7 495 123-45-67 вн. 7", "+74951234567", "7"),
        ("+7 495 123-45-67, доб. 12", "+74951234567", "12"),  # a comma before the extension
        ("８ (９１６) １２３-４５-６７", "+79161234567", None),  # full-width digits
        ("＋７ ９１６ １２３ ４５ ６７", "+79161234567", None),  # full-width plus too
        ("٨٩١٦١٢٣٤٥٦٧", "+79161234567", None),  # Arabic-Indic digits
        ("Иван моб. 8 916 123 45 67 (рабочий)", "+79161234567", None),  # stray letters
        ("тел: 8-916-123-45-67", "+79161234567", None),
        ("удобно звонить: 8 916 123 45 67", "+79161234567", None),  # 'доб' inside a word is not a marker
        ("+8 916 123 45 67", "+79161234567", None),  # common slip: '+8' for '8'
        ("0049 30 1234567", "+49301234567", None),  # '00' international prefix
        ("8 10 49 30 1234567", "+49301234567", None),  # Russian international prefix
        ("380501234567", "+380501234567", None),  # international without '+'
        ("+77012345678", "+77012345678", None),  # Kazakhstan
        ("+49 30 1234567", "+49301234567", None),
    ],
)
def test_examples(value, e164, ext):
    entry = normalise(value)
    assert entry == PhoneEntry(value.strip(), e164, ext, None)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("8-916-123-45-67, 8-903-123-45-67", ["+79161234567", "+79031234567"]),
        ("8-916-123-45-67; 8-903-123-45-67", ["+79161234567", "+79031234567"]),
        ("8-916-123-45-67 / 8-903-123-45-67", ["+79161234567", "+79031234567"]),
        ("8 916 123 45 67 или 8 903 123 45 67", ["+79161234567", "+79031234567"]),
        ("8 916 123 45 67 ИЛИ +7 903 123 45 67", ["+79161234567", "+79031234567"]),
        ("+7 916 123 45 67\n+7 903 123 45 67", ["+79161234567", "+79031234567"]),
        ("+7 916 123 45 67\r\n\r\n+7 903 123 45 67", ["+79161234567", "+79031234567"]),
        ("89161234567 89031234567", ["+79161234567", "+79031234567"]),  # only a space between
        ("8 916 123 45 67 и 8 495 123 45 67 доб. 9", ["+79161234567", "+74951234567"]),
    ],
)
def test_several_numbers_in_one_field(value, expected):
    entries = parse_phone_field(value)
    assert [e.e164 for e in entries] == expected
    assert all(e.error is None for e in entries)


def test_two_numbers_keep_their_raw_pieces_and_extensions():
    entries = parse_phone_field("+7 495 123-45-67 доб. 1, ８-９０３-１２３-４５-６７")
    assert entries == [
        PhoneEntry("+7 495 123-45-67 доб. 1", "+74951234567", "1", None),
        PhoneEntry("８-９０３-１２３-４５-６７", "+79031234567", None, None),
    ]


@pytest.mark.parametrize(
    "value, error",
    [
        ("нет телефона", "not_a_number"),
        ("---", "not_a_number"),
        (";", "not_a_number"),
        ("123", "too_short"),
        ("123-45-67", "too_short"),  # a local number without its area code
        ("+7 916 123", "too_short"),
        ("12345678901234567890", "too_long"),
        ("+7 916 123 45 67 89 01", "too_long"),
        ("+999 123 456", "invalid_country_code"),
        ("8 000 000 00 00", "invalid"),  # right length, no such prefix
        ("+7 123 456 78 90", "invalid"),
    ],
)
def test_errors_have_stable_reason_codes(value, error):
    entry = normalise(value)
    assert entry.e164 is None
    assert entry.error == error
    assert entry.raw == value


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_empty_values(value):
    assert parse_phone_field(value) == []
    assert normalise(value) == PhoneEntry("", None, None, "empty")


def test_garbage_gives_one_error_entry():
    assert parse_phone_field("абв") == [PhoneEntry("абв", None, None, "not_a_number")]


def test_mixed_field_keeps_errors_beside_numbers():
    entries = parse_phone_field("8 916 123 45 67, позвонить позже")
    assert [(e.e164, e.error) for e in entries] == [("+79161234567", None), (None, "not_a_number")]


def test_normalise_returns_first_valid_number():
    assert normalise("не звонить, 8 916 123 45 67").e164 == "+79161234567"


def test_default_region_is_used_for_national_numbers():
    assert normalise("030 1234567", "DE").e164 == "+49301234567"
    assert normalise("701 234 5678", "KZ").e164 == "+77012345678"
    assert normalise("8 701 234 5678", "KZ").e164 == "+77012345678"
    # A region libphonenumber does not know: only international numbers can be read.
    assert normalise("9161234567", "XX").error == "invalid_country_code"
    assert normalise("+7 916 123 45 67", "XX").e164 == "+79161234567"


def test_non_string_input_does_not_raise():
    assert parse_phone_field(None) == []
    assert normalise(89161234567).e164 == "+79161234567"


# -- properties ------------------------------------------------------------------

phone_like = st.lists(
    st.sampled_from(list("0123456789+-() .,;/xX#доб\n８９٣") + ["ext", " или ", "8 916 ", "+7", "00"]),
    max_size=30,
).map("".join)
any_text = st.one_of(st.text(max_size=80), phone_like)
regions = st.sampled_from(["RU", "KZ", "DE", "US", "XX", ""])


def _check_entry(entry: PhoneEntry) -> None:
    assert isinstance(entry, PhoneEntry)
    if entry.e164 is not None:
        assert entry.error is None
        assert E164.match(entry.e164), entry
    else:
        assert entry.error in ERROR_CODES
    assert entry.extension is None or entry.extension.isdigit()


@settings(settings.get_profile("phones"))
@given(any_text, regions)
def test_never_raises_and_outputs_e164(value, region):
    entries = parse_phone_field(value, region)
    assert isinstance(entries, list)
    for entry in entries:
        _check_entry(entry)
    if not value.strip():
        assert entries == []
    _check_entry(normalise(value, region))


@settings(settings.get_profile("phones"))
@given(any_text, regions)
def test_idempotent(value, region):
    for entry in parse_phone_field(value, region):
        if entry.e164 is not None:
            again = normalise(entry.e164, region)
            assert again.e164 == entry.e164
            assert again.error is None


@settings(settings.get_profile("phones"))
@given(
    st.sampled_from(["8", "+7", "7", ""]),
    st.sampled_from(["916", "903", "495", "812", "999"]),
    st.integers(0, 9_999_999),
    st.sampled_from(["", " ", "-", "(", ")", ". "]),
)
def test_russian_formats_all_give_the_same_number(prefix, code, subscriber, sep):
    digits = f"{subscriber:07d}"
    typed = f"{prefix}{sep}{code}{sep}{digits[:3]}{sep}{digits[3:5]}{sep}{digits[5:]}"
    entry = normalise(typed)
    assert entry.e164 == f"+7{code}{digits}", typed

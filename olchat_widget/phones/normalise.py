"""Turn what people type into CRM phone fields into E.164 numbers.

A CRM field is free text: '8 (916) 123-45-67', '+7 916 1234567, 8-903-…',
'+7 495 123-45-67 доб. 123', full-width digits pasted from a messenger,
a name in front of the number. This module splits such a value into pieces,
keeps extensions apart and lets libphonenumber decide what is a number.

Validity policy (the choice the issue asks to document): a number is accepted
when libphonenumber says ``is_valid_number`` — its length and prefix fit the
country's numbering patterns. That does NOT require the number to be
allocated to anyone (a +7 9xx number in a range missing from the registry is
still accepted; the registry only adds detail). A number of the right length
whose prefix no pattern allows ('8 000 000-00-00', '+7 123 …') is rejected as
'invalid': such values are typos or placeholders, and sending them to a
WhatsApp existence check would only waste the line's check budget.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from phonenumbers.phonenumberutil import ValidationResult

# Stable reason codes; the app translates them for people.
EMPTY = "empty"
NOT_A_NUMBER = "not_a_number"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
INVALID_COUNTRY_CODE = "invalid_country_code"
INVALID = "invalid"
ERROR_CODES = (EMPTY, NOT_A_NUMBER, TOO_SHORT, TOO_LONG, INVALID_COUNTRY_CODE, INVALID)

# A CRM field is short; anything longer is pasted garbage, and libphonenumber's
# matcher is not cheap on long text, so only the head of a value is read.
MAX_FIELD_CHARS = 4096

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")


@dataclass(frozen=True)
class PhoneEntry:
    """One phone found in a CRM field value."""

    raw: str
    e164: str | None
    extension: str | None
    error: str | None

    @property
    def valid(self) -> bool:
        """Say whether the entry is a usable number."""
        return self.error is None


# Numbers are separated by punctuation people use for lists, or by words.
_SEPARATOR_RE = re.compile(
    r"[,;/\\|\n\r\u2028\u2029]+|\s+(?:или|либо|и|or|and)\s+",
    re.IGNORECASE,
)
# Extension markers. The look-behind keeps 'x' inside words ('Alex') and 'доб'
# inside 'удобно' from being taken for a marker.
_EXT_MARKER = r"(?<![^\W\d_])(?:доб(?:авочный)?|вн(?:утр(?:енний)?)?|ext(?:ension)?|x|х|#)"
_EXT_RE = re.compile(_EXT_MARKER + r"\s*[.:]?\s*(?:№\s*)?(\d{1,10})(?!\d)[^\d]*$", re.IGNORECASE)
_EXT_ONLY_RE = re.compile(r"^\s*" + _EXT_MARKER + r"\s*[.:]?\s*(?:№\s*)?\d{1,10}[^\d]*$", re.IGNORECASE)
_DIGITS = frozenset("0123456789")

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: INVALID_COUNTRY_CODE,
    NumberParseException.NOT_A_NUMBER: NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: TOO_SHORT,
    NumberParseException.TOO_LONG: TOO_LONG,
}
_POSSIBILITY_ERRORS = {
    ValidationResult.INVALID_COUNTRY_CODE: INVALID_COUNTRY_CODE,
    ValidationResult.TOO_SHORT: TOO_SHORT,
    # A number possible only locally lacks its area code: for a person that is "too short".
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: TOO_SHORT,
    ValidationResult.TOO_LONG: TOO_LONG,
    ValidationResult.INVALID_LENGTH: INVALID,
    ValidationResult.IS_POSSIBLE: INVALID,
}


@lru_cache(maxsize=4096)
def _map_char(ch: str) -> str:
    """Map one character to its ASCII form when it is a digit or a full-width sign."""
    if ch.isdecimal():
        return str(unicodedata.decimal(ch))
    folded = unicodedata.normalize("NFKC", ch)
    # Only 1:1 replacements: positions in the mapped text must match the original,
    # so that `raw` can be cut from what the person actually typed.
    return folded if len(folded) == 1 else ch


def _ascii_text(text: str) -> str:
    """Return text with Unicode digits and full-width signs mapped to ASCII, same length."""
    if text.isascii():
        return text
    return "".join(_map_char(ch) for ch in text)


def _region(default_region: str | None) -> str | None:
    """Return a region code libphonenumber knows, or None."""
    if not isinstance(default_region, str):
        return None
    code = default_region.strip().upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


@lru_cache(maxsize=256)
def _trunk_prefixes(region: str | None) -> tuple[str, ...]:
    """Return the prefixes a national number of the region may start with ('0' always)."""
    prefixes = {"0"}
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
    if meta is not None and meta.national_prefix:
        prefixes.add(meta.national_prefix)
    return tuple(sorted(prefixes))


def _attempt(text: str, region: str | None) -> tuple[phonenumbers.PhoneNumber | None, str | None]:
    """Parse text; return the number when valid, else the reason code."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return None, _PARSE_ERRORS.get(exc.error_type, NOT_A_NUMBER)
    except Exception:  # libphonenumber on odd input must not take the widget down
        return None, NOT_A_NUMBER
    if phonenumbers.is_valid_number(number):
        return number, None
    reason = _POSSIBILITY_ERRORS.get(phonenumbers.is_possible_number_with_reason(number), INVALID)
    if reason == INVALID:
        reason = _length_reason(number)
    return None, reason


def _length_reason(number: phonenumbers.PhoneNumber) -> str:
    """Say 'too_long'/'too_short' when the length fits no ordinary (fixed or mobile) number, else 'invalid'."""
    # libphonenumber calls '+7 916 123 45 67 89 01' possible because some Russian
    # service numbers have 14 digits; for a person it is simply too long.
    region = phonenumbers.region_code_for_country_code(number.country_code)
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
    lengths = set()
    if meta is not None:
        for desc in (meta.fixed_line, meta.mobile):
            if desc is not None and desc.possible_length:
                lengths.update(n for n in desc.possible_length if n > 0)
    if not lengths:
        return INVALID
    size = len(phonenumbers.national_significant_number(number))
    if size > max(lengths):
        return TOO_LONG
    if size < min(lengths):
        return TOO_SHORT
    return INVALID


def _parse_digits(plus: bool, digits: str, region: str | None) -> tuple[str | None, str | None]:
    """Return (e164, None) or (None, reason) for the digits of one piece."""
    if plus:
        number, error = _attempt("+" + digits, region)
        # '+8 916 …' is a common Russian slip for '8 916 …'; no country code starts with 89.
        if number is None and digits.startswith("8") and region in ("RU", "KZ"):
            number = _attempt(digits, region)[0]
    else:
        number, error = _attempt(digits, region)
        if number is None and digits.startswith("00") and len(digits) > 4:
            # '00' is the international prefix of most of the world, though not Russia's.
            number = _attempt("+" + digits[2:], region)[0]
        if number is None and len(digits) >= 11 and not digits.startswith(_trunk_prefixes(region)):
            # A long digit run that is not a national number is usually an
            # international one typed without '+': accept it only when it is valid.
            # Runs that start with the national prefix ('8 000 …' in Russia) are
            # failed national numbers, not '+800 …' freephone numbers.
            number = _attempt("+" + digits, region)[0]
    if number is None:
        return None, error
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), None


def _split_extension(mapped: str) -> tuple[int, str | None]:
    """Return where the main number ends and the extension, if the piece has one."""
    for match in _EXT_RE.finditer(mapped):
        head = mapped[: match.start()]
        if any(ch in _DIGITS for ch in head):
            return match.start(), match.group(1)
    return len(mapped), None


def _matcher_entries(raw: str, mapped: str, region: str | None) -> list[PhoneEntry]:
    """Find several numbers in one run of text that has no separators ('8916… 8903…')."""
    try:
        found = [
            (m.raw_string, phonenumbers.format_number(m.number, PhoneNumberFormat.E164))
            for m in phonenumbers.PhoneNumberMatcher(mapped, region or "ZZ")
        ]
    except Exception:
        return []
    if len(found) < 2:  # one match inside a too-long run would be a guess
        return []
    return [PhoneEntry(text.strip(), e164, None, None) for text, e164 in found]


def _parse_piece(raw: str, mapped: str, region: str | None) -> list[PhoneEntry]:
    """Parse one separated piece of a field value into entries."""
    end, extension = _split_extension(mapped)
    main = mapped[:end]
    digits = "".join(ch for ch in main if ch in _DIGITS)
    if not digits:
        return [PhoneEntry(raw, None, extension, NOT_A_NUMBER)]
    first_digit = next(i for i, ch in enumerate(main) if ch in _DIGITS)
    plus = "+" in main[:first_digit]
    e164, error = _parse_digits(plus, digits, region)
    if error == TOO_LONG and extension is None:
        several = _matcher_entries(raw, main, region)
        if several:
            return several
    if error == NOT_A_NUMBER:
        # There are digits, so "not a number" from libphonenumber means "too few of them".
        error = TOO_SHORT if len(digits) < 7 else INVALID
    return [PhoneEntry(raw, e164, extension, error)]


def _pieces(text: str, mapped: str) -> list[tuple[str, str]]:
    """Split a value into (raw, mapped) pieces, keeping a detached 'доб. 12' with its number."""
    spans: list[list[int]] = []
    start = 0
    for sep in _SEPARATOR_RE.finditer(mapped):
        spans.append([start, sep.start()])
        start = sep.end()
    spans.append([start, len(mapped)])
    merged: list[list[int]] = []
    for span in spans:
        piece = mapped[span[0] : span[1]]
        if not piece.strip():
            continue
        if merged and _EXT_ONLY_RE.match(piece):
            merged[-1][1] = span[1]
        else:
            merged.append(span)
    out = []
    for a, b in merged:
        piece = mapped[a:b]
        if not any(ch.isalnum() for ch in piece):
            continue  # stray punctuation between separators
        out.append((text[a:b].strip(), piece))
    return out


def parse_phone_field(value: str, default_region: str = "RU") -> list[PhoneEntry]:
    """Parse one CRM field value into the phones it holds; never raise."""
    if value is None:
        return []
    if not isinstance(value, str):
        value = str(value)
    text = value[:MAX_FIELD_CHARS]
    if not text.strip():
        return []
    try:
        region = _region(default_region)
        mapped = _ascii_text(text)
        entries: list[PhoneEntry] = []
        for raw, piece in _pieces(text, mapped):
            entries.extend(_parse_piece(raw, piece, region))
        if not entries:
            return [PhoneEntry(text.strip(), None, None, NOT_A_NUMBER)]
        return entries
    except Exception:  # a defect here must cost one field, not the whole card
        return [PhoneEntry(text.strip(), None, None, NOT_A_NUMBER)]


def normalise(value: str, default_region: str = "RU") -> PhoneEntry:
    """Return the first phone of a field value, or the entry saying why there is none."""
    entries = parse_phone_field(value, default_region)
    if not entries:
        raw = value if isinstance(value, str) else ("" if value is None else str(value))
        return PhoneEntry(raw.strip(), None, None, EMPTY)
    for entry in entries:
        if entry.error is None:
            return entry
    return entries[0]

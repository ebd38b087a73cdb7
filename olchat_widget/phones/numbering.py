"""The Russian numbering plan for +7 9xx: load DEF-9xx.csv and look numbers up.

The file (format in shared/data/ru-numbering/README.md) has ~17,000 ranges.
They are kept as parallel arrays — range starts and ends as 10-digit integers
(code * 10**7 + subscriber number) plus indices into small tables of distinct
operators and territories — so a lookup is one binary search and the whole
plan costs a few megabytes instead of a Python object per row.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import threading
import time
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .. import clock
from .brands import brand_en, brand_for
from .zones import Territory, resolve_territory

log = logging.getLogger(__name__)

SUBSCRIBER_SPAN = 10**7  # 7-digit subscriber numbers after the 3-digit code
MIN_CODE, MAX_CODE = 900, 999  # the DEF-9xx file covers exactly these codes

# Normalised header -> field. Headers are matched loosely (case, spaces, Latin
# look-alikes of АВС) so that a cosmetic change upstream does not stop updates.
_HEADER_FIELDS = {
    "авс/def": "code",
    "def": "code",
    "от": "start",
    "до": "end",
    "емкость": "capacity",
    "оператор": "operator",
    "регион": "region",
    "территориягар": "territory",
    "инн": "inn",
}
_REQUIRED = ("code", "start", "end", "operator", "territory", "inn")
_LATIN_LOOKALIKES = str.maketrans({"a": "а", "b": "в", "c": "с"})


class NumberingPlanError(Exception):
    """The numbering plan file is missing, unreadable or not what it should be."""


@dataclass(frozen=True)
class PlanRange:
    """One allocated range: +7 <code> <start>…<end> (start/end are 7-digit subscriber numbers)."""

    code: int
    start: int
    end: int
    operator_legal: str
    inn: str
    brand: str
    territory: str
    zones: tuple[str, ...]

    @property
    def first_e164(self) -> str:
        """Return the first number of the range in E.164."""
        return f"+7{self.code}{self.start:07d}"

    @property
    def last_e164(self) -> str:
        """Return the last number of the range in E.164."""
        return f"+7{self.code}{self.end:07d}"


@dataclass(frozen=True)
class Operator:
    """One distinct operator spelling of the file, with its display brand."""

    legal: str
    inn: str
    brand: str
    brand_en: str


def _header_key(name: str) -> str:
    """Return the loose key of a header cell."""
    key = "".join(name.replace("\ufeff", "").split()).casefold().replace("ё", "е")
    if len(key) >= 3 and all(ch in "abcавс" for ch in key[:3]):
        # 'АВС' is Cyrillic in the official file; a Latin 'ABC' looks the same to people.
        key = key[:3].translate(_LATIN_LOOKALIKES) + key[3:]
    return key


def _columns(header: list[str]) -> dict[str, int]:
    """Map field names to column indices; raise when a required column is missing."""
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        field = _HEADER_FIELDS.get(_header_key(cell))
        if field is not None and field not in columns:
            columns[field] = index
    missing = [f for f in _REQUIRED if f not in columns]
    if missing:
        shown = ";".join(header)[:120]
        raise NumberingPlanError(
            f"the header does not look like DEF-9xx.csv (missing {', '.join(missing)}): {shown!r}"
        )
    return columns


def _digits(cell: str, what: str, line: int, max_len: int) -> int:
    """Parse a cell of ASCII digits, or raise with the line number."""
    value = cell.strip()
    if not value or not value.isascii() or not value.isdigit() or len(value) > max_len:
        raise NumberingPlanError(f"line {line}: {what} is not a number of at most {max_len} digits: {cell!r}")
    return int(value)


def _decode(data: bytes) -> str:
    """Decode the file's bytes (UTF-8, BOM optional) or raise a clear error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NumberingPlanError(
            f"the file is not UTF-8 text (bad byte at offset {exc.start}); is it the DEF-9xx.csv export?"
        ) from None


class NumberingPlan:
    """The loaded numbering plan: ranges in sorted parallel arrays."""

    __slots__ = (
        "_starts", "_ends", "_operator_index", "_territory_index",
        "operators", "territories", "source_path", "loaded_at", "unknown_territories",
    )

    def __init__(self, starts, ends, operator_index, territory_index, operators, territories,
                 source_path: str, loaded_at: datetime):
        self._starts = starts
        self._ends = ends
        self._operator_index = operator_index
        self._territory_index = territory_index
        self.operators: tuple[Operator, ...] = tuple(operators)
        self.territories: tuple[Territory, ...] = tuple(territories)
        self.source_path = source_path
        self.loaded_at = loaded_at
        self.unknown_territories = tuple(t.raw for t in self.territories if not t.zones)

    # -- loading -----------------------------------------------------------------

    @classmethod
    def load(cls, path) -> "NumberingPlan":
        """Load and validate DEF-9xx.csv from a path; raise NumberingPlanError on a bad file."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise NumberingPlanError(f"no numbering plan file at {os.fspath(path)}") from None
        except OSError as exc:
            raise NumberingPlanError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
        return cls.from_bytes(data, source_path=os.fspath(path))

    @classmethod
    def from_bytes(cls, data: bytes, source_path: str = "<memory>") -> "NumberingPlan":
        """Parse and validate the file's bytes; raise NumberingPlanError saying what is wrong."""
        text = _decode(data)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
        try:
            header = next(reader, None)
            if header is None:
                raise NumberingPlanError("the file is empty")
            columns = _columns(header)
            plan = cls._parse_rows(reader, columns, source_path)
        except csv.Error as exc:
            raise NumberingPlanError(f"line {reader.line_num}: not valid CSV: {exc}") from None
        if plan.unknown_territories:
            log.warning("numbering plan %s: no time zone for territories %s",
                        source_path, ", ".join(plan.unknown_territories))
        return plan

    @classmethod
    def _parse_rows(cls, reader, columns: dict[str, int], source_path: str) -> "NumberingPlan":
        """Read data rows into the compact arrays, validating each one."""
        c_code, c_start, c_end = columns["code"], columns["start"], columns["end"]
        c_op, c_terr, c_inn = columns["operator"], columns["territory"], columns["inn"]
        c_cap, c_region = columns.get("capacity"), columns.get("region")
        width = max(columns.values()) + 1
        starts, ends = array("q"), array("q")
        op_index, terr_index = array("H"), array("H")
        operators: dict[tuple[str, str], int] = {}
        territories: dict[str, int] = {}
        prev_start = prev_end = -1
        for row in reader:
            line = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue  # blank lines, e.g. a trailing newline
            if len(row) < width:
                raise NumberingPlanError(f"line {line}: {len(row)} columns, expected at least {width}")
            code = _digits(row[c_code], "the code (АВС/DEF)", line, 3)
            if not MIN_CODE <= code <= MAX_CODE:
                raise NumberingPlanError(f"line {line}: code {code} is not a 9xx mobile code; is this DEF-9xx.csv?")
            first = _digits(row[c_start], "«От»", line, 7)
            last = _digits(row[c_end], "«До»", line, 7)
            if first > last:
                raise NumberingPlanError(f"line {line}: «От» {first:07d} is after «До» {last:07d}")
            if c_cap is not None and row[c_cap].strip():
                capacity = _digits(row[c_cap], "«Емкость»", line, 8)
                if capacity != last - first + 1:
                    raise NumberingPlanError(
                        f"line {line}: «Емкость» {capacity} does not match {first:07d}…{last:07d}"
                    )
            start, end = code * SUBSCRIBER_SPAN + first, code * SUBSCRIBER_SPAN + last
            if start <= prev_end:
                what = "is not sorted by (code, from)" if start < prev_start else "overlaps the previous range"
                raise NumberingPlanError(f"line {line}: range {code} {first:07d}…{last:07d} {what}")
            prev_start, prev_end = start, end
            legal = row[c_op].strip()
            if not legal:
                raise NumberingPlanError(f"line {line}: the operator is empty")
            inn = row[c_inn].strip()
            if inn and not (inn.isascii() and inn.isdigit() and len(inn) <= 12):
                raise NumberingPlanError(f"line {line}: ИНН is not a tax id: {inn!r}")
            territory = row[c_terr].strip()
            if (not territory or territory == "-") and c_region is not None:
                territory = row[c_region].strip()  # older free-text region, better than nothing
            op = operators.setdefault((legal, inn), len(operators))
            terr = territories.setdefault(territory, len(territories))
            if op > 0xFFFF or terr > 0xFFFF:
                raise NumberingPlanError(f"line {line}: too many distinct operators or territories")
            starts.append(start)
            ends.append(end)
            op_index.append(op)
            terr_index.append(terr)
        if not starts:
            raise NumberingPlanError("the file has a header but no ranges")
        operator_table = []
        for legal, inn in operators:
            brand = brand_for(inn, legal)
            operator_table.append(Operator(legal, inn, brand, brand_en(brand)))
        territory_table = [resolve_territory(raw) for raw in territories]
        return cls(starts, ends, op_index, terr_index, operator_table, territory_table,
                   source_path, clock.now())

    # -- lookups -----------------------------------------------------------------

    @property
    def rows(self) -> int:
        """Return the number of ranges loaded."""
        return len(self._starts)

    @property
    def codes(self) -> int:
        """Return how many distinct 9xx codes the plan covers."""
        return len({start // SUBSCRIBER_SPAN for start in self._starts})

    def index_of(self, national: int) -> int:
        """Return the row holding a 10-digit national number (9xxxxxxxxx), or -1."""
        i = bisect_right(self._starts, national) - 1
        if i >= 0 and national <= self._ends[i]:
            return i
        return -1

    def row_parts(self, i: int) -> tuple[Operator, Territory]:
        """Return the operator and territory of row i."""
        return self.operators[self._operator_index[i]], self.territories[self._territory_index[i]]

    def range_at(self, i: int) -> PlanRange:
        """Return row i as a PlanRange."""
        op, terr = self.row_parts(i)
        start, end = self._starts[i], self._ends[i]
        return PlanRange(start // SUBSCRIBER_SPAN, start % SUBSCRIBER_SPAN, end % SUBSCRIBER_SPAN,
                         op.legal, op.inn, op.brand, terr.raw, terr.zones)

    def lookup(self, e164: str) -> PlanRange | None:
        """Return the range holding a +7 9xx number, or None (other numbers, gaps, bad input)."""
        national = national_9xx(e164)
        if national is None:
            return None
        i = self.index_of(national)
        return None if i < 0 else self.range_at(i)

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        return f"<NumberingPlan {self.rows} ranges from {self.source_path!r}>"


def national_9xx(e164: str) -> int | None:
    """Return the 10-digit national number of a '+79xxxxxxxxx' string, else None."""
    if (
        isinstance(e164, str)
        and len(e164) == 12
        and e164.startswith("+79")
        and e164.isascii()
        and e164[1:].isdigit()
    ):
        return int(e164[2:])
    return None


# -- one plan per Flask app -------------------------------------------------------

EXTENSION_KEY = "olchat_numbering"  # app.extensions[...]: the NumberingPlan, or None
_STATE_KEY = "olchat_numbering_state"
# How often a running app looks at the file again: `flask numbering update`
# runs in another process, so a changed file is how a worker learns of it.
RECHECK_SECONDS = 30.0
_STATE_LOCK = threading.Lock()


class _PlanState:
    """What plan_for_app remembers between calls for one app."""

    __slots__ = ("lock", "stamp", "checked", "warned")

    def __init__(self):
        self.lock = threading.Lock()
        self.stamp: tuple | None = None
        self.checked = float("-inf")
        self.warned: set = set()


def _file_stamp(path: str) -> tuple:
    """Return what identifies the current content of the file at path."""
    try:
        st = os.stat(path)
    except OSError:
        return (path, None, None)
    return (path, st.st_mtime_ns, st.st_size)


def plan_for_app(app) -> NumberingPlan | None:
    """Return the app's numbering plan, loading it once; None when there is no usable registry."""
    state = app.extensions.get(_STATE_KEY)
    if state is None:
        with _STATE_LOCK:
            state = app.extensions.setdefault(_STATE_KEY, _PlanState())
    now = time.monotonic()
    if EXTENSION_KEY in app.extensions and now - state.checked < RECHECK_SECONDS:
        return app.extensions[EXTENSION_KEY]
    with state.lock:
        if EXTENSION_KEY in app.extensions and now - state.checked < RECHECK_SECONDS:
            return app.extensions[EXTENSION_KEY]
        path = str(app.config.get("OLCHAT_NUMBERING_PATH") or "")
        stamp = _file_stamp(path) if path else ("", None, None)
        if EXTENSION_KEY not in app.extensions or stamp != state.stamp:
            app.extensions[EXTENSION_KEY] = _load_for_app(app, path, stamp, state)
            state.stamp = stamp
        state.checked = time.monotonic()
        return app.extensions[EXTENSION_KEY]


def _load_for_app(app, path: str, stamp: tuple, state: _PlanState) -> NumberingPlan | None:
    """Load the plan for an app, warning once per file state when there is none."""
    logger = getattr(app, "logger", log)
    if not path or stamp[1] is None:
        if stamp not in state.warned:
            state.warned.add(stamp)
            logger.warning(
                "No numbering plan registry at %r (OLCHAT_NUMBERING_PATH): Russian mobiles are "
                "described by libphonenumber alone. Run `flask numbering update` to fetch it.", path,
            )
        return None
    try:
        started = time.perf_counter()
        plan = NumberingPlan.load(path)
    except NumberingPlanError as exc:
        if stamp not in state.warned:
            state.warned.add(stamp)
            logger.error("Numbering plan %s is unusable (%s); using libphonenumber alone.", path, exc)
        return None
    logger.info("Numbering plan loaded: %d ranges from %s in %.0f ms",
                plan.rows, path, (time.perf_counter() - started) * 1000)
    return plan


def reset_plan(app) -> None:
    """Forget the app's loaded plan so that the next plan_for_app reloads it."""
    app.extensions.pop(EXTENSION_KEY, None)
    state = app.extensions.get(_STATE_KEY)
    if state is not None:
        state.stamp = None
        state.checked = float("-inf")

"""Fixtures for the phones tests: the shared registry snapshot, read independently of the code under test."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from olchat_widget.phones.numbering import NumberingPlan

# The snapshot lives outside the repository (data, not code): ../shared relative to the repo root.
SNAPSHOT = Path(__file__).resolve().parents[2].parent / "shared/data/ru-numbering/DEF-9xx.csv"

# Deterministic and quick property tests, so CI failures are reproducible.
settings.register_profile(
    "phones", max_examples=300, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HEADER = "АВС/ DEF;От;До;Емкость;Оператор;Регион;Территория ГАР;ИНН"


@dataclass(frozen=True)
class Row:
    """One data row of the snapshot, parsed by the test itself."""

    line: int
    code: int
    start: int
    end: int
    operator: str
    region: str
    territory: str
    inn: str


@pytest.fixture(scope="session")
def snapshot_path() -> Path:
    """Return the path of the shared DEF-9xx.csv snapshot, or skip."""
    if not SNAPSHOT.is_file():
        pytest.skip(f"numbering plan snapshot not found at {SNAPSHOT} (it is shared data, not in the repo)")
    return SNAPSHOT


@pytest.fixture(scope="session")
def snapshot_rows(snapshot_path) -> list[Row]:
    """Return the snapshot's rows, read with the csv module alone."""
    with open(snapshot_path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=";")
        next(reader)
        return [
            Row(reader.line_num, int(r[0]), int(r[1]), int(r[2]), r[4], r[5], r[6], r[7])
            for r in reader
            if r
        ]


@pytest.fixture(scope="session")
def plan(snapshot_path) -> NumberingPlan:
    """Return the snapshot loaded by the code under test."""
    return NumberingPlan.load(snapshot_path)


def synthetic_csv(rows: int = 1200, *, code: int = 999, bom: bool = True, newline: str = "\r\n",
                  mutate=None) -> bytes:
    """Build a well-formed DEF-9xx-style file with `rows` ranges of 1000 numbers (made-up operators)."""
    lines = [HEADER]
    for i in range(rows):
        start = i * 2000  # gaps of 1000 between ranges
        terr = "Город Москва, Московская область" if i % 2 else "Республика Саха (Якутия)"
        inn = "7740000076" if i % 3 == 0 else "1234567890"
        op = 'ПАО "МТС"' if i % 3 == 0 else 'ООО "ТЕСТОВЫЙ ОПЕРАТОР"'
        lines.append(f"{code};{start:07d};{start + 999:07d};1000;{op};-;{terr};{inn}")
    if mutate is not None:
        lines = mutate(lines)
    text = newline.join(lines) + newline
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


@pytest.fixture
def make_csv():
    """Return the synthetic_csv builder (test modules cannot import conftest)."""
    return synthetic_csv

"""The numbering plan: every row of the real snapshot, its edges, brands, and bad files."""
from __future__ import annotations

import collections

import pytest

from olchat_widget.phones import NumberingPlan, NumberingPlanError, PlanRange, describe
from olchat_widget.phones.brands import BRANDS, brand_for



def _e164(code: int, subscriber: int) -> str:
    return f"+7{code}{subscriber:07d}"


def _expected_brand(row) -> str:
    return BRANDS.get(row.inn) or " ".join(row.operator.split())


def test_snapshot_loads_completely(plan, snapshot_rows):
    assert plan.rows == len(snapshot_rows) == 17059
    assert plan.codes == len({r.code for r in snapshot_rows})
    assert plan.unknown_territories == ()
    assert plan.loaded_at.tzinfo is not None


def test_snapshot_is_sorted_and_disjoint(snapshot_rows):
    """The neighbour test below relies on this property of the file."""
    keys = [(r.code, r.start, r.end) for r in snapshot_rows]
    assert keys == sorted(keys)
    for a, b in zip(keys, keys[1:]):
        assert a[0] != b[0] or b[1] > a[2]


def test_every_row_resolves_at_both_ends(plan, snapshot_rows):
    bad = []
    for row in snapshot_rows:
        for subscriber in (row.start, row.end, (row.start + row.end) // 2):
            found = plan.lookup(_e164(row.code, subscriber))
            if (
                found is None
                or (found.code, found.start, found.end) != (row.code, row.start, row.end)
                or found.operator_legal != row.operator.strip()
                or found.inn != row.inn
                or found.territory != row.territory
                or found.brand != _expected_brand(row)
            ):
                bad.append((row.line, subscriber, found))
    assert not bad, bad[:5]


def test_every_row_is_described_from_the_plan(plan, snapshot_rows):
    bad = []
    for row in snapshot_rows:
        for subscriber in (row.start, row.end):
            info = describe(_e164(row.code, subscriber), "ru", plan)
            if (
                info.source != "numbering_plan"
                or info.country != "RU"
                or info.operator != _expected_brand(row)
                or not info.region
                or not info.zones
            ):
                bad.append((row.line, info))
    assert not bad, bad[:5]


def test_neighbours_outside_ranges(plan, snapshot_rows):
    """start-1 and end+1 belong to the adjacent row when it touches, else to no row."""
    checked_gaps = 0
    for i, row in enumerate(snapshot_rows):
        prev = snapshot_rows[i - 1] if i > 0 else None
        nxt = snapshot_rows[i + 1] if i + 1 < len(snapshot_rows) else None
        if row.start > 0:
            found = plan.lookup(_e164(row.code, row.start - 1))
            if prev is not None and prev.code == row.code and prev.end == row.start - 1:
                assert found is not None and (found.start, found.end) == (prev.start, prev.end), row
            else:
                assert found is None, (row, found)
                checked_gaps += 1
        if row.end < 9_999_999:
            found = plan.lookup(_e164(row.code, row.end + 1))
            if nxt is not None and nxt.code == row.code and nxt.start == row.end + 1:
                assert found is not None and (found.start, found.end) == (nxt.start, nxt.end), row
            else:
                assert found is None, (row, found)
                checked_gaps += 1
    assert checked_gaps > 1000  # the file has ~2,800 gaps; make sure they were exercised


def test_codes_missing_from_the_file_resolve_to_none(plan, snapshot_rows):
    present = {r.code for r in snapshot_rows}
    missing = [c for c in range(900, 1000) if c not in present]
    assert missing  # e.g. 998
    for code in missing:
        assert plan.lookup(_e164(code, 0)) is None
        assert plan.lookup(_e164(code, 9_999_999)) is None


@pytest.mark.parametrize(
    "value",
    ["+74951234567", "+77012345678", "+4930123456", "79161234567", "+7916123456", "+791612345678",
     "+7９16123456７", "", "+7916abc4567", None, 79161234567],
)
def test_lookup_is_none_for_non_9xx_or_malformed(plan, value):
    assert plan.lookup(value) is None


def test_plan_range_fields(plan):
    found = plan.lookup("+79161234567")
    assert isinstance(found, PlanRange)
    assert found.first_e164 <= "+79161234567" <= found.last_e164
    assert found.brand == "МТС"
    assert found.zones == ("Europe/Moscow",)


@pytest.mark.parametrize(
    "inn, brand",
    [
        ("7740000076", "МТС"),
        ("7713076301", "Билайн"),
        ("7812014560", "МегаФон"),
        ("7743895280", "Т2"),
        ("7701725181", "Yota"),
        ("7743200179", "Т-Мобайл"),
        ("7736264044", "СберМобайл"),
        ("6661079603", "Мотив"),
    ],
)
def test_brand_mapping(plan, inn, brand):
    assert brand_for(inn, "whatever") == brand
    spellings = [op for op in plan.operators if op.inn == inn]
    assert spellings, f"{inn} is not in the snapshot"
    # One brand however the legal name is spelled ('ПАО "МТС"' and 'ПАО "Мобильные ТелеСистемы"').
    assert {op.brand for op in spellings} == {brand}


def test_brand_falls_back_to_the_clean_legal_name():
    assert brand_for("0000000000", 'ООО  "МЕТРО-ПЭЙ" ') == 'ООО "МЕТРО-ПЭЙ"'
    assert brand_for("", "АО «Пример»") == "АО «Пример»"


def test_every_mapped_brand_exists_in_the_snapshot(snapshot_rows):
    """A typo in a tax id would silently never match."""
    inns = {r.inn for r in snapshot_rows}
    assert set(BRANDS) <= inns, set(BRANDS) - inns


def test_big_operators_are_shown_by_brand(plan, snapshot_rows):
    """Operators with many ranges are the ones people see most: they must have a brand."""
    per_inn = collections.Counter(r.inn for r in snapshot_rows)
    for inn, count in per_inn.items():
        if count >= 400:
            assert inn in BRANDS, (inn, count)


# -- loading files ------------------------------------------------------------------


def test_load_synthetic_file(tmp_path, make_csv):
    path = tmp_path / "plan.csv"
    path.write_bytes(make_csv(10))
    plan = NumberingPlan.load(path)
    assert plan.rows == 10
    assert plan.source_path == str(path)
    assert plan.lookup("+79990000000").brand == "МТС"
    assert plan.lookup("+79990001000") is None  # a gap
    assert plan.lookup("+79990002999").brand == 'ООО "ТЕСТОВЫЙ ОПЕРАТОР"'


@pytest.mark.parametrize("bom, newline", [(True, "\r\n"), (False, "\n"), (True, "\n")])
def test_load_accepts_bom_and_line_endings(tmp_path, make_csv, bom, newline):
    path = tmp_path / "plan.csv"
    path.write_bytes(make_csv(5, bom=bom, newline=newline))
    assert NumberingPlan.load(path).rows == 5


def test_load_accepts_reordered_columns_and_latin_abc(tmp_path):
    text = "ИНН;Территория ГАР;Оператор;ABC/DEF;От;До\n7740000076;Город Москва;ПАО \"МТС\";916;0000000;0000999\n"
    path = tmp_path / "plan.csv"
    path.write_text(text, encoding="utf-8")
    found = NumberingPlan.load(path).lookup("+79160000999")
    assert (found.brand, found.territory) == ("МТС", "Город Москва")


def _replace_line(index: int, new: str):
    def mutate(lines):
        lines[index] = new
        return lines
    return mutate


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_replace_line(0, "a;b;c"), "header"),
        (_replace_line(0, "<!DOCTYPE html><html>"), "header"),
        (_replace_line(2, "999;00x2000;0002999;1000;ООО;-;Город Москва;1"), "«От»"),
        (_replace_line(2, "999;0002000;0002999;1000"), "columns"),
        (_replace_line(2, "999;0000500;0002999;2500;ООО;-;Город Москва;1"), "overlaps"),
        (_replace_line(3, "999;0000000;0000001;2;ООО;-;Город Москва;1"), "not sorted"),
        (_replace_line(2, "999;0002000;0002999;7;ООО;-;Город Москва;1"), "Емкость"),
        (_replace_line(2, "999;0002999;0002000;1000;ООО;-;Город Москва;1"), "after"),
        (_replace_line(2, "495;0002000;0002999;1000;ООО;-;Город Москва;1"), "9xx"),
        (_replace_line(2, "999;0002000;0002999;1000;;-;Город Москва;1"), "operator"),
        (_replace_line(2, "999;0002000;0002999;1000;ООО;-;Город Москва;ИНН?"), "ИНН"),
        (lambda lines: lines[:1], "no ranges"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path, make_csv, mutate, message):
    path = tmp_path / "plan.csv"
    path.write_bytes(make_csv(5, mutate=mutate))
    with pytest.raises(NumberingPlanError, match=message):
        NumberingPlan.load(path)


def test_bad_file_errors_name_the_line(tmp_path, make_csv):
    path = tmp_path / "plan.csv"
    path.write_bytes(make_csv(5, mutate=_replace_line(4, "999;x;0;0;ООО;-;-;1")))
    with pytest.raises(NumberingPlanError, match=r"^line 5: "):
        NumberingPlan.load(path)


def test_missing_empty_and_non_utf8_files(tmp_path):
    with pytest.raises(NumberingPlanError, match="no numbering plan file"):
        NumberingPlan.load(tmp_path / "absent.csv")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(NumberingPlanError, match="empty"):
        NumberingPlan.load(empty)
    cp1251 = tmp_path / "cp1251.csv"
    cp1251.write_bytes("АВС/ DEF;От;До;Оператор;Территория ГАР;ИНН\n".encode("cp1251"))
    with pytest.raises(NumberingPlanError, match="UTF-8"):
        NumberingPlan.load(cp1251)
    with pytest.raises(NumberingPlanError, match="cannot read"):
        NumberingPlan.load(tmp_path)


def test_unknown_territory_loads_without_zones(tmp_path, make_csv):
    path = tmp_path / "plan.csv"
    path.write_bytes(make_csv(3, mutate=_replace_line(1, "999;0000000;0000999;1000;ООО;-;Атлантида;1")))
    plan = NumberingPlan.load(path)
    assert plan.unknown_territories == ("Атлантида",)
    found = plan.lookup("+79990000001")
    assert (found.territory, found.zones) == ("Атлантида", ())

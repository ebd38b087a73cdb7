"""The widget's phone rows name places in the interface's language only (issue 12, point 10)."""
from __future__ import annotations

import re

import pytest

from tests.conftest import Widget
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}  # Moscow mobiles and the Moscow landline
COMPANY = {"entity_type": 4, "entity_id": 6}  # Berlin, a German mobile and New York
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
LATIN = re.compile(r"[A-Za-z]")


def regions(widget, card):
    page = parse(widget.get("/widget/body", **card).data)
    return {li.get("data-phone"): li.find("span", **{"class": "region"}).text
            for li in page.find_all("li", data_phone=True)}


@pytest.mark.parametrize("lang, expected, foreign_script", [
    ("ru", {"+49301234567": "Берлин, Германия", "+4915112345678": "Германия",
            "+12125550100": "Нью-Йорк, Соединенные Штаты"}, LATIN),
    ("en", {"+49301234567": "Berlin, Germany", "+4915112345678": "Germany",
            "+12125550100": "New York, NY, United States"}, CYRILLIC),
])
def test_foreign_numbers_in_the_interface_language(client, lang, expected, foreign_script):
    shown = regions(Widget(client, lang=lang), COMPANY)
    assert {phone: shown[phone] for phone in expected} == expected
    for phone, text in {**shown, **regions(Widget(client, lang=lang), DEAL)}.items():
        assert not foreign_script.search(text), (lang, phone, text)


@pytest.mark.parametrize("lang, moscow", [("ru", "Москва"), ("en", "Moscow")])
def test_moscow_landline_and_mobile_read_the_same_in_the_widget(client, lang, moscow):
    shown = regions(Widget(client, lang=lang), DEAL)
    assert shown["+74951234567"] == shown["+79161234567"] == moscow

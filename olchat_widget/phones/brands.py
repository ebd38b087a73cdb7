"""Operator brand names by tax id (ИНН).

The registry names operators by legal entity ('ПАО "ВЫМПЕЛКОМ"', spelled in
several ways across rows); people know them by brand ('Билайн'). The tax id is
the stable key. Only identifications we are sure of are listed; every other
operator is shown by its legal name.
"""
from __future__ import annotations

import re

BRANDS: dict[str, str] = {
    "7740000076": "МТС",  # ПАО "Мобильные ТелеСистемы"
    "7713076301": "Билайн",  # ПАО "ВымпелКом"
    "7812014560": "МегаФон",  # ПАО "МегаФон"
    "7743895280": "Т2",  # ООО "Т2 Мобайл" (formerly Tele2)
    "7701725181": "Yota",  # ООО "Скартел"
    "7743200179": "Т-Мобайл",  # ООО "Т-Моб" (formerly Тинькофф Мобайл)
    "7736264044": "СберМобайл",  # ООО "Сбербанк-Телеком"
    "9705121882": "ВТБ Мобайл",  # ООО "ВТБ Мобайл"
    "9725152215": "Альфа-Мобайл",  # ООО "Альфа-Мобайл"
    "6661079603": "Мотив",  # ООО "Екатеринбург-2000"
    "1681000024": "Летай",  # ПАО "Таттелеком"
    "2308210371": "Win mobile",  # ООО "К-Телеком", Crimea
    "7702527584": "Миранда",  # ООО "Миранда-медиа", Crimea
    "7718999159": "Волна",  # ООО "КТК Телеком", Crimea
    "9308013351": "Феникс",  # ГУП ДНР «Республиканский оператор связи»
    "9402011009": "Лугаком",  # ООО "Мобильные коммуникационные системы", LNR
    "7740000020": "Газпром телеком",  # ООО "Газпром телеком"
    "7707049388": "Ростелеком",  # ПАО "Ростелеком"
    "7709362765": "ТТК",  # ООО "ТТК-Связь"
    "7709219099": "ТТК",  # АО "Компания ТрансТелеКом"
    "7705017253": "МТТ",  # АО "Межрегиональный ТранзитТелеком"
    "7710016640": "МГТС",  # ПАО "Московская городская телефонная сеть"
    "7703383783": "ГЛОНАСС",  # АО "ГЛОНАСС"
    "9725007063": "Безлимит",  # ООО "Безлимит"
}

# How the same brands are written in English interfaces.
BRANDS_EN: dict[str, str] = {
    "МТС": "MTS",
    "Билайн": "Beeline",
    "МегаФон": "MegaFon",
    "Т2": "T2",
    "Т-Мобайл": "T-Mobile (Russia)",
    "СберМобайл": "SberMobile",
    "ВТБ Мобайл": "VTB Mobile",
    "Альфа-Мобайл": "Alfa-Mobile",
    "Мотив": "Motiv",
    "Летай": "Letai",
    "Миранда": "Miranda",
    "Волна": "Volna",
    "Феникс": "Phoenix",
    "Лугаком": "Lugacom",
    "Газпром телеком": "Gazprom Telecom",
    "Ростелеком": "Rostelecom",
    "ТТК": "TTK",
    "МТТ": "MTT",
    "МГТС": "MGTS",
    "ГЛОНАСС": "GLONASS",
    "Безлимит": "Bezlimit",
}


def clean_legal_name(name: str) -> str:
    """Return a legal name with its whitespace collapsed, for display."""
    return re.sub(r"\s+", " ", name or "").strip()


def brand_for(inn: str, legal_name: str) -> str:
    """Return the brand people know for an operator, or its legal name."""
    return BRANDS.get((inn or "").strip()) or clean_legal_name(legal_name)


def brand_en(brand: str) -> str:
    """Return the English spelling of a brand; other names stay as they are."""
    return BRANDS_EN.get(brand, brand)

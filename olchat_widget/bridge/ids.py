"""Ids the bridge shares between directions.

Bitrix24 keys an Open Lines chat by ``connector|LINE|chat.id|user.id``: the
ids we send for a client's inbound message and for a chat we start ourselves
must be byte-identical, or Bitrix24 makes a second chat and a duplicate lead.
Both are the client's number in digits, derived here and nowhere else.
"""
from __future__ import annotations

import re
import unicodedata

_NOT_NAME = re.compile(r"[^\w\s'\-]|[\d_]")
NAME_MAX = 25  # Bitrix24 refuses longer names


def client_id(digits_or_chat_id: str) -> str:
    """The client's Open Lines user and chat id: the digits of their WhatsApp number."""
    return "".join(ch for ch in digits_or_chat_id.split("@", 1)[0] if ch.isdigit() and ch.isascii())


def clean_name(name: str | None, fallback: str = "WhatsApp") -> str:
    """A WhatsApp push name as Bitrix24 accepts it: letters, spaces, hyphens, apostrophes, 25 at most."""
    text = unicodedata.normalize("NFC", name or "")
    text = " ".join(_NOT_NAME.sub(" ", text).split())[:NAME_MAX].strip(" -'")
    return text or fallback

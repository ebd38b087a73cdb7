"""The embedded demo portal: one JSON file feeds the demo CRM and the demo gateway."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


class DemoDataError(ValueError):
    pass


def load_demo_data(path: str | None) -> dict:
    """Read the demo data file (OLCHAT_DEMO_DATA) or the built-in one."""
    try:
        if path:
            text = Path(path).read_text(encoding="utf-8-sig")
        else:
            text = resources.files("olchat_widget").joinpath("demo_data.json").read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise DemoDataError(f"cannot read demo data {path or '(built-in)'}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("portal"), dict):
        raise DemoDataError("demo data must be an object with a 'portal' section")
    if not data["portal"].get("member_id"):
        raise DemoDataError("demo data: portal.member_id is required")
    data.setdefault("lines", [])
    data.setdefault("whatsapp", [])
    data.setdefault("crm", {})
    data.setdefault("chats", [])
    return data

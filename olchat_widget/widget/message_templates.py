"""Message templates: what admins prepare, what the send form offers, and filling one with a card's values.

A template's text holds variables like ``{{client.name}}``. Filling is one pass
over the template's own text: each variable is replaced by the card's value as
plain text, and a value is never read again as template syntax, so a client
named ``{{user.name}}`` or ``<script>`` stays literally that (the text is then
shown in a textarea, escaped like every other text). A variable the card has
no value for, or a name we do not know, is left as it was and reported: the
form highlights it and the send view refuses the text while it still holds it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..models import MessageTemplate, TemplateUse, db, utcnow

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")
# Any {{…}}: what still looks like a variable to a reader, known name or not.
OPEN_VARIABLE = re.compile(r"\{\{[^{}]*\}\}")
RECENT = 5
NAME_MAX, CATEGORY_MAX, TEXT_MAX = 100, 100, 4096

# The variables a template may use, in the order the settings page lists them, with what they stand for.
VARIABLES = (
    ("client.name", "Имя клиента: контакт, чей это номер (иначе первый контакт карточки, у лида — его имя)",
     "Client's name: the contact whose number it is (else the card's first contact; a lead's own name)"),
    ("client.first_name", "Только имя клиента (без фамилии)", "Client's first name only"),
    ("client.phone", "Номер, на который уходит сообщение", "The number the message goes to"),
    ("company.name", "Компания карточки (у компании — она сама)", "The card's company (a company card: itself)"),
    ("deal.title", "Название сделки (только в карточке сделки)", "Deal title (deal cards only)"),
    ("lead.title", "Название лида (только в карточке лида)", "Lead title (lead cards only)"),
    ("card.title", "Название карточки любого типа", "The title of any card"),
    ("user.name", "Имя и фамилия сотрудника, который отправляет", "Name of the employee who sends"),
    ("line.name", "Название линии WhatsApp", "Name of the WhatsApp line"),
)
KNOWN = {name for name, _ru, _en in VARIABLES}


@dataclass(frozen=True)
class Pick:
    """One entry of the send form's picker."""

    template: MessageTemplate
    recent: bool


@dataclass(frozen=True)
class Filled:
    text: str
    unresolved: tuple[str, ...]  # each left variable as it stands in the text, e.g. "{{deal.title}}"


def card_values(card, row, user_name: str, line_name: str) -> dict[str, str]:
    """Every variable's value for one phone row of the card (names come from the card's own fetch)."""
    names = card.names or {}
    values = dict(names.get("values") or {})
    people = names.get("people") or {}
    # The client is the person whose number this is, where the card knows them.
    for owner in row.owners:
        person = people.get(f"{owner.kind}:{owner.id}")
        if person:
            values["client.name"], values["client.first_name"] = person[0], person[1] or person[0]
            break
    values["client.phone"] = row.e164
    if user_name.strip():
        values["user.name"] = user_name.strip()
    if line_name.strip():
        values["line.name"] = line_name.strip()
    return {k: v for k, v in values.items() if v}


def fill(text: str, values: dict[str, str]) -> Filled:
    """Replace each known variable by its value, in one pass; the rest stays and is reported."""
    unresolved: list[str] = []

    def one(match: re.Match) -> str:
        value = values.get(match.group(1))
        if value is None:
            if match.group(0) not in unresolved:
                unresolved.append(match.group(0))
            return match.group(0)
        return value

    filled = VARIABLE.sub(one, text)
    # {{ something }} that is no variable name at all (a typo like {{client name}}) is open too.
    for match in OPEN_VARIABLE.finditer(text):
        if not VARIABLE.fullmatch(match.group(0)) and match.group(0) not in unresolved:
            unresolved.append(match.group(0))
    return Filled(filled, tuple(unresolved))


def still_open(text: str, unresolved) -> list[str]:
    """The template's unresolved variables the text still holds (what the send view refuses)."""
    return [token for token in unresolved if token in text]


# ---------------------------------------------------------------- what a user may see


def visible(portal_id: int, is_admin: bool):
    query = db.select(MessageTemplate).filter_by(portal_id=portal_id)
    if not is_admin:
        # Admin-only templates are never listed to, nor filled for, anyone else.
        query = query.filter_by(admins_only=False)
    return query


def picker(portal_id: int, user_id: str, is_admin: bool) -> list[Pick]:
    """The user's five most recently used first (latest first), then the rest A–Z."""
    templates = db.session.scalars(visible(portal_id, is_admin)).all()
    uses = dict(db.session.execute(db.select(TemplateUse.template_id, TemplateUse.used_at).filter_by(
        portal_id=portal_id, user_id=user_id)).all())
    recent = sorted((t for t in templates if t.id in uses), key=lambda t: (uses[t.id], t.id), reverse=True)[:RECENT]
    rest = sorted((t for t in templates if t not in recent), key=lambda t: (t.name.casefold(), t.id))
    return [Pick(t, True) for t in recent] + [Pick(t, False) for t in rest]


def find(portal_id: int, is_admin: bool, name_or_id: str) -> MessageTemplate | None:
    """The template the picker names (by its unique name, or its id), if this user may see it."""
    name_or_id = (name_or_id or "").strip()
    if not name_or_id:
        return None
    query = visible(portal_id, is_admin)
    found = db.session.scalar(query.filter_by(name=name_or_id[:NAME_MAX]))
    if found is None and name_or_id.isdigit() and len(name_or_id) < 12:
        found = db.session.scalar(query.filter_by(id=int(name_or_id)))
    return found


def record_use(portal_id: int, user_id: str, template_id: int) -> None:
    from ..models import get_or_create

    use = get_or_create(TemplateUse, portal_id=portal_id, user_id=user_id, template_id=template_id)
    use.used_at = utcnow()
    db.session.commit()


# ---------------------------------------------------------------- the admin's form


def read_form(form, portal_id: int, template_id: int | None, t) -> tuple[dict, dict[str, str]]:
    """The template the admin typed, and each refused field with the sentence that says why."""
    typed = {"name": form.get("name", "")[:NAME_MAX * 2], "category": form.get("category", "")[:CATEGORY_MAX * 2],
             "text": form.get("text", "")[:TEXT_MAX * 2],
             "admins_only": form.get("visibility") == "admins"}
    errors: dict[str, str] = {}
    name = typed["name"].strip()
    if not name:
        errors["name"] = t("tpl_err_name_empty")
    elif len(name) > NAME_MAX:
        errors["name"] = t("tpl_err_too_long", n=NAME_MAX)
    else:
        clash = db.session.scalar(db.select(MessageTemplate.id).filter_by(portal_id=portal_id, name=name))
        if clash is not None and clash != template_id:
            errors["name"] = t("tpl_err_name_taken")
    if len(typed["category"].strip()) > CATEGORY_MAX:
        errors["category"] = t("tpl_err_too_long", n=CATEGORY_MAX)
    text = typed["text"].replace("\r\n", "\n")
    if not text.strip():
        errors["text"] = t("tpl_err_text_empty")
    elif len(text) > TEXT_MAX:
        errors["text"] = t("tpl_err_too_long", n=TEXT_MAX)
    else:
        unknown = [m.group(0) for m in OPEN_VARIABLE.finditer(text)
                   if not VARIABLE.fullmatch(m.group(0)) or VARIABLE.fullmatch(m.group(0)).group(1) not in KNOWN]
        if unknown:
            errors["text"] = t("tpl_err_unknown", names=", ".join(dict.fromkeys(unknown)))
    values = {"name": name, "category": typed["category"].strip(), "text": text, "admins_only": typed["admins_only"]}
    return values, errors if errors else {}


def typed_from(template: MessageTemplate | None) -> dict:
    if template is None:
        return {"name": "", "category": "", "text": "", "admins_only": False}
    return {"name": template.name, "category": template.category, "text": template.text,
            "admins_only": template.admins_only}


def all_of(portal_id: int) -> list[MessageTemplate]:
    """Every template of the portal, for the settings page: by category, then name."""
    return sorted(db.session.scalars(db.select(MessageTemplate).filter_by(portal_id=portal_id)),
                  key=lambda t: (t.category.casefold(), t.name.casefold()))

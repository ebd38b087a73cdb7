"""The settings page's «Шаблоны» section: admins create, edit and delete the portal's message templates.

The section is its own fragment (``#templates``): every form in it answers with the
section again, so saving a template never reloads the rest of the settings page.
"""
from __future__ import annotations

from flask import g, request

from ..auth import admin_required
from ..i18n import t
from sqlalchemy import delete

from ..models import MessageTemplate, TemplateUse, db
from ..web import fragment
from ..widget import message_templates
from .views import bp


def section_context(*, editing: MessageTemplate | None = None, typed: dict | None = None,
                    errors: dict | None = None, notice: str | None = None) -> dict:
    """What the section shows: the templates, the form (new, or one being edited) and the variables."""
    return {"tpl_list": message_templates.all_of(g.portal.id), "tpl_editing": editing,
            "tpl_typed": typed or message_templates.typed_from(editing), "tpl_errors": errors or {},
            "tpl_notice": notice, "tpl_variables": message_templates.VARIABLES}


def _section(status: int = 200, **context):
    return fragment("admin/_templates.html", status, **section_context(**context))


def _template_or_404(template_id: int) -> MessageTemplate:
    template = db.session.get(MessageTemplate, template_id)
    if template is None or template.portal_id != g.portal.id:
        # Another portal's template is no template of this one: the same answer as a missing id.
        from flask import abort

        abort(404)
    return template


@bp.get("/admin/templates")
@admin_required
def templates_section():
    return _section()


@bp.get("/admin/templates/<int:template_id>/edit")
@admin_required
def edit_template(template_id: int):
    return _section(editing=_template_or_404(template_id))


@bp.post("/admin/templates")
@admin_required
def create_template():
    """Add a template; a rejected one shows the admin's input back with what is wrong under each field."""
    values, errors = message_templates.read_form(request.form, g.portal.id, None, t)
    if errors:
        return _section(422, typed=_typed(), errors=errors)
    db.session.add(MessageTemplate(portal_id=g.portal.id, **values))
    db.session.commit()
    return _section(notice=t("tpl_saved"))


@bp.post("/admin/templates/<int:template_id>")
@admin_required
def update_template(template_id: int):
    template = _template_or_404(template_id)
    values, errors = message_templates.read_form(request.form, g.portal.id, template.id, t)
    if errors:
        return _section(422, editing=template, typed=_typed(), errors=errors)
    for name, value in values.items():
        setattr(template, name, value)
    db.session.commit()
    return _section(notice=t("tpl_saved"))


@bp.post("/admin/templates/<int:template_id>/delete")
@admin_required
def delete_template(template_id: int):
    template = _template_or_404(template_id)
    # Its users' «recently used» go with it (SQLite does not cascade without its foreign_keys pragma).
    db.session.execute(delete(TemplateUse).where(TemplateUse.portal_id == g.portal.id,
                                                 TemplateUse.template_id == template.id))
    db.session.delete(template)
    db.session.commit()
    return _section(notice=t("tpl_deleted"))


def _typed() -> dict:
    """The admin's input as it came (cut to a sane size), to show back after a rejected save."""
    return {"name": request.form.get("name", "")[:200], "category": request.form.get("category", "")[:200],
            "text": request.form.get("text", "")[:8192], "admins_only": request.form.get("visibility") == "admins"}

"""Start-up: configuration order, init-db, instance secret, demo data file."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect

from olchat_widget import create_app
from olchat_widget.demo import DemoDataError
from olchat_widget.models import Portal, db
from tests.conftest import Widget, write_demo


def test_environment_overrides_defaults_and_test_config_overrides_both(monkeypatch, tmp_path):
    monkeypatch.setenv("OLCHAT_MAX_PHONES", "3")
    monkeypatch.setenv("OLCHAT_DEBUG_PAGE", "0")
    monkeypatch.setenv("OLCHAT_CHECK_PAUSE", "0.5")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    app = create_app({"OLCHAT_CHECK_PAUSE": 0.0, "OLCHAT_SECRET_KEY": "k"})
    assert app.config["OLCHAT_MAX_PHONES"] == 3
    assert app.config["OLCHAT_DEBUG_PAGE"] is False
    assert app.config["OLCHAT_CHECK_PAUSE"] == 0.0
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("env.sqlite3")


def test_postgres_urls_of_hosting_platforms_are_understood(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/olchat")
    app = create_app({"OLCHAT_SECRET_KEY": "k"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql://u:p@db:5432/olchat"


def test_init_db_creates_tables_and_the_demo_portal(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}", "OLCHAT_SECRET_KEY": "k"})
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0 and "Database ready" in result.output
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        assert {"portal", "settings", "number_check", "outgoing_message", "line_day", "chat"} <= tables
        assert db.session.scalar(db.select(Portal.member_id)) == "demo"
    # Running it again changes nothing.
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0


def test_instance_secret_is_generated_once_and_shared(tmp_path):
    import stat

    from olchat_widget.config import _instance_secret

    first, second = _instance_secret(tmp_path), _instance_secret(tmp_path)
    assert len(first) > 40 and first == second  # every worker of a deployment signs with the same key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".secret_key.*"))  # no half-written leftovers


def test_demo_data_file_replaces_the_built_in_portal(tmp_path):
    data = {"portal": {"member_id": "acme", "domain": "acme.bitrix24.ru"},
            "lines": [{"id": "main", "name": "Главная", "phone": "+79000000009", "status": "WORKING"}],
            "whatsapp": [], "crm": {"leads": [{"id": 1, "title": "Лид ACME", "phones": ["8 912 000 00 00"]}]},
            "chats": []}
    path = write_demo(tmp_path, data)
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'd.sqlite3'}", "OLCHAT_SECRET_KEY": "k",
                      "OLCHAT_DEMO_DATA": path})
    app.test_cli_runner().invoke(args=["init-db"])
    client = app.test_client()
    page = client.get("/").data.decode()
    assert "Лид ACME" in page and "Поставка" not in page
    widget = Widget(client)
    body = widget.get("/widget/body", entity_type=1, entity_id=1).data.decode()
    assert 'data-phone="+79120000000"' in body


def test_broken_demo_data_fails_loudly_at_start(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DemoDataError):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "OLCHAT_SECRET_KEY": "k", "OLCHAT_DEMO_DATA": str(path)})
    path.write_text(json.dumps({"lines": []}), encoding="utf-8")
    with pytest.raises(DemoDataError):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "OLCHAT_SECRET_KEY": "k", "OLCHAT_DEMO_DATA": str(path)})


def test_wsgi_exposes_the_app():
    import wsgi

    assert wsgi.app.name == "olchat_widget"


def test_init_db_seeds_the_numbering_plan_once(tmp_path, monkeypatch):
    from tests.conftest import NUMBERING_CSV

    if not NUMBERING_CSV.exists():
        pytest.skip("the shared numbering snapshot is not beside this checkout")
    target = tmp_path / "numbering" / "DEF-9xx.csv"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'n.sqlite3'}", "OLCHAT_SECRET_KEY": "k",
                      "OLCHAT_NUMBERING_PATH": str(target)})
    first = app.test_cli_runner().invoke(args=["init-db"])
    assert "Numbering plan seeded" in first.output and target.exists()
    second = app.test_cli_runner().invoke(args=["init-db"])
    assert "seeded" not in second.output
    from olchat_widget.phones.numbering import plan_for_app

    with app.app_context():
        assert plan_for_app(app).rows > 17000

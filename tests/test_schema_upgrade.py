"""init-db brings a database made by an older release up to the models (olchat_widget/schema.py)."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, inspect, text

from olchat_widget.models import Portal, Settings, UserPreference, db
from olchat_widget.schema import SchemaError, upgrade
from tests.conftest import make_app

# Columns later releases added, and an index the models have: an older database lacks them.
ADDED = [("settings", "timeline_default"), ("user_preference", "show_name")]


def older_release(app, path) -> str:
    """The database as a release before these columns made it, with rows in its tables."""
    with app.app_context():
        portal_id = db.session.scalar(db.select(Portal.id).limit(1))  # the demo portal init-db made
        db.session.add(Settings(portal_id=portal_id, recheck_minutes=15))
        db.session.add(UserPreference(portal_id=portal_id, user_id="7", line_id="sales"))
        db.session.commit()
        index = next(index.name for table in db.metadata.sorted_tables for index in table.indexes)
        db.engine.dispose()
    with sqlite3.connect(path) as conn:
        for table, column in ADDED:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute(f"DROP INDEX {index}")
    return index


def test_init_db_adds_what_an_older_database_lacks_and_the_old_rows_get_the_defaults(tmp_path):
    app = make_app(tmp_path)
    index = older_release(app, tmp_path / "test.sqlite3")
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    for table, column in ADDED:
        assert f"Database upgraded: added column {table}.{column}" in result.output
    assert f"Database upgraded: added index {index}" in result.output
    with app.app_context():
        settings = db.session.scalar(db.select(Settings))
        assert (settings.recheck_minutes, settings.timeline_default) == (15, False)
        preference = db.session.scalar(db.select(UserPreference).filter_by(user_id="7"))
        assert (preference.line_id, preference.show_name) == ("sales", False)
        assert index in {i["name"] for table in inspect(db.engine).get_table_names()
                         for i in inspect(db.engine).get_indexes(table)}
    again = app.test_cli_runner().invoke(args=["init-db"])
    assert again.exit_code == 0 and "upgraded" not in again.output  # nothing left to do


def test_the_widget_settings_work_after_the_upgrade(tmp_path):
    app = make_app(tmp_path)
    older_release(app, tmp_path / "test.sqlite3")
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    with app.app_context():
        settings = db.session.scalar(db.select(Settings).limit(1))
        settings.timeline_default = True
        db.session.commit()
        assert db.session.scalar(db.select(Settings.timeline_default).limit(1)) is True


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    old = MetaData()
    Table("note", old, Column("id", Integer, primary_key=True), Column("body", String(20)))
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO note (body) VALUES ('old row')"))
    return engine


def newer(*columns) -> MetaData:
    metadata = MetaData()
    Table("note", metadata, Column("id", Integer, primary_key=True), Column("body", String(20)), *columns)
    return metadata


def test_a_nullable_column_and_one_with_a_constant_default_are_added_with_values_for_old_rows(engine):
    done = upgrade(engine, newer(Column("tag", String(10)), Column("kind", String(8), nullable=False, default="plain"),
                                 Column("rank", Integer, nullable=False, default=3)))
    assert done == ["added column note.tag", "added column note.kind", "added column note.rank"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT body, tag, kind, rank FROM note")).one() == ("old row", None, "plain", 3)


@pytest.mark.parametrize("column,says", [
    (Column("stamp", DateTime, nullable=False, default=lambda: None), "NOT NULL without a constant default"),
    (Column("code", String(8), unique=True), "unique"),
], ids=["computed default", "unique"])
def test_what_cannot_be_added_in_place_stops_with_the_column_named_and_changes_nothing(engine, column, says):
    with pytest.raises(SchemaError, match=rf"note\.{column.name}: .*{says}"):
        upgrade(engine, newer(Column("tag", String(10)), column))
    assert [c["name"] for c in inspect(engine).get_columns("note")] == ["id", "body"]

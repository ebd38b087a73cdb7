"""Bring an existing database up to the models: the columns and indexes a newer release added.

``db.create_all()`` creates missing tables but never touches a table that
exists, so a deployment upgraded in place would lack a new column and fail on
the first query that names it (``Settings.timeline_default`` and
``UserPreference.show_name`` were the first such). ``init-db`` — which the
README's commands already run before every start — calls ``upgrade()`` after
``create_all``.

What can be added in place is added: a column that may be NULL, or one with a
constant default (written as the column's DEFAULT, so existing rows get it),
and any index the models have and the table has not. What cannot — a NOT NULL
column whose default is computed, a primary key or unique column, a new
constraint over old columns — stops init-db with the table and column named:
that change needs a migration written for it, not a guess.
"""
from __future__ import annotations

from sqlalchemy import Column, Engine, MetaData, inspect, literal
from sqlalchemy.schema import CreateColumn


class SchemaError(RuntimeError):
    """A difference between the models and the database that is not safe to close automatically."""


def upgrade(engine: Engine, metadata: MetaData) -> list[str]:
    """Add the missing columns and indexes of tables that exist; return what was done, one line each."""
    done: list[str] = []
    found = inspect(engine)  # what the database had before: adding columns leaves its indexes as they were
    existing = set(found.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue  # create_all makes it whole
        have = {column["name"] for column in found.get_columns(table.name)}
        missing = [column for column in table.columns if column.name not in have]
        statements = [_add_column(engine, column) for column in missing]  # refuses before anything changes
        if statements:
            with engine.begin() as connection:
                for column, statement in zip(missing, statements):
                    connection.exec_driver_sql(statement)
                    done.append(f"added column {table.name}.{column.name}")
        indexed = {index["name"] for index in found.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexed:
                try:
                    index.create(engine)
                except Exception as exc:  # noqa: BLE001 - e.g. a new unique index over rows that repeat
                    raise SchemaError(f"index {index.name} on {table.name}: {exc}; write a migration") from exc
                done.append(f"added index {index.name}")
    return done


def _add_column(engine: Engine, column: Column) -> str:
    where = f"{column.table.name}.{column.name}"
    if column.primary_key or column.unique:
        raise SchemaError(f"{where}: a new key or unique column cannot be added in place; write a migration")
    ddl = str(CreateColumn(column).compile(dialect=engine.dialect))
    if column.server_default is None:
        default = column.default
        if default is not None and default.is_scalar:
            value = literal(default.arg, column.type).compile(dialect=engine.dialect,
                                                              compile_kwargs={"literal_binds": True})
            ddl += f" DEFAULT {value}"
        elif not column.nullable:
            raise SchemaError(f"{where}: NOT NULL without a constant default, so old rows would have no value;"
                              " write a migration")
    return f"ALTER TABLE {engine.dialect.identifier_preparer.format_table(column.table)} ADD COLUMN {ddl}"

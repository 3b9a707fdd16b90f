"""The schema comes from the Alembic migrations, and they agree with the ORM models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from caldav_bridge.db import Database
from caldav_bridge.domain.models import Base


def test_migrations_create_exactly_the_schema_of_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    assert database.is_current()


def test_migrating_twice_is_harmless(database: Database) -> None:
    database.migrate()
    assert set(inspect(database.engine).get_table_names()) >= {
        "users",
        "user_emails",
        "resources",
        "interactions",
        "interaction_links",
        "bookings",
        "settings",
        "outbox",
        "calendar_changes",
    }


def test_an_empty_database_is_not_current(tmp_path: object) -> None:
    database = Database(f"sqlite:///{tmp_path}/empty.sqlite3")
    assert not database.is_current()

"""Engine, sessions and migrations for SQLite (embedded) and PostgreSQL (shared)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from caldav_bridge.domain.errors import ConfigurationError

logger = logging.getLogger("caldav_bridge")

_IMMEDIATE = "caldav_bridge_immediate"


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])

# Set on a writing session's info: what it reads to change is locked (``locked``).
WRITING = "caldav_bridge.writing"


def locked(session: Session, query: _Query) -> _Query:
    """``query`` taking row locks (FOR UPDATE) in a writing session, so that two transactions
    changing one interaction run one after the other on PostgreSQL and neither loses the
    other's change; SQLite's writing transactions already hold its one write lock."""
    if not session.info.get(WRITING):
        return query
    return query.with_for_update().execution_options(populate_existing=True)


# How a transaction that lost a race with another fails: a unique constraint the other
# satisfied first (PostgreSQL's unique_violation, SQLite's), a deadlock or a serialization
# failure. Run again, it sees what the other committed.
_RACE_STATES = {"23505", "40P01", "40001"}
_RACE_NAMES = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_BUSY_SNAPSHOT"}


def lost_a_race(exc: DBAPIError) -> bool:
    """Whether ``exc`` says the transaction collided with a concurrent one, so that running
    it again (it will see the other's rows) is the answer."""
    return (
        getattr(exc.orig, "sqlstate", None) in _RACE_STATES
        or getattr(exc.orig, "sqlite_errorname", None) in _RACE_NAMES
    )


_Result = TypeVar("_Result")


def run_again_if_raced(run: Callable[[], _Result], attempts: int) -> _Result | None:
    """What ``run()`` returns, run again while it loses a race with a concurrent transaction
    (``lost_a_race``), ``attempts`` times in all; None when it lost each time. Any other
    database error is raised."""
    for _ in range(attempts):
        try:
            return run()
        except DBAPIError as exc:
            if not lost_a_race(exc):
                raise
            logger.info("a transaction met a concurrent change: run again")
    return None


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A writing transaction takes SQLite's write lock at once, so that the checks it makes
        # (a room is free) still hold when it writes: the SQLite counterpart of FOR UPDATE.
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """One database: its engine, a session factory, and its migrations."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigurationError(f"not a database URL: {url!r}") from exc
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url)
        elif self.dialect == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            self.engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise ConfigurationError(
                f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql://"
            )
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(
            self.engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False
        )

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        factory = self._writer if write else self._reader
        with factory() as session, session.begin():
            session.info[WRITING] = write
            yield session

    def _alembic_config(self, connection: Connection) -> Any:
        # Alembic is imported only to migrate or check the schema, so that commands that do
        # neither start faster.
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", "caldav_bridge.domain:migrations")
        config.attributes["connection"] = connection
        return config

    def migrate(self) -> None:
        """Bring the schema to the newest revision (creating it on an empty database)."""
        from alembic import command

        try:
            with self.engine.begin() as connection:
                command.upgrade(self._alembic_config(connection), "head")
        except OperationalError as exc:
            raise ConfigurationError(f"cannot open the database: {exc.orig}") from exc

    def is_current(self) -> bool:
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            head = ScriptDirectory.from_config(self._alembic_config(connection)).get_current_head()
        return current == head

    def dispose(self) -> None:
        self.engine.dispose()

"""Real databases for every test: SQLite files, and PostgreSQL on 127.0.0.1:5432.

Each database test runs twice, once per backend. PostgreSQL tests skip only when
CALDAV_BRIDGE_TEST_POSTGRES_URL is not set; CI sets it and CALDAV_BRIDGE_REQUIRE_POSTGRES=1,
which turns a missing server into a failure instead.
"""

from __future__ import annotations

import email
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from caldav import DAVClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from caldav_bridge.caldav.server import Server, radicale_configuration
from caldav_bridge.config import Settings, SmtpSettings
from caldav_bridge.db import Database
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.models import Base, Resource, User
from caldav_bridge.domain.passwords import hash_password
from tests.helpers import free_port

POSTGRES_ENV = "CALDAV_BRIDGE_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of its own for this run, migrated once, dropped at the end."""
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        if os.environ.get("CALDAV_BRIDGE_REQUIRE_POSTGRES"):
            pytest.fail(f"{POSTGRES_ENV} is not set but PostgreSQL tests are required")
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    name = f"caldav_bridge_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    database.migrate()
    database.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.sqlite3'}"
    url: str = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@dataclass
class World:
    """Four users (alice is an administrator), two rooms, multi-user interactions on."""

    database: Database

    def users(self, session: Session) -> dict[str, User]:
        directory = Directory(session)
        return {login: directory.user(login) for login in ("alice", "bob", "carol", "dave")}

    def rooms(self, session: Session) -> dict[str, Resource]:
        directory = Directory(session)
        return {slug: directory.resource(slug) for slug in ("everest", "kilimanjaro")}


@pytest.fixture
def world(database: Database) -> World:
    with database.session(write=True) as session:
        directory = Directory(session)
        for login, name, zone in (
            ("alice", "Alice Martin", "Europe/Paris"),
            ("bob", "Bob Dupont", "Europe/Paris"),
            ("carol", "Carol Nguyễn", "America/New_York"),
            ("dave", "Dave Okafor", "UTC"),
        ):
            directory.add_user(login, name, [f"{login}@example.com"], None, zone, login == "alice")
        directory.add_resource("everest", "Everest room", "everest@example.com", capacity=12)
        directory.add_resource("kilimanjaro", "Kilimanjaro room", "kilimanjaro@example.com")
        Administration(session, OPERATOR).set_multi_user(True)
    return World(database)


@dataclass
class RunningServer:
    """The real CalDAV server on a loopback port, over ``world``'s database."""

    url: str
    world: World

    def client(self, login: str, password: str | None = None) -> DAVClient:
        return DAVClient(url=self.url, username=login, password=password or login)


@pytest.fixture
def server(world: World) -> Iterator[RunningServer]:
    with world.database.session(write=True) as session:
        for user in world.users(session).values():
            user.password_hash = hash_password(user.login)
    settings = Settings(world.database.url, "http://127.0.0.1")
    configuration = radicale_configuration(settings, extra={"server": {"delay_on_error": "0"}})
    running = Server(configuration, "127.0.0.1", 0)
    running.start_in_thread()
    try:
        yield RunningServer(running.url, world)
    finally:
        running.stop()


@dataclass
class Inbox:
    """What the SMTP server accepted; ``refuse`` answers the next deliveries with 451."""

    messages: list[Message] = field(default_factory=list)
    refuse: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSettings, Inbox]]:
    inbox = Inbox()
    port = free_port()  # aiosmtpd checks itself on its port: it must be known
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpSettings(host="127.0.0.1", port=port, sender="crm@example.com"), inbox
    finally:
        controller.stop()


CHROMIUM = os.environ.get("CALDAV_BRIDGE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
_CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"browser tests need Chromium at {CHROMIUM}: 'python3 -m caldav_bridge.bootstrap "
            "test' installs Debian's chromium when run as root (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=_CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()

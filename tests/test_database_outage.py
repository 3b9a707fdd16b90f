"""The database going away under a running server (PostgreSQL behind a relay that the test
cuts): requests get 503 with Retry-After, nothing is half-written, and the server recovers by
itself when the database is back."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from caldav_bridge.caldav.server import Server, radicale_configuration
from caldav_bridge.config import Settings
from caldav_bridge.db import Database
from caldav_bridge.domain.models import Interaction
from tests.helpers import TcpProxy, fresh_postgres

EVENT = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:outage-1\r
DTSTAMP:20300101T000000Z\r
DTSTART:20300107T100000Z\r
DTEND:20300107T110000Z\r
SUMMARY:Written during the outage\r
END:VEVENT\r
END:VCALENDAR\r
"""


@pytest.fixture
def proxied(postgres_database: str) -> Iterator[tuple[str, TcpProxy, Database]]:
    database = fresh_postgres(postgres_database)
    url = make_url(postgres_database)
    proxy = TcpProxy(url.port or 5432, url.host or "127.0.0.1")
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    configuration = radicale_configuration(
        Settings(through, "http://127.0.0.1"), extra={"server": {"delay_on_error": "0"}}
    )
    server = Server(configuration, "127.0.0.1", 0)
    server.start_in_thread()
    try:
        yield server.url, proxy, database
    finally:
        server.stop()
        proxy.close()
        database.dispose()


def _propfind(url: str, login: str) -> httpx.Response:
    return httpx.request(
        "PROPFIND",
        f"{url}{login}/interactions/",
        headers={"Depth": "1"},
        auth=(login, login),
        timeout=30,
    )


def _put(url: str) -> httpx.Response:
    return httpx.put(
        f"{url}alice/interactions/outage-1.ics",
        content=EVENT,
        headers={"Content-Type": "text/calendar"},
        auth=("alice", "alice"),
        timeout=30,
    )


@pytest.mark.postgresql
def test_an_unreachable_database_gets_503_and_the_server_recovers(
    proxied: tuple[str, TcpProxy, Database],
) -> None:
    url, proxy, database = proxied
    assert _propfind(url, "alice").status_code == 207  # alice's login is now remembered
    proxy.cut()
    for login in ("alice", "bob"):  # a remembered login, and one to check in the database
        answer = _propfind(url, login)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"].isdigit()
        assert "unavailable" in answer.text
    assert _put(url).status_code == 503
    assert httpx.get(f"{url}.bridge/messages", auth=("alice", "alice")).status_code == 503
    proxy.restore()
    assert _propfind(url, "alice").status_code == 207
    assert _propfind(url, "bob").status_code == 207
    with database.session() as session:  # the refused PUT left nothing behind
        assert session.scalar(select(func.count()).select_from(Interaction)) == 0
    assert _put(url).status_code == 201

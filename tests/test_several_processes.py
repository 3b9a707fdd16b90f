"""Several server processes on one PostgreSQL database: gunicorn workers and `serve` processes.

Nothing lives in one process only: a change through one process is seen through the other at
once, and a sync token handed out by one is understood by the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from caldav_bridge.db import Database
from caldav_bridge.directory import Directory
from caldav_bridge.interactions import InteractionService
from caldav_bridge.models import Booking
from tests.helpers import free_port, wait_for_http

BIN = Path(sys.executable).parent

SYNC = (
    '<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>{}</sync-token>'
    "<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"
)


@pytest.fixture
def two_servers(postgres_database: str) -> Iterator[tuple[tuple[str, str], str]]:
    database = Database(postgres_database)
    from tests.conftest import _empty_postgres

    _empty_postgres(postgres_database)
    with database.session(write=True) as session:
        directory = Directory(session)
        directory.add_user("alice", "Alice", ["alice@example.com"], "alice", "UTC")
        directory.add_user("bob", "Bob", ["bob@example.com"], "bob", "UTC")
        directory.add_resource("everest", "Everest room", "everest@example.com")
        InteractionService(session).set_multi_user(True)
    database.dispose()
    env = {**os.environ, "CALDAV_BRIDGE_DATABASE_URL": postgres_database}
    gunicorn_port, serve_port = free_port(), free_port()
    processes = [
        subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{gunicorn_port}",
                "caldav_bridge.wsgi:application",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [str(BIN / "caldav-bridge"), "serve", "--port", str(serve_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    urls = (f"http://127.0.0.1:{gunicorn_port}/", f"http://127.0.0.1:{serve_port}/")
    try:
        for url in urls:
            wait_for_http(url)
        yield urls, postgres_database
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.postgresql
def test_processes_sharing_postgresql_see_each_others_changes(
    two_servers: tuple[tuple[str, str], str],
) -> None:
    (first, second), _ = two_servers
    alice = ("alice", "alice")
    token_xml = httpx.request(
        "REPORT", f"{second}bob/interactions/", auth=("bob", "bob"), content=SYNC.format("")
    ).text
    token = token_xml.split("<sync-token>")[1].split("</sync-token>")[0]
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:multi-1\r\n"
        "DTSTAMP:20300101T000000Z\r\nDTSTART:20300108T120000Z\r\nDTEND:20300108T130000Z\r\n"
        "SUMMARY:Shared\r\nORGANIZER:mailto:alice@example.com\r\n"
        "ATTENDEE:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    for attempt in range(4):  # gunicorn's two workers each get requests
        response = httpx.put(
            f"{first}alice/interactions/multi-{attempt}.ics",
            content=event.replace("multi-1", f"multi-{attempt}"),
            auth=alice,
        )
        assert response.status_code == 201, response.text
    delta = httpx.request(
        "REPORT", f"{second}bob/interactions/", auth=("bob", "bob"), content=SYNC.format(token)
    )
    assert delta.status_code == 207
    assert sorted(delta.text.count(f"multi-{n}.ics") for n in range(4)) == [1, 1, 1, 1]
    for base in (first, second):
        listing = httpx.request(
            "PROPFIND", f"{base}alice/interactions/", auth=alice, headers={"Depth": "1"}
        )
        assert listing.text.count(".ics</href>") == 4


@pytest.mark.postgresql
def test_clients_of_different_processes_racing_for_a_room_leave_it_booked_once(
    two_servers: tuple[tuple[str, str], str],
) -> None:
    urls, database_url = two_servers
    ready = threading.Barrier(6)
    answers: list[int] = []

    def ask_for_the_room(number: int) -> None:
        login = ("alice", "bob")[number % 2]
        event = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:race-{number}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300108T120000Z\r\n"
            f"DTEND:20300108T130000Z\r\nSUMMARY:Race {number}\r\n"
            f"ORGANIZER:mailto:{login}@example.com\r\n"
            "ATTENDEE;CUTYPE=ROOM:mailto:everest@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        ready.wait()
        answer = httpx.put(
            f"{urls[number % 2]}{login}/interactions/race-{number}.ics",
            content=event,
            auth=(login, login),
            timeout=60,
        )
        answers.append(answer.status_code)

    threads = [threading.Thread(target=ask_for_the_room, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [201] * 6
    database = Database(database_url)
    with database.session() as session:
        held = session.scalars(select(Booking.declined)).all()
    database.dispose()
    assert sorted(held) == [False] + [True] * 5

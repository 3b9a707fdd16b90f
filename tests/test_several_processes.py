"""Several server processes on one PostgreSQL database: gunicorn workers and `serve` processes.

Nothing lives in one process only: a change through one process is seen through the other at
once, and a sync token handed out by one is understood by the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue

import httpx
import pytest
from sqlalchemy import select

from caldav_bridge.db import Database
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.models import Booking
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
        Administration(session, OPERATOR).set_multi_user(True)
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


# ------------------------------------------------------------------ exact deltas under load

DAV = "{DAV:}"
ORGANIZERS = [f"org{n}" for n in range(8)]
ANSWERERS = 4  # threads answering, as bob, the invitations the organizers send
CREATES = 16  # per organizer


def _invitation(organizer: str, number: int) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{organizer}-{number}\r\nDTSTAMP:20300101T000000Z\r\n"
        f"DTSTART:20300108T{number % 10:02d}0000Z\r\nDTEND:20300108T{number % 10:02d}3000Z\r\n"
        f"SUMMARY:Load {organizer} {number}\r\nORGANIZER:mailto:{organizer}@example.com\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:olga@example.com\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _multistatus(text: str) -> tuple[str, dict[str, str | None]]:
    """The sync token and, per item name, its ETag (None: gone) of a multistatus answer."""
    root = ET.fromstring(text)
    items: dict[str, str | None] = {}
    for response in root.iter(f"{DAV}response"):
        name = (response.findtext(f"{DAV}href") or "").rstrip("/").rsplit("/", 1)[-1]
        if not name.endswith(".ics"):
            continue
        items[name] = response.findtext(f".//{DAV}getetag")
    return root.findtext(f"{DAV}sync-token") or "", items


class _Log:
    """What the writers and the syncing client did, in one order (no clocks)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.lock = threading.Lock()

    def add(self, kind: str, what: object) -> int:
        with self.lock:
            self.events.append((kind, what))
            return len(self.events) - 1


@pytest.mark.postgresql
def test_every_acknowledged_write_reaches_a_client_syncing_through_another_process(
    two_servers: tuple[tuple[str, str], str],
) -> None:
    urls, database_url = two_servers
    database = Database(database_url)
    with database.session(write=True) as session:
        directory = Directory(session)
        for login in [*ORGANIZERS, "olga"]:
            directory.add_user(login, login, [f"{login}@example.com"], login, "UTC")
    database.dispose()
    log, created, failures = _Log(), Queue[str](), list[str]()
    writers_done, all_done = threading.Event(), threading.Event()

    def organize(number: int) -> None:
        login = ORGANIZERS[number]
        with httpx.Client(base_url=urls[number % 2], auth=(login, login), timeout=60) as http:
            for n in range(CREATES):
                href = f"{login}-{n}.ics"
                start = log.add("write", href)
                answer = http.put(f"{login}/interactions/{href}", content=_invitation(login, n))
                if answer.status_code not in (201, 204):
                    failures.append(f"PUT {href}: {answer.status_code} {answer.text}")
                    continue
                log.events[start] = ("acknowledged", href)
                created.put(href)

    def answer_as_bob(number: int) -> None:
        with httpx.Client(base_url=urls[number % 2], auth=("bob", "bob"), timeout=60) as http:
            while not (writers_done.is_set() and created.empty()):
                try:
                    href = created.get(timeout=0.1)
                except Empty:
                    continue
                mine = http.get(f"bob/interactions/{href}")
                text = mine.text.replace(
                    "PARTSTAT=NEEDS-ACTION;", f"PARTSTAT={('ACCEPTED', 'DECLINED')[number % 2]};"
                )
                start = log.add("write", href)
                answer = http.put(f"bob/interactions/{href}", content=text)
                if answer.status_code not in (201, 204):
                    failures.append(f"bob's PUT {href}: {answer.status_code} {answer.text}")
                    continue
                log.events[start] = ("acknowledged", href)

    synced: dict[str, str] = {}

    def sync(http: httpx.Client, token: str) -> str:
        answer = http.request("REPORT", "olga/interactions/", content=SYNC.format(token))
        assert answer.status_code == 207, answer.text
        token, items = _multistatus(answer.text)
        for href, etag in items.items():
            if etag is None:
                synced.pop(href, None)
            else:
                synced[href] = etag
        log.add("delta", set(items))
        return token

    def follow() -> None:
        clients = [httpx.Client(base_url=url, auth=("olga", "olga"), timeout=60) for url in urls]
        token, turn = sync(clients[0], ""), 0
        while not all_done.is_set():
            turn += 1
            token = sync(clients[turn % 2], token)
        sync(clients[1], sync(clients[0], token))  # after the last write
        for client in clients:
            client.close()

    writers = [threading.Thread(target=organize, args=(n,)) for n in range(len(ORGANIZERS))]
    answerers = [threading.Thread(target=answer_as_bob, args=(n,)) for n in range(ANSWERERS)]
    follower = threading.Thread(target=follow)
    for thread in [follower, *writers, *answerers]:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    for thread in answerers:
        thread.join()
    all_done.set()
    follower.join()
    assert failures == []
    missed = []
    for position, (kind, href) in enumerate(log.events):
        if kind == "acknowledged":
            later = (what for k, what in log.events[position:] if k == "delta")
            if not any(href in hrefs for hrefs in later):  # type: ignore[operator]
                missed.append(href)
    acknowledged = sum(kind == "acknowledged" for kind, _ in log.events)
    assert acknowledged == len(ORGANIZERS) * CREATES * 2
    assert missed == []
    listing = httpx.request(
        "PROPFIND",
        f"{urls[0]}olga/interactions/",
        auth=("olga", "olga"),
        headers={"Depth": "1"},
        content='<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
    )
    assert synced == {h: e for h, e in _multistatus(listing.text)[1].items() if e}

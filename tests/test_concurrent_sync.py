"""Sync tokens and CTags under concurrent writers: a change whose transaction commits after a
later-started one has been synced is still reported (RFC 6578: exact deltas).

On PostgreSQL two transactions commit in any order; SQLite has one writer at a time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.domain.periods import Changes
from tests.conftest import RunningServer, _empty_postgres
from tests.helpers import at, create

DAV = "{DAV:}"
SYNC = (
    '<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>{}</sync-token>'
    "<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"
)
CTAG = (
    '<propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><prop><CS:getctag/>'
    "</prop></propfind>"
)


# Bob follows a calendar: his own, or the room's that both events book.
CALENDARS = ["bob/interactions", "everest/bookings"]


@pytest.fixture
def database_url(postgres_database: str) -> str:
    """PostgreSQL only: SQLite runs one writing transaction at a time."""
    _empty_postgres(postgres_database)
    return postgres_database


def _synced(server: RunningServer, calendar: str, token: str) -> tuple[str, set[str]]:
    answer = httpx.request(
        "REPORT", f"{server.url}/{calendar}/", auth=("bob", "bob"), content=SYNC.format(token)
    )
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.text)
    names = {
        (r.findtext(f"{DAV}href") or "").rsplit("/", 1)[-1] for r in root.iter(f"{DAV}response")
    }
    return root.findtext(f"{DAV}sync-token") or "", names


def _ctag(server: RunningServer, calendar: str) -> str:
    answer = httpx.request(
        "PROPFIND",
        f"{server.url}/{calendar}/",
        auth=("bob", "bob"),
        headers={"Depth": "0"},
        content=CTAG,
    )
    return answer.text.split("getctag>")[1].split("<")[0]


def _event(uid: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300108T120000Z\r\n"
        "DTEND:20300108T130000Z\r\nSUMMARY:Quick\r\nORGANIZER:mailto:alice@example.com\r\n"
        "ATTENDEE:mailto:bob@example.com\r\nATTENDEE;CUTYPE=ROOM:mailto:everest@example.com\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.mark.postgresql
@pytest.mark.parametrize("calendar", CALENDARS)
def test_a_change_committed_after_a_later_one_was_synced_is_still_reported(
    server: RunningServer, calendar: str
) -> None:
    world = server.world
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        slow = create(service, users["alice"], "Slow", at(8, 10), at(8, 11))
        service.link(users["alice"], slow, users["bob"], LinkStatus.INVITED)
        service.book(users["alice"], slow, world.rooms(session)["everest"])
        slow_id, slow_href = slow.id, slow.href
    token, _ = _synced(server, calendar, "")
    with world.database.session(write=True) as session:
        # A CRM-side edit, logged but not yet committed, while a client's write goes through.
        service, users = InteractionService(session), world.users(session)
        service.edit(users["alice"], service.get(slow_id), Changes(subject="Slow, renamed"))
        session.flush()
        quick = httpx.put(
            f"{server.url}/alice/interactions/quick.ics",
            content=_event("quick"),
            auth=("alice", "alice"),
        )
        assert quick.status_code == 201, quick.text
        token, names = _synced(server, calendar, token)
        assert names == {"quick.ics"}
        ctag = _ctag(server, calendar)
    _, names = _synced(server, calendar, token)
    assert names == {slow_href}
    assert _ctag(server, calendar) != ctag

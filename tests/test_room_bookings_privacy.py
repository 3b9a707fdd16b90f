"""A room's bookings calendar, which every user may read, tells when the room is taken and by
what subject: nothing else of the meeting, over any request and in the room's feed."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET

import httpx
import pytest

from caldav_bridge.domain import links, tokens
from caldav_bridge.domain.directory import Directory
from tests.conftest import RunningServer

MARK = "zq7marker"
C = "urn:ietf:params:xml:ns:caldav"
D = "DAV:"
# What a non-participant must not read: the marker, and who takes part.
SECRETS = [MARK, "alice@example.com", "bob@example.com", "Alice Martin", "Bob Dupont"]


def _meeting(uid: str) -> str:
    people = [
        f"ORGANIZER;CN=Alice {MARK}:mailto:alice@example.com",
        "ATTENDEE;CN=Alice;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:alice@example.com",
        f"ATTENDEE;CN=Bob {MARK};PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        f"ATTENDEE;CN=Guest {MARK}:mailto:guest-{MARK}@outside.example",
        "ATTENDEE;CUTYPE=ROOM;CN=Everest:mailto:everest@example.com",
    ]
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//test//test//EN",
            f"X-WR-CALNAME:{MARK} calendar",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20300101T000000Z",
            "DTSTART:20300108T120000Z",
            "DTEND:20300108T130000Z",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            f'SUMMARY;ALTREP="https://{MARK}.example/":Board meeting',
            f"DESCRIPTION:{MARK} notes",
            f"LOCATION:{MARK} place",
            f"CATEGORIES:{MARK}",
            f"COMMENT:{MARK} comment",
            f"CONTACT:{MARK} contact",
            f"URL:https://{MARK}.example/",
            f"CONFERENCE;VALUE=URI:https://{MARK}.example/meet",
            f"ATTACH:https://{MARK}.example/file.pdf",
            f"X-SECRET:{MARK}",
            "CLASS:PUBLIC",
            *people,
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            f"DESCRIPTION:{MARK} alarm",
            "TRIGGER:-PT15M",
            "END:VALARM",
            "END:VEVENT",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20300101T000000Z",
            "RECURRENCE-ID:20300115T120000Z",
            "DTSTART:20300115T140000Z",
            "DTEND:20300115T150000Z",
            "SUMMARY:Board meeting",
            f"DESCRIPTION:{MARK} moved",
            *people,
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


@pytest.fixture
def booked(server: RunningServer) -> str:
    """Alice's weekly board meeting in the everest room, one occurrence moved; its item name."""
    uid = f"{uuid.uuid4()}"
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        put = alice.put(
            f"/alice/interactions/{uid}.ics",
            content=_meeting(uid),
            headers={"Content-Type": "text/calendar"},
        )
        assert put.status_code == 201, put.text
    return f"{uid}.ics"


def _report(client: httpx.Client, body: str) -> str:
    answer = client.request("REPORT", "/everest/bookings/", content=body, headers={"Depth": "1"})
    assert answer.status_code == 207, answer.text
    return "".join(
        e.text or "" for e in ET.fromstring(answer.content).iter(f"{{{C}}}calendar-data")
    )


def _readings(server: RunningServer, href: str) -> dict[str, str]:
    """Everything dave, who takes no part, can read of the room's bookings."""
    data = "<C:calendar-data/>"
    ns = f'xmlns:D="{D}" xmlns:C="{C}"'
    comp = '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    window = '<C:time-range start="20300101T000000Z" end="20300201T000000Z"/>'
    expand = '<C:calendar-data><C:expand start="20300101T000000Z" end="20300201T000000Z"/>'
    with httpx.Client(base_url=server.url, auth=("dave", "dave"), timeout=30) as dave:
        read = {
            "GET item": dave.get(f"/everest/bookings/{href}").text,
            "GET calendar": dave.get("/everest/bookings/").text,
            "multiget": _report(
                dave,
                f"<C:calendar-multiget {ns}><D:prop>{data}</D:prop>"
                f"<D:href>/everest/bookings/{href}</D:href></C:calendar-multiget>",
            ),
            "calendar-query": _report(
                dave,
                f"<C:calendar-query {ns}><D:prop>{data}</D:prop><C:filter>{comp}{window}"
                "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>",
            ),
            "expanded query": _report(
                dave,
                f"<C:calendar-query {ns}><D:prop>{expand}</C:calendar-data></D:prop>"
                f"<C:filter>{comp}{window}</C:comp-filter></C:comp-filter></C:filter>"
                "</C:calendar-query>",
            ),
            "sync": _report(
                dave,
                f"<D:sync-collection {ns}><D:sync-token/><D:sync-level>1</D:sync-level>"
                f"<D:prop><D:getetag/>{data}</D:prop></D:sync-collection>",
            ),
        }
    with server.world.database.session(write=True) as session:
        room = Directory(session).resource("everest")
        tokens.rotate_feed(room)
        token = tokens.feed_token(session, room)
    assert token is not None
    feed = re.sub(r"^https?://[^/]+/", "", links.feed(server.url, token))
    read["feed"] = httpx.get(f"{server.url}{feed}").text
    return read


def test_a_rooms_bookings_show_every_user_the_times_and_subject_only(
    server: RunningServer, booked: str
) -> None:
    for how, text in _readings(server, booked).items():
        unfolded = text.replace("\r\n ", "").replace("\n ", "")
        assert "Board meeting" in unfolded, how
        assert "DTSTART" in unfolded, how
        leaked = [s for s in SECRETS if s.lower() in unfolded.lower()]
        assert leaked == [], f"{how} shows {leaked}:\n{unfolded}"
        for name in ("ATTENDEE", "ORGANIZER", "DESCRIPTION", "LOCATION", "VALARM", "CLASS"):
            assert name not in unfolded, (how, name)


def test_a_rooms_bookings_keep_the_recurrence_and_the_moved_occurrence(
    server: RunningServer, booked: str
) -> None:
    with httpx.Client(base_url=server.url, auth=("dave", "dave"), timeout=30) as dave:
        text = dave.get(f"/everest/bookings/{booked}").text
    assert "RRULE:FREQ=WEEKLY;COUNT=4" in text
    assert "RECURRENCE-ID" in text
    assert "DTSTART:20300115T140000Z" in text


def test_the_participants_still_read_the_whole_meeting(server: RunningServer, booked: str) -> None:
    with httpx.Client(base_url=server.url, auth=("bob", "bob"), timeout=30) as bob:
        text = bob.get(f"/bob/interactions/{booked}").text.replace("\r\n ", "")
    assert f"{MARK} notes" in text
    assert "bob@example.com" in text

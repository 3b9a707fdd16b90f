"""A calendar of one's own keeps the client's text: what a client PUT is served back byte for
byte (GET, calendar-multiget, sync-collection, calendar-query), its ETag that of what is
served, while Radicale's filters still read it. What Radicale or vobject would refuse with a
bare "Bad Request" is accepted when its meaning is clear (DTEND with DURATION: the DTEND
counts; a bare-date LAST-MODIFIED) and refused with the reason and the CalDAV precondition
otherwise; every other bare 4xx of Radicale's says why."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from caldav_bridge.domain.interactions import InteractionService
from tests.conftest import RunningServer
from tests.helpers import event_text

SAMPLES = Path(__file__).parent / "fixtures" / "samples"
C = "urn:ietf:params:xml:ns:caldav"
CALENDAR = "/bob/personal/"

# What Apple, Entourage and Lotus Notes write that vobject changes: a URI value with a comma,
# underscores in property names.
STRUCTURED = (
    "X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS=1 Penn Sq;X-APPLE-RADIUS=70.5;"
    "X-TITLE=City Hall:geo:39.946146,-75.164682",
    "X-ENTOURAGE_UUID:0AB8A6E1-4C1F-4E3A",
    "X-LOTUS-CHILD_UID:0F1A2B3C",
)


@contextmanager
def _client(server: RunningServer) -> Iterator[httpx.Client]:
    """bob, with his calendar made."""
    with httpx.Client(base_url=server.url, auth=("bob", "bob"), timeout=30) as client:
        assert client.request("MKCALENDAR", CALENDAR).status_code == 201
        yield client


def _put(client: httpx.Client, name: str, text: str | bytes) -> httpx.Response:
    return client.put(f"{CALENDAR}{name}", content=text, headers={"Content-Type": "text/calendar"})


def _report(client: httpx.Client, body: str) -> dict[str, str]:
    """(href, calendar-data) of each response of a REPORT on the calendar, as an XML parser
    reads them."""
    answer = client.request(
        "REPORT", CALENDAR, content=body, headers={"Depth": "1", "Content-Type": "text/xml"}
    )
    assert answer.status_code == 207, answer.text
    found = {}
    for response in ET.fromstring(answer.content).iter("{DAV:}response"):
        data = response.find(f".//{{{C}}}calendar-data")
        if data is not None:
            found[str(response.findtext("{DAV:}href"))] = data.text or ""
    return found


_PROPS = "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
_NAMESPACES = f'xmlns:D="DAV:" xmlns:C="{C}"'


def _multiget(client: httpx.Client, names: list[str]) -> dict[str, str]:
    hrefs = "".join(f"<D:href>{CALENDAR}{name}</D:href>" for name in names)
    body = f"<C:calendar-multiget {_NAMESPACES}>{_PROPS}{hrefs}</C:calendar-multiget>"
    return _report(client, body)


def _sync(client: httpx.Client) -> dict[str, str]:
    body = (
        f"<D:sync-collection {_NAMESPACES}><D:sync-token/><D:sync-level>1</D:sync-level>"
        f"{_PROPS}</D:sync-collection>"
    )
    return _report(client, body)


def _query(client: httpx.Client, condition: str) -> dict[str, str]:
    body = (
        f'<C:calendar-query {_NAMESPACES}>{_PROPS}<C:filter><C:comp-filter name="VCALENDAR">'
        f'<C:comp-filter name="VEVENT">{condition}</C:comp-filter></C:comp-filter></C:filter>'
        "</C:calendar-query>"
    )
    return _report(client, body)


def _samples() -> list[Path]:
    return sorted(SAMPLES.glob("*.ics"))


def test_real_files_come_back_byte_for_byte_from_every_way_of_reading(
    server: RunningServer,
) -> None:
    """Each real client's file PUT into a calendar of one's own: GET, multiget and sync answer
    its bytes, and the ETags of the PUT, the GET and the REPORTs are that of those bytes.
    A file refused is refused with the reason, not a bare "Bad Request"."""
    with _client(server) as bob:
        kept: dict[str, bytes] = {}
        for sample in _samples():
            raw = sample.read_bytes()
            put = _put(bob, sample.name, raw)
            if put.status_code == 400:
                assert "Bad Request" not in put.text, sample.name
                assert "reason" in put.text, sample.name
                continue
            assert put.status_code == 201, (sample.name, put.text)
            got = bob.get(f"{CALENDAR}{sample.name}")
            assert got.content == raw, sample.name
            assert got.headers["ETag"] == put.headers["ETag"], sample.name
            kept[sample.name] = raw
        assert "apple-iphone-ios26-structured-location.ics" in kept
        # Refused with their reasons today: two UIDs in one object (Apple), occurrences
        # without their series (Google, Lotus Notes), an empty DTSTART (Exchange). Evolution's
        # zone starting on a date, which vobject cannot read, is kept.
        assert "evolution-event-windows-tz-name-x-alt-desc.ics" in kept
        assert len(kept) >= len(_samples()) - 4
        served = {f"{CALENDAR}{n}": t.decode() for n, t in kept.items()}
        assert _multiget(bob, list(kept)) == served
        assert _sync(bob) == served


def test_a_uri_value_with_a_comma_and_underscored_names_are_served_as_written(
    server: RunningServer,
) -> None:
    text = event_text(str(uuid.uuid4()), *STRUCTURED, summary="Lunch, then a walk")
    with _client(server) as bob:
        put = _put(bob, "city-hall.ics", text)
        assert put.status_code == 201, put.text
        got = bob.get(f"{CALENDAR}city-hall.ics")
        assert got.content == text.encode()  # CRLF and all
        assert "geo:39.946146,-75.164682\r\n" in got.text
        assert "X-ENTOURAGE_UUID" in got.text
        assert "X-LOTUS-CHILD_UID" in got.text
        assert _multiget(bob, ["city-hall.ics"]) == {f"{CALENDAR}city-hall.ics": text}
        listed = bob.request(
            "PROPFIND",
            CALENDAR,
            headers={"Depth": "1"},
            content=f"<D:propfind {_NAMESPACES}><D:prop><D:getetag/></D:prop></D:propfind>",
        )
        assert put.headers["ETag"] in listed.text


def test_calendar_queries_still_read_what_is_stored_as_written(server: RunningServer) -> None:
    """Radicale's filters parse the stored text as Radicale read it when it was put: a time
    range and a text match on a SUMMARY with an unescaped comma still find the event."""
    text = event_text(str(uuid.uuid4()), *STRUCTURED, summary="Lunch, then a walk")
    with _client(server) as bob:
        assert _put(bob, "walk.ics", text).status_code == 201
        in_range = '<C:time-range start="20300108T000000Z" end="20300109T000000Z"/>'
        outside = '<C:time-range start="20310108T000000Z" end="20310109T000000Z"/>'
        matching = '<C:prop-filter name="SUMMARY"><C:text-match>then a walk</C:text-match>'
        assert _query(bob, in_range) == {f"{CALENDAR}walk.ics": text}
        assert _query(bob, outside) == {}
        assert _query(bob, f"{matching}</C:prop-filter>") == {f"{CALENDAR}walk.ics": text}


def _event(*lines: str) -> str:
    return event_text(str(uuid.uuid4()), *lines, summary="Review")


THUNDERBIRD_BOTH = _event("DURATION:PT1H")  # event_text writes a DTEND already
APPLE_ICAL5_MODIFIED = _event("LAST-MODIFIED:20080101")


@pytest.mark.parametrize("text", [THUNDERBIRD_BOTH, APPLE_ICAL5_MODIFIED], ids=["both", "date"])
def test_what_real_clients_write_with_a_clear_meaning_is_accepted_as_written(
    server: RunningServer, text: str
) -> None:
    """Thunderbird's DTEND with DURATION (the DTEND counts: 12:00 to 13:00, kept as written)
    and Apple iCal 5's bare-date LAST-MODIFIED."""
    with _client(server) as bob:
        put = _put(bob, "accepted.ics", text)
        assert put.status_code == 201, put.text
        assert bob.get(f"{CALENDAR}accepted.ics").text == text
        after_the_end = '<C:time-range start="20300108T130000Z" end="20300108T140000Z"/>'
        assert _query(bob, after_the_end) == {}  # the DTEND counts, not DTSTART + DURATION


def test_an_organizers_event_with_dtend_and_duration_takes_its_dtend(
    server: RunningServer,
) -> None:
    uid = str(uuid.uuid4())
    text = event_text(
        uid, "ORGANIZER:mailto:alice@example.com", "DURATION:PT3H", end="20300108T133000Z"
    )
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        put = alice.put(f"/alice/interactions/{uid}.ics", content=text)
        assert put.status_code == 201, put.text
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert interaction.ends_at - interaction.starts_at == timedelta(minutes=90)


BARE_VEVENT = "\r\n".join(
    [
        "BEGIN:VEVENT",
        f"UID:{uuid.uuid4()}",
        "DTSTAMP:20300101T000000Z",
        "DTSTART:20300108T120000Z",
        "DTEND:20300108T130000Z",
        "END:VEVENT",
        "",
    ]
)


@pytest.mark.parametrize(
    ("text", "precondition", "reason"),
    [
        (BARE_VEVENT, "valid-calendar-data", "without the VCALENDAR"),
        (_event("SUMMARY:Twice"), "valid-calendar-data", "more than 1 SUMMARY"),
        (
            _event("RRULE:FREQ=DAILY;UNTIL=20200101T000000Z"),
            "valid-calendar-data",
            "recurrence rule",
        ),
    ],
    ids=["bare-vevent", "two-summaries", "until-before-dtstart"],
)
def test_what_cannot_be_read_is_refused_with_the_reason_and_the_precondition(
    server: RunningServer, text: str, precondition: str, reason: str
) -> None:
    with _client(server) as bob:
        put = _put(bob, "refused.ics", text)
        assert bob.get(f"{CALENDAR}refused.ics").status_code == 404
    assert put.status_code == 400
    assert "Bad Request" not in put.text
    assert f"<C:{precondition}" in put.text or f":{precondition}" in put.text, put.text
    assert reason in put.text, put.text


def test_radicales_bare_refusals_say_why(server: RunningServer) -> None:
    """MKCALENDAR inside a calendar (403), where nothing holds it (409) or where a calendar is
    (409, resource-must-be-null), PROPPATCH on an object (403), a REPORT Radicale cannot read
    (400), a second object with one UID (409, no-uid-conflict): each with the reason."""
    with _client(server) as bob:
        one = _event()
        assert _put(bob, "one.ics", one).status_code == 201
        twice = _put(bob, "two.ics", one)
        again = bob.request("MKCALENDAR", CALENDAR)
        assert (twice.status_code, again.status_code) == (409, 409)
        inside = bob.request("MKCALENDAR", f"{CALENDAR}inside/")
        nowhere = bob.request("MKCALENDAR", "/bob/missing/calendar/")
        patch = bob.request(
            "PROPPATCH",
            f"{CALENDAR}one.ics",
            content='<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x'
            "</D:displayname></D:prop></D:set></D:propertyupdate>",
        )
        report = bob.request(
            "REPORT",
            CALENDAR,
            headers={"Depth": "1"},
            content=f"<C:calendar-query {_NAMESPACES}>{_PROPS}<C:filter><C:comp-filter "
            'name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="nonsense"/>'
            "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>",
        )
    answers = {"inside": inside, "nowhere": nowhere, "patch": patch, "report": report}
    assert "exists already" in again.text
    assert "no-uid-conflict" in twice.text
    assert "a UID names one object" in twice.text
    assert {k: a.status_code for k, a in answers.items()} == {
        "inside": 403,
        "nowhere": 409,
        "patch": 403,
        "report": 400,
    }
    for answer in answers.values():
        assert answer.text.strip() not in {
            "Bad Request",
            "Action on the requested resource refused.",
            "Conflict in the request.",
        }
    assert "is a calendar or address book" in inside.text
    assert "does not exist" in nowhere.text
    assert "properties are set on collections" in patch.text
    assert "REPORT" in report.text


def test_a_byte_order_mark_is_no_part_of_the_text(server: RunningServer) -> None:
    """Windows writers start the file with a UTF-8 byte-order mark: the object is read and
    stored without it (it marks the encoding; no calendar text has it)."""
    text = _event()
    with _client(server) as bob:
        put = _put(bob, "marked.ics", b"\xef\xbb\xbf" + text.encode())
        assert put.status_code == 201, put.text
        assert bob.get(f"{CALENDAR}marked.ics").content == text.encode()

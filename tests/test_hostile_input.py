"""Hostile input over real HTTP: every request below is refused with a 4xx and a reason (or, where
the input can be understood, stored whole), never answered 5xx, never left half-applied, never
allowed to stall the server or to read /etc/passwd, and the server answers normally afterwards.

Requests go out with httpx; paths that httpx would normalise (``..``) are sent as written through
httpcore's ``target`` extension. Cases that may keep a server busy for minutes (recurrence rules
that expand without end, ten thousand attendees) are sent to a ``caldav-bridge serve`` process of
their own, killed afterwards: a runaway request thread inside the test process would keep its
database transaction open and hang every following PostgreSQL test.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.policy import default
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import httpx
import pytest
from icalendar import Calendar, vRecur
from sqlalchemy import select

from caldav_bridge.caldav.server import radicale_configuration
from caldav_bridge.config import Settings
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import (
    Booking,
    CalendarChange,
    Channel,
    Guest,
    Interaction,
    InteractionLink,
    LinkStatus,
    OutboxMessage,
    ScheduleMessage,
    StoredCollection,
    StoredItem,
)
from caldav_bridge.domain.participants import GuestEntry
from caldav_bridge.domain.passwords import hash_password
from caldav_bridge.mail.imip import email_for
from tests.conftest import RunningServer, World
from tests.helpers import at, create, free_port, serve_command, wait_for_http

TIMEOUT = 60.0  # seconds: no answer by then is a hang
# CPU seconds the server may spend on one hostile request: more is a denial of service. CPU time,
# not the clock, so that a busy machine does not fail the test and a slow request cannot hide.
CPU_BUDGET = 5.0
BODY_LIMIT = int(
    radicale_configuration(Settings("sqlite://", "http://127.0.0.1")).get(
        "server", "max_content_length"
    )
)
SECRET = "BOBS-SECRET-APPRAISAL"
EVIL = "evil@attacker.example"
GUEST = "guest@elsewhere.example"
PASSWD = [*Path("/etc/passwd").read_text(errors="replace").splitlines()[:1], "root:x:0:0"]
LISTING = '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
# Header names an iMIP email may carry (caldav_bridge.mail.imip.email_for).
EMAIL_HEADERS = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}


# ------------------------------------------------------------------ iCalendar builders


def _vevent(
    uid: str | None,
    *extra: str,
    start: str = "DTSTART:20300108T120000Z",
    end: str = "DTEND:20300108T130000Z",
    summary: str = "SUMMARY:Lunch",
) -> list[str]:
    lines = ["BEGIN:VEVENT"]
    if uid is not None:
        lines.append(f"UID:{uid}")
    lines += ["DTSTAMP:20300101T000000Z", start, end, summary]
    lines += ["ORGANIZER:mailto:alice@example.com", *extra, "END:VEVENT"]
    return lines


def _ics(*events: list[str]) -> str:
    body = [line for event in events for line in event]
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//hostile//EN"]
    return "\r\n".join([*head, *body, "END:VCALENDAR", ""])


def _invitation(uid: str, summary: str, *attendees: str) -> bytes:
    """Alice's event inviting bob and a guest, whose notices go out by email."""
    lines = attendees or (
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        "ATTENDEE;CN=Guest;PARTSTAT=NEEDS-ACTION:mailto:guest@elsewhere.example",
    )
    return _ics(_vevent(uid, *lines, summary=summary)).encode()


def _nested(levels: int) -> list[str]:
    """VALARM holding a VEVENT holding a VALARM … ``levels`` times."""
    opening = ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT5M", "BEGIN:VEVENT"] * levels
    return opening + ["END:VEVENT", "END:VALARM"] * levels


def _unfolded(text: str) -> str:
    return re.sub(r"\r?\n[ \t]", "", text)


# ------------------------------------------------------------------ the site under attack


@dataclass
class Site:
    """A server with alice's planning meeting (bob invited, Everest booked, a guest), bob's
    secret interaction, and a calendar of their own for alice and for bob."""

    url: str
    world: World
    planning_href: str
    bob_secret_href: str
    cpu_seconds: Callable[[], float]  # the CPU time the serving process has used so far


def _process_cpu(pid: int) -> Callable[[], float]:
    """The CPU time (user and system, every thread) of process ``pid``, read from /proc."""

    def used() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return used


def _seed(url: str, world: World, cpu_seconds: Callable[[], float] = time.process_time) -> Site:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice, bob = users["alice"], users["bob"]
        planning = create(service, alice, "Planning")
        service.link(alice, planning, bob, LinkStatus.INVITED)
        service.book(alice, planning, world.rooms(session)["everest"])
        service.set_guests(alice, planning, [GuestEntry("client@elsewhere.example", "Client")])
        secret = create(service, bob, SECRET, at(9, 10), at(9, 11), notes=SECRET)
        site = Site(url, world, planning.href, secret.href, cpu_seconds)
    for login, uid in (("alice", "dentist@alice"), ("bob", "secret@bob")):
        with httpx.Client(auth=(login, login), timeout=TIMEOUT) as client:
            made = client.request("MKCALENDAR", f"{url}{login}/personal/")
            assert made.status_code == 201, made.text
            name = "dentist.ics" if login == "alice" else "secret.ics"
            text = _ics(_vevent(uid, f"DESCRIPTION:{SECRET if login == 'bob' else 'Dentist'}"))
            stored = client.put(f"{url}{login}/personal/{name}", content=text)
            assert stored.status_code == 201, stored.text
    return site


@pytest.fixture
def site(server: RunningServer) -> Site:
    return _seed(server.url, server.world)


@pytest.fixture
def isolated_site(world: World) -> Iterator[Site]:
    """The same site served by a ``caldav-bridge serve`` process, killed at the end whatever
    it is still doing."""
    with world.database.session(write=True) as session:
        for user in world.users(session).values():
            user.password_hash = hash_password(user.login)
    port = free_port()
    process = subprocess.Popen(
        serve_command(world.database.url, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url)
        yield _seed(url, world, _process_cpu(process.pid))
    finally:
        process.kill()
        process.wait(timeout=30)


def _site_for(request: pytest.FixtureRequest, world: World, runaway: bool) -> Site:
    """The site, served in this process or, for runaway cases, by a process of its own
    (``world`` is named so that each database backend gets its run)."""
    site: Site = request.getfixturevalue("isolated_site" if runaway else "site")
    return site


# ------------------------------------------------------------------ sending and checking


def _hostile(
    site: Site,
    method: str,
    target: str,
    body: bytes | str | Iterator[bytes] = b"",
    headers: dict[str, str] | None = None,
    login: str = "alice",
) -> httpx.Response:
    """One hostile request, its raw ``target`` sent as written; it must be answered within a few
    seconds of the server's CPU, without a server error and without /etc/passwd."""
    what = f"{method} {target[:90]}"
    started = site.cpu_seconds()
    try:
        with httpx.Client(auth=(login, login), timeout=TIMEOUT) as client:
            response = client.request(
                method,
                site.url,
                content=body,
                headers=headers or {},
                extensions={"target": target.encode()},
            )
    except httpx.TimeoutException:
        pytest.fail(f"{what}: no answer within {TIMEOUT:.0f} s (the server hangs)")
    except httpx.TransportError as exc:
        pytest.fail(f"{what}: the connection broke: {exc!r}")
    spent = site.cpu_seconds() - started
    assert response.status_code < 500, (
        f"{what}: server error {response.status_code}: {response.text[:300]!r}"
    )
    for line in PASSWD:
        assert line not in response.text, f"{what}: /etc/passwd leaked into the answer"
    assert spent < CPU_BUDGET, (
        f"{what}: answered {response.status_code} after {spent:.1f} s of the server's CPU"
    )
    return response


def _plain(site: Site, method: str, path: str, login: str = "alice", **kwargs: Any) -> Any:
    with httpx.Client(auth=(login, login), timeout=TIMEOUT) as client:
        return client.request(method, f"{site.url}{path.lstrip('/')}", **kwargs)


# Radicale's canned bodies that only repeat the status line.
_NO_REASON = {"", "bad request", "precondition failed", "conflict in the request"}


def _has_reason(response: httpx.Response) -> bool:
    """The body says more than the status line: a sentence, or a WebDAV error element."""
    text = response.text.strip().rstrip(".").lower()
    return text not in _NO_REASON | {response.reason_phrase.lower()}


def _assert_refused(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (
        f"{what}: expected a 4xx refusal, got {response.status_code}: {response.text[:300]!r}"
    )
    assert _has_reason(response), (
        f"{what}: refused {response.status_code} without a reason: {response.text[:300]!r}"
    )


def _state(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a request could add, change or remove."""
    queries = {
        "interactions": select(
            Interaction.uid,
            Interaction.subject,
            Interaction.sequence,
            Interaction.status,
            Interaction.starts_at,
            Interaction.ends_at,
            Interaction.rrule,
            Interaction.etag,
        ),
        "links": select(
            InteractionLink.interaction_id, InteractionLink.user_id, InteractionLink.status
        ),
        "bookings": select(Booking.interaction_id, Booking.resource_id, Booking.declined),
        "guests": select(Guest.interaction_id, Guest.address, Guest.name, Guest.partstat),
        "outbox": select(OutboxMessage.id),
        "stored items": select(StoredItem.collection_id, StoredItem.href, StoredItem.etag),
        "collections": select(StoredCollection.path, StoredCollection.props),
        "changes": select(CalendarChange.id),
        "schedule inbox": select(ScheduleMessage.id),
    }
    with world.database.session() as session:
        return {name: sorted(map(tuple, session.execute(q).all())) for name, q in queries.items()}


def _assert_unchanged(site: Site, before: dict[str, list[tuple[Any, ...]]], what: str) -> None:
    after = _state(site.world)
    changed = {
        name: (len(before[name]), len(after[name]))
        for name in before
        if before[name] != after[name]
    }
    assert not changed, f"{what}: refused, yet stored state changed (rows before, after): {changed}"


def _assert_still_serving(site: Site) -> None:
    """A normal read and a normal write still work."""
    listing = _plain(
        site, "PROPFIND", "alice/interactions/", content=LISTING, headers={"Depth": "1"}
    )
    assert listing.status_code == 207, f"the server no longer lists: {listing.status_code}"
    assert site.planning_href in listing.text
    text = _ics(_vevent(f"afterwards-{time.monotonic_ns()}@test"))
    put = _plain(site, "PUT", "alice/personal/afterwards.ics", content=text)
    assert put.status_code in (201, 204), f"the server no longer stores: {put.status_code}"
    assert _plain(site, "GET", "alice/personal/afterwards.ics").status_code == 200


def _assert_no_injected_email_headers(world: World) -> None:
    """Every email the outbox holds renders with the usual headers only, each on one line, and
    goes to exactly one address; nothing stored for people carries a line break."""
    with world.database.session() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == Channel.EMAIL)
        ).all()
        assert rows, "no email in the outbox: nothing was checked"
        for row in rows:
            raw = bytes(email_for(row, "crm@example.com"))
            message = email.message_from_bytes(raw, policy=default)
            names = {name.lower() for name in message}
            assert names <= EMAIL_HEADERS, (
                f"injected headers {names - EMAIL_HEADERS} in {raw[:600]!r}"
            )
            recipients = getaddresses([str(v) for v in message.get_all("To", [])])
            assert len(recipients) == 1, f"one email, several recipients: {recipients}"
            assert EVIL not in str(message["To"])
        texts: list[Any] = list(
            session.execute(select(Interaction.subject, Interaction.location)).all()
        )
        texts += session.execute(select(Guest.name, Guest.address)).all()
        for value in (v for row in texts for v in row):
            assert len(value.splitlines()) <= 1, f"a line break was stored: {value!r}"
            assert "\x00" not in value, f"a NUL was stored: {value!r}"


def _served_event(site: Site, path: str, uid: str) -> tuple[str, Any]:
    got = _plain(site, "GET", path)
    assert got.status_code == 200, f"accepted, yet GET {path} answers {got.status_code}"
    assert "\x00" not in got.text
    events = [e for e in Calendar.from_ical(got.text).walk("VEVENT") if str(e.get("UID")) == uid]
    assert events, f"accepted, yet {path} does not hold the event {uid}"
    return got.text, events[0]


def _assert_time_range_query_answers(site: Site, calendar: str) -> None:
    query = (
        '<?xml version="1.0"?><C:calendar-query xmlns="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><getetag/></prop><C:filter>'
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20300101T000000Z" end="20310101T000000Z"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )
    answer = _hostile(site, "REPORT", f"/alice/{calendar}/", query, {"Depth": "1"})
    assert answer.status_code == 207


# ------------------------------------------------------------------ PUT of hostile iCalendar

Check = Callable[[Site, str, str, str, bytes], None]  # site, calendar, path, uid, body


def _whole(name: str, value: str) -> Check:
    def check(site: Site, calendar: str, path: str, uid: str, body: bytes) -> None:
        _, event = _served_event(site, path, uid)
        served = str(event.get(name, ""))
        assert served == value, f"{name} not stored whole: {len(served)} of {len(value)} chars"

    return check


def _stored(site: Site, calendar: str, path: str, uid: str, body: bytes) -> None:
    _served_event(site, path, uid)


def _attendees_kept(count: int) -> Check:
    def check(site: Site, calendar: str, path: str, uid: str, body: bytes) -> None:
        _, event = _served_event(site, path, uid)
        guests = {str(a).lower() for a in event.get("ATTENDEE", [])} - {"mailto:alice@example.com"}
        assert len(guests) == count, f"{len(guests)} of {count} attendees kept"

    return check


def _rule_kept(rule: str) -> Check:
    def check(site: Site, calendar: str, path: str, uid: str, body: bytes) -> None:
        _, event = _served_event(site, path, uid)
        served: Any = event["RRULE"]
        assert dict(served) == dict(vRecur.from_ical(rule)), served.to_ical()
        _assert_time_range_query_answers(site, calendar)

    return check


def _emails_clean(site: Site, calendar: str, path: str, uid: str, body: bytes) -> None:
    _assert_no_injected_email_headers(site.world)


@dataclass(frozen=True)
class PutCase:
    name: str
    body: Callable[[str], bytes]  # the UID to use -> the request body
    accepted: Check | None = None  # None: must be refused; else what acceptance must mean
    calendars: tuple[str, ...] = ("interactions", "personal")
    runaway: bool = False  # may keep a server busy: sent to a process of its own
    always: Check | None = None  # checked whatever the answer
    refusals: tuple[int, ...] = ()  # the statuses a refusal must use, when it matters


def _event(*extra: str, **fields: str) -> Callable[[str], bytes]:
    return lambda uid: _ics(_vevent(uid, *extra, **fields)).encode()


LINE_1MB = "ab" * 500_000
LINE_3MB = "ab" * 1_500_000  # under the body limit, over the object limit
ATTENDEES = [
    f"ATTENDEE;CN=Guest {n};PARTSTAT=NEEDS-ACTION:mailto:guest{n}@elsewhere.example"
    for n in range(10_000)
]

PUT_CASES = [
    PutCase(
        "dtend-before-dtstart",
        _event(start="DTSTART:20300108T140000Z", end="DTEND:20300108T120000Z"),
    ),
    PutCase(
        "february-30",
        _event(start="DTSTART:20240230T100000Z", end="DTEND:20240230T110000Z"),
    ),
    PutCase(
        "year-99999",
        _event(start="DTSTART:999990108T100000Z", end="DTEND:999990108T110000Z"),
    ),
    PutCase(
        "unknown-tzid",
        _event(
            start="DTSTART;TZID=Mars/Olympus_Mons:20300108T100000",
            end="DTEND;TZID=Mars/Olympus_Mons:20300108T110000",
        ),
        accepted=_stored,
    ),
    PutCase("missing-uid", lambda uid: _ics(_vevent(None)).encode()),
    PutCase(
        "two-vevents-with-different-uids",
        lambda uid: _ics(_vevent(uid), _vevent(f"other-{uid}")).encode(),
    ),
    PutCase("1mb-line", _event(f"DESCRIPTION:{LINE_1MB}"), _whole("DESCRIPTION", LINE_1MB)),
    PutCase(
        "3mb-line-over-the-object-limit",
        _event(f"DESCRIPTION:{LINE_3MB}"),
        refusals=(403, 413),  # RFC 4791 5.3.2.1 max-resource-size, or Content Too Large
    ),
    PutCase(
        "ten-thousand-attendees",
        _event(*ATTENDEES),
        _attendees_kept(len(ATTENDEES)),
        runaway=True,
    ),
    PutCase("vevent-in-valarm-1000-deep", _event(*_nested(1000)), _stored),
    PutCase("invalid-utf8", lambda uid: _ics(_vevent(uid)).encode() + b"\xff\xfe\xc3\x28"),
    PutCase("nul-byte", _event(summary="SUMMARY:Lunch\x00break"), _stored),
    PutCase(
        "rrule-secondly-without-end",
        _event("RRULE:FREQ=SECONDLY"),
        _rule_kept("FREQ=SECONDLY"),
        runaway=True,
    ),
    PutCase(
        "rrule-enormous-count",
        _event("RRULE:FREQ=SECONDLY;COUNT=2000000000"),
        _rule_kept("FREQ=SECONDLY;COUNT=2000000000"),
        runaway=True,
    ),
    PutCase(
        "rrule-that-never-occurs",
        _event("RRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30"),
        _rule_kept("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30"),
        runaway=True,
    ),
    PutCase(
        "rrule-interval-zero",
        _event("RRULE:FREQ=DAILY;INTERVAL=0"),
        _rule_kept("FREQ=DAILY;INTERVAL=0"),
        runaway=True,
    ),
    # CR/LF injection: notices of the interactions calendar go out by email.
    PutCase(
        "summary-with-raw-crlf-bcc",
        lambda uid: _invitation(uid, f"SUMMARY:Planning\r\nBcc: {EVIL}"),
        _emails_clean,
        ("interactions",),
        always=_emails_clean,
    ),
    PutCase(
        "summary-with-escaped-crlf-bcc",
        lambda uid: _invitation(uid, f"SUMMARY:Planning\\r\\nBcc: {EVIL}\\nX-Evil: 1"),
        _emails_clean,
        ("interactions",),
        always=_emails_clean,
    ),
    PutCase(
        "summary-with-unicode-line-breaks",
        lambda uid: _invitation(
            uid, f"SUMMARY:Planning\u2028Bcc: {EVIL}\u0085Cc: {EVIL}\x0bX-Evil: 1\x0c"
        ),
        _emails_clean,
        ("interactions",),
        always=_emails_clean,
    ),
    PutCase(
        "attendee-cn-with-rfc6868-newline-bcc",
        lambda uid: _invitation(
            uid,
            "SUMMARY:Planning",
            f'ATTENDEE;CN="Guest^nBcc: {EVIL}";PARTSTAT=NEEDS-ACTION:mailto:{GUEST}',
        ),
        _emails_clean,
        ("interactions",),
        always=_emails_clean,
    ),
    PutCase(
        "attendee-cn-with-raw-crlf-bcc",
        lambda uid: _invitation(
            uid,
            "SUMMARY:Planning",
            f'ATTENDEE;CN="Guest\r\nBcc: {EVIL}";PARTSTAT=NEEDS-ACTION:mailto:{GUEST}',
        ),
        _emails_clean,
        ("interactions",),
        always=_emails_clean,
    ),
    PutCase(
        "attendee-address-with-a-second-recipient",
        lambda uid: _invitation(
            uid,
            "SUMMARY:Planning",
            f"ATTENDEE;CN=Guest;PARTSTAT=NEEDS-ACTION:mailto:guest@elsewhere.example,{EVIL}",
        ),
        _emails_clean,
        ("interactions",),
        always=_emails_clean,
    ),
]


@pytest.mark.parametrize(
    ("case", "calendar"),
    [
        pytest.param(case, calendar, id=f"{calendar}-{case.name}")
        for case in PUT_CASES
        for calendar in case.calendars
    ],
)
def test_hostile_icalendar_is_refused_with_a_reason_or_stored_whole_and_never_half_applied(
    request: pytest.FixtureRequest, world: World, case: PutCase, calendar: str
) -> None:
    site = _site_for(request, world, case.runaway)
    uid = f"{case.name}@hostile"
    path = f"/alice/{calendar}/{case.name}.ics"
    body = case.body(uid)
    before = _state(site.world)
    response = _hostile(site, "PUT", path, body, {"Content-Type": "text/calendar"})
    if case.accepted is not None and response.status_code in (200, 201, 204):
        case.accepted(site, calendar, path, uid, body)
    else:
        _assert_refused(response, f"PUT {calendar} {case.name}")
        if case.refusals:
            assert response.status_code in case.refusals, (
                f"PUT {calendar} {case.name}: refused {response.status_code} "
                f"({response.text[:100]!r}), not one of {case.refusals}"
            )
        _assert_unchanged(site, before, f"PUT {calendar} {case.name}")
        assert _plain(site, "GET", path).status_code == 404
    if case.always is not None:
        case.always(site, calendar, path, uid, body)
    _assert_still_serving(site)


@pytest.mark.parametrize("calendar", ["interactions", "personal"])
def test_a_uid_already_stored_under_another_name_is_refused_and_the_first_is_kept(
    site: Site, calendar: str
) -> None:
    first = _hostile(site, "PUT", f"/alice/{calendar}/first.ics", _ics(_vevent("dup@hostile")))
    assert first.status_code == 201
    before = _state(site.world)
    again = _ics(_vevent("dup@hostile", summary="SUMMARY:Hijacked"))
    response = _hostile(site, "PUT", f"/alice/{calendar}/second.ics", again)
    _assert_refused(response, f"a second {calendar} href for one UID")
    _assert_unchanged(site, before, f"a second {calendar} href for one UID")
    _, event = _served_event(site, f"/alice/{calendar}/first.ics", "dup@hostile")
    assert str(event["SUMMARY"]) == "Lunch"
    assert _plain(site, "GET", f"alice/{calendar}/second.ics").status_code == 404
    _assert_still_serving(site)


# ------------------------------------------------------------------ bob, an attendee, writing


def _bobs_copy(site: Site) -> list[str]:
    got = _plain(site, "GET", f"bob/interactions/{site.planning_href}", login="bob")
    assert got.status_code == 200
    return _unfolded(got.text).rstrip("\r\n").split("\r\n")


def _bob_says(lines: list[str], attendee: str, *extra: str) -> list[str]:
    """Bob's attendee line replaced by ``attendee`` (and ``extra`` lines after it)."""
    out: list[str] = []
    for line in lines:
        if line.startswith("ATTENDEE") and line.lower().endswith("mailto:bob@example.com"):
            out += [attendee, *extra]
        else:
            out.append(line)
    return out


def _swapped_times(lines: list[str]) -> list[str]:
    """The event's DTSTART and DTEND swapped (not those of the VTIMEZONE before it)."""
    event = lines.index("BEGIN:VEVENT")
    start = next(i for i in range(event, len(lines)) if lines[i].startswith("DTSTART"))
    end = next(i for i in range(event, len(lines)) if lines[i].startswith("DTEND"))
    swapped = list(lines)
    swapped[start] = "DTEND" + lines[start][len("DTSTART") :]
    swapped[end] = "DTSTART" + lines[end][len("DTEND") :]
    return swapped


def _before_end(lines: list[str], *extra: str) -> list[str]:
    at_ = len(lines) - 1 - lines[::-1].index("END:VEVENT")
    return [*lines[:at_], *extra, *lines[at_:]]


def _text(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def _bob_confirmed(site: Site) -> None:
    with site.world.database.session() as session:
        statuses = session.execute(
            select(InteractionLink.status)
            .join(Interaction)
            .where(Interaction.href == site.planning_href)
        ).scalars()
        assert LinkStatus.CONFIRMED in set(statuses)


def _only_bobs_answer_changed(site: Site, before: dict[str, list[tuple[Any, ...]]]) -> None:
    after = _state(site.world)
    for name in ("bookings", "guests"):
        assert after[name] == before[name], f"an attendee's write changed the {name}"
    assert [r[:2] for r in after["links"]] == [r[:2] for r in before["links"]]


@dataclass(frozen=True)
class AttendeeCase:
    name: str
    body: Callable[[list[str]], bytes]  # bob's copy (unfolded lines) -> the request body
    accepted: Callable[[Site, dict[str, list[tuple[Any, ...]]]], None] | None = None
    runaway: bool = False


ATTENDEE_CASES = [
    AttendeeCase(
        "accepts-with-crlf-injected-cn-and-comment",
        lambda lines: _text(
            _bob_says(
                lines,
                f'ATTENDEE;CN="Bob^nBcc: {EVIL}";PARTSTAT=ACCEPTED:mailto:bob@example.com',
                f"COMMENT:Fine\\r\\nBcc: {EVIL}",
            )
        ),
        lambda site, before: _bob_confirmed(site),
    ),
    AttendeeCase(
        "partstat-with-raw-crlf-bcc",
        lambda lines: _text(
            _bob_says(
                lines, f"ATTENDEE;PARTSTAT=ACCEPTED\r\nBcc: {EVIL};ROLE=X:mailto:bob@example.com"
            )
        ),
        _only_bobs_answer_changed,
    ),
    AttendeeCase(
        "unknown-partstat",
        lambda lines: _text(_bob_says(lines, "ATTENDEE;PARTSTAT=X-EVIL:mailto:bob@example.com")),
    ),
    AttendeeCase("dtend-before-dtstart", lambda lines: _text(_swapped_times(lines))),
    AttendeeCase("invalid-utf8", lambda lines: _text(lines) + b"\xff\xfe"),
    AttendeeCase(
        "second-vevent-with-another-uid",
        lambda lines: _text([*lines[:-1], *_vevent("stowaway@hostile"), lines[-1]]),
    ),
    AttendeeCase(
        "vevent-in-valarm-1000-deep",
        lambda lines: _text(_before_end(lines, *_nested(1000))),
        _only_bobs_answer_changed,
    ),
    AttendeeCase(
        "ten-thousand-attendees",
        lambda lines: _text(_before_end(lines, *ATTENDEES)),
        _only_bobs_answer_changed,
        runaway=True,
    ),
]


@pytest.mark.parametrize("case", ATTENDEE_CASES, ids=lambda c: c.name)
def test_an_attendees_hostile_write_is_refused_or_only_answers_and_never_injects_email_headers(
    request: pytest.FixtureRequest, world: World, case: AttendeeCase
) -> None:
    site = _site_for(request, world, case.runaway)
    body = case.body(_bobs_copy(site))
    before = _state(site.world)
    path = f"/bob/interactions/{site.planning_href}"
    response = _hostile(site, "PUT", path, body, {"Content-Type": "text/calendar"}, login="bob")
    if case.accepted is not None and response.status_code in (200, 201, 204):
        case.accepted(site, before)
    else:
        _assert_refused(response, f"bob's PUT {case.name}")
        _assert_unchanged(site, before, f"bob's PUT {case.name}")
    _assert_no_injected_email_headers(site.world)
    _assert_still_serving(site)


# ------------------------------------------------------------------ hostile XML

_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>"
)
_XXE = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
_PARAMETER_XXE = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
_EXTERNAL_DTD = '<?xml version="1.0"?><!DOCTYPE d SYSTEM "file:///etc/passwd">'
_DEEP = "<x>" * 100_000 + "</x>" * 100_000

# method: (path, headers, body with one slot inside the element a request is about)
XML_REQUESTS = {
    "PROPFIND": (
        "/alice/interactions/",
        {"Depth": "1"},
        '<propfind xmlns="DAV:"><prop><getetag/><displayname>{}</displayname></prop></propfind>',
    ),
    "REPORT": (
        "/alice/interactions/",
        {"Depth": "1"},
        '<C:calendar-multiget xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<prop><getetag/><C:calendar-data/></prop><href>{}</href></C:calendar-multiget>",
    ),
    "PROPPATCH": (
        "/alice/personal/",
        {},
        '<propertyupdate xmlns="DAV:"><set><prop><displayname>{}</displayname></prop></set>'
        "</propertyupdate>",
    ),
}

# name: (prolog, slot, may be answered normally: the hostile part is inert)
XML_BODIES = {
    "billion-laughs": (_LAUGHS, "&j;", False),
    "external-entity-etc-passwd": (_XXE, "&xxe;", False),
    "external-parameter-entity-etc-passwd": (_PARAMETER_XXE, "x", False),
    "100000-nested-elements": ("", _DEEP, False),
    "external-dtd-etc-passwd": (_EXTERNAL_DTD, "x", True),
}


def _xml_cases() -> list[Any]:
    cases = [
        pytest.param(method, prolog + template.format(slot), inert, id=f"{method}-{name}")
        for method, (_, _, template) in XML_REQUESTS.items()
        for name, (prolog, slot, inert) in XML_BODIES.items()
    ]
    cases += [
        pytest.param(method, "this is not XML <<<&&&>>>", False, id=f"{method}-not-xml")
        for method in XML_REQUESTS
    ]
    return cases


@pytest.mark.parametrize(("method", "body", "inert"), _xml_cases())
def test_hostile_xml_is_refused_with_a_reason_and_changes_nothing(
    site: Site, method: str, body: str, inert: bool
) -> None:
    path, headers, _ = XML_REQUESTS[method]
    before = _state(site.world)
    response = _hostile(site, method, path, body, {**headers, "Content-Type": "application/xml"})
    if not (inert and response.status_code == 207):
        _assert_refused(response, f"{method} with hostile XML")
        _assert_unchanged(site, before, f"{method} with hostile XML")
    assert SECRET not in response.text
    _assert_still_serving(site)


# ------------------------------------------------------------------ path traversal

TRAVERSING_PUTS = [
    "/alice/interactions/../../bob/interactions/x.ics",
    "/alice/interactions/%2e%2e/%2e%2e/bob/interactions/x.ics",
    "/alice/interactions/..%2f..%2fbob%2finteractions%2fx.ics",
    "/alice/interactions/%2E%2E%2F%2E%2E%2Fbob%2Finteractions%2Fx.ics",
    "/alice/personal/../../bob/personal/x.ics",
    "/alice/personal/%2e%2e%2f%2e%2e%2fbob%2fpersonal%2fx.ics",
]


@pytest.mark.parametrize("target", TRAVERSING_PUTS)
def test_a_put_whose_path_climbs_into_another_users_calendar_is_refused(
    site: Site, target: str
) -> None:
    before = _state(site.world)
    response = _hostile(site, "PUT", target, _ics(_vevent("climber@hostile")))
    _assert_refused(response, f"PUT {target}")
    _assert_unchanged(site, before, f"PUT {target}")
    for path in ("bob/interactions/x.ics", "bob/personal/x.ics"):
        assert _plain(site, "GET", path, login="bob").status_code == 404
    _assert_still_serving(site)


MOVES = [
    ("personal", "{url}alice/personal/../../bob/personal/moved.ics"),
    ("personal", "{url}alice/personal/%2e%2e/%2e%2e/bob/personal/moved.ics"),
    ("personal", "{url}alice/personal/..%2f..%2fbob%2fpersonal%2fmoved.ics"),
    ("personal", "/alice/personal/../../bob/personal/moved.ics"),
    ("interactions", "{url}alice/interactions/../../bob/interactions/moved.ics"),
    ("interactions", "{url}alice/interactions/%2e%2e%2f%2e%2e%2fbob%2finteractions%2fmoved.ics"),
]


@pytest.mark.parametrize(("calendar", "destination"), MOVES)
def test_a_move_whose_destination_climbs_into_another_users_calendar_is_refused(
    site: Site, calendar: str, destination: str
) -> None:
    source = (
        "/alice/personal/dentist.ics"
        if calendar == "personal"
        else f"/alice/interactions/{site.planning_href}"
    )
    before = _state(site.world)
    header = destination.format(url=site.url)
    response = _hostile(site, "MOVE", source, headers={"Destination": header})
    _assert_refused(response, f"MOVE to {header}")
    _assert_unchanged(site, before, f"MOVE to {header}")
    assert _plain(site, "GET", source).status_code == 200
    assert _plain(site, "GET", f"bob/{calendar}/moved.ics", login="bob").status_code == 404
    _assert_still_serving(site)


MULTIGET_HREFS = [
    ("interactions", "/alice/interactions/../../bob/interactions/{bob}"),
    ("interactions", "/alice/interactions/%2e%2e/%2e%2e/bob/interactions/{bob}"),
    ("interactions", "/alice/interactions/..%2f..%2fbob%2finteractions%2f{bob}"),
    ("interactions", "/bob/interactions/{bob}"),
    ("personal", "/alice/personal/../../bob/personal/secret.ics"),
    ("personal", "/alice/personal/%2e%2e%2f%2e%2e%2fbob%2fpersonal%2fsecret.ics"),
]


@pytest.mark.parametrize(("calendar", "href"), MULTIGET_HREFS)
def test_a_multiget_href_that_climbs_into_another_users_calendar_reads_nothing(
    site: Site, calendar: str, href: str
) -> None:
    wanted = href.format(bob=site.bob_secret_href)
    body = (
        '<?xml version="1.0"?><C:calendar-multiget xmlns="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><getetag/><C:calendar-data/></prop>'
        f"<href>{wanted}</href></C:calendar-multiget>"
    )
    before = _state(site.world)
    response = _hostile(site, "REPORT", f"/alice/{calendar}/", body, {"Depth": "1"})
    assert SECRET not in response.text, f"bob's event read through {wanted}"
    if response.status_code == 207:
        assert "200 OK" not in response.text, response.text[:500]
    else:
        _assert_refused(response, f"multiget of {wanted}")
    _assert_unchanged(site, before, f"multiget of {wanted}")
    _assert_still_serving(site)


# ------------------------------------------------------------------ oversized bodies


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    """A body sent chunked, without Content-Length."""
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


OVERSIZED = [
    pytest.param("PUT", "/alice/personal/big.ics", False, id="PUT"),
    pytest.param("PUT", "/alice/interactions/big.ics", False, id="PUT-interactions"),
    pytest.param("PROPFIND", "/alice/interactions/", False, id="PROPFIND"),
    pytest.param("REPORT", "/alice/interactions/", False, id="REPORT"),
    pytest.param("PROPPATCH", "/alice/personal/", False, id="PROPPATCH"),
    pytest.param("PUT", "/alice/personal/big.ics", True, id="PUT-chunked"),
]


@pytest.mark.parametrize(("method", "path", "chunked"), OVERSIZED)
def test_a_body_over_the_configured_limit_is_refused_with_a_reason_and_stores_nothing(
    site: Site, method: str, path: str, chunked: bool
) -> None:
    size = BODY_LIMIT + 1
    head = _ics(_vevent("big@hostile", "DESCRIPTION:")).encode()
    body: bytes | Iterator[bytes] = head + b"x" * (size - len(head))
    if chunked:
        body = _chunks(size)
    before = _state(site.world)
    response = _hostile(site, method, path, body)
    _assert_refused(response, f"{method} of {size} bytes{' chunked' if chunked else ''}")
    assert response.status_code in (411, 413), response.status_code
    _assert_unchanged(site, before, f"{method} of {size} bytes")
    _assert_still_serving(site)

"""Recurring series at any date and any distance from their start: rooms never double-booked,
found by time-range queries and free-busy far ahead; rules that never occur refused with
bounded work; dates at datetime's limits answered with 4xx or rightly, never 500."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from icalendar import Calendar

from caldav_bridge.domain import recurrence
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.ical import freebusy
from caldav_bridge.ical.mapping import normalize_address
from tests.conftest import RunningServer

ROOM = "ATTENDEE;CUTYPE=ROOM:mailto:everest@example.com"


def _vevent(uid: str, start: str, end: str, *extra: str) -> list[str]:
    return [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART:{start}",
        f"DTEND:{end}",
        "SUMMARY:Meeting",
        "ORGANIZER:mailto:alice@example.com",
        *extra,
        "END:VEVENT",
    ]


def _calendar(*events: list[str]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    return "\r\n".join([*lines, *(line for e in events for line in e), "END:VCALENDAR", ""])


def _event(uid: str, start: str, end: str, *extra: str) -> str:
    return _calendar(_vevent(uid, start, end, *extra))


def _put(server: RunningServer, uid: str, text: str) -> httpx.Response:
    return httpx.put(
        f"{server.url}alice/interactions/{uid}.ics",
        content=text,
        auth=("alice", "alice"),
        headers={"Content-Type": "text/calendar"},
        timeout=120,
    )


def _room_answer(server: RunningServer, uid: str) -> str:
    text = httpx.get(f"{server.url}alice/interactions/{uid}.ics", auth=("alice", "alice")).text
    attendees = Calendar.from_ical(text).events[0].get("ATTENDEE", [])
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if normalize_address(attendee) == "everest@example.com":
            return str(attendee.params["PARTSTAT"])
    raise AssertionError("no room attendee")


def _booked(server: RunningServer, start: str, end: str, *extra: str) -> str:
    uid = f"{uuid.uuid4()}"
    answer = _put(server, uid, _event(uid, start, end, ROOM, *extra))
    assert answer.status_code == 201, answer.text
    return uid


@pytest.mark.parametrize(
    ("series", "meeting"),
    [
        # a weekly series that started three years before the meeting
        (("20270105T100000Z", "20270105T110000Z", "RRULE:FREQ=WEEKLY"), "20300108T103000Z"),
        # an open-ended hourly series, and a meeting 60 days later
        (("20300101T000000Z", "20300101T003000Z", "RRULE:FREQ=HOURLY"), "20300302T000000Z"),
        # a series far from its start: the year 2400
        (("20300107T090000Z", "20300107T100000Z", "RRULE:FREQ=DAILY"), "24000107T090000Z"),
    ],
)
def test_a_series_without_end_holds_its_room_at_any_date(
    server: RunningServer, series: tuple[str, str, str], meeting: str
) -> None:
    first = _booked(server, *series)
    assert _room_answer(server, first) == "ACCEPTED"
    start = datetime.strptime(meeting, "%Y%m%dT%H%M%SZ")
    end = f"{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}"
    second = _booked(server, meeting, end)
    assert _room_answer(server, second) == "DECLINED"


def test_two_series_without_end_clash_when_they_meet_years_later(server: RunningServer) -> None:
    # every third year from 2030 and every fifth from 2031: they first meet in 2036
    _booked(server, "20300101T100000Z", "20300101T110000Z", "RRULE:FREQ=YEARLY;INTERVAL=3")
    second = _booked(server, "20310101T100000Z", "20310101T110000Z", "RRULE:FREQ=YEARLY;INTERVAL=5")
    assert _room_answer(server, second) == "DECLINED"
    apart = _booked(server, "20300102T120000Z", "20300102T130000Z", "RRULE:FREQ=WEEKLY")
    assert _room_answer(server, apart) == "ACCEPTED"


def _report(server: RunningServer, day: str) -> str:
    query = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        f'<C:comp-filter name="VEVENT"><C:time-range start="{day}T000000Z" '
        f'end="{day}T235959Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>'
    )
    found = httpx.request(
        "REPORT",
        f"{server.url}alice/interactions/",
        content=query,
        headers={"Depth": "1"},
        auth=("alice", "alice"),
    )
    assert found.status_code == 207
    return found.text


def test_an_old_series_is_found_by_time_range_and_free_busy_far_ahead(
    server: RunningServer,
) -> None:
    uid = _booked(server, "20270105T100000Z", "20270105T110000Z", "RRULE:FREQ=WEEKLY")
    assert f"{uid}.ics" in _report(server, "20400103")  # a Tuesday
    assert f"{uid}.ics" not in _report(server, "20400104")
    far = datetime(2040, 1, 1, tzinfo=UTC)
    with server.world.database.session() as session:
        room = server.world.rooms(session)["everest"]
        busy = freebusy.busy_resource(session, room, far, far + timedelta(days=7))
    assert [b.start for b in busy] == [datetime(2040, 1, 3, 10, tzinfo=UTC)]


def _check(rule: str) -> None:
    """What the service checks of a new series starting on 1 January 2030."""
    start = datetime(2030, 1, 1, 10, tzinfo=UTC)
    stored = recurrence.checked_rule(rule, "UTC")
    recurrence.check_occurs(
        recurrence.Series(start, start + timedelta(hours=1), False, "UTC", stored)
    )


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYSETPOS=2",
        "FREQ=MINUTELY;BYSETPOS=2",
        "FREQ=WEEKLY;BYSETPOS=8",
        "FREQ=YEARLY;BYYEARDAY=366;BYMONTH=2",
        "FREQ=YEARLY;BYWEEKNO=53;BYMONTH=6",
        "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2,4",
        "FREQ=DAILY;UNTIL=20200101T000000Z",  # before DTSTART
    ],
)
def test_a_rule_that_never_occurs_is_refused_with_bounded_work(
    server: RunningServer, rule: str
) -> None:
    uid = f"{uuid.uuid4()}"
    answer = _put(server, uid, _event(uid, "20300101T100000Z", "20300101T110000Z", f"RRULE:{rule}"))
    assert answer.status_code == 400
    assert "never occurs" in answer.text or "UNTIL" in rule  # Radicale refuses that one
    with recurrence.budget() as spent, pytest.raises(InvalidInput, match="never occurs"):
        _check(rule)
    assert spent.spent <= 2 * 146_097  # two 400-year searches at most, not 8,000 years


@pytest.mark.parametrize(
    ("start", "end", "rule"),
    [
        ("99981230T100000Z", "99981230T110000Z", "RRULE:FREQ=DAILY"),
        ("99991230T100000Z", "99991231T230000Z", "RRULE:FREQ=HOURLY"),
        ("99990101T000000Z", "99990101T010000Z", "RRULE:FREQ=YEARLY;UNTIL=99991231T235959Z"),
        ("00010101T000000", "00010101T010000", "RRULE:FREQ=DAILY;COUNT=3"),
    ],
)
def test_a_series_at_the_limits_of_time_is_answered_never_with_500(
    server: RunningServer, start: str, end: str, rule: str
) -> None:
    uid = f"{uuid.uuid4()}"
    answer = _put(server, uid, _event(uid, start, end, rule, ROOM))
    assert answer.status_code in (201, 400), answer.text
    if answer.status_code == 201:
        assert f"{uid}.ics" in _report(server, start[:8])


def test_an_occurrence_moved_before_the_series_start_holds_the_room_then(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    series = _vevent(uid, "20300108T100000Z", "20300108T110000Z", "RRULE:FREQ=WEEKLY", ROOM)
    first = "RECURRENCE-ID:20300108T100000Z"
    moved = _vevent(uid, "20300106T100000Z", "20300106T110000Z", first, ROOM)
    answer = _put(server, uid, _calendar(series, moved))
    assert answer.status_code == 201, answer.text
    assert _room_answer(server, uid) == "ACCEPTED"
    clash = _booked(server, "20300106T103000Z", "20300106T113000Z")
    assert _room_answer(server, clash) == "DECLINED"
    assert f"{uid}.ics" in _report(server, "20300106")


def test_a_time_range_far_ahead_finds_a_rare_series_occurrence_by_occurrence(
    server: RunningServer,
) -> None:
    rare = "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO"  # 2044, 2072, 2112, 2140…
    uid = _booked(server, "20300101T100000Z", "20300101T110000Z", rare)
    daily = _booked(server, "20300101T120000Z", "20300101T130000Z", "RRULE:FREQ=DAILY")
    assert f"{uid}.ics" in _report(server, "21400229")
    assert f"{uid}.ics" not in _report(server, "21400228")
    assert f"{daily}.ics" in _report(server, "90000101")  # 2.5 million days on


@pytest.mark.parametrize(
    "extra",
    [
        "EXDATE;TZID=America/New_York:99991231T230000",
        "RRULE:FREQ=DAILY;UNTIL=99991231T230000",
    ],
)
def test_dates_at_the_end_of_time_in_a_zone_are_answered_never_with_500(
    server: RunningServer, extra: str
) -> None:
    uid = f"{uuid.uuid4()}"
    start, end = (
        "DTSTART;TZID=America/New_York:99991230T100000",
        "DTEND;TZID=America/New_York:99991230T110000",
    )
    text = _event(uid, "X", "X", extra).replace("DTSTART:X", start).replace("DTEND:X", end)
    if "RRULE" not in extra:
        text = text.replace("SUMMARY", "RRULE:FREQ=DAILY\r\nSUMMARY")
    answer = _put(server, uid, text)
    assert answer.status_code in (201, 400), answer.text


def _free_busy(server: RunningServer, start: str, end: str) -> httpx.Response:
    query = (
        '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f'<C:time-range start="{start}" end="{end}"/></C:free-busy-query>'
    )
    return httpx.request(
        "REPORT",
        f"{server.url}alice/interactions/",
        content=query,
        headers={"Depth": "1"},
        auth=("alice", "alice"),
        timeout=120,
    )


def test_free_busy_far_ahead_is_answered_and_too_wide_a_range_is_refused_with_the_reason(
    server: RunningServer,
) -> None:
    _booked(server, "20270105T100000Z", "20270105T110000Z", "RRULE:FREQ=HOURLY")
    far = _free_busy(server, "20400103T000000Z", "20400103T030000Z")
    assert far.status_code == 200, far.text
    assert "20400103T000000Z/20400103T030000Z" in far.text.replace("\r\n ", "")
    whole = _free_busy(server, "20300101T000000Z", "90000101T000000Z")  # 61 million hours
    assert whole.status_code == 400
    assert "at most 400 days" in whole.text


def _put_in(server: RunningServer, calendar: str, uid: str, text: str) -> httpx.Response:
    with httpx.Client(auth=("alice", "alice"), timeout=120) as client:
        if calendar != "interactions":
            client.request("MKCALENDAR", f"{server.url}alice/{calendar}/")
        return client.put(
            f"{server.url}alice/{calendar}/{uid}.ics",
            content=text,
            headers={"Content-Type": "text/calendar"},
        )


@pytest.mark.parametrize("calendar", ["interactions", "personal"])
@pytest.mark.parametrize(
    ("start", "rule", "reason"),
    [
        # Occurs from 2000-01-01 but never from its own start: a week is a whole number of
        # 7-minute steps, so the series never comes round to Saturday 00:00 from 00:01.
        ("20261207T000100Z", "FREQ=MINUTELY;INTERVAL=7;BYDAY=SA;BYHOUR=0;BYMINUTE=0", "divides"),
        ("20261207T000100Z", "FREQ=HOURLY;INTERVAL=5;BYDAY=SA;BYHOUR=0", "divides"),
        ("20261207T000000Z", "FREQ=DAILY;INTERVAL=7;BYDAY=SA", "never occurs"),  # a Monday
        ("20261207T000100Z", "FREQ=MINUTELY;INTERVAL=2;BYMINUTE=0", "never occurs"),
        # Radicale lists every occurrence of a rule with UNTIL: 1.3 million here.
        (
            "20270101T000000Z",
            "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY="
            + ",".join(map(str, range(1, 32)))
            + ";BYHOUR="
            + ",".join(map(str, range(24)))
            + ";UNTIL=21000101T000000Z",
            "more than 10,000 occurrences",
        ),
        ("20270101T000000Z", "FREQ=WEEKLY;UNTIL=99991231T000000Z", "more than 10,000"),
    ],
)
def test_a_rule_is_checked_from_the_object_s_own_start_before_radicale_expands_it(
    server: RunningServer, calendar: str, start: str, rule: str, reason: str
) -> None:
    uid = f"{uuid.uuid4()}"
    end = start[:9] + "23" + start[11:]
    answer = _put_in(server, calendar, uid, _event(uid, start, end, f"RRULE:{rule}"))
    assert answer.status_code == 400, answer.text
    assert reason in answer.text
    gone = httpx.get(f"{server.url}alice/{calendar}/{uid}.ics", auth=("alice", "alice"))
    assert gone.status_code == 404

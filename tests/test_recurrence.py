"""Recurring interactions: rules checked, occurrences expanded for rooms, free-busy and
calendar queries, and RRULE/EXDATE carried both ways through CalDAV."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar, Event, vCalAddress
from sqlalchemy import select

from caldav_bridge.domain import recurrence
from caldav_bridge.domain.errors import BookingConflict, InvalidInput
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus, ScheduleMessage
from caldav_bridge.domain.periods import Changes, Draft
from caldav_bridge.ical import freebusy
from caldav_bridge.ical.mapping import normalize_address, series_of
from tests.conftest import RunningServer, World
from tests.helpers import PARIS, at, create


def test_a_weekly_rule_keeps_the_local_time_across_a_clock_change() -> None:
    start = datetime(2030, 3, 20, 10, 0, tzinfo=PARIS)
    series = recurrence.Series(
        start.astimezone(UTC),
        (start + timedelta(hours=1)).astimezone(UTC),
        False,
        "Europe/Paris",
        "FREQ=WEEKLY;COUNT=3",
    )
    local = [s.astimezone(PARIS).strftime("%d %H:%M") for s, _ in recurrence.occurrences(series)]
    assert local == ["20 10:00", "27 10:00", "03 10:00"]  # 31 March 2030: summer time


def test_a_rule_without_end_is_expanded_in_any_window_and_excluded_dates_are_left_out() -> None:
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    series = recurrence.Series(
        start, start + timedelta(hours=1), False, "UTC", "FREQ=DAILY", "20300108T090000Z"
    )
    assert [s for s, _ in recurrence.occurrences(series, start, start + timedelta(days=3))] == [
        start,
        start + timedelta(days=2),
    ]
    far = datetime(9000, 6, 1, tzinfo=UTC)
    with recurrence.budget() as spent:
        found = recurrence.occurrences(series, far, far + timedelta(days=2))
    assert [s for s, _ in found] == [far.replace(hour=9), far.replace(day=2, hour=9)]
    assert spent.spent < 100  # work for the window, not for the 7,000 years before it
    assert recurrence.span(series) == (start, recurrence.FOREVER)


@pytest.mark.parametrize("rule", ["FREQ=SOMETIMES", "COUNT=3", "FREQ=WEEKLY;BYDAY=XX"])
def test_a_malformed_rule_is_refused_with_its_reason(rule: str) -> None:
    with pytest.raises(InvalidInput, match="recurrence rule"):
        recurrence.checked_rule(rule, "UTC")


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;INTERVAL=0",  # never moves: expanding it looped forever
        "FREQ=SECONDLY;COUNT=5",
        "FREQ=DAILY;COUNT=2000000000",
        "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30",  # never occurs: a search to the year 9999
        "FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=31",
    ],
)
def test_a_rule_that_would_hold_the_server_is_refused_with_its_reason(rule: str) -> None:
    with pytest.raises(InvalidInput, match="recurrence rule"):
        recurrence.checked_rule(rule, "UTC")


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "FREQ=MINUTELY;INTERVAL=30;COUNT=8",
    ],
)
def test_rare_but_real_rules_are_kept(rule: str) -> None:
    assert recurrence.checked_rule(rule, "UTC")


def test_a_weekly_interaction_holds_the_room_for_every_occurrence(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice, everest = users["alice"], world.rooms(session)["everest"]
        weekly = service.create(
            alice, Draft("Weekly review", at(7, 10), at(7, 11), rrule="FREQ=WEEKLY;COUNT=4")
        )
        service.book(alice, weekly, everest)
        assert weekly.last_ends_at == at(28, 11)
        third_week = create(service, users["bob"], "Clash", at(21, 10, 30), at(21, 11, 30))
        with pytest.raises(BookingConflict, match="Weekly review"):
            service.book(users["bob"], third_week, everest)
        fifth = datetime(2030, 2, 4, 10, tzinfo=PARIS)
        fifth_week = create(service, users["bob"], "Free", fifth, fifth + timedelta(hours=1))
        service.book(users["bob"], fifth_week, everest)


def test_excluding_an_occurrence_frees_the_room_then(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice, everest = users["alice"], world.rooms(session)["everest"]
        weekly = service.create(
            alice, Draft("Weekly review", at(7, 10), at(7, 11), rrule="FREQ=WEEKLY;COUNT=4")
        )
        service.book(alice, weekly, everest)
        assert service.edit(alice, weekly, Changes(exdates=(at(21, 10),)))
        assert weekly.sequence == 2  # booking, then the new exclusion
        clash = create(service, users["bob"], "Now free", at(21, 10), at(21, 11))
        service.book(users["bob"], clash, everest)


def test_free_busy_counts_every_occurrence(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        service.create(
            users["alice"],
            Draft("Daily stand-up", at(7, 9), at(7, 9, 15), rrule="FREQ=DAILY;COUNT=5"),
        )
        busy = freebusy.busy_user(session, users["alice"], at(7, 0), at(14, 0))
    assert [b.start for b in busy] == [at(day, 9).astimezone(UTC) for day in range(7, 12)]


def test_an_all_day_series_renders_its_until_as_a_date(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        holiday = service.create(
            users["alice"],
            Draft(
                "Trade fair",
                date(2030, 3, 4),
                date(2030, 3, 5),
                rrule="FREQ=DAILY;UNTIL=20300306",
            ),
        )
        event = Calendar.from_ical(holiday.ical).events[0]
        assert event["RRULE"]["UNTIL"] == [date(2030, 3, 6)]
        assert len(recurrence.occurrences(series_of(holiday))) == 3


# ------------------------------------------------------------------ through CalDAV


def _series_event(uid: str, *extra: str, organizer: str = "alice@example.com") -> str:
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
            "BEGIN:VTIMEZONE",
            "TZID:Europe/Paris",
            "BEGIN:STANDARD",
            "DTSTART:19701025T030000",
            "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
            "TZOFFSETFROM:+0200",
            "TZOFFSETTO:+0100",
            "END:STANDARD",
            "BEGIN:DAYLIGHT",
            "DTSTART:19700329T020000",
            "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
            "TZOFFSETFROM:+0100",
            "TZOFFSETTO:+0200",
            "END:DAYLIGHT",
            "END:VTIMEZONE",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20300101T000000Z",
            "DTSTART;TZID=Europe/Paris:20300108T120000",
            "DTEND;TZID=Europe/Paris:20300108T130000",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            "SUMMARY:Weekly lunch",
            f"ORGANIZER:mailto:{organizer}",
            *extra,
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def _put(server: RunningServer, login: str, uid: str, text: str) -> httpx.Response:
    return httpx.put(
        f"{server.url}{login}/interactions/{uid}.ics",
        content=text,
        auth=(login, login),
        headers={"Content-Type": "text/calendar"},
    )


def _room_answer(server: RunningServer, uid: str) -> str:
    text = httpx.get(f"{server.url}alice/interactions/{uid}.ics", auth=("alice", "alice")).text
    event = Calendar.from_ical(text).events[0]
    attendees = event.get("ATTENDEE", [])
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if normalize_address(attendee) == "everest@example.com":
            return str(attendee.params["PARTSTAT"])
    raise AssertionError("no room attendee")


def test_a_room_declines_a_series_when_one_occurrence_is_busy(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        taken = create(service, users["bob"], "Bob's lunch", at(22, 12), at(22, 13))
        service.book(users["bob"], taken, server.world.rooms(session)["everest"])
    room = "ATTENDEE;CUTYPE=ROOM:mailto:everest@example.com"
    clashing, sparing = f"{uuid.uuid4()}", f"{uuid.uuid4()}"
    assert _put(server, "alice", clashing, _series_event(clashing, room)).status_code == 201
    assert _room_answer(server, clashing) == "DECLINED"
    spared = _series_event(sparing, room, "EXDATE;TZID=Europe/Paris:20300122T120000")
    assert _put(server, "alice", sparing, spared).status_code == 201
    assert _room_answer(server, sparing) == "ACCEPTED"


def test_a_series_comes_back_with_its_rule_and_is_found_in_a_later_week(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    text = _series_event(uid, "EXDATE;TZID=Europe/Paris:20300115T120000")
    assert _put(server, "alice", uid, text).status_code == 201
    stored = httpx.get(f"{server.url}alice/interactions/{uid}.ics", auth=("alice", "alice"))
    event = Calendar.from_ical(stored.text).events[0]
    assert event["RRULE"]["FREQ"] == ["WEEKLY"]
    assert event["RRULE"]["COUNT"] == [4]
    excluded = [d.dt for d in event["EXDATE"].dts]
    assert excluded == [datetime(2030, 1, 15, 12, tzinfo=PARIS)]
    query = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT"><C:time-range start="{day}T000000Z" '
        'end="{day}T235959Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>'
    )
    for day, expected in (("20300129", True), ("20300115", False), ("20300205", False)):
        found = httpx.request(
            "REPORT",
            f"{server.url}alice/interactions/",
            content=query.format(day=day),
            headers={"Depth": "1"},
            auth=("alice", "alice"),
        )
        assert found.status_code == 207
        assert (f"{uid}.ics" in found.text) is expected, day


def test_an_invalid_rule_from_a_client_is_refused_with_400(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}"
    text = _series_event(uid).replace("RRULE:FREQ=WEEKLY;COUNT=4", "RRULE:FREQ=NEVER")
    answer = _put(server, "alice", uid, text)
    assert answer.status_code == 400
    assert "recurrence rule" in answer.text or "RRULE" in answer.text


def _invite_bob_weekly(server: RunningServer) -> str:
    uid = f"{uuid.uuid4()}"
    text = _series_event(uid, "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com")
    assert _put(server, "alice", uid, text).status_code == 201
    return uid


def _bob_answers(text: str, series: str, occurrence: str | None = None) -> str:
    """Bob's copy with his answer to the series, and to the second occurrence apart."""
    calendar = Calendar.from_ical(text)
    (event,) = [e for e in calendar.events if "RECURRENCE-ID" not in e]
    for attendee in event["ATTENDEE"]:
        if normalize_address(attendee) == "bob@example.com":
            attendee.params["PARTSTAT"] = series
    if occurrence:
        instance = Event()
        for name in ("UID", "DTSTAMP", "SUMMARY", "ORGANIZER", "SEQUENCE"):
            instance.add(name, event[name])
        second = datetime(2030, 1, 15, 12, tzinfo=PARIS)
        instance.add("recurrence-id", second)
        instance.add("dtstart", second)
        instance.add("dtend", second + timedelta(hours=1))
        bob = vCalAddress("mailto:bob@example.com")
        bob.params["PARTSTAT"] = occurrence
        instance.add("attendee", bob)
        calendar.add_component(instance)
    return str(calendar.to_ical().decode())


def test_an_attendee_declining_one_occurrence_changes_only_that_occurrence(
    server: RunningServer,
) -> None:
    uid = _invite_bob_weekly(server)
    bob_path = f"{server.url}bob/interactions/{uid}.ics"
    mine = httpx.get(bob_path, auth=("bob", "bob")).text
    answer = httpx.put(
        bob_path,
        content=_bob_answers(mine, "ACCEPTED", "DECLINED"),
        auth=("bob", "bob"),
        headers={"Content-Type": "text/calendar"},
    )
    assert answer.status_code in (201, 204), answer.text
    organizer_copy = httpx.get(
        f"{server.url}alice/interactions/{uid}.ics", auth=("alice", "alice")
    ).text
    events = Calendar.from_ical(organizer_copy).events
    (series,) = [e for e in events if "RECURRENCE-ID" not in e]
    (instance,) = [e for e in events if "RECURRENCE-ID" in e]
    assert instance.decoded("RECURRENCE-ID") == datetime(2030, 1, 15, 12, tzinfo=PARIS)

    def bob_in(event: Event) -> str:
        found = event["ATTENDEE"]
        for attendee in found if isinstance(found, list) else [found]:
            if normalize_address(attendee) == "bob@example.com":
                return str(attendee.params["PARTSTAT"])
        raise AssertionError("bob is not an attendee")

    assert (bob_in(series), bob_in(instance)) == ("ACCEPTED", "DECLINED")
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert interaction.links[0].status is LinkStatus.CONFIRMED
        busy = freebusy.busy_user(session, server.world.users(session)["bob"], at(7, 0), at(31, 0))
        replies = [
            Calendar.from_ical(m.ical).events[0]
            for m in session.scalars(
                select(ScheduleMessage).where(ScheduleMessage.method == "REPLY")
            )
        ]
    assert [b.start.astimezone(PARIS).day for b in busy] == [8, 22, 29]  # not the 15th
    assert sorted("RECURRENCE-ID" in r for r in replies) == [False, True]
    # The organizer's client saving its copy back (with the instance) changes nothing.
    again = httpx.put(
        f"{server.url}alice/interactions/{uid}.ics",
        content=organizer_copy,
        auth=("alice", "alice"),
        headers={"Content-Type": "text/calendar"},
    )
    assert again.status_code in (201, 204), again.text


def _instance(series: Event, occurrence: datetime, start: datetime, **extra: str) -> Event:
    instance = Event()
    for name in ("UID", "DTSTAMP", "SUMMARY", "ORGANIZER"):
        instance.add(name, series[name])
    instance.add("recurrence-id", occurrence)
    instance.add("dtstart", start)
    instance.add("dtend", start + timedelta(hours=1))
    for name, value in extra.items():
        instance.add(name, value)
    return instance


def test_the_organizer_cancels_one_occurrence_and_moves_another(server: RunningServer) -> None:
    uid = _invite_bob_weekly(server)
    path = f"{server.url}alice/interactions/{uid}.ics"
    calendar = Calendar.from_ical(httpx.get(path, auth=("alice", "alice")).text)
    (series,) = calendar.events
    second, third = (datetime(2030, 1, day, 12, tzinfo=PARIS) for day in (15, 22))
    calendar.add_component(_instance(series, second, second, status="CANCELLED"))
    calendar.add_component(_instance(series, third, third + timedelta(hours=2)))
    answer = httpx.put(
        path,
        content=calendar.to_ical(),
        auth=("alice", "alice"),
        headers={"Content-Type": "text/calendar"},
    )
    assert answer.status_code in (201, 204), answer.text
    stored = Calendar.from_ical(httpx.get(path, auth=("alice", "alice")).text).events
    (master,) = [e for e in stored if "RECURRENCE-ID" not in e]
    (moved,) = [e for e in stored if "RECURRENCE-ID" in e]
    assert [d.dt for d in master["EXDATE"].dts] == [second]
    assert moved.decoded("RECURRENCE-ID") == third
    assert moved.decoded("DTSTART") == third + timedelta(hours=2)
    with server.world.database.session() as session:
        busy = freebusy.busy_user(
            session, server.world.users(session)["alice"], at(7, 0), at(31, 0)
        )
        update = session.scalars(
            select(ScheduleMessage)
            .where(ScheduleMessage.method == "REQUEST")
            .order_by(ScheduleMessage.id.desc())
        ).first()
    starts = [b.start.astimezone(PARIS) for b in busy]
    assert [(s.day, s.hour) for s in starts] == [(8, 12), (22, 14), (29, 12)]
    assert update is not None
    assert "RECURRENCE-ID" in update.ical  # the attendee is sent the moved occurrence too


SAMPLES = Path(__file__).parent / "fixtures" / "samples"


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("exchange2010-master-and-override-rid-tzid-vs-allday.ics", {201}),
        ("exchange2010-overrides-before-master-rid-dtstart-mismatch.ics", {201}),
        ("google-publish-overrides-without-master.ics", {400}),  # instances, no series
        ("lotus-notes6-request-instance-override.ics", {400}),  # one instance, no series
    ],
)
def test_real_clients_series_with_instances_are_taken_or_refused_with_a_reason(
    server: RunningServer, sample: str, expected: set[int]
) -> None:
    text = (SAMPLES / sample).read_text(encoding="utf-8")
    answer = _put(server, "alice", f"sample-{uuid.uuid4().hex}", text)
    assert answer.status_code in expected, answer.text
    if answer.status_code >= 400:
        assert answer.text.strip()  # a reason, not a bare status
        return
    uid = str(Calendar.from_ical(text).events[0]["UID"])
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert interaction.rrule


def test_one_budget_bounds_all_the_expansion_inside_it() -> None:
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    series = recurrence.Series(start, start + timedelta(hours=1), False, "UTC", "FREQ=DAILY")
    with recurrence.budget(limit=100) as outer:
        with recurrence.budget() as inner:  # a nested one is the same budget
            assert inner is outer
            recurrence.occurrences(series, start, start + timedelta(days=20))
        with pytest.raises(InvalidInput, match="more than 100 steps"):
            recurrence.occurrences(series, start, start + timedelta(days=60))
    assert outer.spent > outer.limit

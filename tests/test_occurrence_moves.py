"""The organizer saving a recurring series again and again, each time with other occurrences
moved, moved back, moved elsewhere or cancelled: every save is taken (a new row for an
occurrence already moved broke a unique constraint: a 500), and the series holds exactly the
occurrences of the last save. The CRM's edits of a series' times keep only the moves that
still name an occurrence; outside attendees kept from one save to the next are kept too."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from icalendar import Calendar, Event

from caldav_bridge.cli.commands import main
from caldav_bridge.domain import recurrence
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.ical.mapping import series_of
from tests.conftest import RunningServer
from tests.helpers import event_text

# A weekly series of four, Tuesdays 12:00 UTC from 8 January 2030; a step names the
# occurrences (by day) it moves (to an hour of that day) or cancels (None).
Step = dict[int, int | None]
WEEKS = (8, 15, 22, 29)


def _noon(day: int, hour: int = 12) -> datetime:
    return datetime(2030, 1, day, hour, tzinfo=UTC)


def _series(uid: str, step: Step) -> str:
    calendar = Calendar.from_ical(
        event_text(uid, "RRULE:FREQ=WEEKLY;COUNT=4", "ORGANIZER:mailto:alice@example.com")
    )
    (series,) = calendar.events
    for day, hour in step.items():
        instance = Event()
        for name in ("UID", "DTSTAMP", "SUMMARY", "ORGANIZER"):
            instance.add(name, series[name])
        instance.add("recurrence-id", _noon(day))
        instance.add("dtstart", _noon(day, hour or 12))
        instance.add("dtend", _noon(day, hour or 12) + timedelta(hours=1))
        if hour is None:
            instance.add("status", "CANCELLED")
        calendar.add_component(instance)
    return calendar.to_ical().decode()


def _expected(step: Step) -> list[datetime]:
    moved = {day: _noon(day, hour) for day, hour in step.items() if hour is not None}
    return sorted(moved.get(day, _noon(day)) for day in WEEKS if step.get(day, 12) is not None)


def _occurrences(server: RunningServer, uid: str) -> list[datetime]:
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        return [start for start, _ in recurrence.occurrences(series_of(interaction))]


def _served(client: httpx.Client, uid: str) -> list[datetime]:
    """The occurrences of the event as the calendar serves it: the rule's, EXDATEs left
    out, instances at their times."""
    events = Calendar.from_ical(client.get(f"/alice/interactions/{uid}.ics").text).events
    (series,) = [e for e in events if "RECURRENCE-ID" not in e]
    excluded = {d.dt for d in series["EXDATE"].dts} if "EXDATE" in series else set()
    moved = {e.decoded("RECURRENCE-ID"): e.decoded("DTSTART") for e in events if e is not series}
    return sorted(moved.get(_noon(d), _noon(d)) for d in WEEKS if _noon(d) not in excluded)


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([{15: 14}, {15: 14, 22: 16}], id="move-a-then-also-b"),
        pytest.param([{15: 14}, {15: 9}], id="move-a-again-elsewhere"),
        pytest.param([{15: 14}, {}], id="move-a-then-back"),
        pytest.param([{15: 14}, {15: 14, 22: None}], id="move-a-then-cancel-b"),
        pytest.param([{15: 14}, {15: None}], id="move-a-then-cancel-a"),
        pytest.param([{15: 14, 22: 16}, {22: 9}, {15: 14, 22: 9, 29: 17}], id="many-saves"),
    ],
)
def test_each_save_of_a_series_with_moved_occurrences_is_taken_as_sent(
    server: RunningServer, steps: list[Step]
) -> None:
    uid = f"{uuid.uuid4()}"
    path = f"/alice/interactions/{uid}.ics"
    headers = {"Content-Type": "text/calendar"}
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        assert alice.put(path, content=_series(uid, {}), headers=headers).status_code == 201
        for step in steps:
            saved = alice.put(path, content=_series(uid, step), headers=headers)
            assert saved.status_code == 204, saved.text
            assert _served(alice, uid) == _expected(step)
            assert _occurrences(server, uid) == _expected(step)


def test_the_crm_moving_a_series_keeps_only_the_moves_that_still_name_an_occurrence(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        put = alice.put(
            f"/alice/interactions/{uid}.ics",
            content=_series(uid, {15: 14}),
            headers={"Content-Type": "text/calendar"},
        )
        assert put.status_code == 201, put.text
    with server.world.database.session() as session:
        found = InteractionService(session).find_by_uid(uid)
        assert found is not None
        interaction_id = found.id
    database = ["--database", server.world.database.url]
    # The same start, another rule: the 15th is still an occurrence, and stays moved.
    edit = ["interaction", "edit", str(interaction_id), "--repeat", "FREQ=WEEKLY;COUNT=3"]
    assert main([*database, *edit]) == 0
    assert _occurrences(server, uid) == [_noon(8), _noon(15, 14), _noon(22)]
    # An hour later: the moved occurrence of 12:00 is no more; the 15th occurs once, at 13:00.
    later = ["interaction", "edit", str(interaction_id), "--start", "2030-01-08T13:00"]
    assert main([*database, *later, "--timezone", "UTC"]) == 0
    assert _occurrences(server, uid) == [_noon(8, 13), _noon(15, 13), _noon(22, 13)]


def test_outside_attendees_kept_from_one_save_to_the_next_are_kept(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}"
    path = f"/alice/interactions/{uid}.ics"
    headers = {"Content-Type": "text/calendar"}
    organizer = "ORGANIZER:mailto:alice@example.com"
    guest = "ATTENDEE;CN=Zoe;PARTSTAT=NEEDS-ACTION:mailto:zoe@outside.example"
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        assert alice.put(path, content=event_text(uid, organizer, guest), headers=headers)
        for attendees in (
            [guest, "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:yann@outside.example"],
            [guest.replace("NEEDS-ACTION", "ACCEPTED").replace("Zoe", "Zoé")],
        ):
            saved = alice.put(path, content=event_text(uid, organizer, *attendees), headers=headers)
            assert saved.status_code == 204, saved.text
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert [(g.address, g.name, g.partstat) for g in interaction.guests] == [
            ("zoe@outside.example", "Zoé", "ACCEPTED")
        ]

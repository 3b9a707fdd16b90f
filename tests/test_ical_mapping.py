"""The iCalendar mapping of DESIGN.md section 2, both ways, and what real clients send."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event

from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, LinkStatus
from caldav_bridge.ical.mapping import (
    Answer,
    attendee_answer,
    event_fields,
    interaction_calendar,
    interaction_ical,
    normalize_address,
)
from tests.conftest import World
from tests.helpers import PARIS, at, create

SAMPLES = Path(__file__).parent / "fixtures" / "samples"


def _event(interaction: Interaction) -> Event:
    return Calendar.from_ical(interaction_ical(interaction)).events[0]


def _attendees(event: Event) -> dict[str, dict[str, str]]:
    return {normalize_address(a): dict(a.params) for a in event.attendees}


def test_owner_linked_users_and_rooms_become_organizer_and_attendees(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice = users["alice"]
        interaction = create(service, alice, "Réunion d'équipe", kind="meeting")
        service.link(alice, interaction, users["bob"], LinkStatus.INVITED)
        service.link(alice, interaction, users["carol"], LinkStatus.CONFIRMED)
        service.link(alice, interaction, users["dave"], LinkStatus.INVITED)
        service.answer(users["dave"], interaction, Answer.DECLINE)
        service.book(alice, interaction, world.rooms(session)["everest"])
        event = _event(interaction)
        assert normalize_address(event["ORGANIZER"]) == "alice@example.com"
        assert event["ORGANIZER"].params["CN"] == "Alice Martin"
        attendees = _attendees(event)
        assert attendees["alice@example.com"]["ROLE"] == "CHAIR"
        assert attendees["alice@example.com"]["PARTSTAT"] == "ACCEPTED"
        assert attendees["bob@example.com"]["PARTSTAT"] == "NEEDS-ACTION"
        assert attendees["bob@example.com"]["RSVP"] == "TRUE"
        assert attendees["carol@example.com"]["PARTSTAT"] == "ACCEPTED"
        assert attendees["carol@example.com"]["CN"] == "Carol Nguyễn"
        assert attendees["dave@example.com"]["PARTSTAT"] == "DECLINED"
        room = attendees["everest@example.com"]
        assert (room["CUTYPE"], room["ROLE"], room["PARTSTAT"]) == (
            "ROOM",
            "NON-PARTICIPANT",
            "ACCEPTED",
        )
        assert str(event["LOCATION"]) == "Everest room"
        assert str(event["SUMMARY"]) == "Réunion d'équipe"
        assert event.categories == ["meeting"]
        assert event["SEQUENCE"] == 1


def test_a_tentative_answer_is_shown_back_as_tentative(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        service.answer(users["bob"], interaction, Answer.TENTATIVE)
        assert _attendees(_event(interaction))["bob@example.com"]["PARTSTAT"] == "TENTATIVE"
        assert interaction.links[0].status is LinkStatus.INVITED


def test_a_cancelled_interaction_is_status_cancelled_and_transparent(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.cancel(users["alice"], interaction)
        event = _event(interaction)
        assert (str(event["STATUS"]), str(event["TRANSP"])) == ("CANCELLED", "TRANSPARENT")


def test_a_zoned_interaction_round_trips_with_its_vtimezone(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(
            service,
            users["carol"],
            "Kick-off — 東京",
            at(7, 9, 30),
            at(7, 10, 45),
            timezone="Asia/Tokyo",
            notes="Ligne 1\nLigne 2 : ünïcödé",
            location="Salle 3, 2ᵉ étage",
        )
        text = interaction_ical(interaction)
        calendar = Calendar.from_ical(text)
        assert [tz["TZID"] for tz in calendar.timezones] == ["Asia/Tokyo"]
        assert "DTSTART;TZID=Asia/Tokyo:20300107T173000" in text
        fields = event_fields(calendar.events[0], "UTC")
        assert fields.start == at(7, 9, 30)
        assert fields.end == at(7, 10, 45)
        assert fields.timezone == "Asia/Tokyo"
        assert (fields.subject, fields.notes, fields.location, fields.kind) == (
            "Kick-off — 東京",
            "Ligne 1\nLigne 2 : ünïcödé",
            "Salle 3, 2ᵉ étage",
            "meeting",
        )


def test_an_all_day_interaction_round_trips_as_dates(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(
            service,
            users["alice"],
            "Trade fair",
            date(2030, 3, 30),
            date(2030, 4, 1),
            kind="Intervention",
        )
        text = interaction_ical(interaction)
        assert "DTSTART;VALUE=DATE:20300330" in text
        assert "DTEND;VALUE=DATE:20300401" in text
        assert "VTIMEZONE" not in text
        fields = event_fields(Calendar.from_ical(text).events[0], "Europe/Paris")
        assert (fields.start, fields.end, fields.kind) == (
            date(2030, 3, 30),
            date(2030, 4, 1),
            "intervention",
        )


def test_a_utc_interaction_is_written_in_utc(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        start = datetime(2030, 1, 7, 8, tzinfo=UTC)
        interaction = create(service, users["dave"], start=start, end=start.replace(hour=9))
        text = interaction_ical(interaction)
        assert "DTSTART:20300107T080000Z" in text
        assert not interaction_calendar(interaction).timezones


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    subject=st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=80
    ).filter(lambda s: s.strip() == s and s),
    notes=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=200
    ).map(str.strip),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 3),
)
def test_text_and_times_survive_the_round_trip(subject: str, notes: str, minutes: int) -> None:
    from datetime import timedelta

    from caldav_bridge.domain.models import InteractionStatus, User

    owner = User(id=1, login="o", display_name="Owner", timezone="Europe/Paris", emails=[])
    start = datetime(2030, 6, 1, 9, tzinfo=PARIS)
    interaction = Interaction(
        id=1,
        uid="u-1",
        owner=owner,
        owner_id=1,
        subject=subject,
        notes=notes,
        kind="call",
        all_day=False,
        starts_at=start,
        ends_at=start + timedelta(minutes=minutes),
        last_ends_at=start + timedelta(minutes=minutes),
        timezone="Europe/Paris",
        location="",
        status=InteractionStatus.PLANNED,
        sequence=0,
        created_at=start,
        modified_at=start,
        links=[],
        bookings=[],
    )
    fields = event_fields(_event(interaction), "UTC")
    assert (fields.subject, fields.notes) == (subject, notes)
    assert (fields.start, fields.end) == (interaction.starts_at, interaction.ends_at)


# ------------------------------------------------------------------ answers from clients


def _with_attendee(params: str) -> Event:
    text = (
        "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20300101T100000Z\r\n"
        f"ATTENDEE;{params}:mailto:Bob@Example.com\r\nEND:VEVENT\r\n"
    )
    return Event.from_ical(text)


@pytest.mark.parametrize(
    ("partstat", "answer"),
    [
        ("ACCEPTED", Answer.ACCEPT),
        ("accepted", Answer.ACCEPT),
        ("CONFIRMED", Answer.ACCEPT),  # Apple Calendar, seen in the wild
        ("DECLINED", Answer.DECLINE),
        ("TENTATIVE", Answer.TENTATIVE),
        ("NEEDS-ACTION", None),
    ],
)
def test_an_attendee_partstat_is_read_as_their_answer(partstat: str, answer: Answer | None) -> None:
    event = _with_attendee(f"PARTSTAT={partstat}")
    assert attendee_answer(event, ["bob@example.com"]) == answer


def test_an_unknown_partstat_is_refused_clearly() -> None:
    with pytest.raises(InvalidInput, match="PARTSTAT 'CANCELLED'"):
        attendee_answer(_with_attendee("PARTSTAT=cancelled"), ["bob@example.com"])


def test_an_absent_attendee_gives_no_answer() -> None:
    assert attendee_answer(_with_attendee("PARTSTAT=ACCEPTED"), ["carol@example.com"]) is None


def test_addresses_are_matched_without_case_scheme_or_stray_spaces() -> None:
    assert normalize_address("MAILTO:CET Meeting Room@University.edu ") == (
        "cetmeetingroom@university.edu"
    )


# ------------------------------------------------------------------ real clients' files


def _sample(name: str) -> Calendar:
    return Calendar.from_ical((SAMPLES / name).read_bytes())


def test_apple_partstat_variants_are_understood() -> None:
    events = {
        str(e["SUMMARY"]): e for e in _sample("apple-macos11-attendee-partstat-variants.ics").events
    }
    assert attendee_answer(events["Tentative"], ["tentative@example.com"]) is Answer.TENTATIVE
    assert attendee_answer(events["Confirmed"], ["confirmed@example.com"]) is Answer.ACCEPT
    # TZID=America/Vancouver without a VTIMEZONE (Apple): the IANA zone is used.
    fields = event_fields(events["Confirmed"], "UTC")
    assert fields.timezone == "America/Vancouver"
    assert fields.start == datetime(2022, 7, 5, 16, tzinfo=UTC)


def test_a_windows_zone_name_maps_to_its_iana_zone() -> None:
    event = _sample("evolution-event-windows-tz-name-x-alt-desc.ics").events[0]
    fields = event_fields(event, "Europe/Paris")
    assert fields.timezone == "Asia/Dubai"
    assert fields.start == datetime(2021, 3, 31, 10, tzinfo=UTC)


def test_an_unknown_custom_zone_keeps_the_right_instant() -> None:
    event = _sample("exchange-cdo-2004-request-tzid-with-comma.ics").events[0]
    fields = event_fields(event, "Europe/Paris")
    assert fields.timezone == "Europe/Paris"
    assert fields.start == datetime(2004, 10, 12, 5, 30, tzinfo=UTC)


def test_libical_zone_prefixes_are_stripped() -> None:
    event = _sample("evolution-event-softwarestudio-tzid.ics").events[0]
    assert event_fields(event, "UTC").timezone == "America/Chicago"


def test_groupwise_resource_address_with_spaces_is_matched() -> None:
    event = _sample("groupwise7-request-resource-space-in-mailto.ics").events[0]
    addresses = {normalize_address(a) for a in event.attendees}
    assert "cetmeetingroom@university.edu" in addresses


def test_an_event_with_duration_instead_of_dtend_is_read() -> None:
    event = _sample("obm-request-room-resource-8-attendees.ics").events[0]
    fields = event_fields(event, "Europe/Paris")
    assert fields.end > fields.start


def test_outlook_tab_folded_all_day_event_is_read() -> None:
    event = _sample("outlook2007-publish-room-resource-tab-folding.ics").events[0]
    fields = event_fields(event, "Europe/Paris")
    assert isinstance(fields.start, date)
    assert not isinstance(fields.start, datetime)

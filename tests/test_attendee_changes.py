"""What an attendee may change (RFC 6638 3.2.2.1, ``attendee_changes``): their own
PARTSTAT and their per-user data. A copy changing what only the organizer may (DESCRIPTION,
SUMMARY, LOCATION, the times) is refused with 403 and the CalDAV precondition, never dropped in
silence; the CRM page refuses the attendee's edit alike. What Apple Calendar and Thunderbird
write for themselves when they save an attendee's copy is not such a change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from icalendar import Alarm, Calendar

from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.ical.mapping import normalize_address
from tests.conftest import RunningServer, World
from tests.helpers import create, crm_pages

NOTES = "Agenda:\nbudget\nhiring"


def _meeting(world: World, notes: str = NOTES) -> tuple[int, str]:
    """alice's meeting with notes, bob invited: (id, href)."""
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"], "Planning", notes=notes, location="HQ")
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        return interaction.id, interaction.href


def _bobs_copy(server: RunningServer, href: str) -> Calendar:
    answer = httpx.get(f"{server.url}bob/interactions/{href}", auth=("bob", "bob"))
    assert answer.status_code == 200
    return Calendar.from_ical(answer.text)


def _accepting(calendar: Calendar) -> Calendar:
    for attendee in calendar.events[0]["ATTENDEE"]:
        if normalize_address(attendee) == "bob@example.com":
            attendee.params["PARTSTAT"] = "ACCEPTED"
    return calendar


def _put(server: RunningServer, href: str, text: str | bytes) -> httpx.Response:
    return httpx.put(
        f"{server.url}bob/interactions/{href}",
        content=text,
        auth=("bob", "bob"),
        headers={"Content-Type": "text/calendar"},
        timeout=30,
    )


def _stored(world: World, interaction_id: int) -> tuple[str, str, str, LinkStatus]:
    with world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        bob = next(k for k in interaction.links if k.user.login == "bob")
        return interaction.subject, interaction.notes, interaction.location, bob.status


CHANGES = {
    "DESCRIPTION": ("description", "Agenda: bob's party"),
    "SUMMARY": ("summary", "Bob's party"),
    "LOCATION": ("location", "Bob's place"),
    "DTSTART/DTEND": ("dtstart", datetime(2030, 1, 7, 8, 30, tzinfo=UTC)),
}


@pytest.mark.parametrize("changed", CHANGES.keys())
def test_an_attendee_changing_the_organizers_properties_is_refused(
    server: RunningServer, changed: str
) -> None:
    interaction_id, href = _meeting(server.world)
    calendar = _accepting(_bobs_copy(server, href))
    name, value = CHANGES[changed]
    event = calendar.events[0]
    event.pop(name.upper())
    event.add(name, value)
    answer = _put(server, href, calendar.to_ical())
    assert answer.status_code == 403
    assert "allowed-attendee-scheduling-object-change" in answer.text
    assert changed in answer.text  # the reason names what only the organizer may change
    assert _stored(server.world, interaction_id) == ("Planning", NOTES, "HQ", LinkStatus.INVITED)


def test_the_crm_page_refuses_an_attendees_edit_of_the_notes_alike(server: RunningServer) -> None:
    interaction_id, _ = _meeting(server.world)
    bob, csrf = crm_pages(server.url, "bob")
    form = {
        "subject": "Planning",
        "start": "2030-01-07T10:00",
        "end": "2030-01-07T11:00",
        "location": "HQ",
        "notes": "Agenda: bob's party",
        "csrf": csrf,
    }
    assert bob.post(f"interactions/{interaction_id}/edit", data=form).status_code == 403
    assert _stored(server.world, interaction_id)[1] == NOTES


def _alarm() -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", "Reminder")
    alarm.add("trigger", timedelta(minutes=-15))
    return alarm


def test_apple_calendars_copy_of_an_answer_is_taken(server: RunningServer) -> None:
    """Apple rewrites DTSTAMP and LAST-MODIFIED, adds its X-APPLE- properties, an alarm and
    TRANSP, and writes the notes back with its own line breaks (QUIRKS.md)."""
    interaction_id, href = _meeting(server.world)
    calendar = _accepting(_bobs_copy(server, href))
    calendar["PRODID"] = "-//Apple Inc.//macOS 15.0//EN"
    event = calendar.events[0]
    now = datetime.now(UTC)
    for name in ("DTSTAMP", "LAST-MODIFIED", "TRANSP", "DESCRIPTION"):
        event.pop(name)
    event.add("dtstamp", now)
    event.add("last-modified", now)
    event.add("transp", "TRANSPARENT")
    event.add("description", NOTES.replace("\n", "\r\n") + "\r\n")
    event.add("x-apple-travel-advisory-behavior", "AUTOMATIC")
    event.add_component(_alarm())
    answer = _put(server, href, calendar.to_ical())
    assert answer.status_code == 204, answer.text
    assert _stored(server.world, interaction_id) == ("Planning", NOTES, "HQ", LinkStatus.CONFIRMED)


def test_an_empty_description_from_apple_is_no_change_of_no_notes(server: RunningServer) -> None:
    """The sample apple-macos11-attendee-partstat-variants.ics writes ``DESCRIPTION:``."""
    interaction_id, href = _meeting(server.world, notes="")
    text = _accepting(_bobs_copy(server, href)).to_ical().decode()
    assert "DESCRIPTION" not in text
    text = text.replace("SUMMARY:Planning\r\n", "SUMMARY:Planning\r\nDESCRIPTION:\r\n")
    assert _put(server, href, text).status_code == 204
    assert _stored(server.world, interaction_id)[3] is LinkStatus.CONFIRMED


def test_thunderbirds_copy_of_an_answer_is_taken(server: RunningServer) -> None:
    """Thunderbird keeps X-MOZ-RECEIVED-SEQUENCE, X-MOZ-RECEIVED-DTSTAMP and its generation
    counters on a received invitation, and stamps what it saves."""
    interaction_id, href = _meeting(server.world)
    calendar = _bobs_copy(server, href)
    calendar["PRODID"] = "-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN"
    event = calendar.events[0]
    for attendee in event["ATTENDEE"]:
        if normalize_address(attendee) == "bob@example.com":
            attendee.params["PARTSTAT"] = "DECLINED"
    received = event["DTSTAMP"].to_ical().decode()
    event.pop("DTSTAMP")
    event.add("dtstamp", datetime.now(UTC))
    event.add("x-moz-received-sequence", str(event["SEQUENCE"]))
    event.add("x-moz-received-dtstamp", received)
    event.add("x-moz-generation", "2")
    event.add("x-moz-lastack", received)
    event.add_component(_alarm())
    answer = _put(server, href, calendar.to_ical())
    assert answer.status_code == 204, answer.text
    assert _stored(server.world, interaction_id) == ("Planning", NOTES, "HQ", LinkStatus.DECLINED)

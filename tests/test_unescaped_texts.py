"""Text values with commas or semicolons a client left unescaped (against RFC 5545 3.3.11, as
many writers do) are kept whole: in the interactions calendar, in the CRM, and in one's own
calendars, whatever the property (SUMMARY, DESCRIPTION, LOCATION, COMMENT, UID, X-). Values
whose commas separate items (CATEGORIES, RESOURCES, RRULE, EXDATE) keep their items."""

from __future__ import annotations

import uuid

import httpx
import pytest
from icalendar import Calendar

from caldav_bridge.domain.interactions import InteractionService
from tests.conftest import RunningServer
from tests.helpers import event_text

SUMMARY = "Dentist, then lunch; then back"
DESCRIPTION = "Bring: forms, the card; and, if you can, a pen"
LOCATION = "12, rue de la Paix; 2nd floor, left"
COMMENT = "first, second"
X_NOTE = "one, two"


def _lines() -> tuple[str, ...]:
    return (
        f"DESCRIPTION:{DESCRIPTION}",
        f"LOCATION:{LOCATION}",
        f"COMMENT:{COMMENT}",
        f"X-BRIDGE-NOTE:{X_NOTE}",
        "CATEGORIES:Meeting,Health",
        "RESOURCES:Projector,Whiteboard",
        "RRULE:FREQ=WEEKLY;BYDAY=TU,TH;COUNT=4",
        "EXDATE:20300110T120000Z,20300115T120000Z",
    )


def _put(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.put(path, content=text, headers={"Content-Type": "text/calendar"})


def _served(client: httpx.Client, path: str) -> Calendar:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return Calendar.from_ical(answer.text)


@pytest.mark.parametrize("uid_text", ["plain", "with, a comma"])
def test_unescaped_commas_in_an_interaction_are_kept_whole(
    server: RunningServer, uid_text: str
) -> None:
    uid = f"{uuid.uuid4()} {uid_text}"
    path = f"/alice/interactions/{uuid.uuid4()}.ics"
    text = event_text(uid, "ORGANIZER:mailto:alice@example.com", *_lines(), summary=SUMMARY)
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        assert _put(alice, path, text).status_code == 201
        (event,) = _served(alice, path).events
    assert (str(event["UID"]), str(event["SUMMARY"])) == (uid, SUMMARY)
    assert (str(event["DESCRIPTION"]), str(event["LOCATION"])) == (DESCRIPTION, LOCATION)
    assert [str(d) for d in event["RRULE"]["BYDAY"]] == ["TU", "TH"]
    assert len(event["EXDATE"].dts) == 2
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert (interaction.subject, interaction.notes) == (SUMMARY, DESCRIPTION)
        assert (interaction.location, interaction.kind) == (LOCATION, "meeting")


def test_unescaped_commas_in_ones_own_calendar_are_kept_whole(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}, imported"
    text = event_text(uid, *_lines(), summary=SUMMARY)
    with httpx.Client(base_url=server.url, auth=("bob", "bob"), timeout=30) as bob:
        assert bob.request("MKCALENDAR", "/bob/personal/").status_code == 201
        assert _put(bob, "/bob/personal/imported.ics", text).status_code == 201
        (event,) = _served(bob, "/bob/personal/imported.ics").events
        # The whole UID is the item's: the calendar knows it under that UID, not a prefix.
        again = _put(bob, "/bob/personal/twice.ics", text)
        assert again.status_code == 409, again.text
    assert str(event["UID"]) == uid
    assert str(event["SUMMARY"]) == SUMMARY
    assert (str(event["DESCRIPTION"]), str(event["LOCATION"])) == (DESCRIPTION, LOCATION)
    assert str(event["COMMENT"]) == COMMENT
    assert [str(c) for c in event["CATEGORIES"].cats] == ["Meeting", "Health"]
    # Served as the client wrote it (its own readers read the values whole, as above).
    assert _served_text(server, "bob", "imported.ics") == text


def _served_text(server: RunningServer, login: str, name: str) -> str:
    return httpx.get(f"{server.url}{login}/personal/{name}", auth=(login, login)).text


def test_a_well_escaped_event_is_stored_as_it_came(server: RunningServer) -> None:
    text = event_text(
        f"{uuid.uuid4()}",
        r"DESCRIPTION:Already\, escaped\; fine",
        "CATEGORIES:Meeting,Health",
        summary="No comma here",
    )
    with httpx.Client(base_url=server.url, auth=("bob", "bob"), timeout=30) as bob:
        assert bob.request("MKCALENDAR", "/bob/personal/").status_code == 201
        assert _put(bob, "/bob/personal/kept.ics", text).status_code == 201
    served = _served_text(server, "bob", "kept.ics")
    assert r"DESCRIPTION:Already\, escaped\; fine" in served
    assert "CATEGORIES:Meeting,Health" in served

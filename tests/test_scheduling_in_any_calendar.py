"""RFC 6638 schedules every calendar of a home: a meeting organised in "Work" is an interaction
like one saved in "CRM interactions", and it stays where it was saved; each user's calendars
hold one copy of it; a meeting moves between a user's calendars for that user only."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import httpx
from icalendar import Calendar
from sqlalchemy import select

from caldav_bridge.domain.models import Interaction, InteractionStatus, LinkStatus, ScheduleMessage
from tests.conftest import RunningServer
from tests.helpers import link_status, sync_changes
from tests.test_scheduling import _answered, _attendee, _attendees, _client, _event, _put

D, C = "DAV:", "urn:ietf:params:xml:ns:caldav"
_MKCALENDAR = (
    '<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>{}</D:displayname>'
    "</D:prop></D:set></C:mkcalendar>"
)


def _calendar(client: httpx.Client, path: str, name: str) -> None:
    assert client.request("MKCALENDAR", path, content=_MKCALENDAR.format(name)).status_code == 201


def _names(client: httpx.Client, path: str) -> set[str]:
    body = '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
    answer = client.request("PROPFIND", path, content=body, headers={"Depth": "1"})
    assert answer.status_code == 207
    hrefs = [e.text or "" for e in ET.fromstring(answer.content).iter(f"{{{D}}}href")]
    return {href.rsplit("/", 1)[1] for href in hrefs if not href.endswith("/")}


def _move(client: httpx.Client, source: str, target: str) -> httpx.Response:
    return client.request("MOVE", source, headers={"Destination": f"{client.base_url}{target}"})


def _interaction(server: RunningServer, uid: str) -> Interaction:
    with server.world.database.session() as session:
        found = session.scalar(select(Interaction).where(Interaction.uid == uid))
        assert found is not None
        return found


def _inbox_methods(server: RunningServer, login: str) -> list[str]:
    with server.world.database.session() as session:
        user = server.world.users(session)[login]
        texts = session.scalars(
            select(ScheduleMessage.ical).where(ScheduleMessage.user_id == user.id)
        ).all()
    return [str(Calendar.from_ical(t)["METHOD"]) for t in texts]


def _meeting(uid: str, start: str = "20300108T120000Z", end: str = "20300108T130000Z") -> str:
    return _event(
        uid,
        _attendee("bob@example.com"),
        _attendee("everest@example.com", CUTYPE="ROOM"),
        start=start,
        end=end,
    )


def test_a_meeting_saved_in_a_calendar_of_the_organizers_own_is_scheduled_and_stays_there(
    server: RunningServer,
) -> None:
    alice, bob = _client(server, "alice"), _client(server, "bob")
    _calendar(alice, "/alice/work/", "Work")
    answer = _put(alice, "/alice/work/review.ics", _meeting("review"))
    assert answer.status_code == 201, answer.text
    assert answer.headers["Schedule-Tag"]
    interaction = _interaction(server, "review")
    assert link_status(server.world, interaction.id, "bob") is LinkStatus.INVITED
    assert _inbox_methods(server, "bob") == ["REQUEST"]
    assert "review.ics" in _names(bob, "/bob/interactions/")
    # One copy in the organizer's client: in Work, not in CRM interactions.
    assert _names(alice, "/alice/work/") == {"review.ics"}
    assert _names(alice, "/alice/interactions/") == set()
    got = alice.get("/alice/work/review.ics")
    assert got.headers["Schedule-Tag"] == answer.headers["Schedule-Tag"]
    attendees = _attendees(got.text)
    assert attendees["everest@example.com"]["PARTSTAT"] == "ACCEPTED"  # the room answered
    assert attendees["bob@example.com"]["PARTSTAT"] == "NEEDS-ACTION"


def test_answers_and_changes_reach_the_calendar_that_holds_the_meeting_bysync_changes(
    server: RunningServer,
) -> None:
    alice, bob = _client(server, "alice"), _client(server, "bob")
    _calendar(alice, "/alice/work/", "Work")
    _put(alice, "/alice/work/review.ics", _meeting("review"))
    token, _ = sync_changes(alice, "/alice/work/")
    copy = bob.get("/bob/interactions/review.ics").text
    answer = _put(
        bob, "/bob/interactions/review.ics", _answered(copy, "bob@example.com", "ACCEPTED")
    )
    assert answer.status_code == 204, answer.text
    token, changed = sync_changes(alice, "/alice/work/", token)
    assert changed == {"review.ics": 200}
    assert (
        _attendees(alice.get("/alice/work/review.ics").text)["bob@example.com"]["PARTSTAT"]
        == "ACCEPTED"
    )
    # The organizer moves it in Work: SEQUENCE grows and Bob is told.
    moved = _put(
        alice, "/alice/work/review.ics", _meeting("review", "20300109T120000Z", "20300109T130000Z")
    )
    assert moved.status_code == 204, moved.text
    assert _interaction(server, "review").sequence == 1
    assert _inbox_methods(server, "bob") == ["REQUEST", "REQUEST"]
    assert sync_changes(alice, "/alice/interactions/")[1] == {}


def test_deleting_the_meeting_in_its_calendar_cancels_it(server: RunningServer) -> None:
    alice, bob = _client(server, "alice"), _client(server, "bob")
    _calendar(alice, "/alice/work/", "Work")
    _put(alice, "/alice/work/review.ics", _meeting("review"))
    token, _ = sync_changes(bob, "/bob/interactions/")
    assert alice.delete("/alice/work/review.ics").status_code == 200
    assert _interaction(server, "review").status is InteractionStatus.CANCELLED
    assert _inbox_methods(server, "bob") == ["REQUEST", "CANCEL"]
    assert sync_changes(bob, "/bob/interactions/", token)[1] == {"review.ics": 404}
    assert _names(alice, "/alice/work/") == set()


def test_an_event_without_attendees_in_a_calendar_of_ones_own_is_stored_as_written(
    server: RunningServer,
) -> None:
    alice = _client(server, "alice")
    _calendar(alice, "/alice/work/", "Work")
    text = _event("dentist", summary="Dentist").replace(
        "ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:alice@example.com\r\n", ""
    )
    assert _put(alice, "/alice/work/dentist.ics", text).status_code == 201
    with server.world.database.session() as session:
        assert session.scalar(select(Interaction).where(Interaction.uid == "dentist")) is None
    got = alice.get("/alice/work/dentist.ics")
    assert "Schedule-Tag" not in got.headers
    assert set(got.text.splitlines()) == set(text.splitlines()) - {""}


def test_a_users_calendars_hold_one_copy_of_a_meeting(server: RunningServer) -> None:
    alice = _client(server, "alice")
    _calendar(alice, "/alice/work/", "Work")
    _calendar(alice, "/alice/team/", "Team")
    _put(alice, "/alice/work/review.ics", _meeting("review"))
    for path in ("/alice/interactions/review.ics", "/alice/team/review.ics"):
        refused = _put(alice, path, _meeting("review"))
        assert refused.status_code == 403, refused.text
        assert "unique-scheduling-object-resource" in refused.text
    other_name = _put(alice, "/alice/work/copy.ics", _meeting("review"))
    assert other_name.status_code == 409, other_name.text
    assert "no-uid-conflict" in other_name.text
    assert _names(alice, "/alice/work/") == {"review.ics"}


def test_moving_a_meeting_between_the_organizers_calendars_tells_nobody(
    server: RunningServer,
) -> None:
    alice = _client(server, "alice")
    _calendar(alice, "/alice/work/", "Work")
    _put(alice, "/alice/work/review.ics", _meeting("review"))
    work, _ = sync_changes(alice, "/alice/work/")
    crm, _ = sync_changes(alice, "/alice/interactions/")
    tag = alice.get("/alice/work/review.ics").headers["Schedule-Tag"]
    renamed = _move(alice, "/alice/work/review.ics", "/alice/interactions/other.ics")
    assert renamed.status_code == 403, renamed.text
    moved = _move(alice, "/alice/work/review.ics", "/alice/interactions/review.ics")
    assert moved.status_code == 201, moved.text
    assert sync_changes(alice, "/alice/work/", work)[1] == {"review.ics": 404}
    assert sync_changes(alice, "/alice/interactions/", crm)[1] == {"review.ics": 200}
    assert alice.get("/alice/interactions/review.ics").headers["Schedule-Tag"] == tag
    assert _inbox_methods(server, "bob") == ["REQUEST"]
    back = _move(alice, "/alice/interactions/review.ics", "/alice/work/review.ics")
    assert back.status_code == 201, back.text
    assert _names(alice, "/alice/work/") == {"review.ics"}
    assert _names(alice, "/alice/interactions/") == set()


def test_an_attendee_keeps_an_invitation_in_a_calendar_of_their_own(
    server: RunningServer,
) -> None:
    alice, bob = _client(server, "alice"), _client(server, "bob")
    _calendar(bob, "/bob/personal/", "Personal")
    _put(alice, "/alice/interactions/review.ics", _meeting("review"))
    assert _move(bob, "/bob/interactions/review.ics", "/bob/personal/review.ics").status_code == 201
    assert _names(bob, "/bob/interactions/") == set()
    token, _ = sync_changes(bob, "/bob/personal/")
    _put(
        alice,
        "/alice/interactions/review.ics",
        _meeting("review", "20300109T120000Z", "20300109T130000Z"),
    )
    assert sync_changes(bob, "/bob/personal/", token)[1] == {"review.ics": 200}
    copy = bob.get("/bob/personal/review.ics").text
    assert "20300109T120000Z" in copy
    answer = _put(bob, "/bob/personal/review.ics", _answered(copy, "bob@example.com", "ACCEPTED"))
    assert answer.status_code == 204, answer.text
    assert (
        link_status(server.world, _interaction(server, "review").id, "bob") is LinkStatus.CONFIRMED
    )
    assert bob.delete("/bob/personal/review.ics").status_code == 200  # declines
    assert (
        link_status(server.world, _interaction(server, "review").id, "bob") is LinkStatus.DECLINED
    )
    assert _names(bob, "/bob/personal/") == set()


def test_a_deleted_calendar_gives_its_meetings_back_to_the_interactions_calendar(
    server: RunningServer,
) -> None:
    alice, bob = _client(server, "alice"), _client(server, "bob")
    _calendar(alice, "/alice/work/", "Work")
    _put(alice, "/alice/work/review.ics", _meeting("review"))
    token, _ = sync_changes(alice, "/alice/interactions/")
    assert alice.delete("/alice/work/").status_code == 200
    assert _interaction(server, "review").status is InteractionStatus.PLANNED
    assert sync_changes(alice, "/alice/interactions/", token)[1] == {"review.ics": 200}
    assert "review.ics" in _names(bob, "/bob/interactions/")
    assert _inbox_methods(server, "bob") == ["REQUEST"]


def test_two_organizers_may_give_their_meetings_the_same_name(server: RunningServer) -> None:
    """Names are per calendar (CalDAVTester's scripts call every first event 1.ics)."""
    alice, carol, bob = (_client(server, login) for login in ("alice", "carol", "bob"))
    _calendar(carol, "/carol/calendar/", "Calendar")
    assert _put(alice, "/alice/interactions/1.ics", _meeting("first")).status_code == 201
    second = _event("second", _attendee("bob@example.com"), organizer="carol@example.com")
    answer = _put(carol, "/carol/calendar/1.ics", second)
    assert answer.status_code == 201, answer.text
    assert answer.headers["Schedule-Tag"]
    assert "UID:second" in carol.get("/carol/calendar/1.ics").text
    assert "UID:first" in alice.get("/alice/interactions/1.ics").text
    shared = _names(bob, "/bob/interactions/")
    assert len(shared) == 2  # Bob's calendar names each once
    assert "1.ics" in shared
    other = (shared - {"1.ics"}).pop()
    assert "UID:second" in bob.get(f"/bob/interactions/{other}").text
    assert carol.delete("/carol/calendar/1.ics").status_code == 200
    assert _interaction(server, "second").status is InteractionStatus.CANCELLED
    assert _interaction(server, "first").status is InteractionStatus.PLANNED


def test_a_new_event_cannot_take_the_name_of_a_meeting(server: RunningServer) -> None:
    alice, bob = _client(server, "alice"), _client(server, "bob")
    _put(alice, "/alice/interactions/review.ics", _meeting("review"))
    mine = _event("mine", _attendee("carol@example.com"), organizer="bob@example.com")
    refused = _put(bob, "/bob/interactions/review.ics", mine)
    assert refused.status_code == 409, refused.text
    assert "no-uid-conflict" in refused.text
    assert "UID:review" in bob.get("/bob/interactions/review.ics").text


def test_a_meeting_deleted_in_its_calendar_and_saved_again_comes_back_there(
    server: RunningServer,
) -> None:
    alice, bob = _client(server, "alice"), _client(server, "bob")
    _calendar(alice, "/alice/work/", "Work")
    _put(alice, "/alice/work/review.ics", _meeting("review"))
    token, _ = sync_changes(alice, "/alice/work/")
    alice.delete("/alice/work/review.ics")
    again = _put(alice, "/alice/work/review.ics", _meeting("review"))  # undo
    assert again.status_code == 201, again.text
    assert _interaction(server, "review").status is InteractionStatus.PLANNED
    assert _names(alice, "/alice/work/") == {"review.ics"}
    assert _names(alice, "/alice/interactions/") == set()
    assert sync_changes(alice, "/alice/work/", token)[1] == {"review.ics": 200}
    assert "review.ics" in _names(bob, "/bob/interactions/")

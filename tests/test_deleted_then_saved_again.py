"""The organizer deleting an event cancels its interaction (the CRM keeps it); saving its UID
again (an undo, a re-import, under its name or another) brings that interaction back: planned
again, SEQUENCE grown, everyone invited again, rooms asked again. Every calendar that showed it
syncs a deletion, then the item present again. The name of a cancelled interaction is free for
another event. Nobody but the organizer brings a cancelled interaction back."""

from __future__ import annotations

import uuid

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import select

from caldav_bridge.cli.commands import main
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, InteractionStatus, LinkStatus, ScheduleMessage
from caldav_bridge.ical.mapping import Answer, normalize_address
from tests.conftest import RunningServer
from tests.helpers import create, event_text, sync_changes

D = "DAV:"
HEADERS = {"Content-Type": "text/calendar"}
ROOM = "ATTENDEE;CUTYPE=ROOM:mailto:everest@example.com"


def _meeting(uid: str, *extra: str) -> str:
    return event_text(
        uid,
        "ORGANIZER:mailto:alice@example.com",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        *extra,
        summary="Budget",
    )


def _client(server: RunningServer, login: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(login, login), timeout=30)


def _sync(client: httpx.Client, calendar: str, token: str = "") -> tuple[str, dict[str, bool]]:
    """The calendar's new token, and each item named since ``token``: present (True) or
    deleted (False)."""
    token, found = sync_changes(client, calendar, token)
    return token, {href: status != 404 for href, status in found.items()}


def _interaction(server: RunningServer, uid: str) -> Interaction:
    with server.world.database.session() as session:
        found = InteractionService(session).find_by_uid(uid)
        assert found is not None
        session.expunge_all()
        return found


def _room_partstat(text: str) -> str:
    (event,) = Calendar.from_ical(text).events
    (room,) = [a for a in event["ATTENDEE"] if normalize_address(a) == "everest@example.com"]
    return str(room.params["PARTSTAT"])


CALENDARS = {
    "alice": "/alice/interactions/",
    "bob": "/bob/interactions/",
    "room": "/everest/bookings/",
}


def test_saving_a_deleted_event_again_brings_its_interaction_back_in_every_calendar(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    name = f"{uid}.ics"
    with _client(server, "alice") as alice, _client(server, "bob") as bob:
        assert alice.put(
            f"/alice/interactions/{name}", content=_meeting(uid, ROOM), headers=HEADERS
        ).is_success
        first = _interaction(server, uid)
        with server.world.database.session(write=True) as session:
            service, users = InteractionService(session), server.world.users(session)
            service.answer(users["bob"], service.get(first.id), Answer.ACCEPT)
        readers = {"alice": alice, "bob": bob, "room": alice}
        tokens = {who: _sync(readers[who], path)[0] for who, path in CALENDARS.items()}
        assert alice.delete(f"/alice/interactions/{name}").status_code in (200, 204)
        for who, path in CALENDARS.items():
            tokens[who], seen = _sync(readers[who], path, tokens[who])
            assert seen == {name: False}, who
        again = alice.put(
            f"/alice/interactions/{name}",
            content=_meeting(uid, ROOM),
            headers={**HEADERS, "If-None-Match": "*"},  # it is gone: creating it is right
        )
        assert again.status_code == 201, again.text
        for who, path in CALENDARS.items():
            assert _sync(readers[who], path, tokens[who])[1] == {name: True}, who
        assert _room_partstat(alice.get(f"/alice/interactions/{name}").text) == "ACCEPTED"
        assert "STATUS:CONFIRMED" in bob.get(f"/bob/interactions/{name}").text
    back = _interaction(server, uid)
    assert (back.id, back.status, back.href) == (first.id, InteractionStatus.PLANNED, name)
    assert back.sequence == first.sequence + 2  # the cancellation, then its coming back
    assert [(k.user.login, k.status) for k in back.links] == [("bob", LinkStatus.INVITED)]
    with server.world.database.session() as session:
        bob_id = server.world.users(session)["bob"].id
        methods = session.scalars(
            select(ScheduleMessage.ical)
            .where(ScheduleMessage.user_id == bob_id)
            .order_by(ScheduleMessage.id)
        ).all()
    invitation = Calendar.from_ical(methods[-1])
    assert str(invitation["METHOD"]) == "REQUEST"
    assert invitation.events[0]["SEQUENCE"] == back.sequence


def test_a_deleted_event_saved_again_under_another_name_comes_back_under_it(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    with _client(server, "alice") as alice:
        assert alice.put(
            "/alice/interactions/old.ics", content=_meeting(uid), headers=HEADERS
        ).is_success
        token, _ = _sync(alice, "/alice/interactions/")
        assert alice.delete("/alice/interactions/old.ics").status_code in (200, 204)
        again = alice.put("/alice/interactions/new.ics", content=_meeting(uid), headers=HEADERS)
        assert again.status_code == 201, again.text
        assert alice.get("/alice/interactions/old.ics").status_code == 404
        assert alice.get("/alice/interactions/new.ics").status_code == 200
        assert _sync(alice, "/alice/interactions/", token)[1] == {"old.ics": False, "new.ics": True}
    assert _interaction(server, uid).href == "new.ics"


def test_a_room_taken_since_the_deletion_declines_when_the_event_comes_back(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    path = f"/alice/interactions/{uid}.ics"
    with _client(server, "alice") as alice:
        assert alice.put(path, content=_meeting(uid, ROOM), headers=HEADERS).is_success
        assert alice.delete(path).status_code in (200, 204)
        with server.world.database.session(write=True) as session:
            service, users = InteractionService(session), server.world.users(session)
            start, end = (_interaction(server, uid).starts_at, _interaction(server, uid).ends_at)
            taken = create(service, users["carol"], "Carol's", start, end)
            service.book(users["carol"], taken, server.world.rooms(session)["everest"])
        assert alice.put(path, content=_meeting(uid, ROOM), headers=HEADERS).status_code == 201
        assert _room_partstat(alice.get(path).text) == "DECLINED"
        bookings = alice.request("PROPFIND", "/everest/bookings/", headers={"Depth": "1"})
        assert f"{uid}.ics" not in bookings.text  # the room holds carol's meeting only


def test_another_event_may_take_the_name_of_a_cancelled_one(server: RunningServer) -> None:
    old, new = f"{uuid.uuid4()}", f"{uuid.uuid4()}"
    path = "/alice/interactions/weekly.ics"
    with _client(server, "alice") as alice, _client(server, "bob") as bob:
        assert alice.put(path, content=_meeting(old), headers=HEADERS).is_success
        tokens = {"alice": _sync(alice, "/alice/interactions/")[0]}
        tokens["bob"] = _sync(bob, "/bob/interactions/")[0]
        assert alice.delete(path).status_code in (200, 204)
        other = event_text(new, "ORGANIZER:mailto:alice@example.com", summary="Other")
        assert alice.put(path, content=other, headers=HEADERS).status_code == 201
        (event,) = Calendar.from_ical(alice.get(path).text).events
        assert str(event["UID"]) == new
        assert _sync(alice, "/alice/interactions/", tokens["alice"])[1] == {"weekly.ics": True}
        assert _sync(bob, "/bob/interactions/", tokens["bob"])[1] == {"weekly.ics": False}
        # the cancelled one, kept by the CRM under a name of its own, may still come back
        assert alice.put(
            "/alice/interactions/again.ics", content=_meeting(old), headers=HEADERS
        ).is_success
    cancelled, taken = _interaction(server, old), _interaction(server, new)
    assert (taken.href, cancelled.href) == ("weekly.ics", "again.ics")
    assert cancelled.status is InteractionStatus.PLANNED


def test_only_the_organizer_brings_a_cancelled_interaction_back_and_not_as_cancelled(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    path = f"/alice/interactions/{uid}.ics"
    with _client(server, "alice") as alice:
        assert alice.put(path, content=_meeting(uid), headers=HEADERS).is_success
        assert alice.delete(path).status_code in (200, 204)
        assert alice.delete(path).status_code == 404  # gone already
    before = _interaction(server, uid)
    with _client(server, "alice") as alice:  # saved as cancelled, it stays so
        cancelled = _meeting(uid, "STATUS:CANCELLED")
        assert alice.put(path, content=cancelled, headers=HEADERS).is_success
        assert alice.get(path).status_code == 404
    for login, status, reason in (("bob", 409, "cancelled"), ("carol", 403, "neither")):
        with _client(server, login) as client:
            answer = client.put(
                f"/{login}/interactions/{uid}.ics", content=_meeting(uid), headers=HEADERS
            )
        assert answer.status_code == status, answer.text
        assert reason in answer.text
    after = _interaction(server, uid)
    assert (after.status, after.sequence) == (InteractionStatus.CANCELLED, before.sequence)


@pytest.mark.parametrize(("owner", "code"), [("alice", 0), ("bob", 2)])
def test_the_command_creating_a_cancelled_uid_brings_back_its_owners_only(
    server: RunningServer, owner: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = f"{uuid.uuid4()}"
    with _client(server, "alice") as alice:
        assert alice.put(
            f"/alice/interactions/{uid}.ics", content=_meeting(uid), headers=HEADERS
        ).is_success
        assert alice.delete(f"/alice/interactions/{uid}.ics").status_code in (200, 204)
    command = ["--database", server.world.database.url, "interaction", "create"]
    details = ["--subject", "Budget again", "--start", "2030-01-09T10:00", "--uid", uid]
    assert main([*command, "--owner", owner, *details]) == code
    back = _interaction(server, uid)
    if code:
        assert "already exists" in capsys.readouterr().err
        assert back.status is InteractionStatus.CANCELLED
        return
    assert "restored" in capsys.readouterr().out
    assert (back.status, back.subject) == (InteractionStatus.PLANNED, "Budget again")

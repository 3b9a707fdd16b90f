"""A UID is unique within one calendar (RFC 4791 5.3.2.1), not across users: two people keep
the same invitation each in a calendar of their own; one calendar never holds a UID twice, even
when two clients save it at once; a meeting already in a user's interactions calendar is not
copied into another of their calendars, and one they have no part in is none of their concern."""

from __future__ import annotations

import threading
import uuid

import httpx

from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from tests.conftest import RunningServer
from tests.helpers import create, event_text


def _event(uid: str, summary: str) -> str:
    return event_text(
        uid,
        "ORGANIZER:mailto:someone@outside.example",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.com",
        summary=summary,
        start="20300110T100000Z",
        end="20300110T110000Z",
    )


def _client(server: RunningServer, login: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(login, login), timeout=30)


def _put(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.put(path, content=text, headers={"Content-Type": "text/calendar"})


def _calendar(client: httpx.Client, path: str) -> None:
    assert client.request("MKCALENDAR", path).status_code == 201


def test_two_users_keep_the_same_invitation_each_in_their_own_calendar(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}@outside.example"
    for login in ("bob", "carol"):
        with _client(server, login) as client:
            _calendar(client, f"/{login}/personal/")
            put = _put(client, f"/{login}/personal/{uid}.ics", _event(uid, f"Kept by {login}"))
            assert put.status_code == 201, put.text
    for login in ("bob", "carol"):
        with _client(server, login) as client:
            mine = client.get(f"/{login}/personal/{uid}.ics")
        assert mine.status_code == 200
        assert f"Kept by {login}" in mine.text


def test_one_user_may_keep_a_uid_in_two_calendars_of_their_own(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}@outside.example"
    with _client(server, "bob") as bob:
        for name in ("work", "home"):
            _calendar(bob, f"/bob/{name}/")
            assert _put(bob, f"/bob/{name}/a.ics", _event(uid, name)).status_code == 201


def test_a_uid_twice_in_one_calendar_is_a_no_uid_conflict(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}@outside.example"
    with _client(server, "bob") as bob:
        _calendar(bob, "/bob/personal/")
        assert _put(bob, "/bob/personal/first.ics", _event(uid, "First")).status_code == 201
        second = _put(bob, "/bob/personal/second.ics", _event(uid, "Second"))
        assert second.status_code == 409
        assert "no-uid-conflict" in second.text
        assert bob.get("/bob/personal/second.ics").status_code == 404
        assert "First" in bob.get("/bob/personal/first.ics").text


def test_two_clients_saving_one_uid_at_once_in_one_calendar_get_one_conflict(
    server: RunningServer,
) -> None:
    with _client(server, "bob") as bob:
        _calendar(bob, "/bob/personal/")
    for _ in range(4):
        uid = f"{uuid.uuid4()}@outside.example"
        barrier = threading.Barrier(2)
        answers: list[int] = []

        def save(
            name: str,
            uid: str = uid,
            barrier: threading.Barrier = barrier,
            answers: list[int] = answers,
        ) -> None:
            with _client(server, "bob") as client:
                barrier.wait()
                answers.append(_put(client, f"/bob/personal/{name}", _event(uid, name)).status_code)

        names = [f"{side}-{uid}.ics" for side in ("left", "right")]
        threads = [threading.Thread(target=save, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [201, 409]


def test_a_meeting_already_in_the_users_interactions_calendar_is_not_copied(
    server: RunningServer,
) -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        interaction = create(service, users["alice"], "Planning")
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        uid = interaction.uid
    with _client(server, "bob") as bob:
        _calendar(bob, "/bob/personal/")
        refused = _put(bob, f"/bob/personal/{uid}.ics", _event(uid, "Copy"))
        assert refused.status_code == 403
        assert "unique-scheduling-object-resource" in refused.text
    with _client(server, "carol") as carol:  # not part of it: her own event, nothing said
        _calendar(carol, "/carol/personal/")
        kept = _put(carol, f"/carol/personal/{uid}.ics", _event(uid, "Carol's own"))
        assert kept.status_code == 201
        mine = carol.get(f"/carol/personal/{uid}.ics").text
    assert "Carol's own" in mine
    assert "Planning" not in mine

"""Two writers booking the same room at the same moment: exactly one gets it."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from caldav_bridge.cli.commands import main
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import BookingConflict
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Booking, Interaction
from tests.conftest import RunningServer, World
from tests.helpers import at, create
from tests.test_scheduling import _attendee, _attendees, _client, _event, _put


def test_simultaneous_bookings_of_one_slot_give_the_room_to_exactly_one(world: World) -> None:
    logins = ["alice", "bob", "carol", "dave"]
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        ids = {
            login: create(service, users[login], f"{login}'s meeting", at(7, 10), at(7, 11)).id
            for login in logins
        }
    barrier = threading.Barrier(len(logins))
    outcomes: dict[str, str] = {}

    def book(login: str) -> None:
        barrier.wait()
        try:
            with world.database.session(write=True) as session:
                service = InteractionService(session)
                directory = Directory(session)
                interaction = service.get(ids[login])
                service.book(directory.user(login), interaction, directory.resource("everest"))
            outcomes[login] = "booked"
        except BookingConflict:
            outcomes[login] = "refused"

    threads = [threading.Thread(target=book, args=(login,)) for login in logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["booked", "refused", "refused", "refused"]
    with world.database.session() as session:
        service = InteractionService(session)
        booked = [i for i in ids.values() if service.get(i).bookings]
    assert len(booked) == 1


def test_the_cli_and_calendar_clients_racing_for_a_room_leave_it_booked_once(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two CLI bookings and three clients' events naming the room, all at once: one booking
    holds; the CLI's losers get the conflict, the clients' events get the room DECLINED."""
    world = server.world
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", world.database.url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        cli_ids = [
            create(service, users[login], "Booked by the CLI", at(8, 13), at(8, 14)).id
            for login in ("bob", "carol")
        ]
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(5)

    def by_cli(interaction_id: int) -> None:
        barrier.wait()
        code = main(["book", str(interaction_id), "everest"])
        outcomes[f"cli {interaction_id}"] = "booked" if code == 0 else "refused"

    def by_client(number: int) -> None:
        barrier.wait()
        text = _event(f"race-{number}", _attendee("everest@example.com", CUTYPE="ROOM"))
        with _client(server, "alice") as client:
            answer = _put(
                client,
                f"/alice/interactions/race-{number}.ics",
                text,
                Prefer="return=representation",
            )
        assert answer.status_code in (200, 201), answer.text
        partstat = _attendees(answer.text)["everest@example.com"]["PARTSTAT"]
        outcomes[f"client {number}"] = "booked" if partstat == "ACCEPTED" else "refused"

    threads = [threading.Thread(target=by_cli, args=(i,)) for i in cli_ids] + [
        threading.Thread(target=by_client, args=(n,)) for n in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == 5, outcomes
    assert sorted(outcomes.values()) == ["booked"] + ["refused"] * 4, outcomes
    with world.database.session() as session:
        held = session.scalars(select(Booking).where(Booking.declined.is_(False))).all()
    assert len(held) == 1


def test_events_naming_two_rooms_in_opposite_orders_book_each_once_per_slot(
    server: RunningServer,
) -> None:
    """Twenty clients at once, in two slots: half name [everest, kilimanjaro], half the other
    way round. Nobody waits on a lock another holds while it waits on theirs (no 5xx): in
    each slot one event holds each room, the others get that room DECLINED."""
    logins, rooms = ["alice", "bob", "carol", "dave"], ["everest", "kilimanjaro"]
    clients = 20
    barrier = threading.Barrier(clients)
    answers: dict[int, dict[str, str]] = {}
    failures: list[str] = []

    def put(number: int) -> None:
        login, day = logins[number % 4], 8 + number % 2
        named = rooms if number // 2 % 2 else rooms[::-1]
        text = _event(
            f"rooms-{number}",
            *(_attendee(f"{room}@example.com", CUTYPE="ROOM") for room in named),
            organizer=f"{login}@example.com",
            start=f"203001{day:02d}T120000Z",
            end=f"203001{day:02d}T130000Z",
        )
        path = f"/{login}/interactions/rooms-{number}.ics"
        barrier.wait()
        with _client(server, login) as client:
            answer = _put(client, path, text, Prefer="return=representation")
        if answer.status_code not in (200, 201):
            failures.append(f"{number}: {answer.status_code} {answer.text}")
            return
        found = _attendees(answer.text)
        answers[number] = {room: found[f"{room}@example.com"]["PARTSTAT"] for room in rooms}

    threads = [threading.Thread(target=put, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    for slot in (0, 1):
        for room in rooms:
            told = sorted(answers[n][room] for n in range(slot, clients, 2))
            assert told == ["ACCEPTED"] + ["DECLINED"] * (clients // 2 - 1), (slot, room)
    with server.world.database.session() as session:
        held = session.execute(
            select(Booking.resource_id, Interaction.starts_at)
            .join(Interaction, Interaction.id == Booking.interaction_id)
            .where(Booking.declined.is_(False))
        ).all()
    assert len(held) == len(set(held)) == 4

"""Two writers booking the same room at the same moment: exactly one gets it."""

from __future__ import annotations

import threading

from caldav_bridge.directory import Directory
from caldav_bridge.errors import BookingConflict
from caldav_bridge.interactions import InteractionService
from tests.conftest import World
from tests.helpers import at, create


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

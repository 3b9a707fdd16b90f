"""Attendees answering one interaction at the same moment: every answer survives, in the CRM
and in every calendar copy (no lost update); and two clients writing one item with If-Match:
one wins, the other is told 412."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
from icalendar import Calendar

from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.ical.mapping import Answer, normalize_address
from tests.conftest import RunningServer, World
from tests.helpers import create

ATTENDEES = ["bob", "carol", "dave"]


def _together(logins: list[str], work: Callable[[str], None]) -> None:
    barrier = threading.Barrier(len(logins))
    failures: list[BaseException] = []

    def run(login: str) -> None:
        barrier.wait()
        try:
            work(login)
        except BaseException as exc:  # reported below, with the login
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(login,)) for login in logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures


def _meeting(world: World) -> int:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"], "Board meeting")
        for login in ATTENDEES:
            service.link(users["alice"], interaction, users[login], LinkStatus.INVITED)
        return interaction.id


def _partstats(ical: str) -> dict[str, str]:
    event = Calendar.from_ical(ical).events[0]
    return {normalize_address(a): a.params["PARTSTAT"] for a in event.get("ATTENDEE")}


def _everything_accepted(world: World, interaction_id: int) -> None:
    with world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        assert {k.user.login: k.status for k in interaction.links} == dict.fromkeys(
            ATTENDEES, LinkStatus.CONFIRMED
        )
        stored = _partstats(interaction.ical)  # the copy every calendar serves
    assert {stored[f"{login}@example.com"] for login in ATTENDEES} == {"ACCEPTED"}


def test_simultaneous_answers_through_the_service_all_survive(world: World) -> None:
    for _ in range(3):  # a few rounds: the race must be lost every time to pass by chance
        interaction_id = _meeting(world)

        def answer(login: str, interaction_id: int = interaction_id) -> None:
            with world.database.session(write=True) as session:
                service = InteractionService(session)
                user = world.users(session)[login]
                service.answer(user, service.get(interaction_id), Answer.ACCEPT)

        _together(ATTENDEES, answer)
        _everything_accepted(world, interaction_id)


def test_simultaneous_answers_from_calendar_clients_all_survive(server: RunningServer) -> None:
    interaction_id = _meeting(server.world)
    with server.world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        href, ical = interaction.href, interaction.ical

    def accept(login: str) -> None:
        calendar = Calendar.from_ical(ical)
        for attendee in calendar.events[0]["ATTENDEE"]:
            if normalize_address(attendee) == f"{login}@example.com":
                attendee.params["PARTSTAT"] = "ACCEPTED"
        answer = httpx.put(
            f"{server.url}{login}/interactions/{href}",
            content=calendar.to_ical(),
            headers={"Content-Type": "text/calendar"},
            auth=(login, login),
            timeout=60,
        )
        assert answer.status_code in (201, 204), answer.text

    _together(ATTENDEES, accept)
    _everything_accepted(server.world, interaction_id)


def test_two_writers_with_the_same_if_match_one_wins_one_gets_412(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        interaction = create(service, users["alice"], "Draft agenda")
        href, ical, etag = interaction.href, interaction.ical, interaction.etag
    url = f"{server.url}alice/interactions/{href}"
    statuses: dict[str, int] = {}

    def write(subject: str) -> None:
        calendar = Calendar.from_ical(ical)
        calendar.events[0]["SUMMARY"] = subject
        statuses[subject] = httpx.put(
            url,
            content=calendar.to_ical(),
            headers={"Content-Type": "text/calendar", "If-Match": etag},
            auth=("alice", "alice"),
            timeout=60,
        ).status_code

    _together(["first", "second", "third"], write)
    assert sorted(statuses.values()) == [204, 412, 412], statuses
    winner = next(subject for subject, status in statuses.items() if status == 204)
    with server.world.database.session() as session:
        assert InteractionService(session).find_by_uid(interaction.uid).subject == winner  # type: ignore[union-attr]

"""The owner linking again, as Invited, a user who already answered: the answer stands and no
second invitation goes out, from the service, the CLI, the CRM page and a calendar client."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from caldav_bridge.cli.commands import main
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus, OutboxMessage
from caldav_bridge.ical.mapping import Answer
from tests.conftest import RunningServer, World
from tests.helpers import create, crm_pages, link_status, unfolded


def _answered(world: World, answer: Answer) -> int:
    """Alice's interaction with bob invited, then bob's answer; its id."""
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"], "Quarterly")
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        service.answer(users["bob"], interaction, answer)
        return interaction.id


def _told_bob(world: World) -> int:
    with world.database.session() as session:
        bob = world.users(session)["bob"]
        query = select(func.count()).where(OutboxMessage.recipient_user_id == bob.id)
        return int(session.scalar(query) or 0)


def _tentative(world: World, interaction_id: int) -> bool:
    with world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        return next(k.tentative for k in interaction.links if k.user.login == "bob")


def _by_service(server: RunningServer, interaction_id: int) -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        interaction = service.get(interaction_id)
        assert not service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)


def _by_cli(server: RunningServer, interaction_id: int) -> None:
    argv = ["--database", server.world.database.url, "link", str(interaction_id), "bob"]
    assert main(argv) == 0


def _by_crm_page(server: RunningServer, interaction_id: int) -> None:
    pages, csrf = crm_pages(server.url, "alice")
    form = {"login": "bob", "status": "invited", "csrf": csrf}
    assert pages.post(f"interactions/{interaction_id}/link", data=form).status_code == 303


def _by_caldav(server: RunningServer, interaction_id: int) -> None:
    """The organizer's client saving the event back with bob as NEEDS-ACTION."""
    with server.world.database.session() as session:
        href = InteractionService(session).get(interaction_id).href
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        mine = alice.get(f"/alice/interactions/{href}")
        calendar = Calendar.from_ical(mine.text)
        (bob,) = [a for a in calendar.events[0]["ATTENDEE"] if "bob@" in str(a)]
        bob.params.update(PARTSTAT="NEEDS-ACTION", RSVP="TRUE")
        text = calendar.to_ical().decode()
        assert "PARTSTAT=NEEDS-ACTION" in unfolded(text)
        put = alice.put(
            f"/alice/interactions/{href}",
            content=text,
            headers={"Content-Type": "text/calendar", "If-Match": mine.headers["ETag"]},
        )
        assert put.status_code in (201, 204), put.text


CHANNELS = [_by_service, _by_cli, _by_crm_page, _by_caldav]


@pytest.mark.parametrize("channel", CHANNELS)
def test_linking_a_confirmed_user_as_invited_keeps_them_confirmed(
    server: RunningServer, channel: Callable[[RunningServer, int], None]
) -> None:
    interaction_id = _answered(server.world, Answer.ACCEPT)
    told = _told_bob(server.world)
    channel(server, interaction_id)
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.CONFIRMED
    assert _told_bob(server.world) == told
    with httpx.Client(base_url=server.url, auth=("bob", "bob"), timeout=30) as bob:
        listing = bob.request("PROPFIND", "/bob/interactions/", headers={"Depth": "1"})
        href = next(h for h in listing.text.split("<") if h.endswith(".ics")).split(">")[-1]
        mine = unfolded(bob.get(href).text)
    assert "PARTSTAT=ACCEPTED" in mine.split("mailto:bob@example.com")[0].rsplit("ATTENDEE", 1)[1]


@pytest.mark.parametrize("channel", CHANNELS)
def test_linking_a_tentative_user_as_invited_keeps_their_answer(
    server: RunningServer, channel: Callable[[RunningServer, int], None]
) -> None:
    interaction_id = _answered(server.world, Answer.TENTATIVE)
    told = _told_bob(server.world)
    channel(server, interaction_id)
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.INVITED
    assert _tentative(server.world, interaction_id)
    assert _told_bob(server.world) == told


def test_the_cli_says_the_user_is_already_confirmed(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    interaction_id = _answered(server.world, Answer.ACCEPT)
    capsys.readouterr()
    _by_cli(server, interaction_id)
    assert capsys.readouterr().out == f"bob is already confirmed on interaction #{interaction_id}\n"


def test_a_user_who_declined_is_invited_again(world: World) -> None:
    interaction_id = _answered(world, Answer.DECLINE)
    told = _told_bob(world)
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = service.get(interaction_id)
        assert service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
    assert link_status(world, interaction_id, "bob") is LinkStatus.INVITED
    assert _told_bob(world) > told

"""Emailed replies (iMIP in) applied through the service by ``caldav-bridge imip-receive``."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

import pytest

from caldav_bridge.cli import main
from caldav_bridge.interactions import GuestEntry, InteractionService
from caldav_bridge.models import LinkStatus
from tests.conftest import World
from tests.helpers import create, reply_mail

Receive = Callable[[bytes], tuple[int, str]]


@pytest.fixture
def receive(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Receive:
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", world.database.url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)

    def run(raw: bytes) -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
        code = main(["imip-receive"])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def _planning(world: World) -> str:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"], "Planning")
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        service.set_guests(users["alice"], interaction, [GuestEntry("zoe@partner.example")])
        return interaction.uid


def _statuses(world: World, uid: str) -> tuple[LinkStatus, str]:
    with world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        return interaction.links[0].status, interaction.guests[0].partstat


def test_an_emailed_reply_changes_the_crm_status(world: World, receive: Receive) -> None:
    uid = _planning(world)
    code, out = receive(reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED"))
    assert code == 0, out
    assert "applied" in out
    code, out = receive(reply_mail(uid, "zoe@partner.example", "zoe@partner.example", "DECLINED"))
    assert code == 0, out
    assert _statuses(world, uid) == (LinkStatus.CONFIRMED, "DECLINED")


def test_a_reply_from_someone_else_is_refused_and_changes_nothing(
    world: World, receive: Receive
) -> None:
    uid = _planning(world)
    code, out = receive(reply_mail(uid, "mallory@evil.example", "bob@example.com", "DECLINED"))
    assert code == 2
    assert "not the attendee" in out
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")


def test_unknown_uids_and_older_sequences_are_ignored(world: World, receive: Receive) -> None:
    uid = _planning(world)
    code, out = receive(reply_mail("nope", "bob@example.com", "bob@example.com", "ACCEPTED"))
    assert (code, "ignored" in out) == (0, True)
    with world.database.session(write=True) as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        interaction.sequence = 3
    code, out = receive(reply_mail(uid, "bob@example.com", "bob@example.com", "DECLINED", 1))
    assert (code, "SEQUENCE 1" in out) == (0, True)
    assert _statuses(world, uid)[0] is LinkStatus.INVITED


@pytest.mark.parametrize(
    "raw",
    [b"not an email at all", b"From: bob@example.com\r\n\r\nno calendar here\r\n"],
)
def test_a_malformed_message_is_refused_and_changes_nothing(
    world: World,
    receive: Receive,
    raw: bytes,
) -> None:
    uid = _planning(world)
    code, out = receive(raw)
    assert code == 2
    assert out.strip().count("\n") == 0  # one line
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")

"""Emailed replies handed over by a mail server, by LMTP or SMTP (``caldav-bridge imip-listen``)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from caldav_bridge.imip_listener import Listener, ReplyHandler
from caldav_bridge.models import LinkStatus
from tests.conftest import World
from tests.helpers import free_port, reply_mail
from tests.test_replies import _planning, _statuses


@pytest.fixture(params=["lmtp", "smtp"])
def listener(world: World, request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    port = free_port()
    running = Listener(
        world.database, "https://crm.example", "127.0.0.1", port, lmtp=request.param == "lmtp"
    )
    running.start()
    try:
        yield request.param, port
    finally:
        running.stop()


def _client(listener: tuple[str, int]) -> smtplib.SMTP:
    protocol, port = listener
    return (
        smtplib.LMTP("127.0.0.1", port) if protocol == "lmtp" else smtplib.SMTP("127.0.0.1", port)
    )


def _send(listener: tuple[str, int], sender: str, raw: bytes) -> str:
    """Hand one message over; the server's answer to it."""
    with _client(listener) as client:
        try:
            client.sendmail(sender, ["crm@example.com"], raw)
        except smtplib.SMTPDataError as refused:
            return f"{refused.smtp_code} {refused.smtp_error.decode()}"
    return "250"


def test_a_reply_handed_over_changes_the_crm_status(
    world: World, listener: tuple[str, int]
) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
    assert _send(listener, "bob@example.com", raw) == "250"
    raw = reply_mail(uid, "zoe@partner.example", "zoe@partner.example", "TENTATIVE")
    assert _send(listener, "zoe@partner.example", raw) == "250"
    assert _statuses(world, uid) == (LinkStatus.CONFIRMED, "TENTATIVE")


def test_lmtp_answers_once_per_recipient(world: World) -> None:
    """RFC 2033 4.2: after the data, one answer per accepted recipient."""
    uid = _planning(world)
    port = free_port()
    running = Listener(world.database, "https://crm.example", "127.0.0.1", port, lmtp=True)
    running.start()
    try:
        with smtplib.LMTP("127.0.0.1", port) as client:
            client.ehlo()  # LMTP's LHLO
            client.mail("bob@example.com")
            client.rcpt("crm@example.com")
            client.rcpt("calendar@example.com")
            raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
            first = client.data(raw)
            second = client.getreply()
    finally:
        running.stop()
    assert first[0] == second[0] == 250
    assert _statuses(world, uid)[0] is LinkStatus.CONFIRMED


def test_a_spoofed_reply_is_refused_for_good(world: World, listener: tuple[str, int]) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "mallory@evil.example", "bob@example.com", "DECLINED")
    answer = _send(listener, "mallory@evil.example", raw)
    assert answer.startswith("550 5.7.1")
    assert "not the attendee" in answer
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")


def test_a_malformed_message_is_refused_and_changes_nothing(
    world: World, listener: tuple[str, int]
) -> None:
    uid = _planning(world)
    raw = b"From: bob@example.com\r\nSubject: hi\r\n\r\nno calendar here\r\n"
    answer = _send(listener, "bob@example.com", raw)
    assert answer.startswith("554 ")
    assert "no text/calendar part" in answer
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")


def test_an_unreachable_database_asks_the_mail_server_to_retry(world: World) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
    broken = type(world.database)("postgresql+psycopg://nobody@127.0.0.1:1/none")
    status = ReplyHandler(broken, "https://crm.example", lmtp=True).apply(raw)
    assert status.startswith("451 ")
    assert (
        ReplyHandler(world.database, "https://crm.example", lmtp=True).apply(raw).startswith("250 ")
    )
    assert _statuses(world, uid)[0] is LinkStatus.CONFIRMED

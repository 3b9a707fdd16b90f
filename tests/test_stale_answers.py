"""iTIP staleness (RFC 5546 2.1.5), one rule (``rules.stale``) on every channel an answer
arrives by: a message answering an older SEQUENCE than the interaction's, or at the same
version an older DTSTAMP than the attendee's answer already taken, is ignored. By email it is
taken (250) and said ignored; a CalDAV attendee's PUT succeeds and keeps the stored event as it
is (the answer has no ETag: the client reads the newer event back)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from icalendar import Calendar

from caldav_bridge.config import ImipSettings
from caldav_bridge.domain import rules
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.domain.periods import Changes
from caldav_bridge.ical.mapping import answer_to, normalize_address
from caldav_bridge.mail.listener import Listener
from tests.conftest import RunningServer, World
from tests.helpers import RELAY, at, crm_pages, free_port, reply_mail
from tests.test_replies import SECOND, _planning, _statuses, _weekly_with_bob

IMIP = ImipSettings(trusted_authserv_ids=frozenset({RELAY}))
NOW = datetime.now(UTC).replace(microsecond=0)
EARLIER = NOW - timedelta(hours=2)


# ---------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("message", "last", "stale"),
    [
        (rules.Stamp(1, EARLIER), None, False),
        (rules.Stamp(0, EARLIER), None, True),  # answers SEQUENCE 0, the interaction is at 1
        (rules.Stamp(1, EARLIER), rules.Stamp(1, EARLIER + timedelta(seconds=1)), True),
        (rules.Stamp(1, EARLIER), rules.Stamp(1, EARLIER), False),  # the same message again
        (rules.Stamp(1, EARLIER + timedelta(microseconds=5)), rules.Stamp(1, EARLIER), False),
        (rules.Stamp(1, EARLIER), rules.Stamp(0, NOW), False),  # the last answered version 0
        (rules.Stamp(1, None), rules.Stamp(1, NOW), False),  # no DTSTAMP: SEQUENCE only
        # A SEQUENCE above the interaction's (Exchange writes 5 for 1) answers its version.
        (rules.Stamp(5, EARLIER), rules.Stamp(1, NOW), True),
        (rules.Stamp(5, NOW), rules.Stamp(1, EARLIER), False),
    ],
)
def test_the_staleness_rule(message: rules.Stamp, last: rules.Stamp | None, stale: bool) -> None:
    assert (rules.stale(message, 1, last) is not None) is stale


def test_a_dtstamp_from_the_future_is_kept_as_now() -> None:
    later = NOW + timedelta(days=400)
    assert rules.answer_stamp(rules.Stamp(3, later), 2, NOW) == (2, NOW)
    assert rules.answer_stamp(rules.Stamp(2, EARLIER), 2, NOW) == (2, EARLIER)
    assert rules.answer_stamp(None, 2, NOW + timedelta(microseconds=7)) == (2, NOW)


# ---------------------------------------------------------------------------- the channels


@contextmanager
def listening(world: World) -> Iterator[int]:
    """The ``imip-listen`` listener (real aiosmtpd, LMTP) on a loopback port."""
    port = free_port()
    running = Listener(world.database, "https://crm.example", "127.0.0.1", port, True, IMIP)
    running.start()
    try:
        yield port
    finally:
        running.stop()


@pytest.fixture
def lmtp(world: World) -> Iterator[int]:
    with listening(world) as port:
        yield port


def _stamped(raw: bytes, stamp: datetime) -> bytes:
    """``reply_mail``'s message with this DTSTAMP in each VEVENT."""
    assert b"DTSTAMP:20300101T000000Z" in raw
    return raw.replace(b"DTSTAMP:20300101T000000Z", f"DTSTAMP:{stamp:%Y%m%dT%H%M%SZ}".encode())


def _handed(port: int, who: str, raw: bytes) -> str:
    """The message handed over by LMTP; the listener's answer."""
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo()
        client.mail(who)
        client.rcpt("crm@example.com")
        code, text = client.data(raw.replace(b"\n", b"\r\n"))
    return f"{code} {text.decode()}"


def _mailed(port: int, uid: str, who: str, partstat: str, sequence: int, stamp: datetime) -> str:
    """An emailed REPLY with this DTSTAMP handed over by LMTP; the listener's answer."""
    return _handed(port, who, _stamped(reply_mail(uid, who, who, partstat, sequence), stamp))


def _copy(world: World, uid: str, login: str, partstat: str, stamp: datetime) -> tuple[str, str]:
    """``login``'s copy as the server has it now, their PARTSTAT and DTSTAMP set as their
    client writes them: (href, text)."""
    with world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        href, text = interaction.href, interaction.ical
    calendar = Calendar.from_ical(text)
    event = calendar.events[0]
    for attendee in event["ATTENDEE"]:
        if normalize_address(attendee) == f"{login}@example.com":
            attendee.params["PARTSTAT"] = partstat
    event.pop("DTSTAMP")
    event.add("dtstamp", stamp)
    return href, calendar.to_ical().decode()


def _put(server: RunningServer, login: str, href: str, text: str) -> httpx.Response:
    return httpx.put(
        f"{server.url}{login}/interactions/{href}",
        content=text,
        auth=(login, login),
        headers={"Content-Type": "text/calendar"},
        timeout=30,
    )


def _answer(
    channel: str, server: RunningServer, port: int, uid: str, partstat: str, stamp: datetime
) -> None:
    """bob's answer at ``stamp``, by email or from his CalDAV client; both are taken."""
    if channel == "email":
        assert _mailed(port, uid, "bob@example.com", partstat, 0, stamp).startswith("250")
    else:
        answer = _put(server, "bob", *_copy(server.world, uid, "bob", partstat, stamp))
        assert answer.status_code == 204, answer.text
        assert "ETag" not in answer.headers  # the client reads what the server kept


def _served_partstat(server: RunningServer, uid: str, login: str) -> str:
    """``login``'s PARTSTAT in their copy, read over CalDAV."""
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        href = interaction.href
    answer = httpx.get(f"{server.url}{login}/interactions/{href}", auth=(login, login))
    event = Calendar.from_ical(answer.text).events[0]
    attendees = {normalize_address(a): a.params["PARTSTAT"] for a in event["ATTENDEE"]}
    return str(attendees[f"{login}@example.com"])


@pytest.mark.parametrize("channel", ["email", "caldav"])
def test_an_answer_older_than_the_one_taken_is_ignored(
    server: RunningServer, lmtp: int, channel: str
) -> None:
    uid = _planning(server.world)
    _answer(channel, server, lmtp, uid, "ACCEPTED", EARLIER)
    _answer(channel, server, lmtp, uid, "DECLINED", EARLIER - timedelta(minutes=1))
    assert _statuses(server.world, uid)[0] is LinkStatus.CONFIRMED
    assert _served_partstat(server, uid, "bob") == "ACCEPTED"
    _answer(channel, server, lmtp, uid, "DECLINED", EARLIER + timedelta(minutes=1))
    assert _statuses(server.world, uid)[0] is LinkStatus.DECLINED


def test_the_email_channel_says_why_it_ignored_a_reply(world: World, lmtp: int) -> None:
    uid = _planning(world)
    assert "applied" in _mailed(lmtp, uid, "bob@example.com", "ACCEPTED", 0, EARLIER)
    said = _mailed(lmtp, uid, "bob@example.com", "DECLINED", 0, EARLIER - timedelta(seconds=1))
    assert said.startswith("250 2.0.0 ignored:"), said
    assert "DTSTAMP" in said
    assert "older than the answer already taken" in said


@pytest.mark.parametrize("channel", ["email", "caldav"])
def test_a_message_older_than_an_answer_on_the_crm_page_is_ignored(
    server: RunningServer, lmtp: int, channel: str
) -> None:
    uid = _planning(server.world)
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        interaction_id = interaction.id
    pages, csrf = crm_pages(server.url, "bob")
    answered = pages.post(
        f"interactions/{interaction_id}/answer", data={"answer": "decline", "csrf": csrf}
    )
    assert answered.status_code == 303
    _answer(channel, server, lmtp, uid, "ACCEPTED", datetime.now(UTC) - timedelta(minutes=5))
    assert _statuses(server.world, uid)[0] is LinkStatus.DECLINED
    assert _served_partstat(server, uid, "bob") == "DECLINED"


@pytest.mark.parametrize("channel", ["email", "caldav"])
def test_an_answer_to_an_older_sequence_is_ignored(
    server: RunningServer, lmtp: int, channel: str
) -> None:
    """bob's client answers the version it has; the organizer has moved the meeting since."""
    uid = _planning(server.world)
    href, old_copy = _copy(server.world, uid, "bob", "ACCEPTED", NOW)
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        interaction = service.find_by_uid(uid)
        assert interaction is not None
        service.edit(users["alice"], interaction, Changes(start=at(8, 10), end=at(8, 11)))
        assert interaction.sequence == 1
    if channel == "email":
        said = _mailed(lmtp, uid, "bob@example.com", "ACCEPTED", 0, NOW)
        assert said.startswith("250 2.0.0 ignored:"), said
        assert "SEQUENCE 0" in said
    else:  # not refused as a change of time: the copy is older, not changed
        assert _put(server, "bob", href, old_copy).status_code == 204
    assert _statuses(server.world, uid)[0] is LinkStatus.INVITED
    assert _served_partstat(server, uid, "bob") == "NEEDS-ACTION"


def test_a_guests_older_reply_is_ignored(world: World, lmtp: int) -> None:
    uid = _planning(world)
    guest = "zoe@partner.example"
    assert "applied" in _mailed(lmtp, uid, guest, "ACCEPTED", 0, EARLIER)
    said = _mailed(lmtp, uid, guest, "DECLINED", 0, EARLIER - timedelta(minutes=3))
    assert said.startswith("250 2.0.0 ignored:"), said
    assert _statuses(world, uid)[1] == "ACCEPTED"
    assert "applied" in _mailed(lmtp, uid, guest, "DECLINED", 0, EARLIER + timedelta(minutes=3))
    assert _statuses(world, uid)[1] == "DECLINED"


@pytest.mark.parametrize("channel", ["email", "caldav"])
def test_an_older_answer_to_one_occurrence_is_ignored(
    server: RunningServer, lmtp: int, channel: str
) -> None:
    uid = _weekly_with_bob(server.world)
    bob = "bob@example.com"

    def answering(partstat: str, stamp: datetime) -> bytes:
        occurrences = ((SECOND, partstat),)
        return _stamped(reply_mail(uid, bob, bob, "", series=False, occurrences=occurrences), stamp)

    assert "applied" in _handed(lmtp, bob, answering("DECLINED", EARLIER))
    older = EARLIER - timedelta(minutes=1)
    if channel == "email":
        assert "ignored" in _handed(lmtp, bob, answering("ACCEPTED", older))
    else:
        href, text = _copy(server.world, uid, "bob", "NEEDS-ACTION", NOW)
        calendar = Calendar.from_ical(text)
        (instance,) = [e for e in calendar.events if "RECURRENCE-ID" in e]
        for attendee in instance["ATTENDEE"]:
            if normalize_address(attendee) == "bob@example.com":
                attendee.params["PARTSTAT"] = "ACCEPTED"
        instance.pop("DTSTAMP")
        instance.add("dtstamp", older)
        assert _put(server, "bob", href, calendar.to_ical().decode()).status_code == 204
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        answered = answer_to(interaction.links[0], SECOND.astimezone(UTC))
    assert answered == (LinkStatus.DECLINED, False)

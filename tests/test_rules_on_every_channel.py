"""Each rule decided once in the domain, driven through every channel that reaches it: CalDAV,
the CRM pages, the RSVP page, the CLI and email (the LMTP listener), which all see the same
decision: answers only while planned; who is shown an interaction; one status per refusal
(``errors.status_of``, its SMTP class on LMTP); the words of each answer; when a room is busy."""

from __future__ import annotations

import contextlib
import io
import re
import smtplib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import select

from caldav_bridge.cli.commands import main
from caldav_bridge.config import ImipSettings
from caldav_bridge.domain import links, tokens
from caldav_bridge.domain.errors import (
    BookingConflict,
    BridgeError,
    InteractionCancelled,
    InvalidTransition,
    NotAllowed,
    status_of,
)
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Channel, LinkStatus, NotificationKind, OutboxMessage
from caldav_bridge.domain.participants import GuestEntry
from caldav_bridge.domain.rules import Answer
from caldav_bridge.ical.mapping import normalize_address
from caldav_bridge.mail.listener import Listener
from tests.conftest import RunningServer, World
from tests.helpers import (
    RELAY,
    at,
    create,
    crm_pages,
    event_text,
    free_port,
    freebusy_request,
    link_status,
    reply_mail,
)

ICS = {"Content-Type": "text/calendar"}
ONLY_WHILE_PLANNED = "it can be answered only while it is planned"


@dataclass
class Meeting:
    """alice's meeting on 7 January 2030, and each participant's CalDAV copy of it."""

    id: int
    uid: str
    href: str
    copies: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Said:
    """What a channel answered: its status (HTTP, SMTP, or the CLI's exit code) and words."""

    code: int
    text: str


@pytest.fixture
def lmtp(world: World) -> Iterator[int]:
    """The LMTP listener for emailed replies, on a port of its own."""
    port = free_port()
    imip = ImipSettings(trusted_authserv_ids=frozenset({RELAY}))
    running = Listener(world.database, "https://crm.example", "127.0.0.1", port, True, imip)
    running.start()
    try:
        yield port
    finally:
        running.stop()


def _meeting(server: RunningServer, *invited: str, guests: tuple[str, ...] = ()) -> Meeting:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        interaction = create(service, users["alice"], "Budget", at(7, 10), at(7, 11))
        for login in invited:
            service.link(users["alice"], interaction, users[login], LinkStatus.INVITED)
        service.set_guests(users["alice"], interaction, [GuestEntry(g) for g in guests])
        meeting = Meeting(interaction.id, interaction.uid, interaction.href)
    for login in ("alice", *invited):
        copy = httpx.get(f"{server.url}{login}/interactions/{meeting.href}", auth=(login, login))
        assert copy.status_code == 200, copy.text
        meeting.copies[login] = copy.text
    return meeting


def _service_call(server: RunningServer, meeting: Meeting, act: str, login: str = "alice") -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        interaction = service.get(meeting.id)
        if act == "done":
            service.mark_done(users[login], interaction)
        elif act == "cancelled":
            service.cancel(users[login], interaction)
        elif act == "unlink":
            service.unlink(users["alice"], interaction, users[login])
        else:
            service.answer(users[login], interaction, Answer(act))


# ---------------------------------------------------------------- the channels of an answer

PARTSTAT = {Answer.ACCEPT: "ACCEPTED", Answer.DECLINE: "DECLINED"}


def _attendees(event: Any) -> list[Any]:
    found = event.get("ATTENDEE", [])
    return list(found) if isinstance(found, list) else [found]


def _with_partstat(text: str, address: str, partstat: str) -> str:
    calendar = Calendar.from_ical(text)
    for event in calendar.walk("VEVENT"):
        for attendee in _attendees(event):
            if normalize_address(attendee) == address:
                attendee.params["PARTSTAT"] = partstat
    return str(calendar.to_ical().decode())


def _by_caldav(server: RunningServer, meeting: Meeting, login: str, answer: Answer) -> Said:
    copy = meeting.copies.get(login, meeting.copies["alice"])  # a stranger: the organizer's
    text = _with_partstat(copy, f"{login}@example.com", PARTSTAT[answer])
    put = httpx.put(
        f"{server.url}{login}/interactions/{meeting.href}",
        content=text,
        headers=ICS,
        auth=(login, login),
    )
    return Said(put.status_code, put.text)


def _by_page(server: RunningServer, meeting: Meeting, login: str, answer: Answer) -> Said:
    pages, csrf = crm_pages(server.url, login)
    with contextlib.closing(pages):
        posted = pages.post(
            f"interactions/{meeting.id}/answer", data={"answer": answer.value, "csrf": csrf}
        )
    return Said(posted.status_code, posted.text)


def _rsvp_url(server: RunningServer, meeting: Meeting, login: str) -> tuple[str, str]:
    with server.world.database.session(write=True) as session:
        token = tokens.rsvp_token(session, server.world.users(session)[login], meeting.id)
    path = urlsplit(links.rsvp("http://x", meeting.id, token)).path
    return f"{server.url.rstrip('/')}{path}", token


def _by_rsvp(server: RunningServer, meeting: Meeting, login: str, answer: Answer) -> Said:
    url, token = _rsvp_url(server, meeting, login)
    posted = httpx.post(url, data={"token": token, "answer": answer.value})
    return Said(posted.status_code, posted.text)


def _cli(server: RunningServer, *argv: str) -> Said:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--database", server.world.database.url, *argv])
    return Said(code, out.getvalue() + err.getvalue())


def _by_cli(server: RunningServer, meeting: Meeting, login: str, answer: Answer) -> Said:
    return _cli(server, "answer", str(meeting.id), login, answer.value)


def _mail(port: int, server: RunningServer, meeting: Meeting, address: str, partstat: str) -> Said:
    with server.world.database.session() as session:
        sequence = InteractionService(session).get(meeting.id).sequence
    raw = reply_mail(meeting.uid, address, address, partstat, sequence)
    with smtplib.LMTP("127.0.0.1", port) as client:
        try:
            client.sendmail(address, ["crm@example.com"], re.sub(rb"\r?\n", b"\r\n", raw))
        except smtplib.SMTPDataError as refused:
            words = refused.smtp_error
            return Said(refused.smtp_code, words.decode() if isinstance(words, bytes) else words)
    return Said(250, "")


AnswerChannel = Callable[[RunningServer, Meeting, str, Answer], Said]
CHANNELS: dict[str, AnswerChannel] = {
    "caldav": _by_caldav,
    "page": _by_page,
    "rsvp": _by_rsvp,
    "cli": _by_cli,
}


def _answers(
    server: RunningServer, port: int, meeting: Meeting, login: str, address: str = ""
) -> dict[str, Said]:
    """``login`` accepting on every channel (by email from ``address``, default theirs)."""
    accept = Answer.ACCEPT
    said = {name: channel(server, meeting, login, accept) for name, channel in CHANNELS.items()}
    said["email"] = _mail(port, server, meeting, address or f"{login}@example.com", "ACCEPTED")
    return said


def _refused_as(status: HTTPStatus) -> dict[str, int]:
    """What each channel answers a refusal of ``status`` with: the status itself over HTTP,
    its SMTP class over LMTP (a sender who may not: 550; any other: 554), exit code 2."""
    smtp = 550 if status is HTTPStatus.FORBIDDEN else 554
    return {"caldav": status, "page": status, "rsvp": status, "cli": 2, "email": smtp}


def _codes(said: dict[str, Said]) -> dict[str, int]:
    return {name: one.code for name, one in said.items()}


# ---------------------------------------------------------------- answers only while planned


@pytest.mark.parametrize("state", ["done", "cancelled"])
def test_an_interaction_is_answered_only_while_planned_on_every_channel(
    server: RunningServer, lmtp: int, state: str
) -> None:
    meeting = _meeting(server, "bob", guests=("zoe@partner.example",))
    _service_call(server, meeting, state)
    said = _answers(server, lmtp, meeting, "bob")
    assert _codes(said) == _refused_as(HTTPStatus.CONFLICT), said
    # One message, from the service, wherever the answer reached it (a client's copy of a
    # cancelled interaction is refused before it is read as an answer).
    reached = [name for name in said if not (state == "cancelled" and name == "caldav")]
    assert all(f"is {state}: {ONLY_WHILE_PLANNED}" in said[name].text for name in reached), said
    assert link_status(server.world, meeting.id, "bob") is LinkStatus.INVITED
    guest = _mail(lmtp, server, meeting, "zoe@partner.example", "ACCEPTED")
    assert guest.code == 554
    assert ONLY_WHILE_PLANNED in guest.text


def test_an_answer_that_changes_nothing_is_let_be_once_done(
    server: RunningServer, lmtp: int
) -> None:
    """A client saving its copy of a past meeting again (an alarm dismissed) is no answer."""
    meeting = _meeting(server, "bob")
    _service_call(server, meeting, "accept", "bob")
    meeting.copies["bob"] = httpx.get(
        f"{server.url}bob/interactions/{meeting.href}", auth=("bob", "bob")
    ).text
    _service_call(server, meeting, "done")
    assert _by_caldav(server, meeting, "bob", Answer.ACCEPT).code == 204
    assert _by_cli(server, meeting, "bob", Answer.ACCEPT) == Said(
        0, "bob had already answered so\n"
    )
    assert _mail(lmtp, server, meeting, "bob@example.com", "ACCEPTED").code == 250
    refused = _by_caldav(server, meeting, "bob", Answer.DECLINE)
    assert refused.code == 409
    assert ONLY_WHILE_PLANNED in refused.text
    assert link_status(server.world, meeting.id, "bob") is LinkStatus.CONFIRMED


def test_the_pages_offer_answers_only_while_planned(server: RunningServer) -> None:
    meeting = _meeting(server, "bob")
    url, token = _rsvp_url(server, meeting, "bob")
    pages, _ = crm_pages(server.url, "bob")
    with contextlib.closing(pages):
        for state, offered in (("planned", True), ("done", False)):
            if state == "done":
                _service_call(server, meeting, "done")
            page = pages.get(f"interactions/{meeting.id}").text
            listed = pages.get("interactions", params={"from": "2030-01-01"}).text
            rsvp = httpx.get(url, params={"token": token}).text
            for shown in (page, listed, rsvp):
                assert ('value="accept"' in shown) is offered, (state, shown)


# ---------------------------------------------------------------- who is shown an interaction


def _feed(server: RunningServer, login: str) -> str:
    with server.world.database.session(write=True) as session:
        user = server.world.users(session)[login]
        tokens.rotate_feed(user)
        session.flush()
        token = tokens.feed_token(session, user)
    assert token is not None
    feed = httpx.get(f"{server.url.rstrip('/')}{urlsplit(links.feed('http://x', token)).path}")
    assert feed.status_code == 200
    return feed.text


def _seen_by(server: RunningServer, meeting: Meeting, login: str) -> dict[str, bool]:
    """Whether each channel shows ``meeting`` to ``login``."""
    url, token = _rsvp_url(server, meeting, login)
    rsvp = httpx.get(url, params={"token": token})
    calendar = httpx.get(f"{server.url}{login}/interactions/{meeting.href}", auth=(login, login))
    pages, _ = crm_pages(server.url, login)
    with contextlib.closing(pages):
        page = pages.get(f"interactions/{meeting.id}")
        listed = pages.get("interactions", params={"from": "2030-01-01", "to": "2030-01-31"})
        agenda = pages.get("agenda", params={"week": "2030-01-07"})
    assert {page.status_code, rsvp.status_code} <= {200, 403}
    assert calendar.status_code in (200, 404)
    return {
        "page": page.status_code == 200,
        "rsvp": rsvp.status_code == 200 and "Budget" in rsvp.text,
        "list": "Budget" in listed.text,
        "agenda": "Budget" in agenda.text,
        "caldav": calendar.status_code == 200,
        "feed": meeting.uid in _feed(server, login),
    }


def test_who_is_shown_an_interaction_is_decided_once(server: RunningServer) -> None:
    """Its owner and its linked users; one who declined by deleting it from their calendar
    still sees it on the pages (to change their mind), not in their calendars; an unlinked
    user, or one never linked, nowhere."""
    meeting = _meeting(server, "bob", "carol")
    deleted = httpx.delete(f"{server.url}bob/interactions/{meeting.href}", auth=("bob", "bob"))
    assert deleted.status_code in (200, 204)
    _service_call(server, meeting, "unlink", "carol")
    everywhere = dict.fromkeys(("page", "rsvp", "list", "agenda", "caldav", "feed"), True)
    pages_only = {**everywhere, "caldav": False, "feed": False}
    nowhere = dict.fromkeys(everywhere, False)
    assert _seen_by(server, meeting, "alice") == everywhere
    assert _seen_by(server, meeting, "bob") == pages_only
    assert _seen_by(server, meeting, "carol") == nowhere
    assert _seen_by(server, meeting, "dave") == nowhere


# ---------------------------------------------------------------- one status per refusal


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("cancelled", InteractionCancelled),
        ("done", InvalidTransition),
        ("not a participant", NotAllowed),
    ],
)
def test_each_refused_answer_gets_one_status_on_every_channel(
    server: RunningServer, lmtp: int, case: str, kind: type[BridgeError]
) -> None:
    meeting = _meeting(server, "bob")
    if case == "not a participant":  # dave, a CRM user; by email, a guest nobody invited
        said = _answers(server, lmtp, meeting, "dave", "zoe@partner.example")
    else:
        _service_call(server, meeting, case)
        said = _answers(server, lmtp, meeting, "bob")
    assert _codes(said) == _refused_as(status_of(kind("refused"))), said


def test_an_invalid_link_is_one_conflict_on_every_channel(server: RunningServer) -> None:
    """The owner linking someone as Declined, or confirming one who declined: 409 on the
    page, exit code 2 on the CLI (CalDAV, the RSVP page and email cannot ask it)."""
    meeting = _meeting(server, "bob", "carol")
    _service_call(server, meeting, "decline", "carol")
    pages, csrf = crm_pages(server.url, "alice")
    with contextlib.closing(pages):
        linked = {
            status: pages.post(
                f"interactions/{meeting.id}/link",
                data={"login": login, "status": status, "csrf": csrf},
            )
            for login, status in (("dave", "declined"), ("carol", "confirmed"))
        }
        owner = pages.post(
            f"interactions/{meeting.id}/link",
            data={"login": "alice", "status": "invited", "csrf": csrf},
        )
    expected = status_of(InvalidTransition("refused"))
    assert [a.status_code for a in (*linked.values(), owner)] == [expected] * 3
    cli = _cli(server, "link", str(meeting.id), "carol", "--status", "confirmed")
    assert cli.code == 2
    assert "declined: invite them again" in cli.text
    assert "declined: invite them again" in linked["confirmed"].text
    assert link_status(server.world, meeting.id, "carol") is LinkStatus.DECLINED


# ---------------------------------------------------------------- the words of each answer


def test_a_tentative_answer_reads_the_same_for_users_and_guests_everywhere(
    server: RunningServer, lmtp: int
) -> None:
    meeting = _meeting(server, "bob", "carol", guests=("zoe@partner.example",))
    assert _cli(server, "answer", str(meeting.id), "bob", "tentative").text == (
        "bob answered tentatively\n"
    )
    assert _mail(lmtp, server, meeting, "zoe@partner.example", "TENTATIVE").code == 250
    pages, _ = crm_pages(server.url, "alice")
    with contextlib.closing(pages):
        page = pages.get(f"interactions/{meeting.id}").text
    url, token = _rsvp_url(server, meeting, "carol")
    rsvp = httpx.get(url, params={"token": token}).text
    for shown in (page, rsvp):
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", shown, re.S)
        for who in ("Bob Dupont", "zoe@partner.example"):
            row = next(r for r in rows if who in r)
            assert "Invited (tentative)" in row, (who, row)
    shown = _cli(server, "interaction", "show", str(meeting.id)).text
    assert "Bob Dupont (bob): Invited (tentative)" in shown
    with server.world.database.session() as session:
        told = session.scalars(
            select(OutboxMessage.subject).where(
                OutboxMessage.kind == NotificationKind.REPLY,
                OutboxMessage.channel == Channel.MESSENGER,
            )
        ).all()
    assert "Bob Dupont answered tentatively: Budget" in told


def test_the_list_filters_on_statuses_not_on_their_words(server: RunningServer) -> None:
    meeting = _meeting(server, "bob")
    _service_call(server, meeting, "tentative", "bob")
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        dropped = create(service, users["alice"], "Dropped", at(8, 10), at(8, 11))
        service.link(users["alice"], dropped, users["bob"], LinkStatus.INVITED)
        service.cancel(users["alice"], dropped)
    pages, _ = crm_pages(server.url, "bob")
    with contextlib.closing(pages):

        def listed(status: str) -> set[str]:
            text = pages.get(
                "interactions", params={"from": "2030-01-01", "to": "2030-01-31", "status": status}
            ).text
            return {s for s in ("Budget", "Dropped") if s in text}

        assert listed("invited") == {"Budget"}  # answered tentatively: still Invited
        assert listed("confirmed") == set()
        assert listed("cancelled") == {"Dropped"}
        assert listed("") == {"Budget", "Dropped"}
        assert pages.get("interactions", params={"status": "Invited"}).status_code == 400


# ---------------------------------------------------------------- when a room is busy


def _room_answers(server: RunningServer, start: str, end: str) -> str:
    """The room's PARTSTAT in a new event alice saves with it from her calendar client."""
    uid = f"{uuid.uuid4()}"
    text = event_text(
        uid,
        "ORGANIZER:mailto:alice@example.com",
        "ATTENDEE;CUTYPE=ROOM;PARTSTAT=NEEDS-ACTION:mailto:everest@example.com",
        start=start,
        end=end,
    )
    path = f"{server.url}alice/interactions/{uid}.ics"
    assert httpx.put(path, content=text, headers=ICS, auth=("alice", "alice")).status_code == 201
    stored = Calendar.from_ical(httpx.get(path, auth=("alice", "alice")).text)
    event = next(iter(stored.walk("VEVENT")))
    room = next(a for a in _attendees(event) if "everest" in a)
    return str(room.params["PARTSTAT"])


def _room_free_busy(server: RunningServer) -> str:
    posted = httpx.post(
        f"{server.url}alice/outbox/",
        content=freebusy_request("everest@example.com", start="20300108T000000Z"),
        headers=ICS,
        auth=("alice", "alice"),
    )
    assert posted.status_code == 200, posted.text
    return posted.text.replace("\r\n ", "")


@pytest.mark.parametrize(
    ("state", "busy"), [("planned", True), ("done", True), ("cancelled", False)]
)
def test_a_room_is_busy_by_one_rule_for_bookings_and_free_busy(
    server: RunningServer, state: str, busy: bool
) -> None:
    """The room's booking from 10:00 to 13:00 UTC on 8 January 2030; each channel asks for a
    half hour of it (a different one each, so that they never take it from each other)."""
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        alice, everest = users["alice"], server.world.rooms(session)["everest"]
        held = create(service, alice, "Board", at(8, 11), at(8, 14))
        service.book(alice, held, everest)
        asking = [
            create(service, alice, f"Ask {n}", at(8, 11 + n), at(8, 11 + n, 30)) for n in (0, 1)
        ]
        asked = [one.id for one in asking]
        if state == "done":
            service.mark_done(alice, held)
        elif state == "cancelled":
            service.cancel(alice, held)
    pages, csrf = crm_pages(server.url, "alice")
    with contextlib.closing(pages):
        page = pages.post(f"interactions/{asked[0]}/book", data={"room": "everest", "csrf": csrf})
    decided = {
        "free-busy": "20300108T100000Z/20300108T130000Z" in _room_free_busy(server),
        "page": page.status_code == status_of(BookingConflict("Everest room", 0, "", "")),
        "cli": _cli(server, "book", str(asked[1]), "everest").code == 2,
        "caldav": _room_answers(server, "20300108T123000Z", "20300108T130000Z") == "DECLINED",
    }
    assert decided == dict.fromkeys(decided, busy)

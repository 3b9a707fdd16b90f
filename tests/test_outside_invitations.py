"""Invitations from outside the CRM (``domain.outside``): each user's default calendar, named by
schedule-default-calendar-URL and made on first use; an outside invitation saved there as Apple
Calendar saves one accepted in Mail, answered by an iMIP REPLY through the outbox; an emailed
REQUEST or CANCEL from the outside organizer filed there, with a messenger notice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from xml.etree import ElementTree as ET

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import select

from caldav_bridge.config import SmtpSettings
from caldav_bridge.domain import messenger
from caldav_bridge.domain.models import Channel, NotificationKind, OutboxMessage
from caldav_bridge.mail import delivery
from tests.conftest import Inbox, RunningServer, World
from tests.helpers import relay_says
from tests.test_imip_listener import _send as send_lmtp
from tests.test_replies import Receive, receive  # noqa: F401 - the fixture
from tests.test_scheduling import _put
from tests.test_stale_answers import listening

D, C = "DAV:", "urn:ietf:params:xml:ns:caldav"
UID = "040000008200E00074C5B7101A82E00800000000B0C1D2E3F4"


def _client(server: RunningServer, login: str = "bob") -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(login, login), timeout=30)


_ALARM = ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder", "TRIGGER:-PT15M", "END:VALARM"]


def _invitation(
    partstat: str, *, sequence: int = 0, rid: str | None = None, alarm: bool = True
) -> str:
    """Zoe's invitation as Apple Calendar saves it after Mail (no METHOD; Apple's ATTENDEE
    parameters, X-APPLE- properties, an alarm of its own), bob's PARTSTAT ``partstat``; with
    ``rid`` one occurrence only, without its series."""
    occurrence = (
        [f"RECURRENCE-ID;TZID=Europe/Paris:{rid}"] if rid else ["RRULE:FREQ=WEEKLY;COUNT=4"]
    )
    start = rid or "20300108T100000"
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Apple Inc.//macOS 14.5//EN",
            "CALSCALE:GREGORIAN",
            "BEGIN:VEVENT",
            "CREATED:20291220T101010Z",
            f"UID:{UID}",
            *occurrence,
            f"DTSTART;TZID=Europe/Paris:{start}",
            f"DTEND;TZID=Europe/Paris:{start[:9]}11{start[11:]}",
            "DTSTAMP:20291220T101010Z",
            f"SEQUENCE:{sequence}",
            "SUMMARY:Supplier review",
            "TRANSP:OPAQUE",
            "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC",
            'ORGANIZER;CN="Zoe Partner";EMAIL="zoe@partner.example":mailto:zoe@partner.example',
            'ATTENDEE;CN="Zoe Partner";CUTYPE=INDIVIDUAL;EMAIL="zoe@partner.example";PARTSTAT=ACC',
            " EPTED;ROLE=CHAIR:mailto:zoe@partner.example",
            'ATTENDEE;CN="Bob Dupont";CUTYPE=INDIVIDUAL;EMAIL="bob@example.com";PARTSTAT=',
            f" {partstat};ROLE=REQ-PARTICIPANT;RSVP=TRUE;X-NUM-GUESTS=0:mailto:bob@example.com",
            "ATTENDEE;CN=Yann;PARTSTAT=NEEDS-ACTION:mailto:yann@partner.example",
            *(_ALARM if alarm else []),
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def _default_url(client: httpx.Client) -> str:
    body = (
        f'<propfind xmlns="DAV:" xmlns:C="{C}"><prop><C:schedule-default-calendar-URL/>'
        "</prop></propfind>"
    )
    answer = client.request("PROPFIND", "/bob/inbox/", content=body, headers={"Depth": "0"})
    assert answer.status_code == 207, answer.text
    found = ET.fromstring(answer.content).find(
        f".//{{{C}}}schedule-default-calendar-URL/{{{D}}}href"
    )
    assert found is not None
    assert found.text
    return found.text


def _replies(world: World) -> list[OutboxMessage]:
    with world.database.session() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == NotificationKind.OUTSIDE_REPLY)
            )
        )


def _delivered(world: World, smtp: tuple[SmtpSettings, Inbox]) -> list[Calendar]:
    settings, inbox = smtp
    delivery.deliver_due(world.database, settings)
    calendars = []
    for message in inbox.messages:
        assert isinstance(message, EmailMessage)
        for part in message.iter_parts():
            if part.get_content_type() == "text/calendar":
                calendars.append(Calendar.from_ical(part.get_content()))
    return calendars


def test_the_default_calendar_is_the_users_own_and_made_on_first_use(
    server: RunningServer,
) -> None:
    with _client(server) as bob:
        assert _default_url(bob) == "/bob/calendar/"
        body = '<propfind xmlns="DAV:"><prop><displayname/><resourcetype/></prop></propfind>'
        answer = bob.request("PROPFIND", "/bob/calendar/", content=body, headers={"Depth": "0"})
        assert answer.status_code == 207
        assert f"{{{C}}}calendar" in {e.tag for e in ET.fromstring(answer.content).iter()}
        assert "Personal" in answer.text
        listing = bob.request("PROPFIND", "/bob/", content=body, headers={"Depth": "1"})
        assert listing.text.count("/bob/calendar/") == 1  # listed once, where its URL names it


def test_an_outside_invitation_accepted_as_apple_calendar_saves_it_sends_the_reply(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    world = server.world
    with _client(server) as bob:
        default = _default_url(bob)
        path = f"{default}{UID}.ics"
        assert _put(bob, path, _invitation("NEEDS-ACTION")).status_code == 201
        assert _replies(world) == []  # saved, not answered yet
        assert _put(bob, path, _invitation("ACCEPTED")).status_code in (201, 204)
        kept = bob.get(path)
        assert kept.status_code == 200
        assert "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR" in kept.text
        assert "BEGIN:VALARM" in kept.text
    [reply] = _delivered(world, smtp)
    _, inbox = smtp
    assert inbox.messages[0]["To"] == "zoe@partner.example"
    assert inbox.messages[0]["Reply-To"] == "bob@example.com"  # answers to bob, not the CRM
    assert str(reply["METHOD"]) == "REPLY"
    [event] = reply.events
    attendee = event["ATTENDEE"]  # one ATTENDEE only: bob
    assert str(attendee) == "mailto:bob@example.com"
    assert attendee.params["PARTSTAT"] == "ACCEPTED"
    assert str(event["UID"]) == UID
    assert str(event["ORGANIZER"]) == "mailto:zoe@partner.example"
    assert "VALARM" not in reply.to_ical().decode()  # bob's alarm is his
    with _client(server) as bob:  # saving it again unchanged answers nothing new
        assert _put(bob, path, _invitation("ACCEPTED")).status_code == 204
    assert len(_replies(world)) == 1


def test_one_occurrence_from_outside_is_stored_and_answered_alone(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    with _client(server) as bob:
        path = f"{_default_url(bob)}{UID}.ics"
        answer = _put(bob, path, _invitation("DECLINED", rid="20300115T100000"))
        assert answer.status_code == 201, answer.text
        assert "RECURRENCE-ID" in bob.get(path).text
    [reply] = _delivered(server.world, smtp)
    [event] = reply.events
    assert "RECURRENCE-ID" in event
    assert event["ATTENDEE"].params["PARTSTAT"] == "DECLINED"


# ---------------------------------------------------------------------------- by email


def _request_mail(
    method: str,
    sender: str = "zoe@partner.example",
    sequence: int = 0,
    *,
    organizer: str = "zoe@partner.example",
    rid: str | None = None,
) -> bytes:
    text = _invitation("NEEDS-ACTION", sequence=sequence, rid=rid, alarm=False)
    text = text.replace("zoe@partner.example", organizer)
    text = text.replace("CALSCALE:GREGORIAN", f"CALSCALE:GREGORIAN\r\nMETHOD:{method}")
    if method == "CANCEL":
        text = text.replace("SEQUENCE:", "STATUS:CANCELLED\r\nSEQUENCE:")
    message = EmailMessage()
    message["From"] = f"Zoe Partner <{sender}>"
    message["To"] = "bob@example.com"
    message["Subject"] = f"{method.title()}: Supplier review"
    message.set_content("An invitation")
    message.add_alternative(text, subtype="calendar", params={"method": method})
    domain = sender.rpartition("@")[2]
    top = relay_says(f"spf=pass smtp.mailfrom={domain}; dmarc=pass header.from={domain}")
    return top + bytes(message)


@pytest.fixture
def listener(world: World) -> Iterator[int]:
    with listening(world) as port:
        yield port


def _send(port: int, raw: bytes) -> str:
    return send_lmtp(("lmtp", port), "zoe@partner.example", raw)


def _bobs_copy(server: RunningServer) -> str:
    with _client(server) as bob:
        answer = bob.get(f"/bob/calendar/{UID}.ics")
        assert answer.status_code == 200, answer.text
        return answer.text


def test_an_emailed_outside_request_lands_in_the_default_calendar_and_a_cancel_marks_it(
    server: RunningServer, listener: int
) -> None:
    assert _send(listener, _request_mail("REQUEST")) == "250"
    copy = _bobs_copy(server)
    assert "METHOD" not in copy
    assert "Supplier review" in copy
    with server.world.database.session() as session:
        bob = server.world.users(session)["bob"]
        [notice] = messenger.notices(session, bob)
        assert notice.subject == "Invitation: Supplier review"
        assert notice.interaction_id is None
        assert notice.channel is Channel.MESSENGER
    assert _send(listener, _request_mail("CANCEL", sequence=1)) == "250"
    assert "STATUS:CANCELLED" in _bobs_copy(server)


def test_an_older_or_spoofed_request_changes_nothing(server: RunningServer, listener: int) -> None:
    assert _send(listener, _request_mail("REQUEST", sequence=2)) == "250"
    assert "SEQUENCE:2" in _bobs_copy(server)
    stale = _request_mail("REQUEST", sequence=1).replace(b"Supplier review", b"Old title")
    assert _send(listener, stale) == "250"
    assert "Old title" not in _bobs_copy(server)
    spoofed = _request_mail("CANCEL", sender="mallory@evil.example", sequence=3)
    answer = _send(listener, spoofed)
    assert answer.startswith("550 5.7.1")
    assert "not the organizer" in answer
    assert "STATUS:CANCELLED" not in _bobs_copy(server)


def test_an_accepted_emailed_request_is_answered_by_email(
    server: RunningServer, listener: int, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    assert _send(listener, _request_mail("REQUEST")) == "250"
    copy = _bobs_copy(server)
    accepted = re.sub(r"\r\n ", "", copy).replace(
        "PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT", "PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT"
    )
    with _client(server) as bob:
        assert _put(bob, f"/bob/calendar/{UID}.ics", accepted).status_code == 204
    calendars = [c for c in _delivered(server.world, smtp) if str(c["METHOD"]) == "REPLY"]
    assert [c.events[0]["ATTENDEE"].params["PARTSTAT"] for c in calendars] == ["ACCEPTED"]


def test_imip_receive_files_a_request_and_a_cancel_of_one_occurrence_excludes_it(
    server: RunningServer,
    receive: Receive,  # noqa: F811 - the fixture
) -> None:
    code, out = receive(_request_mail("REQUEST"))
    assert code == 0, out
    assert "invitation kept in /bob/calendar/" in out
    code, out = receive(_request_mail("CANCEL", sequence=1, rid="20300115T100000"))
    assert code == 0, out
    [event] = Calendar.from_ical(_bobs_copy(server)).events
    assert [d.dt.day for d in event["EXDATE"].dts] == [15]
    assert "STATUS" not in event  # the series goes on
    with server.world.database.session() as session:
        bob = server.world.users(session)["bob"]
        subjects = [n.subject for n in messenger.notices(session, bob)]
    assert subjects == ["Cancelled: Supplier review", "Invitation: Supplier review"]


def test_a_request_from_a_crm_user_is_left_to_the_crm(
    world: World,
    receive: Receive,  # noqa: F811 - the fixture
) -> None:
    raw = _request_mail("REQUEST", sender="alice@example.com", organizer="alice@example.com")
    code, out = receive(raw)
    assert (code, "not from an organizer outside the CRM" in out) == (0, True)


def test_an_update_by_email_reaches_the_copy_where_the_user_keeps_it(
    server: RunningServer,
    receive: Receive,  # noqa: F811 - the fixture
) -> None:
    """Bob keeps zoe's event in "Work" with an alarm of his: her new version replaces it there
    (no second copy in his default calendar), his alarm stays."""
    with _client(server) as bob:
        assert bob.request("MKCALENDAR", "/bob/work/").status_code == 201
        assert _put(bob, f"/bob/work/{UID}.ics", _invitation("ACCEPTED")).status_code == 201
    code, out = receive(_request_mail("REQUEST", sequence=1))
    assert code == 0, out
    assert "update kept in /bob/work/" in out
    with _client(server) as bob:
        copy = bob.get(f"/bob/work/{UID}.ics").text
        assert bob.get(f"/bob/calendar/{UID}.ics").status_code == 404
    assert "SEQUENCE:1" in copy
    assert "TRIGGER:-PT15M" in copy


def test_removing_an_outside_invitation_declines_it_unless_cancelled(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    with _client(server) as bob:
        path = f"{_default_url(bob)}{UID}.ics"
        assert _put(bob, path, _invitation("NEEDS-ACTION")).status_code == 201
        assert bob.delete(path).status_code in (200, 204)
        cancelled = _invitation("ACCEPTED").replace("SEQUENCE:0", "STATUS:CANCELLED\r\nSEQUENCE:1")
        assert _put(bob, path, cancelled).status_code == 201  # answered: one REPLY
        assert bob.delete(path).status_code in (200, 204)  # cancelled: nothing more
    partstats = [c.events[0]["ATTENDEE"].params["PARTSTAT"] for c in _delivered(server.world, smtp)]
    assert partstats == ["DECLINED", "ACCEPTED"]

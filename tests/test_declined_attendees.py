"""Attendees who declined are still sent the organizer's changes (RFC 6638 3.2.1.2: they may
change their mind, and their client must show the new time or the cancellation), on every
channel (schedule inbox, email, messenger), their PARTSTAT still DECLINED. One who declined by
deleting the event gets it back in their calendar with the update (RFC 6638 4.3: the server
makes an attendee's copy when they have none). An answer changes nothing for anybody else."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
import pytest
from icalendar import Calendar, Event

from caldav_bridge.config import SmtpSettings
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.ical.mapping import normalize_address
from caldav_bridge.mail import delivery
from tests.conftest import Inbox, RunningServer
from tests.helpers import event_text, link_status

D = "DAV:"
HEADERS = {"Content-Type": "text/calendar"}
ORGANIZER = "ORGANIZER:mailto:alice@example.com"
GUEST = "zoe@outside.example"


def _attendees(guest_partstat: str) -> tuple[str, ...]:
    return (
        ORGANIZER,
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.com",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:dave@example.com",
        f"ATTENDEE;PARTSTAT={guest_partstat}:mailto:{GUEST}",
    )


@dataclass
class Meeting:
    """Alice's meeting: bob declined by deleting it, carol by her PARTSTAT, the guest by
    email (alice's client saved the answer); dave has not answered. Mail sent so far is
    delivered and forgotten, so that what follows is what the test's change sent."""

    server: RunningServer
    smtp: SmtpSettings
    mail: Inbox
    uid: str
    interaction_id: int

    @property
    def path(self) -> str:
        return f"/alice/interactions/{self.uid}.ics"

    def client(self, login: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, auth=(login, login), timeout=30)

    def inbox_hrefs(self, login: str) -> set[str]:
        with self.client(login) as client:
            listing = client.request("PROPFIND", f"/{login}/inbox/", headers={"Depth": "1"})
        assert listing.status_code == 207, listing.text
        hrefs = {h.text or "" for h in ET.fromstring(listing.content).iter(f"{{{D}}}href")}
        return {h for h in hrefs if h.endswith(".ics")}

    def emails(self) -> dict[str, Calendar]:
        """The iMIP emails delivered now, by recipient, each one's calendar part."""
        delivery.deliver_due(self.server.world.database, self.smtp)
        found = {}
        for message in self.mail.messages:
            part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
            found[str(message["To"])] = Calendar.from_ical(part.get_content())
        self.mail.messages.clear()
        return found

    def notices(self, login: str) -> list[str]:
        answer = httpx.get(f"{self.server.url}.bridge/messages", auth=(login, login))
        return [n["subject"] for n in answer.json()]


@pytest.fixture
def meeting(server: RunningServer, smtp: tuple[SmtpSettings, Inbox]) -> Meeting:
    uid = f"{uuid.uuid4()}"
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        created = alice.put(
            f"/alice/interactions/{uid}.ics",
            content=event_text(uid, *_attendees("NEEDS-ACTION"), summary="Budget"),
            headers=HEADERS,
        )
        assert created.status_code == 201, created.text
        declined = event_text(uid, *_attendees("DECLINED"), summary="Budget")
        assert alice.put(f"/alice/interactions/{uid}.ics", content=declined, headers=HEADERS)
    with httpx.Client(base_url=server.url, auth=("bob", "bob"), timeout=30) as bob:
        assert bob.delete(f"/bob/interactions/{uid}.ics").status_code in (200, 204)
    with httpx.Client(base_url=server.url, auth=("carol", "carol"), timeout=30) as carol:
        mine = carol.get(f"/carol/interactions/{uid}.ics").text
        calendar = Calendar.from_ical(mine)
        _set_partstat(calendar.events[0], "carol@example.com", "DECLINED")
        answered = carol.put(
            f"/carol/interactions/{uid}.ics", content=calendar.to_ical(), headers=HEADERS
        )
        assert answered.status_code in (201, 204), answered.text
    with server.world.database.session() as session:
        found = InteractionService(session).find_by_uid(uid)
        assert found is not None
        interaction_id = found.id
    running = Meeting(server, smtp[0], smtp[1], uid, interaction_id)
    running.emails()  # the invitations: delivered, then forgotten
    return running


def _set_partstat(event: Event, address: str, partstat: str) -> None:
    for attendee in event["ATTENDEE"]:
        if normalize_address(attendee) == address:
            attendee.params["PARTSTAT"] = partstat


def _partstat(event: Event, address: str) -> str:
    found = [a for a in event["ATTENDEE"] if normalize_address(a) == address]
    assert found, f"{address} is not an attendee"
    return str(found[0].params["PARTSTAT"])


def _moved_text(meeting: Meeting) -> str:
    return event_text(
        meeting.uid,
        *_attendees("DECLINED"),
        summary="Budget",
        start="20300109T150000Z",
        end="20300109T160000Z",
    )


def test_a_new_time_reaches_those_who_declined_on_every_channel_still_declined(
    meeting: Meeting,
) -> None:
    before = {login: meeting.inbox_hrefs(login) for login in ("bob", "carol")}
    with meeting.client("alice") as alice:
        moved = alice.put(meeting.path, content=_moved_text(meeting), headers=HEADERS)
        assert moved.status_code == 204, moved.text
    for login in ("bob", "carol"):
        address = f"{login}@example.com"
        (new,) = meeting.inbox_hrefs(login) - before[login]
        with meeting.client(login) as client:
            itip = Calendar.from_ical(client.get(new).text)
            # in their calendar: carol's stayed, bob's is back (he had deleted it)
            copy = client.get(f"/{login}/interactions/{meeting.uid}.ics")
        assert str(itip["METHOD"]) == "REQUEST"
        for event in (itip.events[0], Calendar.from_ical(copy.text).events[0]):
            assert event.decoded("DTSTART").hour == 15
            assert _partstat(event, address) == "DECLINED"
        assert meeting.notices(login)[0] == "Updated: Budget"
        assert link_status(meeting.server.world, meeting.interaction_id, login) is (
            LinkStatus.DECLINED
        )
    emails = meeting.emails()
    assert set(emails) == {"bob@example.com", "carol@example.com", "dave@example.com", GUEST}
    for address in ("bob@example.com", "carol@example.com", GUEST):
        assert str(emails[address]["METHOD"]) == "REQUEST"
        assert emails[address].events[0].decoded("DTSTART").hour == 15
        assert _partstat(emails[address].events[0], address) == "DECLINED"


def test_the_cancellation_reaches_those_who_declined_on_every_channel(meeting: Meeting) -> None:
    before = {login: meeting.inbox_hrefs(login) for login in ("bob", "carol")}
    with meeting.client("alice") as alice:
        assert alice.delete(meeting.path).status_code in (200, 204)
    for login in ("bob", "carol"):
        (new,) = meeting.inbox_hrefs(login) - before[login]
        with meeting.client(login) as client:
            assert str(Calendar.from_ical(client.get(new).text)["METHOD"]) == "CANCEL"
            assert client.get(f"/{login}/interactions/{meeting.uid}.ics").status_code == 404
        assert meeting.notices(login)[0] == "Cancelled: Budget"
    emails = meeting.emails()
    assert set(emails) == {"bob@example.com", "carol@example.com", "dave@example.com", GUEST}
    assert {str(c["METHOD"]) for c in emails.values()} == {"CANCEL"}


def test_an_answer_tells_the_organizer_only_and_reinvites_nobody(meeting: Meeting) -> None:
    before = {login: meeting.inbox_hrefs(login) for login in ("bob", "carol", "dave")}
    told = {login: meeting.notices(login) for login in ("bob", "carol", "dave")}
    with meeting.client("dave") as dave:
        calendar = Calendar.from_ical(dave.get(f"/dave/interactions/{meeting.uid}.ics").text)
        _set_partstat(calendar.events[0], "dave@example.com", "ACCEPTED")
        answered = dave.put(
            f"/dave/interactions/{meeting.uid}.ics", content=calendar.to_ical(), headers=HEADERS
        )
        assert answered.status_code in (201, 204), answered.text
    for login in ("bob", "carol", "dave"):
        assert meeting.inbox_hrefs(login) == before[login]
        assert meeting.notices(login) == told[login]
    with meeting.client("bob") as bob:  # bob's deletion stands: nothing was sent to him
        assert bob.get(f"/bob/interactions/{meeting.uid}.ics").status_code == 404
    assert set(meeting.emails()) == {"alice@example.com"}
    assert meeting.notices("alice")[0] == "Dave Okafor accepted: Budget"

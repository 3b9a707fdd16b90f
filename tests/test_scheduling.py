"""RFC 6638 scheduling over HTTP: the requests Apple Calendar and Thunderbird send, replayed
against the real server, and the iTIP messages that land in schedule inboxes."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import httpx
from icalendar import Calendar, Event
from sqlalchemy import select

from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import (
    Channel,
    Interaction,
    LinkStatus,
    OutboxMessage,
    ScheduleMessage,
)
from caldav_bridge.domain.periods import Draft
from caldav_bridge.ical.mapping import Answer, normalize_address
from tests.conftest import RunningServer
from tests.helpers import at

D, C, CS = "DAV:", "urn:ietf:params:xml:ns:caldav", "http://calendarserver.org/ns/"
XML = {"Content-Type": "application/xml; charset=utf-8"}


def _client(server: RunningServer, login: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(login, login), timeout=30)


def _event(
    uid: str,
    *attendees: str,
    organizer: str = "alice@example.com",
    start: str = "20300108T120000Z",
    end: str = "20300108T130000Z",
    summary: str = "Steering committee",
) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Apple Inc.//macOS 15.0//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20300101T000000Z",
        f"DTSTART:{start}",
        f"DTEND:{end}",
        f"SUMMARY:{summary}",
        f"ORGANIZER;CN=Alice Martin:mailto:{organizer}",
        f"ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{organizer}",
        *attendees,
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def _attendee(address: str, **params: str) -> str:
    """An ATTENDEE line as Apple writes it (no RSVP: DESIGN.md section 4, pitfall 2)."""
    given = {"PARTSTAT": "NEEDS-ACTION", **params}
    return "ATTENDEE;" + ";".join(f"{k}={v}" for k, v in given.items()) + f":mailto:{address}"


def _put(client: httpx.Client, path: str, text: str, **headers: str) -> httpx.Response:
    return client.put(path, content=text, headers={"Content-Type": "text/calendar", **headers})


def _attendees(text: str) -> dict[str, dict[str, str]]:
    event = Calendar.from_ical(text).events[0]
    return {normalize_address(a): dict(a.params) for a in event.get("ATTENDEE", [])}


def _answered(text: str, address: str, partstat: str) -> str:
    """The attendee's copy with their PARTSTAT changed, as their client writes it."""
    calendar = Calendar.from_ical(text)
    for attendee in calendar.events[0]["ATTENDEE"]:
        if normalize_address(attendee) == address:
            attendee.params["PARTSTAT"] = partstat
            attendee.params.pop("RSVP", None)
    return str(calendar.to_ical().decode())


def _unfolded(text: str) -> str:
    return text.replace("\r\n ", "").replace("\n ", "")


def _inbox(server: RunningServer, login: str) -> list[ScheduleMessage]:
    with server.world.database.session() as session:
        users = server.world.users(session)
        return list(
            session.scalars(
                select(ScheduleMessage)
                .where(ScheduleMessage.user_id == users[login].id)
                .order_by(ScheduleMessage.id)
            )
        )


def assert_itip(text: str, method: str) -> Event:
    """What a strict iTIP reader (libical, RFC 5546 section 3.2) demands of a message."""
    calendar = Calendar.from_ical(text)
    assert str(calendar["METHOD"]) == method
    (event,) = calendar.events
    for name in ("UID", "DTSTAMP", "ORGANIZER", "ATTENDEE"):
        assert name in event, f"{method} without {name}"
    if method in ("REQUEST", "CANCEL"):
        assert "DTSTART" in event
        assert "SEQUENCE" in event
    if method == "REPLY":
        assert not isinstance(event["ATTENDEE"], list), "a REPLY names its one attendee"
    found = event["ATTENDEE"]
    for attendee in found if isinstance(found, list) else [found]:
        assert not {"SCHEDULE-STATUS", "SCHEDULE-AGENT"} & set(attendee.params)
    return event


def _steering(server: RunningServer, client: httpx.Client, uid: str | None = None) -> str:
    """Alice's event with Bob, Carol and the Everest room, PUT as Apple Calendar does."""
    uid = uid or f"{uuid.uuid4()}"
    text = _event(
        uid,
        _attendee("bob@example.com", CN="Bob Dupont", CUTYPE="INDIVIDUAL"),
        _attendee("carol@example.com", CUTYPE="INDIVIDUAL"),
        _attendee("everest@example.com", CUTYPE="ROOM"),
    )
    answer = _put(client, f"/alice/interactions/{uid}.ics", text, **{"If-None-Match": "*"})
    assert answer.status_code == 201, answer.text
    return uid


# ------------------------------------------------------------------ what the server announces


def test_the_server_announces_that_it_schedules(server: RunningServer) -> None:
    with _client(server, "alice") as client:
        dav = client.options("/alice/").headers["DAV"]
    assert "calendar-auto-schedule" in [part.strip() for part in dav.split(",")]


def test_principals_expose_their_inbox_outbox_addresses_and_type(server: RunningServer) -> None:
    # Apple Calendar's discovery PROPFIND on the principal.
    body = (
        '<?xml version="1.0"?><A:propfind xmlns:A="DAV:" xmlns:B="urn:ietf:params:xml:ns:caldav">'
        "<A:prop><B:calendar-user-address-set/><B:schedule-inbox-URL/><B:schedule-outbox-URL/>"
        "<B:calendar-user-type/><B:calendar-home-set/><A:displayname/></A:prop></A:propfind>"
    )
    with _client(server, "alice") as client:
        answer = client.request("PROPFIND", "/alice/", content=body, headers={"Depth": "0", **XML})
        room = client.request("PROPFIND", "/everest/", content=body, headers={"Depth": "0", **XML})
    assert answer.status_code == 207
    root = ET.fromstring(answer.content)
    addresses = [h.text for h in root.iter(f"{{{D}}}href") if h.text and "mailto:" in h.text]
    assert addresses == ["mailto:alice@example.com"]
    inbox = root.find(f".//{{{C}}}schedule-inbox-URL/{{{D}}}href")
    outbox = root.find(f".//{{{C}}}schedule-outbox-URL/{{{D}}}href")
    assert inbox is not None
    assert inbox.text == "/alice/inbox/"
    assert outbox is not None
    assert outbox.text == "/alice/outbox/"
    assert root.findtext(f".//{{{C}}}calendar-user-type") == "INDIVIDUAL"
    room_root = ET.fromstring(room.content)
    assert room_root.findtext(f".//{{{C}}}calendar-user-type") == "ROOM"
    assert "mailto:everest@example.com" in [h.text for h in room_root.iter(f"{{{D}}}href")]


def test_the_inbox_and_outbox_say_what_they_are_and_only_their_owner_sees_them(
    server: RunningServer,
) -> None:
    body = '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'
    with _client(server, "alice") as alice, _client(server, "bob") as bob:
        for name in ("inbox", "outbox"):
            answer = alice.request(
                "PROPFIND", f"/alice/{name}/", content=body, headers={"Depth": "0", **XML}
            )
            assert answer.status_code == 207, answer.text
            kinds = {e.tag for e in ET.fromstring(answer.content).iter() if e.tag.startswith("{")}
            assert f"{{{C}}}schedule-{name}" in kinds
            assert f"{{{C}}}calendar" not in kinds
            other = bob.request(
                "PROPFIND", f"/alice/{name}/", content=body, headers={"Depth": "0", **XML}
            )
            assert other.status_code in (403, 404)


# ------------------------------------------------------------------ implicit scheduling


def test_an_organizer_put_invites_colleagues_into_their_inboxes_and_the_room_accepts(
    server: RunningServer,
) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
        stored = alice.get(f"/alice/interactions/{uid}.ics")
    assert stored.headers.get("Schedule-Tag")
    attendees = _attendees(stored.text)
    assert attendees["bob@example.com"]["SCHEDULE-STATUS"] == "1.2"
    assert attendees["carol@example.com"]["SCHEDULE-STATUS"] == "1.2"
    assert attendees["everest@example.com"]["PARTSTAT"] == "ACCEPTED"
    for login in ("bob", "carol"):
        (message,) = _inbox(server, login)
        event = assert_itip(message.ical, "REQUEST")
        assert str(event["UID"]) == uid
        with _client(server, login) as client:
            listed = client.get(f"/{login}/interactions/{uid}.ics")
            assert listed.status_code == 200
            fetched = client.get(f"/{login}/inbox/{message.href}")
            assert fetched.status_code == 200
            assert "METHOD:REQUEST" in fetched.text


def test_the_put_answer_has_no_etag_because_the_server_rewrote_the_event(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    with _client(server, "alice") as alice:
        answer = _put(alice, f"/alice/interactions/{uid}.ics", _event(uid))
    assert answer.status_code == 201
    assert "ETag" not in answer.headers
    assert answer.headers["Schedule-Tag"]


def test_colleagues_answer_in_their_clients_and_the_organizer_sees_both_answers(
    server: RunningServer,
) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
        tag = alice.get(f"/alice/interactions/{uid}.ics").headers["Schedule-Tag"]
    for login, partstat in (("bob", "ACCEPTED"), ("carol", "DECLINED")):
        with _client(server, login) as client:
            path = f"/{login}/interactions/{uid}.ics"
            mine = client.get(path)
            text = _answered(mine.text, f"{login}@example.com", partstat)
            answer = _put(
                client, path, text, **{"If-Schedule-Tag-Match": mine.headers["Schedule-Tag"]}
            )
            assert answer.status_code in (201, 204), answer.text
    with _client(server, "alice") as alice:
        stored = alice.get(f"/alice/interactions/{uid}.ics")
    attendees = _attendees(stored.text)
    assert attendees["bob@example.com"]["PARTSTAT"] == "ACCEPTED"
    assert attendees["carol@example.com"]["PARTSTAT"] == "DECLINED"
    assert stored.headers["Schedule-Tag"] == tag  # answers are not the organizer's changes
    replies = [m for m in _inbox(server, "alice") if m.method == "REPLY"]
    assert len(replies) == 2
    for reply in replies:
        assert_itip(reply.ical, "REPLY")
    with server.world.database.session() as session:
        interaction = session.scalar(select(Interaction).where(Interaction.uid == uid))
        assert interaction is not None
        statuses = {k.user.login: k.status for k in interaction.links}
    assert statuses == {"bob": LinkStatus.CONFIRMED, "carol": LinkStatus.DECLINED}


def test_a_second_event_in_the_same_slot_gets_the_room_declined(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        _steering(server, alice)
        second = f"{uuid.uuid4()}"
        text = _event(second, _attendee("everest@example.com", CUTYPE="ROOM"), summary="Clash")
        answer = _put(alice, f"/alice/interactions/{second}.ics", text)
        assert answer.status_code == 201, answer.text
        stored = alice.get(f"/alice/interactions/{second}.ics")
        booked = alice.request(
            "PROPFIND",
            "/everest/bookings/",
            content='<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
            headers={"Depth": "1", **XML},
        )
    assert _attendees(stored.text)["everest@example.com"]["PARTSTAT"] == "DECLINED"
    assert "LOCATION" not in Calendar.from_ical(stored.text).events[0]
    assert second not in booked.text  # a declined room holds nothing


def test_two_clients_asking_for_the_same_room_at_once_get_one_acceptance(
    server: RunningServer,
) -> None:
    answers: list[int] = []
    start = threading.Barrier(2)

    def book(login: str) -> None:
        uid = f"{uuid.uuid4()}"
        text = _event(
            uid,
            _attendee("kilimanjaro@example.com", CUTYPE="ROOM"),
            organizer=f"{login}@example.com",
        )
        with _client(server, login) as client:
            start.wait()
            answers.append(_put(client, f"/{login}/interactions/{uid}.ics", text).status_code)

    threads = [threading.Thread(target=book, args=(login,)) for login in ("alice", "dave")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [201, 201]
    with server.world.database.session() as session:
        bookings = session.scalars(select(Interaction)).all()
        answered = sorted(b.declined for i in bookings for b in i.bookings)
    assert answered == [False, True]


def test_schedule_agent_client_means_the_server_does_not_deliver(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}"
    text = _event(uid, _attendee("bob@example.com", **{"SCHEDULE-AGENT": "CLIENT"}))
    with _client(server, "alice") as alice:
        assert _put(alice, f"/alice/interactions/{uid}.ics", text).status_code == 201
        stored = alice.get(f"/alice/interactions/{uid}.ics")
    assert _attendees(stored.text)["bob@example.com"]["SCHEDULE-AGENT"] == "CLIENT"
    assert _inbox(server, "bob") == []
    with server.world.database.session() as session:
        emails = session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == Channel.EMAIL)
        ).all()
    assert emails == []


def test_schedule_force_send_sends_the_request_again(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}"
    with _client(server, "alice") as alice:
        path = f"/alice/interactions/{uid}.ics"
        assert _put(alice, path, _event(uid, _attendee("bob@example.com"))).status_code == 201
        again = _event(uid, _attendee("bob@example.com", **{"SCHEDULE-FORCE-SEND": "REQUEST"}))
        assert _put(alice, path, again).status_code in (201, 204)
    assert [m.method for m in _inbox(server, "bob")] == ["REQUEST", "REQUEST"]


def test_a_stale_schedule_tag_is_refused_with_412(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
    with _client(server, "bob") as bob:
        path = f"/bob/interactions/{uid}.ics"
        mine = bob.get(path)
        answer = _put(bob, path, mine.text, **{"If-Schedule-Tag-Match": '"stale"'})
    assert answer.status_code == 412


def test_the_organizer_deleting_sends_cancel_to_every_inbox(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
        assert alice.delete(f"/alice/interactions/{uid}.ics").status_code in (200, 204)
    for login in ("bob", "carol"):
        assert [m.method for m in _inbox(server, login)] == ["REQUEST", "CANCEL"]
        assert_itip(_inbox(server, login)[-1].ical, "CANCEL")


def test_attendees_outside_the_crm_are_invited_by_email(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}"
    text = _event(uid, _attendee("zoe@partner.example", CN="Zoe"))
    with _client(server, "alice") as alice:
        assert _put(alice, f"/alice/interactions/{uid}.ics", text).status_code == 201
    with server.world.database.session() as session:
        (email,) = session.scalars(select(OutboxMessage)).all()
    assert email.channel is Channel.EMAIL
    assert email.recipient_address == "zoe@partner.example"
    assert email.recipient_user_id is None
    assert email.calendar is not None
    assert_itip(email.calendar, "REQUEST")


def test_the_inbox_is_listed_and_emptied_by_its_owner(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        _steering(server, alice)
    with _client(server, "bob") as bob:
        listing = bob.request(
            "PROPFIND",
            "/bob/inbox/",
            content='<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
            headers={"Depth": "1", **XML},
        )
        (message,) = _inbox(server, "bob")
        assert message.href in listing.text
        assert bob.delete(f"/bob/inbox/{message.href}").status_code in (200, 204)
    assert _inbox(server, "bob") == []


# ------------------------------------------------------------------ free-busy


def _freebusy_request(*attendees: str) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
        "METHOD:REQUEST",
        "BEGIN:VFREEBUSY",
        f"UID:{uuid.uuid4()}",
        "DTSTAMP:20300101T000000Z",
        "DTSTART:20300108T000000Z",
        "DTEND:20300109T000000Z",
        "ORGANIZER:mailto:alice@example.com",
        *(f"ATTENDEE:mailto:{a}" for a in attendees),
        "END:VFREEBUSY",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def _schedule_answers(response: httpx.Response) -> dict[str, tuple[str, str]]:
    root = ET.fromstring(response.content)
    answers = {}
    for item in root.iter(f"{{{C}}}response"):
        recipient = item.findtext(f"{{{C}}}recipient/{{{D}}}href") or ""
        answers[normalize_address(recipient)] = (
            item.findtext(f"{{{C}}}request-status") or "",
            item.findtext(f"{{{C}}}calendar-data") or "",
        )
    return answers


def test_a_free_busy_post_answers_for_users_and_rooms(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        _steering(server, alice)
        answer = alice.post(
            "/alice/outbox/",
            content=_freebusy_request(
                "bob@example.com", "carol@example.com", "everest@example.com", "x@nowhere.example"
            ),
            headers={"Content-Type": "text/calendar", "Originator": "mailto:alice@example.com"},
        )
    assert answer.status_code == 200, answer.text
    answers = _schedule_answers(answer)
    assert answers["x@nowhere.example"][0].startswith("3.7")
    for address in ("bob@example.com", "everest@example.com"):
        status, data = answers[address]
        data = _unfolded(data)
        assert status.startswith("2.0")
        assert "FREEBUSY" in data
        assert "20300108T120000Z/20300108T130000Z" in data
        assert "METHOD:REPLY" in data
    assert "BUSY-TENTATIVE" in answers["bob@example.com"][1]  # invited, not yet answered


def test_a_declined_interaction_leaves_the_attendee_free(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        interaction = service.find_by_uid(uid)
        assert interaction is not None
        service.answer(users["carol"], interaction, Answer.DECLINE)
    with _client(server, "alice") as alice:
        answer = alice.post(
            "/alice/outbox/",
            content=_freebusy_request("carol@example.com"),
            headers={"Content-Type": "text/calendar"},
        )
    assert "FREEBUSY;" not in _schedule_answers(answer)["carol@example.com"][1]


def test_the_free_busy_report_agrees_with_the_outbox(server: RunningServer) -> None:
    query = (
        '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<C:time-range start="20300108T000000Z" end="20300109T000000Z"/></C:free-busy-query>'
    )
    with _client(server, "alice") as alice:
        _steering(server, alice)
        posted = alice.post(
            "/alice/outbox/",
            content=_freebusy_request("bob@example.com"),
            headers={"Content-Type": "text/calendar"},
        )
        report = alice.request(
            "REPORT", "/bob/interactions/", content=query, headers={"Depth": "1", **XML}
        )
    assert report.status_code == 200, report.text

    def periods(text: str) -> list[str]:
        return [line for line in _unfolded(text).splitlines() if line.startswith("FREEBUSY")]

    assert periods(report.text) == periods(_schedule_answers(posted)["bob@example.com"][1])
    assert periods(report.text)


def test_an_outbox_takes_only_its_owners_free_busy_requests(server: RunningServer) -> None:
    with _client(server, "bob") as bob:
        other = bob.post(
            "/alice/outbox/",
            content=_freebusy_request("carol@example.com"),
            headers={"Content-Type": "text/calendar"},
        )
        spoofed = bob.post(
            "/bob/outbox/",
            content=_freebusy_request("carol@example.com"),
            headers={"Content-Type": "text/calendar"},
        )
        broken = bob.post(
            "/bob/outbox/",
            content="BEGIN:VCALENDAR\r\nnot ical",
            headers={"Content-Type": "text/calendar"},
        )
    assert other.status_code == 403
    assert spoofed.status_code == 403
    assert "organizer-allowed" in spoofed.text
    assert broken.status_code == 400


# ------------------------------------------------------------------ finding people and rooms


def test_principal_property_search_finds_users_and_rooms_by_name_and_address(
    server: RunningServer,
) -> None:
    body = (
        '<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:property-search><D:prop><D:displayname/></D:prop><D:match>{}</D:match>"
        "</D:property-search><D:prop><D:displayname/><C:calendar-user-address-set/>"
        "<C:calendar-user-type/></D:prop></D:principal-property-search>"
    )
    with _client(server, "alice") as alice:
        people = alice.request("REPORT", "/", content=body.format("dupont"), headers=XML)
        rooms = alice.request("REPORT", "/", content=body.format("everest"), headers=XML)
    assert people.status_code == 207, people.text
    assert [e.text for e in ET.fromstring(people.content).iter(f"{{{D}}}displayname")] == [
        "Bob Dupont"
    ]
    assert ET.fromstring(rooms.content).findtext(f".//{{{C}}}calendar-user-type") == "ROOM"


def test_the_macos_principal_search_finds_colleagues(server: RunningServer) -> None:
    body = (
        '<B:calendarserver-principal-search xmlns:A="DAV:" xmlns:B="http://calendarserver.org/ns/"'
        ' context="attendee"><B:search-token>carol</B:search-token><B:limit><B:nresults>50'
        "</B:nresults></B:limit><A:prop><A:displayname/><B:email-address-set/></A:prop>"
        "</B:calendarserver-principal-search>"
    )
    with _client(server, "alice") as alice:
        answer = alice.request("REPORT", "/", content=body, headers={"Depth": "0", **XML})
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)
    assert [e.text for e in root.iter(f"{{{D}}}displayname")] == ["Carol Nguyễn"]
    assert [e.text for e in root.iter(f"{{{CS}}}email-address")] == ["carol@example.com"]


# ------------------------------------------------------------------ the caldav client library


def test_the_caldav_library_invites_answers_and_asks_free_busy(server: RunningServer) -> None:
    alice = server.client("alice").principal()
    assert "mailto:alice@example.com" in alice.calendar_user_address_set()
    (calendar,) = [c for c in alice.calendars() if str(c.url).endswith("/interactions/")]
    uid = f"{uuid.uuid4()}"
    event = _event(uid).replace(
        "ORGANIZER;CN=Alice Martin:mailto:alice@example.com\r\n"
        "ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:alice@example.com\r\n",
        "",
    )
    calendar.save_with_invites(event, ["mailto:bob@example.com", "mailto:everest@example.com"])
    bob_client = server.client("bob")
    invitations = bob_client.principal().schedule_inbox().get_items()
    assert len(invitations) == 1
    (invitation,) = invitations
    invitation.load()
    assert invitation.is_invite_request()
    invitation.accept_invite()
    stored = calendar.event_by_uid(uid)
    attendees = {
        normalize_address(a): a.params["PARTSTAT"] for a in stored.icalendar_component["ATTENDEE"]
    }
    assert attendees["bob@example.com"] == "ACCEPTED"
    assert attendees["everest@example.com"] == "ACCEPTED"
    busy = alice.freebusy_request(
        datetime(2030, 1, 8, tzinfo=UTC),
        datetime(2030, 1, 9, tzinfo=UTC),
        ["mailto:bob@example.com"],
    )
    assert busy


# ------------------------------------------------------------------ what clients also do


def test_an_attendee_deleting_the_event_declines_and_it_stays_out_of_their_calendar(
    server: RunningServer,
) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
    with _client(server, "bob") as bob:
        path = f"/bob/interactions/{uid}.ics"
        assert bob.delete(path).status_code in (200, 204)
        assert bob.get(path).status_code == 404
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        interaction = service.find_by_uid(uid)
        assert interaction is not None
        assert {k.user.login: k.status for k in interaction.links}["bob"] is LinkStatus.DECLINED
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
    with _client(server, "bob") as bob:
        assert bob.get(f"/bob/interactions/{uid}.ics").status_code == 200  # invited again


def test_the_organizer_saving_the_event_cancelled_cancels_it(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
        path = f"/alice/interactions/{uid}.ics"
        text = alice.get(path).text.replace("STATUS:CONFIRMED", "STATUS:CANCELLED")
        assert _put(alice, path, text).status_code in (201, 204)
        assert alice.get(path).status_code == 404
    assert [m.method for m in _inbox(server, "bob")] == ["REQUEST", "CANCEL"]


def test_an_attendee_whose_client_replies_itself_gets_no_server_reply(
    server: RunningServer,
) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
    with _client(server, "bob") as bob:
        path = f"/bob/interactions/{uid}.ics"
        text = _answered(bob.get(path).text, "bob@example.com", "ACCEPTED").replace(
            "ORGANIZER;", "ORGANIZER;SCHEDULE-AGENT=CLIENT;"
        )
        assert _put(bob, path, text).status_code in (201, 204)
    assert [m for m in _inbox(server, "alice") if m.method == "REPLY"] == []
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert {k.user.login: k.status for k in interaction.links}["bob"] is LinkStatus.CONFIRMED


def test_an_anonymous_outbox_post_is_challenged(server: RunningServer) -> None:
    answer = httpx.post(
        f"{server.url}alice/outbox/",
        content=_freebusy_request("bob@example.com"),
        headers={"Content-Type": "text/calendar"},
    )
    assert answer.status_code == 401
    assert "WWW-Authenticate" in answer.headers


def test_a_stale_schedule_tag_refuses_a_delete_too(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
        answer = alice.delete(
            f"/alice/interactions/{uid}.ics", headers={"If-Schedule-Tag-Match": '"stale"'}
        )
    assert answer.status_code == 412


def test_a_search_by_address_finds_the_user_and_wildcards_are_plain_text(
    server: RunningServer,
) -> None:
    body = (
        '<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:property-search><D:prop><C:calendar-user-address-set/></D:prop>"
        "<D:match>{}</D:match></D:property-search><D:prop><D:displayname/></D:prop>"
        "</D:principal-property-search>"
    )
    with _client(server, "alice") as alice:
        found = alice.request("REPORT", "/", content=body.format("mailto:bob@example.com"))
        wildcard = alice.request("REPORT", "/", content=body.format("_"))
    names = [e.text for e in ET.fromstring(found.content).iter(f"{{{D}}}displayname")]
    assert names == ["Bob Dupont"]
    assert list(ET.fromstring(wildcard.content).iter(f"{{{D}}}displayname")) == []


def test_propname_on_a_principal_names_the_properties_without_values(
    server: RunningServer,
) -> None:
    with _client(server, "alice") as alice:
        answer = alice.request(
            "PROPFIND",
            "/alice/",
            content='<propfind xmlns="DAV:"><propname/></propfind>',
            headers={"Depth": "0", **XML},
        )
    assert answer.status_code == 207
    assert "mailto:" not in answer.text


def test_a_colleague_without_email_stays_linked_when_the_organizer_saves_again(
    server: RunningServer,
) -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        users["dave"].emails.clear()
        interaction = service.create(users["alice"], Draft("No email", at(9, 10), at(9, 11)))
        service.link(users["alice"], interaction, users["dave"], LinkStatus.INVITED)
        href = interaction.href
    with _client(server, "alice") as alice:
        path = f"/alice/interactions/{href}"
        text = alice.get(path).text.replace("SUMMARY:No email", "SUMMARY:Still no email")
        assert "urn:x-caldav-bridge:user:dave" in text
        assert _put(alice, path, text).status_code in (201, 204)
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(href.removesuffix(".ics"))
        assert interaction is not None
        assert interaction.subject == "Still no email"
        assert [k.user.login for k in interaction.links] == ["dave"]


def test_the_schedule_tag_is_a_property_of_each_event(server: RunningServer) -> None:
    with _client(server, "alice") as alice:
        uid = _steering(server, alice)
        tag = alice.get(f"/alice/interactions/{uid}.ics").headers["Schedule-Tag"]
        multiget = alice.request(
            "REPORT",
            "/alice/interactions/",
            content=(
                '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                "<D:prop><D:getetag/><C:schedule-tag/></D:prop>"
                f"<D:href>/alice/interactions/{uid}.ics</D:href></C:calendar-multiget>"
            ),
            headers={"Depth": "1", **XML},
        )
        listing = alice.request(
            "PROPFIND",
            "/alice/interactions/",
            content=(
                '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                "<D:prop><D:getetag/><C:schedule-tag/></D:prop></D:propfind>"
            ),
            headers={"Depth": "1", **XML},
        )
    for answer in (multiget, listing):
        assert answer.status_code == 207, answer.text
        tags = [e.text for e in ET.fromstring(answer.content).iter(f"{{{C}}}schedule-tag")]
        assert [t for t in tags if t] == [tag]  # the calendar itself has none


# ------------------------------------------------------------------ whole client sessions


def _propfind(client: httpx.Client, path: str, props: str, depth: str = "0") -> ET.Element:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><A:propfind xmlns:A="DAV:" '
        'xmlns:B="urn:ietf:params:xml:ns:caldav" xmlns:C="http://calendarserver.org/ns/">'
        f"<A:prop>{props}</A:prop></A:propfind>"
    )
    answer = client.request("PROPFIND", path, content=body, headers={"Depth": depth, **XML})
    assert answer.status_code == 207, answer.text
    return ET.fromstring(answer.content)


def _href_of(root: ET.Element, tag: str) -> str:
    found = root.find(f".//{tag}/{{{D}}}href")
    assert found is not None, tag
    assert found.text is not None
    return found.text


def test_an_apple_calendar_session_invites_and_gets_the_answer(server: RunningServer) -> None:
    """What macOS Calendar sends, in its order: discovery, attendee look-up, availability,
    the invitation, the colleague's answer from their inbox, and the organizer's sync."""
    with _client(server, "alice") as alice, _client(server, "bob") as bob:
        root = _propfind(alice, "/", "<A:current-user-principal/>")
        principal = _href_of(root, f"{{{D}}}current-user-principal")
        root = _propfind(
            alice,
            principal,
            "<B:calendar-home-set/><B:calendar-user-address-set/><B:schedule-inbox-URL/>"
            "<B:schedule-outbox-URL/><A:displayname/><C:email-address-set/><A:principal-URL/>",
        )
        home = _href_of(root, f"{{{C}}}calendar-home-set")
        outbox = _href_of(root, f"{{{C}}}schedule-outbox-URL")
        listing = _propfind(alice, home, "<A:resourcetype/><C:getctag/><A:displayname/>", depth="1")
        calendars = [
            r.findtext(f"{{{D}}}href")
            for r in listing.iter(f"{{{D}}}response")
            if r.find(f".//{{{C}}}calendar") is not None
        ]
        assert f"{home}interactions/" in calendars
        search = alice.request(
            "REPORT",
            principal,
            content=(
                '<C:calendarserver-principal-search xmlns:A="DAV:" '
                'xmlns:C="http://calendarserver.org/ns/" context="attendee">'
                "<C:search-token>bob</C:search-token><A:prop><A:displayname/>"
                "<C:email-address-set/></A:prop></C:calendarserver-principal-search>"
            ),
            headers={"Depth": "0", **XML},
        )
        assert "bob@example.com" in search.text
        availability = alice.post(
            outbox,
            content=_freebusy_request("bob@example.com", "everest@example.com"),
            headers={
                "Content-Type": "text/calendar",
                "Originator": "mailto:alice@example.com",
                "Recipient": "mailto:bob@example.com, mailto:everest@example.com",
            },
        )
        assert all(s.startswith("2.0") for s, _ in _schedule_answers(availability).values())
        uid = _steering(server, alice)
        organizer_copy = alice.get(f"{home}interactions/{uid}.ics")
        assert organizer_copy.status_code == 200

        bob_root = _propfind(bob, "/bob/", "<B:schedule-inbox-URL/>")
        inbox = _href_of(bob_root, f"{{{C}}}schedule-inbox-URL")
        listed = _propfind(bob, inbox, "<A:getetag/>", depth="1")
        items = [h.text for h in listed.iter(f"{{{D}}}href") if h.text and h.text.endswith(".ics")]
        assert len(items) == 1
        got = bob.request(
            "REPORT",
            inbox,
            content=(
                '<B:calendar-multiget xmlns:A="DAV:" xmlns:B="urn:ietf:params:xml:ns:caldav">'
                f"<A:prop><A:getetag/><B:calendar-data/></A:prop><A:href>{items[0]}</A:href>"
                "</B:calendar-multiget>"
            ),
            headers={"Depth": "1", **XML},
        )
        assert "METHOD:REQUEST" in got.text
        path = f"/bob/interactions/{uid}.ics"
        mine = bob.get(path)
        answered = _put(
            bob,
            path,
            _answered(mine.text, "bob@example.com", "ACCEPTED"),
            **{"If-Schedule-Tag-Match": mine.headers["Schedule-Tag"]},
        )
        assert answered.status_code in (201, 204), answered.text
        assert bob.delete(items[0]).status_code in (200, 204)

        synced = alice.request(
            "REPORT",
            f"{home}interactions/",
            content=(
                '<A:sync-collection xmlns:A="DAV:"><A:sync-token/><A:sync-level>1'
                "</A:sync-level><A:prop><A:getetag/></A:prop></A:sync-collection>"
            ),
            headers=XML,
        )
        assert f"{uid}.ics" in synced.text
        attendees = _attendees(alice.get(f"{home}interactions/{uid}.ics").text)
        assert attendees["bob@example.com"]["PARTSTAT"] == "ACCEPTED"
        assert attendees["everest@example.com"]["PARTSTAT"] == "ACCEPTED"
    (reply,) = [m for m in _inbox(server, "alice") if m.method == "REPLY"]
    assert_itip(reply.ical, "REPLY")


def test_a_thunderbird_session_schedules_through_the_server(server: RunningServer) -> None:
    """What Thunderbird sends: the scheduling check, a range query, an invitation with
    RSVP=TRUE (and one it emails itself), free-busy, and the attendee accepting."""
    with _client(server, "alice") as alice, _client(server, "carol") as carol:
        dav = alice.options("/alice/interactions/").headers["DAV"]
        assert "calendar-auto-schedule" in dav
        root = _propfind(
            alice,
            "/alice/",
            "<B:calendar-user-address-set/><B:schedule-inbox-URL/><B:schedule-outbox-URL/>",
        )
        assert _href_of(root, f"{{{C}}}schedule-outbox-URL") == "/alice/outbox/"
        query = alice.request(
            "REPORT",
            "/alice/interactions/",
            content=(
                '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
                '<C:comp-filter name="VEVENT"><C:time-range start="20300101T000000Z" '
                'end="20300201T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
                "</C:calendar-query>"
            ),
            headers={"Depth": "1", **XML},
        )
        assert query.status_code == 207
        by_server, by_client = f"{uuid.uuid4()}", f"{uuid.uuid4()}"
        for uid, agent in ((by_server, {}), (by_client, {"SCHEDULE-AGENT": "CLIENT"})):
            text = _event(
                uid,
                _attendee("carol@example.com", RSVP="TRUE", ROLE="REQ-PARTICIPANT", **agent),
            ).replace(
                "PRODID:-//Apple Inc.//macOS 15.0//EN",
                "PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
            )
            assert _put(alice, f"/alice/interactions/{uid}.ics", text).status_code == 201
        busy = alice.post(
            "/alice/outbox/",
            content=_freebusy_request("carol@example.com"),
            headers={"Content-Type": "text/calendar"},
        )
        assert "BUSY-TENTATIVE" in _unfolded(_schedule_answers(busy)["carol@example.com"][1])
        path = f"/carol/interactions/{by_server}.ics"
        accepted = _answered(carol.get(path).text, "carol@example.com", "ACCEPTED")
        assert _put(carol, path, accepted).status_code in (201, 204)
    assert [m.uid for m in _inbox(server, "carol")] == [by_server]  # not the one it emailed
    (reply,) = [m for m in _inbox(server, "alice") if m.method == "REPLY"]
    assert_itip(reply.ical, "REPLY")


def test_a_put_preferring_the_representation_gets_the_rooms_answer_in_its_response(
    server: RunningServer,
) -> None:
    uid = f"{uuid.uuid4()}"
    text = _event(uid, _attendee("everest@example.com", CUTYPE="ROOM"))
    with _client(server, "alice") as alice:
        answer = _put(alice, f"/alice/interactions/{uid}.ics", text, Prefer="return=representation")
        head = alice.head(f"/alice/interactions/{uid}.ics")
    assert answer.status_code == 201
    assert answer.headers["Preference-Applied"] == "return=representation"
    assert answer.headers["ETag"] == head.headers["ETag"]  # HEAD keeps its ETag too
    assert _attendees(answer.text)["everest@example.com"]["PARTSTAT"] == "ACCEPTED"

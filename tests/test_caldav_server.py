"""The CalDAV server over the CRM database, driven by the ``caldav`` client library and httpx."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from caldav import Calendar as DavCalendar
from icalendar import Calendar

from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import InteractionStatus, LinkStatus
from caldav_bridge.domain.periods import Changes
from caldav_bridge.ical.mapping import Answer, normalize_address
from tests.conftest import RunningServer
from tests.helpers import at, create


def _interactions(server: RunningServer, login: str) -> DavCalendar:
    principal = server.client(login).principal()
    (calendar,) = [c for c in principal.calendars() if str(c.url).endswith("/interactions/")]
    return calendar


def _planning(server: RunningServer) -> int:
    """Alice's planning meeting: bob invited, carol confirmed, the Everest room booked."""
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        alice = users["alice"]
        interaction = create(service, alice, "Planning")
        service.link(alice, interaction, users["bob"], LinkStatus.INVITED)
        service.link(alice, interaction, users["carol"], LinkStatus.CONFIRMED)
        service.book(alice, interaction, server.world.rooms(session)["everest"])
        return interaction.id


def _status(server: RunningServer, interaction_id: int, login: str) -> LinkStatus:
    with server.world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        return next(k.status for k in interaction.links if k.user.login == login)


def _event_text(
    uid: str,
    organizer: str,
    *attendees: str,
    summary: str = "Lunch",
    start: str = "20300108T120000Z",
    end: str = "20300108T130000Z",
) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//test//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20300101T000000Z",
        f"DTSTART:{start}",
        f"DTEND:{end}",
        f"SUMMARY:{summary}",
        f"ORGANIZER:mailto:{organizer}",
        *(f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{a}" for a in attendees),
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


# ------------------------------------------------------------------ discovery and reading


def test_a_client_discovers_the_interactions_calendar_from_the_bare_url(
    server: RunningServer,
) -> None:
    principal = server.client("alice").principal()
    assert str(principal.url).endswith("/alice/")
    names = {c.get_display_name() for c in principal.calendars()}
    assert "CRM interactions" in names
    well_known = httpx.request(
        "PROPFIND", f"{server.url}.well-known/caldav", auth=("alice", "alice")
    )
    assert well_known.status_code == 301
    assert well_known.headers["Location"].endswith("/")


def test_interactions_show_organizer_attendees_statuses_and_rooms(server: RunningServer) -> None:
    interaction_id = _planning(server)
    for login in ("alice", "bob", "carol"):
        (event,) = _interactions(server, login).events()
        vevent = event.icalendar_component
        assert normalize_address(vevent["ORGANIZER"]) == "alice@example.com"
        attendees = {normalize_address(a): a.params for a in vevent["ATTENDEE"]}
        assert attendees["bob@example.com"]["PARTSTAT"] == "NEEDS-ACTION"
        assert attendees["carol@example.com"]["PARTSTAT"] == "ACCEPTED"
        assert attendees["everest@example.com"]["CUTYPE"] == "ROOM"
    assert _interactions(server, "dave").events() == []
    room = server.client("dave").calendar(url=f"{server.url}everest/bookings/")
    assert [e.icalendar_component["SUMMARY"] for e in room.events()] == ["Planning"]
    assert interaction_id


def test_accepting_in_the_client_confirms_in_the_crm(server: RunningServer) -> None:
    interaction_id = _planning(server)
    (event,) = _interactions(server, "bob").events()
    for attendee in event.icalendar_component["ATTENDEE"]:
        if normalize_address(attendee) == "bob@example.com":
            attendee.params["PARTSTAT"] = "ACCEPTED"
    event.save()
    assert _status(server, interaction_id, "bob") is LinkStatus.CONFIRMED
    with server.world.database.session() as session:
        assert InteractionService(session).get(interaction_id).sequence == 1  # the booking's


def test_an_attendee_deleting_the_event_declines(server: RunningServer) -> None:
    interaction_id = _planning(server)
    (event,) = _interactions(server, "carol").events()
    event.delete()
    assert _status(server, interaction_id, "carol") is LinkStatus.DECLINED


def test_an_attendee_cannot_change_what_only_the_organizer_may(server: RunningServer) -> None:
    interaction_id = _planning(server)
    (event,) = _interactions(server, "bob").events()
    url, text = str(event.url), event.data
    changed = text.replace("SUMMARY:Planning", "SUMMARY:Bob's party")
    response = httpx.put(
        url, content=changed, auth=("bob", "bob"), headers={"Content-Type": "text/calendar"}
    )
    assert response.status_code == 403
    assert "allowed-attendee-scheduling-object-change" in response.text
    with server.world.database.session() as session:
        assert InteractionService(session).get(interaction_id).subject == "Planning"


# ------------------------------------------------------------------ the organizer's writes


def test_the_owner_creating_an_event_creates_an_interaction(server: RunningServer) -> None:
    calendar = _interactions(server, "alice")
    calendar.save_event(
        _event_text(
            "lunch-1@client",
            "alice@example.com",
            "bob@example.com",
            "everest@example.com",
            "client@elsewhere.example",
        )
    )
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid("lunch-1@client")
        assert interaction is not None
        assert interaction.owner.login == "alice"
        assert [(k.user.login, k.status) for k in interaction.links] == [
            ("bob", LinkStatus.INVITED)
        ]
        assert [b.resource.slug for b in interaction.bookings] == ["everest"]
        assert [g.address for g in interaction.guests] == ["client@elsewhere.example"]
        assert interaction.starts_at == datetime(2030, 1, 8, 12, tzinfo=UTC)
    (event,) = _interactions(server, "bob").events()
    assert event.icalendar_component["UID"] == "lunch-1@client"


def test_a_busy_room_declines_the_clients_event_and_holds_nothing(
    server: RunningServer,
) -> None:
    _planning(server)  # Everest, 7 January 2030 10:00-11:00 Paris
    text = _event_text(
        "clash@client",
        "bob@example.com",
        "everest@example.com",
        start="20300107T093000Z",
        end="20300107T100000Z",
    )
    response = httpx.put(
        f"{server.url}bob/interactions/clash.ics",
        content=text,
        auth=("bob", "bob"),
        headers={"Content-Type": "text/calendar"},
    )
    assert response.status_code == 201
    stored = httpx.get(f"{server.url}bob/interactions/clash.ics", auth=("bob", "bob"))
    (room,) = [
        a
        for a in Calendar.from_ical(stored.text).events[0]["ATTENDEE"]
        if normalize_address(a) == "everest@example.com"
    ]
    assert room.params["PARTSTAT"] == "DECLINED"
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid("clash@client")
        assert interaction is not None
        assert [b.declined for b in interaction.bookings] == [True]


def test_the_owner_editing_and_deleting_reschedules_and_cancels(server: RunningServer) -> None:
    interaction_id = _planning(server)
    (event,) = _interactions(server, "alice").events()
    event.icalendar_component["DTSTART"].dt = at(7, 15)
    event.icalendar_component["DTEND"].dt = at(7, 16)
    event.save()
    with server.world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        assert (interaction.starts_at, interaction.sequence) == (at(7, 15), 2)
        assert [b.resource.slug for b in interaction.bookings] == ["everest"]
    (event,) = _interactions(server, "alice").events()
    event.delete()
    with server.world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        assert interaction.status is InteractionStatus.CANCELLED
    assert _interactions(server, "bob").events() == []


# ------------------------------------------------------------------ sync, ETags, CTags


def test_sync_reports_exact_deltas_of_crm_changes_including_deletions(
    server: RunningServer,
) -> None:
    interaction_id = _planning(server)
    calendar = _interactions(server, "bob")
    first = calendar.objects_by_sync_token(load_objects=False)
    token = first.sync_token
    assert len(list(first)) == 1
    again = calendar.objects_by_sync_token(sync_token=token, load_objects=False)
    assert list(again) == []
    assert again.sync_token == token
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        other = create(service, users["carol"], "Carol's review", at(9, 9), at(9, 10))
        service.link(users["carol"], other, users["bob"], LinkStatus.INVITED)
        service.unlink(users["alice"], service.get(interaction_id), users["bob"])
    delta = calendar.objects_by_sync_token(sync_token=token, load_objects=True)
    summaries = sorted(str(o.icalendar_component["SUMMARY"]) for o in delta if o.data)
    assert summaries == ["Carol's review"]
    deleted = [o for o in delta if not o.data]
    assert len(deleted) == 1


def test_etag_and_ctag_change_exactly_when_the_content_does(server: RunningServer) -> None:
    interaction_id = _planning(server)
    auth = ("bob", "bob")
    url = f"{server.url}bob/interactions/"

    def ctag() -> str:
        body = (
            '<?xml version="1.0"?><propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
            "<prop><CS:getctag/><sync-token/></prop></propfind>"
        )
        response = httpx.request("PROPFIND", url, content=body, auth=auth, headers={"Depth": "0"})
        assert response.status_code == 207
        return response.text

    before = ctag()
    assert ctag() == before
    (event,) = _interactions(server, "bob").events()
    etag = httpx.get(str(event.url), auth=auth).headers["ETag"]
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        service.edit(users["alice"], service.get(interaction_id), Changes(notes="Bring slides"))
    assert ctag() != before
    assert httpx.get(str(event.url), auth=auth).headers["ETag"] != etag


def test_an_unknown_sync_token_is_refused_with_valid_sync_token(server: RunningServer) -> None:
    body = (
        '<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>'
        "urn:caldav-bridge:sync:user/1/interactions:999999</sync-token>"
        "<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"
    )
    response = httpx.request(
        "REPORT", f"{server.url}bob/interactions/", content=body, auth=("bob", "bob")
    )
    assert response.status_code == 403
    assert "valid-sync-token" in response.text


# ------------------------------------------------------------------ bad input


def test_malformed_icalendar_is_refused_with_its_reason_and_stores_nothing(
    server: RunningServer,
) -> None:
    broken = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:2030-13-45\r\nEND:VCALENDAR\r\n"
    response = httpx.put(
        f"{server.url}alice/interactions/x.ics", content=broken, auth=("alice", "alice")
    )
    assert response.status_code == 400
    assert "malformed iCalendar" in response.text
    assert _interactions(server, "alice").events() == []


def test_a_todo_in_the_interactions_calendar_is_refused(server: RunningServer) -> None:
    todo = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:t1\r\n"
        "DTSTAMP:20300101T000000Z\r\nSUMMARY:Call back\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    response = httpx.put(
        f"{server.url}alice/interactions/t1.ics", content=todo, auth=("alice", "alice")
    )
    assert response.status_code == 403
    assert "supported-calendar-component" in response.text


def test_an_oversized_body_gets_413(server: RunningServer) -> None:
    response = httpx.put(
        f"{server.url}alice/interactions/big.ics",
        content=b"x" * 10_000_001,
        auth=("alice", "alice"),
    )
    assert response.status_code == 413


def test_malformed_xml_gets_400(server: RunningServer) -> None:
    response = httpx.request(
        "PROPFIND", f"{server.url}alice/", content="<propfind><prop>", auth=("alice", "alice")
    )
    assert response.status_code == 400


# ------------------------------------------------------------------ who sees what


@pytest.mark.parametrize(
    ("login", "password"), [("alice", "wrong"), ("nobody", "nobody"), ("", "")]
)
def test_wrong_or_missing_credentials_get_401(
    server: RunningServer, login: str, password: str
) -> None:
    auth = (login, password) if login else None
    response = httpx.request("PROPFIND", f"{server.url}alice/", auth=auth)
    assert response.status_code == 401


def test_an_inactive_user_is_refused(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        Administration(session, OPERATOR).set_active("dave", False)
    response = httpx.request("PROPFIND", f"{server.url}dave/", auth=("dave", "dave"))
    assert response.status_code == 401


def test_other_users_calendars_are_free_busy_only(server: RunningServer) -> None:
    _planning(server)
    get = httpx.get(f"{server.url}alice/interactions/", auth=("dave", "dave"))
    assert get.status_code == 403
    report = httpx.request(
        "REPORT",
        f"{server.url}alice/interactions/",
        auth=("dave", "dave"),
        content=(
            '<?xml version="1.0"?><C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
            '<C:time-range start="20300101T000000Z" end="20300201T000000Z"/>'
            "</C:free-busy-query>"
        ),
    )
    assert report.status_code == 200
    assert "FREEBUSY" in report.text
    assert "Planning" not in report.text


# ------------------------------------------------------------------ calendars of the user's own


def test_a_user_keeps_calendars_of_their_own(server: RunningServer) -> None:
    principal = server.client("carol").principal()
    personal = principal.make_calendar(name="Personal", cal_id="personal")
    personal.save_event(_event_text("p1", "carol@example.com", summary="Dentist"))
    todo = personal.save_todo(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:t2\r\n"
        "DTSTAMP:20300101T000000Z\r\nSUMMARY:Buy milk\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    token = personal.objects_by_sync_token(load_objects=False).sync_token
    todo.delete()
    delta = personal.objects_by_sync_token(sync_token=token, load_objects=False)
    assert len(list(delta)) == 1
    found = personal.search(
        event=True, start=datetime(2030, 1, 8, tzinfo=UTC), end=datetime(2030, 1, 9, tzinfo=UTC)
    )
    assert [str(e.icalendar_component["SUMMARY"]) for e in found] == ["Dentist"]
    assert "Personal" in {c.get_display_name() for c in principal.calendars()}
    with server.world.database.session() as session:
        assert InteractionService(session).find_by_uid("p1") is None


def test_answers_made_in_the_crm_reach_the_client(server: RunningServer) -> None:
    interaction_id = _planning(server)
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        service.answer(users["bob"], service.get(interaction_id), Answer.TENTATIVE)
    (event,) = _interactions(server, "alice").events()
    attendees = {normalize_address(a): a.params for a in event.icalendar_component["ATTENDEE"]}
    assert attendees["bob@example.com"]["PARTSTAT"] == "TENTATIVE"
    assert Calendar.from_ical(event.data).events[0]["SEQUENCE"] == 1


def _listing(response: httpx.Response) -> dict[str, tuple[str, str]]:
    from xml.etree import ElementTree

    found = {}
    for entry in ElementTree.fromstring(response.content).iter("{DAV:}response"):
        href = entry.findtext("{DAV:}href") or ""
        etag = entry.findtext(".//{DAV:}getetag") or ""
        kind = entry.findtext(".//{DAV:}getcontenttype") or ""
        found[href] = (etag, kind)
    return found


def test_the_fast_calendar_listing_answers_as_radicale_does(server: RunningServer) -> None:
    _planning(server)
    calendar = _interactions(server, "alice")
    calendar.save_event(_event_text("second@client", "alice@example.com"))
    url, auth = f"{server.url}alice/interactions/", ("alice", "alice")
    props = "<getetag/><getcontenttype/><resourcetype/>"
    body = '<?xml version="1.0"?><propfind xmlns="DAV:"><prop>{}</prop></propfind>'
    fast = httpx.request(
        "PROPFIND", url, auth=auth, headers={"Depth": "1"}, content=body.format(props)
    )
    # Asking for one more property takes Radicale's own path.
    slow = httpx.request(
        "PROPFIND",
        url,
        auth=auth,
        headers={"Depth": "1"},
        content=body.format(props + "<displayname/>"),
    )
    assert fast.status_code == slow.status_code == 207
    assert _listing(fast) == _listing(slow)
    assert len(_listing(fast)) == 3  # the calendar and its two events
    other = httpx.request(
        "PROPFIND", url, auth=("dave", "dave"), headers={"Depth": "1"}, content=body.format(props)
    )
    assert other.status_code == 403


def test_the_fast_sync_report_answers_as_radicale_does(server: RunningServer) -> None:
    interaction_id = _planning(server)
    url, auth = f"{server.url}bob/interactions/", ("bob", "bob")
    body = (
        '<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>{}</sync-token>'
        "<sync-level>1</sync-level><prop><getetag/>{}</prop></sync-collection>"
    )

    def both(token: str) -> tuple[httpx.Response, httpx.Response]:
        fast = httpx.request("REPORT", url, auth=auth, content=body.format(token, ""))
        slow = httpx.request("REPORT", url, auth=auth, content=body.format(token, "<displayname/>"))
        assert fast.status_code == slow.status_code == 207
        return fast, slow

    fast, slow = both("")
    assert _listing(fast) == _listing(slow)
    token = fast.text.split("<sync-token>")[1].split("</sync-token>")[0]
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        service.unlink(users["alice"], service.get(interaction_id), users["bob"])
        other = create(service, users["carol"], "Carol's review", at(9, 9), at(9, 10))
        service.link(users["carol"], other, users["bob"], LinkStatus.INVITED)
    fast, slow = both(token)
    assert _listing(fast) == _listing(slow)
    gone = "</href><status>HTTP/1.1 404 Not Found</status></response>"
    assert fast.text.count(gone) == slow.text.count(gone) == 1


def test_large_answers_are_gzipped_for_clients_that_accept_it(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        service, alice = InteractionService(session), server.world.users(session)["alice"]
        for number in range(30):
            start = at(9, 8 + number % 10)
            create(service, alice, f"Call {number}", start, start)
    body = '<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
    answers = {}
    for encoding in ("gzip", "identity"):
        answer = httpx.request(
            "PROPFIND",
            f"{server.url}alice/interactions/",
            content=body,
            headers={"Depth": "1", "Accept-Encoding": encoding},
            auth=("alice", "alice"),
        )
        assert answer.status_code == 207
        answers[encoding] = answer
    assert answers["gzip"].headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in answers["identity"].headers
    assert int(answers["gzip"].headers["Content-Length"]) < len(answers["identity"].content)
    assert answers["gzip"].content == answers["identity"].content  # httpx decompresses


def test_a_whole_calendar_put_on_a_new_collection_imports_every_event(
    server: RunningServer,
) -> None:
    """Radicale's import: one PUT of a VCALENDAR with several UIDs makes a calendar of them."""
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:import-{n}\r\nDTSTAMP:20300101T000000Z\r\n"
        f"DTSTART:2030010{n}T100000Z\r\nDTEND:2030010{n}T110000Z\r\nSUMMARY:Imported {n}\r\n"
        "END:VEVENT\r\n"
        for n in (1, 2)
    )
    body = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n"
    answer = httpx.put(
        f"{server.url}alice/imported/",
        content=body,
        headers={"Content-Type": "text/calendar"},
        auth=("alice", "alice"),
    )
    assert answer.status_code == 201, answer.text
    calendar = server.client("alice").principal().calendar(cal_id="imported")
    assert len(calendar.events()) == 2


@pytest.mark.parametrize("body", ['<propfind xmlns="DAV:"/>', "<a/>", '<prop xmlns="DAV:"/>'])
@pytest.mark.parametrize("path", ["", "alice/", "alice/interactions/"])
def test_a_propfind_body_naming_nothing_is_refused_with_the_reason(
    server: RunningServer, body: str, path: str
) -> None:
    answer = httpx.request(
        "PROPFIND",
        f"{server.url}{path}",
        content=body,
        headers={"Depth": "0", "Content-Type": "application/xml"},
        auth=("alice", "alice"),
    )
    assert answer.status_code == 400, answer.text
    assert "DAV:propfind" in answer.text

"""Each user's own data (``domain.per_user``, the model of Apple's CalendarServer): the alarms,
TRANSP and personal X- properties a user's client writes in their copy are theirs, kept across
every change the organizer makes, shown in their copy only, never in iTIP; their TRANSP counts
in their free-busy; a write that changes only them is no answer and tells nobody."""

from __future__ import annotations

import uuid
from datetime import timedelta
from xml.etree import ElementTree as ET

import httpx
import pytest
from icalendar import Alarm, Calendar, Event
from sqlalchemy import select

from caldav_bridge.config import SmtpSettings
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import OutboxMessage, ScheduleMessage
from caldav_bridge.ical import per_user
from caldav_bridge.ical.mapping import normalize_address
from caldav_bridge.mail import delivery
from tests.conftest import Inbox, RunningServer
from tests.helpers import event_text, freebusy_request, sync_changes

C = "urn:ietf:params:xml:ns:caldav"
PERSONAL = ("BEGIN:VALARM", "TRANSPARENT", "X-MOZ-LASTACK", "X-APPLE-TRAVEL")


def _client(server: RunningServer, login: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(login, login), timeout=30)


def _event(uid: str, rrule: str = "") -> str:
    """alice's meeting with bob and carol, as Apple Calendar writes it."""
    return event_text(
        uid,
        *([f"RRULE:{rrule}"] if rrule else []),
        "ORGANIZER;CN=Alice Martin:mailto:alice@example.com",
        "ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:alice@example.com",
        "ATTENDEE;CN=Bob Dupont;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        "ATTENDEE;CN=Carol;PARTSTAT=NEEDS-ACTION:mailto:carol@example.com",
        summary="Steering",
    )


def _put(client: httpx.Client, path: str, text: str | bytes, **headers: str) -> httpx.Response:
    return client.put(path, content=text, headers={"Content-Type": "text/calendar", **headers})


def _save(server: RunningServer, login: str, uid: str, calendar: Calendar, etag: str) -> None:
    """``login`` saves their copy, as read with ``etag``."""
    with _client(server, login) as client:
        path = f"/{login}/interactions/{uid}.ics"
        answer = _put(client, path, calendar.to_ical(), **{"If-Match": etag})
    assert answer.status_code in (200, 204), answer.text


def _synced(server: RunningServer, login: str, token: str = "") -> tuple[str, dict[str, int]]:
    with _client(server, login) as client:
        return sync_changes(client, f"/{login}/interactions/", token)


def _meeting(server: RunningServer, rrule: str = "") -> str:
    uid = str(uuid.uuid4())
    with _client(server, "alice") as alice:
        answer = _put(alice, f"/alice/interactions/{uid}.ics", _event(uid, rrule))
    assert answer.status_code == 201, answer.text
    return uid


def _copy(server: RunningServer, login: str, uid: str) -> tuple[Calendar, str]:
    with _client(server, login) as client:
        answer = client.get(f"/{login}/interactions/{uid}.ics")
    assert answer.status_code == 200, answer.text
    return Calendar.from_ical(answer.text), answer.headers["ETag"]


def _alarm(minutes: int) -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", "Reminder")
    alarm.add("trigger", timedelta(minutes=-minutes))
    return alarm


def _personal(event: Event, minutes: int = 15) -> None:
    """What bob's client adds for him: an alarm, his transparency, Thunderbird's mark."""
    event.pop("TRANSP", None)
    event.add("transp", "TRANSPARENT")
    event.add("x-moz-lastack", "20300101T000000Z")
    event.add_component(_alarm(minutes))


def _partstat(event: Event, address: str, partstat: str) -> None:
    for attendee in event["ATTENDEE"]:
        if normalize_address(attendee) == address:
            attendee.params["PARTSTAT"] = partstat


def _state(server: RunningServer, uid: str) -> tuple[int, int, int]:
    """SEQUENCE, Schedule-Tag and the number of outbox rows of the meeting."""
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        count = len(
            session.scalars(
                select(OutboxMessage.id).where(OutboxMessage.interaction_id == interaction.id)
            ).all()
        )
        return interaction.sequence, interaction.schedule_tag, count


def _moved(server: RunningServer, uid: str, start: str, summary: str = "Steering") -> None:
    """alice saves her copy at another time (and with another name)."""
    calendar, etag = _copy(server, "alice", uid)
    event = calendar.events[0]
    for name, value in (("DTSTART", start), ("SUMMARY", summary)):
        event.pop(name)
        event.add(
            name, Event.from_ical(f"BEGIN:VEVENT\r\n{name}:{value}\r\nEND:VEVENT\r\n").get(name)
        )
    event.pop("DTEND")
    event.add("dtend", event.decoded("DTSTART") + timedelta(hours=1))
    _save(server, "alice", uid, calendar, etag)


def _itip_texts(server: RunningServer, smtp: tuple[SmtpSettings, Inbox]) -> list[str]:
    """Every iTIP message written: the outbox's calendars, the emails delivered to aiosmtpd,
    the schedule inboxes' items."""
    settings, mail = smtp
    delivery.deliver_due(server.world.database, settings)
    with server.world.database.session() as session:
        texts = [t for t in session.scalars(select(OutboxMessage.calendar)) if t]
        texts += list(session.scalars(select(ScheduleMessage.ical)))
    for message in mail.messages:
        texts += [
            part.get_content()
            for part in message.walk()
            if part.get_content_type() == "text/calendar"
        ]
    return texts


def _busy(server: RunningServer, address: str) -> str:
    with _client(server, "alice") as alice:
        answer = alice.post(
            "/alice/outbox/",
            content=freebusy_request(address),
            headers={"Content-Type": "text/calendar"},
        )
    assert answer.status_code == 200, answer.text
    data = ET.fromstring(answer.content).find(f".//{{{C}}}calendar-data")
    assert data is not None
    assert data.text
    return data.text.replace("\r\n", "\n").replace("\n ", "")


def test_bobs_alarm_and_transparency_stay_his_while_alice_moves_and_renames_it(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    uid = _meeting(server)
    calendar, before = _copy(server, "bob", uid)
    _personal(calendar.events[0])
    state = _state(server, uid)
    tokens = {login: _synced(server, login)[0] for login in ("alice", "bob")}
    _save(server, "bob", uid, calendar, before)
    # Only his own data changed: no answer, nobody told, SEQUENCE and Schedule-Tag kept; his
    # calendar's sync reports his copy changed, alice's nothing.
    assert _state(server, uid) == state
    assert _synced(server, "bob", tokens["bob"])[1] == {f"{uid}.ics": 200}
    assert _synced(server, "alice", tokens["alice"])[1] == {}
    mine, etag = _copy(server, "bob", uid)
    assert etag != before
    assert _copy(server, "alice", uid)[1] == _copy(server, "carol", uid)[1]
    # He accepts from the copy he read (his If-Match holds: his own ETag).
    _partstat(mine.events[0], "bob@example.com", "ACCEPTED")
    _save(server, "bob", uid, mine, etag)
    _moved(server, uid, "20300109T090000Z")
    _moved(server, uid, "20300110T140000Z", summary="Steering, moved")
    bobs, _ = _copy(server, "bob", uid)
    event = bobs.events[0]
    assert str(event["SUMMARY"]) == "Steering, moved"
    assert event.decoded("DTSTART").isoformat() == "2030-01-10T14:00:00+00:00"
    assert str(event["TRANSP"]) == "TRANSPARENT"
    assert str(event["X-MOZ-LASTACK"]) == "20300101T000000Z"
    (alarm,) = event.walk("VALARM")
    assert alarm.decoded("TRIGGER") == timedelta(minutes=-15)
    for login in ("alice", "carol"):
        text = _copy(server, login, uid)[0].to_ical().decode()
        assert not [p for p in PERSONAL if p in text], login
    texts = _itip_texts(server, smtp)
    assert any("METHOD:REPLY" in t for t in texts)
    assert any("METHOD:REQUEST" in t for t in texts)
    assert not [t for t in texts if any(p in t for p in PERSONAL)]
    # Free to bob (his TRANSP), busy to carol (tentatively: she has not answered).
    assert "20300110T140000Z" not in _busy(server, "bob@example.com")
    carols = _busy(server, "carol@example.com")
    assert "BUSY-TENTATIVE;VALUE=PERIOD:20300110T140000Z/20300110T150000Z" in carols


def test_the_organizers_alarm_is_hers_and_changing_it_alone_tells_nobody(
    server: RunningServer,
) -> None:
    uid = _meeting(server)
    calendar, etag = _copy(server, "alice", uid)
    calendar.events[0].add_component(_alarm(30))
    state = _state(server, uid)
    bobs = _copy(server, "bob", uid)[1]
    _save(server, "alice", uid, calendar, etag)
    assert _state(server, uid) == state
    hers, new = _copy(server, "alice", uid)
    assert new != etag
    assert hers.events[0].walk("VALARM")[0].decoded("TRIGGER") == timedelta(minutes=-30)
    assert _copy(server, "bob", uid)[1] == bobs
    assert "VALARM" not in _copy(server, "bob", uid)[0].to_ical().decode()


def test_an_alarm_on_one_occurrence_stays_on_it(server: RunningServer) -> None:
    """Apple Calendar changing an alarm of one occurrence writes an instance of its own."""
    uid = _meeting(server, rrule="FREQ=WEEKLY;COUNT=4")
    calendar, etag = _copy(server, "bob", uid)
    series = calendar.events[0]
    series.add_component(_alarm(10))
    instance = Event()
    for name, value in series.items():
        if name not in ("RRULE", "DTSTART", "DTEND"):
            instance[name] = value
    instance.add("recurrence-id", series.decoded("DTSTART") + timedelta(weeks=1))
    instance.add("dtstart", series.decoded("DTSTART") + timedelta(weeks=1))
    instance.add("dtend", series.decoded("DTEND") + timedelta(weeks=1))
    instance.add_component(_alarm(60))
    calendar.add_component(instance)
    _save(server, "bob", uid, calendar, etag)
    _moved(server, uid, "20300108T120000Z", summary="Weekly steering")
    bobs, _ = _copy(server, "bob", uid)
    triggers = {
        str(e.get("RECURRENCE-ID").to_ical().decode()) if "RECURRENCE-ID" in e else None: [
            a.decoded("TRIGGER") for a in e.walk("VALARM")
        ]
        for e in bobs.events
    }
    assert triggers == {
        None: [timedelta(minutes=-10)],
        "20300115T120000Z": [timedelta(minutes=-60)],
    }
    assert all(str(e["SUMMARY"]) == "Weekly steering" for e in bobs.events)
    assert len(_copy(server, "alice", uid)[0].events) == 1


@pytest.mark.parametrize(
    "alarm",
    [
        # Apple Calendar's default alarm (macOS), as it adds one to an invitation.
        "BEGIN:VALARM\r\nX-WR-ALARMUID:A99EDA6A-35EB-4446-B8BC-CDA3C60C627D\r\n"
        "UID:A99EDA6A-35EB-4446-B8BC-CDA3C60C627D\r\nTRIGGER:-PT15H\r\n"
        "X-APPLE-DEFAULT-ALARM:TRUE\r\nATTACH;VALUE=URI:Basso\r\nACTION:AUDIO\r\nEND:VALARM",
        # Thunderbird's default alarm.
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER;VALUE=DURATION:-PT15M\r\n"
        "DESCRIPTION:Default Mozilla Description\r\nEND:VALARM",
    ],
    ids=["apple-calendar", "thunderbird"],
)
def test_a_clients_default_alarm_stays_in_its_users_copy(server: RunningServer, alarm: str) -> None:
    uid = _meeting(server)
    with _client(server, "bob") as bob:
        text = bob.get(f"/bob/interactions/{uid}.ics").text
        text = text.replace(
            "END:VEVENT", f"X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\n{alarm}\r\nEND:VEVENT"
        )
        text = text.replace("PARTSTAT=NEEDS-ACTION;CN=Bob", "PARTSTAT=ACCEPTED;CN=Bob")
        answer = _put(bob, f"/bob/interactions/{uid}.ics", text, Prefer="return=representation")
        assert answer.status_code == 200, answer.text
    # The representation returned is his copy, with its ETag.
    assert "BEGIN:VALARM" in answer.text
    assert answer.headers["ETag"] == _copy(server, "bob", uid)[1]
    _moved(server, uid, "20300109T090000Z")
    (event,) = _copy(server, "bob", uid)[0].events
    (kept,) = event.walk("VALARM")
    written = Alarm.from_ical(alarm)
    assert {k: kept.decoded(k) for k in kept} == {k: written.decoded(k) for k in written}
    assert str(event["X-APPLE-TRAVEL-ADVISORY-BEHAVIOR"]) == "AUTOMATIC"
    assert "VALARM" not in _copy(server, "carol", uid)[0].to_ical().decode()


def test_split_per_user_keeps_the_organizers_event_apart_from_her_own_data() -> None:
    """What the organizer's branch calls: the meeting everyone shares, and what is hers."""
    text = event_text(
        "split",
        "TRANSP:TRANSPARENT",
        "X-MOZ-LASTACK:20300101T000000Z",
        "X-APPLE-TRAVEL-DURATION;VALUE=DURATION:PT30M",
        "X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.example/meet/1",
        "X-CUSTOM-NOTE:kept",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "DESCRIPTION:Reminder",
        "TRIGGER:-PT15M",
        "END:VALARM",
    )
    shared, mine = per_user.split_per_user(Calendar.from_ical(text))
    (event,) = shared.events
    assert set(event) >= {"X-MICROSOFT-SKYPETEAMSMEETINGURL", "X-CUSTOM-NOTE", "SUMMARY"}
    assert not {"TRANSP", "X-MOZ-LASTACK", "X-APPLE-TRAVEL-DURATION"} & set(event)
    assert not event.subcomponents
    (own,) = mine.subcomponents
    assert set(own) == {"TRANSP", "X-MOZ-LASTACK", "X-APPLE-TRAVEL-DURATION"}
    assert [a.name for a in own.subcomponents] == ["VALARM"]
    # In an attendee's copy, an X- property the organizer's event lacks is the attendee's.
    _, theirs = per_user.split_per_user(
        Calendar.from_ical(text), shared=per_user.property_names(event) - {"X-CUSTOM-NOTE"}
    )
    assert "X-CUSTOM-NOTE" in theirs.subcomponents[0]
    assert "X-MICROSOFT-SKYPETEAMSMEETINGURL" not in theirs.subcomponents[0]

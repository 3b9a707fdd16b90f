"""The organizer's event, whole (issue 16): a real client's file PUT into the interactions
calendar by its organizer comes back with every property and parameter the CRM does not rule,
in the organizer's copy, an attendee's copy and the iMIP email; a CRM edit keeps them; CLASS
PRIVATE and CONFIDENTIAL are honoured where others look."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar, Event
from sqlalchemy import select

from caldav_bridge.domain import links, tokens
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction
from caldav_bridge.domain.periods import Changes
from caldav_bridge.ical import per_user
from caldav_bridge.ical.source import RULED
from caldav_bridge.mail import delivery
from caldav_bridge.mail.delivery import SmtpSettings
from tests.cli_run import ok, runner
from tests.conftest import Inbox, RunningServer
from tests.helpers import crm_pages, event_text

SAMPLES = Path("/work/shared/samples/invitations")
IOS = SAMPLES / "apple-iphone-ios26-structured-location.ics"
TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0"

# What a client wrote that the CRM decides: the CRM's type is the first of the CATEGORIES.
_CRM_PARAMETERS = {"PARTSTAT", "SCHEDULE-STATUS", "SCHEDULE-AGENT", "CN", "RSVP"}


def _client(server: RunningServer, login: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(login, login), timeout=30)


def _meeting(uid: str) -> str:
    """Apple's iPhone file made a meeting of alice's, with what Teams, Apple, Thunderbird and
    Outlook add to one."""
    text = IOS.read_text(encoding="utf-8").replace("\r\n", "\n").replace("\n ", "")
    # vobject (Radicale's check, issue 16 item 6) refuses the escaped ";" in a parameter value.
    text = text.replace(
        "X-TITLE=Hauptstraße 1-5\\; 4041 Linz", 'X-TITLE="Hauptstraße 1-5, 4041 Linz"'
    )
    text = re.sub(r"^UID:.*$", f"UID:{uid}", text, flags=re.M)
    text = text.replace(
        "DTSTART;TZID=Europe/Vienna:20260522", "DTSTART;TZID=Europe/Vienna:20300522"
    )
    text = text.replace("DTEND;TZID=Europe/Vienna:20260522", "DTEND;TZID=Europe/Vienna:20300522")
    text = text.replace("CLASS:PUBLIC", "CLASS:PRIVATE")
    text = text.replace("TRANSP:OPAQUE", "TRANSP:TRANSPARENT")
    text = text.replace(
        "LOCATION:Hauptstraße 1-5\\; 4041 Linz",
        "LOCATION:Magistrat Linz\\nHauptstraße 1-5\\n4041 Linz",
    )
    extra = [
        "ORGANIZER;CN=Alice Martin;LANGUAGE=fr:mailto:alice@example.com",
        "ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:alice@example.com",
        "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;ROLE=OPT-PARTICIPANT;LANGUAGE=de;"
        "X-NUM-GUESTS=0:mailto:bob@example.com",
        "ATTENDEE;CN=Zoe;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;"
        'DELEGATED-FROM="mailto:yan@partner.example":mailto:zoe@partner.example',
        "CATEGORIES:Meeting,Passwesen",
        "CATEGORIES:Linz",
        "STATUS:TENTATIVE",
        "PRIORITY:1",
        "CREATED:20260101T101010Z",
        "URL:https://example.org/antrag",
        "ATTACH;FMTTYPE=application/pdf:https://example.org/antrag.pdf",
        f"CONFERENCE;VALUE=URI;FEATURE=VIDEO;LABEL=Teams:{TEAMS}",
        "RELATED-TO;RELTYPE=PARENT:parent-uid@example.org",
        f"X-MICROSOFT-SKYPETEAMSMEETINGURL:{TEAMS}",
        "X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE",
        "X-MOZ-GENERATION:3",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "DESCRIPTION:Reminder",
        "TRIGGER:-PT15M",
        "END:VALARM",
    ]
    text = text.replace("END:VEVENT", "\n".join([*extra, "END:VEVENT"]))
    return text.replace("\n", "\r\n")


def _event(text: str) -> Event:
    (event,) = Calendar.from_ical(text).events
    return event


def _lines(event: Event) -> dict[str, list[bytes]]:
    """Each property the CRM does not rule, as its content lines."""
    found: dict[str, list[bytes]] = {}
    for name, value in event.property_items(recursive=False):
        if name not in RULED | {"BEGIN", "END"}:
            found.setdefault(name, []).append(value.to_ical())
    return found


def _kept_lines(event: Event) -> dict[str, list[bytes]]:
    """``_lines`` but the values Radicale's vobject text cuts at their first comma (VALUE=URI,
    issue 16 item 5): ``test_a_uri_value_with_a_comma_is_kept``."""
    return {
        k: [b"(cut)"] if k == "X-APPLE-STRUCTURED-LOCATION" else v for k, v in _lines(event).items()
    }


def _assert_kept(written: Event, served: Event, own: bool = True) -> None:
    """What alice's client wrote comes back: all of it in her own copy; in anyone else's (an
    attendee's copy, an email) all but what is hers alone (``per_user``: her alarms, TRANSP,
    Thunderbird's X-MOZ- bookkeeping)."""
    # Radicale hands over vobject's text, which cuts a VALUE=URI value at its first comma
    # (issue 16 item 5): ``test_a_uri_value_with_a_comma_is_kept``.
    expected = _kept_lines(written)
    if not own:
        expected = {k: v for k, v in expected.items() if not per_user.is_per_user(k)}
    assert _kept_lines(served) == expected
    assert served.categories == ["Meeting", "Passwesen", "Linz"]
    assert str(served["STATUS"]) == "TENTATIVE"
    assert str(served.get("TRANSP", "OPAQUE")) == ("TRANSPARENT" if own else "OPAQUE")
    assert served.decoded("CREATED") == written.decoded("CREATED")
    assert str(served["LOCATION"]) == "Magistrat Linz\nHauptstraße 1-5\n4041 Linz"
    assert "X-APPLE-STRUCTURED-LOCATION" in served
    people = {str(a).lower(): a.params for a in served["ATTENDEE"]}
    assert people["mailto:bob@example.com"]["LANGUAGE"] == "de"
    assert people["mailto:bob@example.com"]["ROLE"] == "OPT-PARTICIPANT"
    assert people["mailto:bob@example.com"]["X-NUM-GUESTS"] == "0"
    assert people["mailto:zoe@partner.example"]["DELEGATED-FROM"] == "mailto:yan@partner.example"
    assert served["ORGANIZER"].params["LANGUAGE"] == "fr"
    assert bool(served.walk("VALARM")) is own


def _put_meeting(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox] | None = None
) -> tuple[str, str]:
    """Alice's meeting PUT; with ``smtp``, its invitations delivered and forgotten."""
    uid = f"{uuid.uuid4()}"
    text = _meeting(uid)
    with _client(server, "alice") as alice:
        answer = alice.put(
            f"/alice/interactions/{uid}.ics",
            content=text.encode(),
            headers={"Content-Type": "text/calendar"},
        )
    assert answer.status_code == 201, answer.text
    if smtp is not None:
        _emailed(server, smtp, "zoe@partner.example")
    return uid, text


def _emailed(server: RunningServer, smtp: tuple[SmtpSettings, Inbox], to: str) -> Event:
    settings, inbox = smtp
    delivery.deliver_due(server.world.database, settings)
    (message,) = [m for m in inbox.messages if m["To"] == to]
    inbox.messages.clear()
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    return _event(part.get_content())


def test_the_organizers_client_file_comes_back_whole_in_every_copy_and_the_email(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    uid, text = _put_meeting(server)
    written = _event(text)
    with _client(server, "alice") as alice, _client(server, "bob") as bob:
        own = alice.get(f"/alice/interactions/{uid}.ics")
        copy = bob.get(f"/bob/interactions/{uid}.ics")
    assert own.status_code == copy.status_code == 200
    _assert_kept(written, _event(own.text))
    _assert_kept(written, _event(copy.text), own=False)
    emailed = _emailed(server, smtp, "zoe@partner.example")
    _assert_kept(written, emailed, own=False)  # the organizer's own data is hers
    assert str(emailed["X-MICROSOFT-SKYPETEAMSMEETINGURL"]) == TEAMS


def test_a_crm_edit_keeps_what_the_client_wrote_and_tells_the_attendees(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    uid, text = _put_meeting(server, smtp)
    with server.world.database.session(write=True) as session:
        service = InteractionService(session)
        interaction = service.find_by_uid(uid)
        assert interaction is not None
        alice = Directory(session).user("alice")
        service.edit(alice, interaction, Changes(subject="Antrag (verschoben)", notes="Neu"))
    with _client(server, "bob") as bob:
        served = _event(bob.get(f"/bob/interactions/{uid}.ics").text)
    assert str(served["SUMMARY"]) == "Antrag (verschoben)"
    assert str(served["DESCRIPTION"]) == "Neu"
    _assert_kept(_event(text), served, own=False)
    emailed = _emailed(server, smtp, "zoe@partner.example")
    assert str(emailed["SUMMARY"]) == "Antrag (verschoben)"
    assert str(emailed["X-MICROSOFT-SKYPETEAMSMEETINGURL"]) == TEAMS


def test_a_new_conference_link_alone_is_sent_to_the_attendees(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    uid, text = _put_meeting(server, smtp)
    with _client(server, "alice") as alice:
        changed = text.replace(TEAMS, f"{TEAMS}?again")
        answer = alice.put(f"/alice/interactions/{uid}.ics", content=changed.encode())
    assert answer.status_code in (200, 204), answer.text
    emailed = _emailed(server, smtp, "zoe@partner.example")
    assert str(emailed["X-MICROSOFT-SKYPETEAMSMEETINGURL"]) == f"{TEAMS}?again"


def test_dismissing_the_organizers_alarm_sends_the_attendees_nothing(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    uid, text = _put_meeting(server, smtp)
    changed = text.replace(
        "X-MOZ-GENERATION:3", "X-MOZ-GENERATION:4\r\nX-MOZ-LASTACK:20300522T080000Z"
    )
    with _client(server, "alice") as alice:
        answer = alice.put(f"/alice/interactions/{uid}.ics", content=changed.encode())
        assert answer.status_code in (200, 204), answer.text
        served = _event(alice.get(f"/alice/interactions/{uid}.ics").text)
    assert str(served["X-MOZ-LASTACK"]) == "20300522T080000Z"
    settings, inbox = smtp
    delivery.deliver_due(server.world.database, settings)
    assert inbox.messages == []


def test_an_override_changing_only_the_summary_is_kept(server: RunningServer) -> None:
    uid = f"{uuid.uuid4()}"
    text = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20300101T000000Z",
            "DTSTART:20300107T090000Z",
            "DTEND:20300107T100000Z",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            "SUMMARY:Weekly",
            "X-MOZ-GENERATION:1",
            "ORGANIZER:mailto:alice@example.com",
            "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
            "END:VEVENT",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20300101T000000Z",
            "RECURRENCE-ID:20300114T090000Z",
            "DTSTART:20300114T090000Z",
            "DTEND:20300114T100000Z",
            "SUMMARY:Weekly: the budget",
            "DESCRIPTION:Bring the numbers",
            "ORGANIZER:mailto:alice@example.com",
            "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    with _client(server, "alice") as alice, _client(server, "bob") as bob:
        assert alice.put(f"/alice/interactions/{uid}.ics", content=text.encode()).status_code == 201
        served = Calendar.from_ical(bob.get(f"/bob/interactions/{uid}.ics").text)
    (override,) = [e for e in served.events if "RECURRENCE-ID" in e]
    assert str(override["SUMMARY"]) == "Weekly: the budget"
    assert str(override["DESCRIPTION"]) == "Bring the numbers"
    series = next(e for e in served.events if "RECURRENCE-ID" not in e)
    assert str(series["SUMMARY"]) == "Weekly"
    assert "X-MOZ-GENERATION" not in series  # alice's client's bookkeeping: hers alone


def test_the_organizers_put_is_kept_beside_the_interaction(server: RunningServer) -> None:
    uid, _ = _put_meeting(server)
    with server.world.database.session() as session:
        stored = session.scalar(select(Interaction).where(Interaction.uid == uid))
        assert stored is not None
        assert "X-MICROSOFT-SKYPETEAMSMEETINGURL" in stored.source


def _booked(server: RunningServer, access: str, day: int) -> str:
    uid = f"{uuid.uuid4()}"
    text = event_text(
        uid,
        "DESCRIPTION:Raise",
        "LOCATION:Corner office",
        f"CLASS:{access}",
        "ORGANIZER:mailto:alice@example.com",
        "ATTENDEE;CUTYPE=ROOM:mailto:everest@example.com",
        summary="Salary talk",
        start=f"203001{day:02}T120000Z",
        end=f"203001{day:02}T130000Z",
    )
    with _client(server, "alice") as alice:
        assert alice.put(f"/alice/interactions/{uid}.ics", content=text.encode()).status_code == 201
    return f"{uid}.ics"


def _feed(server: RunningServer, login: str | None) -> str:
    with server.world.database.session(write=True) as session:
        directory = Directory(session)
        subject = directory.user(login) if login else directory.resource("everest")
        tokens.rotate_feed(subject)
        token = tokens.feed_token(session, subject)
    assert token is not None
    return httpx.get(
        server.url + re.sub(r"^https?://[^/]+/", "", links.feed(server.url, token))
    ).text


def test_private_and_confidential_meetings_show_others_their_time_only(
    server: RunningServer,
) -> None:
    for day, (access, summary) in enumerate((("PRIVATE", None), ("CONFIDENTIAL", "Busy")), 8):
        href = _booked(server, access, day)
        with _client(server, "dave") as dave:
            booking = dave.get(f"/everest/bookings/{href}").text
        for text in (booking, _feed(server, None), _feed(server, "alice")):
            for secret in ("Salary", "Raise", "Corner office"):
                assert secret not in text, (access, text)
            event = next(e for e in Calendar.from_ical(text).events if f"{e['UID']}.ics" == href)
            assert "DTSTART" in event
            assert (str(event["SUMMARY"]) if "SUMMARY" in event else None) == summary
        with _client(server, "alice") as alice:
            assert "Salary talk" in alice.get(f"/alice/interactions/{href}").text


def test_a_uri_value_with_a_comma_is_kept(server: RunningServer) -> None:
    uid, _text = _put_meeting(server)
    with _client(server, "alice") as alice:
        served = _event(alice.get(f"/alice/interactions/{uid}.ics").text)
    assert str(served["X-APPLE-STRUCTURED-LOCATION"]) == "geo:48.309978,14.283197"


def test_a_cli_edit_of_the_place_keeps_the_rest_and_drops_the_old_map_location(
    server: RunningServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uid, _text = _put_meeting(server)
    with server.world.database.session() as session:
        number = session.scalar(select(Interaction.id).where(Interaction.uid == uid))
    cli = runner(server.world.database.url, capsys, monkeypatch)
    ok(cli("interaction", "edit", str(number), "--location", "Rathaus"))
    with _client(server, "bob") as bob:
        served = _event(bob.get(f"/bob/interactions/{uid}.ics").text)
    assert str(served["LOCATION"]) == "Rathaus"
    assert "X-APPLE-STRUCTURED-LOCATION" not in served
    assert str(served["X-MICROSOFT-SKYPETEAMSMEETINGURL"]) == TEAMS
    assert served.categories == ["Meeting", "Passwesen", "Linz"]
    assert str(served["CLASS"]) == "PRIVATE"
    assert served["SEQUENCE"] == 1


REAL_FILES = [
    "obm-request-room-resource-8-attendees.ics",
    "exchange-cdo-2004-request-tzid-with-comma.ics",
    "outlook2007-publish-room-resource-tab-folding.ics",
    # evolution-event-windows-tz-name-x-alt-desc.ics: vobject refuses its VTIMEZONE (item 6)
    "evolution-event-softwarestudio-tzid.ics",
    "apple-iphone-ios26-structured-location.ics",
]


def _as_alices(path: Path) -> tuple[str, str]:
    """A real client's file as alice's client would PUT it: she organises it, bob attends."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n").replace("\n ", "")
    text = text.replace("\n\t", "").replace("X-TITLE=Hauptstraße 1-5\\; 4041 Linz", "X-TITLE=Linz")
    uid = f"{uuid.uuid4()}"
    text = re.sub(r"^METHOD:.*\n", "", text, flags=re.M)
    text = re.sub(r"^UID:.*$", f"UID:{uid}", text, flags=re.M)
    organizer = "ORGANIZER;CN=Alice Martin:mailto:alice@example.com"
    if re.search(r"^ORGANIZER", text, flags=re.M):
        text = re.sub(
            r"^(ORGANIZER[^:]*(?:\"[^\"]*\"[^:]*)*):.*$",
            r"\1:mailto:alice@example.com",
            text,
            flags=re.M,
        )
    else:
        text = text.replace("END:VEVENT", f"{organizer}\nEND:VEVENT")
    bob = "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com"
    guest = "ATTENDEE;CN=Zoe;PARTSTAT=NEEDS-ACTION:mailto:zoe@partner.example"
    text = text.replace("END:VEVENT", f"{bob}\n{guest}\nEND:VEVENT")
    return uid, text.replace("\n", "\r\n")


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_client_files_come_back_whole_in_both_copies_and_the_email(
    server: RunningServer, smtp: tuple[SmtpSettings, Inbox], name: str
) -> None:
    uid, text = _as_alices(SAMPLES / name)
    written = _event(text)
    with _client(server, "alice") as alice:
        answer = alice.put(f"/alice/interactions/{uid}.ics", content=text.encode())
        assert answer.status_code == 201, answer.text
    for login in ("alice", "bob"):
        with _client(server, login) as client:
            copy = client.get(f"/{login}/interactions/{uid}.ics")
        assert copy.status_code == 200
        served = _event(copy.text)
        assert _kept_lines(served) == _kept_lines(written), login
        categories = [str(c) for c in written.categories]
        typed = any(c.strip() for c in categories)  # OBM writes an empty CATEGORIES
        assert [str(c) for c in served.categories] == (categories if typed else ["meeting"])
    assert _kept_lines(_emailed(server, smtp, "zoe@partner.example")) == _kept_lines(written)


def test_a_page_edit_keeps_what_the_client_wrote_and_the_place_on_its_lines(
    server: RunningServer,
) -> None:
    uid, text = _put_meeting(server)
    with server.world.database.session() as session:
        number = session.scalar(select(Interaction.id).where(Interaction.uid == uid))
    pages, csrf = crm_pages(server.url, "alice")
    editor = pages.get(f"interactions/{number}/edit").text

    def field(pattern: str) -> str:
        found = re.search(pattern, editor, flags=re.S)
        assert found is not None, pattern
        return html.unescape(found.group(1))

    form = {
        "subject": field(r'name="subject" value="([^"]*)"'),
        "type": field(r'<option value="([^"]*)" selected'),
        "start": field(r'name="start" value="([^"]*)"'),
        "end": field(r'name="end" value="([^"]*)"'),
        "location": field(r'<textarea name="location"[^>]*>(.*?)</textarea>').replace("\n", "\r\n"),
        "notes": "Neu",
        "csrf": csrf,
    }
    assert pages.post(f"interactions/{number}/edit", data=form).status_code == 303
    with _client(server, "bob") as bob:
        served = _event(bob.get(f"/bob/interactions/{uid}.ics").text)
    assert str(served["DESCRIPTION"]) == "Neu"
    _assert_kept(_event(text), served, own=False)

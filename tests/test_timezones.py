"""Time zones over the real server: each object is read with its own VTIMEZONEs, VTIMEZONE
input is bounded before it is expanded, and served zones hold for every occurrence."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from dateutil.tz import tzical
from icalendar import Calendar, Timezone
from icalendar.parser.ical.component import ComponentIcalParser
from icalendar.timezone import tzp
from sqlalchemy import func, select

from caldav_bridge.cli.commands import main
from caldav_bridge.domain.models import Interaction, StoredItem
from caldav_bridge.ical import timezones
from caldav_bridge.mail import delivery
from caldav_bridge.mail.delivery import SmtpSettings
from tests.conftest import Inbox, RunningServer, World

TIMEOUT = 60.0
SAMPLES = Path(__file__).parent / "fixtures" / "samples"
BERLIN = ZoneInfo("Europe/Berlin")
QUERY = (
    '<?xml version="1.0"?><C:calendar-query xmlns="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><getetag/></prop><C:filter>'
    '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    '<C:time-range start="{start}" end="{end}"/>'
    "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
)


def _zone_block(sample: str, tzid: str) -> str:
    """One VTIMEZONE of a sample file, as the client wrote it."""
    text = (SAMPLES / sample).read_text().replace("\r\n", "\n")
    start = text.index(f"BEGIN:VTIMEZONE\nTZID:{tzid}\n")
    return text[start : text.index("END:VTIMEZONE\n", start) + len("END:VTIMEZONE\n")]


def _fixed_zone(tzid: str, offset: str) -> str:
    return (
        f"BEGIN:VTIMEZONE\nTZID:{tzid}\nBEGIN:STANDARD\nDTSTART:16010101T000000\n"
        f"TZOFFSETFROM:{offset}\nTZOFFSETTO:{offset}\nEND:STANDARD\nEND:VTIMEZONE\n"
    )


def _object(uid: str, zones: str, tzid: str, *lines: str, start: str = "20261207T100000") -> str:
    body = "\n".join(lines)
    return (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:Microsoft Exchange Server 2010\n"
        f"{zones}BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20261101T000000Z\nSUMMARY:{uid}\n"
        f"DTSTART;TZID={tzid}:{start}\nDTEND;TZID={tzid}:{start[:9]}{int(start[9:11]) + 1:02d}"
        f"{start[11:]}\n{body + chr(10) if body else ''}END:VEVENT\nEND:VCALENDAR\n"
    ).replace("\n", "\r\n")


def _client(login: str) -> httpx.Client:
    return httpx.Client(auth=(login, login), timeout=TIMEOUT)


def _personal(server: RunningServer, login: str) -> str:
    url = f"{server.url}{login}/personal/"
    with _client(login) as client:
        if client.request("PROPFIND", url, headers={"Depth": "0"}).status_code == 404:
            assert client.request("MKCALENDAR", url).status_code == 201
    return url


def _put(server: RunningServer, login: str, url: str, text: str) -> httpx.Response:
    with _client(login) as client:
        return client.put(url, content=text.encode(), headers={"Content-Type": "text/calendar"})


def _stored_start(world: World, uid: str) -> datetime:
    with world.database.session() as session:
        seconds = session.scalar(select(StoredItem.starts_ts).where(StoredItem.uid == uid))
    assert seconds is not None, uid
    return datetime.fromtimestamp(seconds, UTC)


def _found_between(server: RunningServer, login: str, url: str, start: str, end: str) -> str:
    with _client(login) as client:
        answer = client.request(
            "REPORT",
            url,
            content=QUERY.format(start=start, end=end).encode(),
            headers={"Depth": "1", "Content-Type": "application/xml"},
        )
    assert answer.status_code == 207, answer.text
    return answer.text


# ------------------------------------------------------------------ each object its own zones

BOGUS = _fixed_zone("W. Europe Standard Time", "+0500")


def _bobs_bogus_event(server: RunningServer) -> None:
    url = _personal(server, "bob") + "bogus.ics"
    answer = _put(server, "bob", url, _object("bogus@bob", BOGUS, "W. Europe Standard Time"))
    assert answer.status_code == 201, answer.text


def _alices_outlook_meeting(server: RunningServer) -> Interaction:
    real = _zone_block("exchange2010-windows-zone-names.ics", "W. Europe Standard Time")
    text = _object(
        "outlook@alice",
        real,
        "W. Europe Standard Time",
        "ORGANIZER;CN=Alice Martin:mailto:alice@example.com",
        "ATTENDEE;CUTYPE=ROOM;ROLE=NON-PARTICIPANT;PARTSTAT=NEEDS-ACTION;CN=Everest:"
        "mailto:everest@example.com",
    )
    answer = _put(server, "alice", f"{server.url}alice/interactions/outlook.ics", text)
    assert answer.status_code == 201, answer.text
    with server.world.database.session() as session:
        interaction = session.scalar(select(Interaction).where(Interaction.uid == "outlook@alice"))
        assert interaction is not None
        assert [b.declined for b in interaction.bookings] == [False]
        session.expunge(interaction)
    return interaction


@pytest.mark.parametrize("bob_first", [True, False], ids=["bogus-first", "bogus-after"])
def test_one_users_vtimezone_does_not_change_how_another_users_event_is_read(
    server: RunningServer, bob_first: bool
) -> None:
    if bob_first:
        _bobs_bogus_event(server)
    meeting = _alices_outlook_meeting(server)
    if not bob_first:
        _bobs_bogus_event(server)
    # alice's meeting: 10:00 Berlin, the room booked for 09:00 UTC
    assert meeting.starts_at == datetime(2026, 12, 7, 9, tzinfo=UTC)
    assert meeting.timezone == "Europe/Berlin"
    with _client("alice") as client:
        served = Calendar.from_ical(client.get(f"{server.url}alice/interactions/outlook.ics").text)
    assert served.events[0].start == datetime(2026, 12, 7, 10, tzinfo=BERLIN)
    with _client("everest") as client:
        room = client.get(f"{server.url}everest/bookings/")
    if room.status_code == 200:
        assert "DTSTART;TZID=Europe/Berlin:20261207T100000" in room.text.replace("\r\n ", "")
    # bob's own event, by his own definition (+05:00), whoever came first; and read back so
    bob = _personal(server, "bob")
    assert _stored_start(server.world, "bogus@bob") == datetime(2026, 12, 7, 5, tzinfo=UTC)
    assert "bogus.ics" in _found_between(server, "bob", bob, "20261207T050000Z", "20261207T053000Z")
    assert "bogus.ics" not in _found_between(
        server, "bob", bob, "20261207T083000Z", "20261207T093000Z"
    )


def test_two_objects_with_the_same_custom_tzid_are_each_read_with_their_own(
    server: RunningServer,
) -> None:
    """Exchange's "Customized Time Zone" is any zone: New York's rules in one object, +09:00
    in the next, and the first object read back afterwards."""
    carol = _personal(server, "carol")
    new_york = _zone_block("exchange2010-customized-time-zone.ics", "Customized Time Zone")
    tokyo = _fixed_zone("Customized Time Zone", "+0900")
    for name, zone in (("ny", new_york), ("tokyo", tokyo), ("ny-again", new_york)):
        text = _object(f"{name}@carol", zone, "Customized Time Zone")
        assert _put(server, "carol", f"{carol}{name}.ics", text).status_code == 201
    assert _stored_start(server.world, "ny@carol") == datetime(2026, 12, 7, 15, tzinfo=UTC)
    assert _stored_start(server.world, "tokyo@carol") == datetime(2026, 12, 7, 1, tzinfo=UTC)
    assert _stored_start(server.world, "ny-again@carol") == datetime(2026, 12, 7, 15, tzinfo=UTC)
    early = _found_between(server, "carol", carol, "20261207T010000Z", "20261207T013000Z")
    late = _found_between(server, "carol", carol, "20261207T150000Z", "20261207T153000Z")
    assert "tokyo.ics" in early
    assert "ny.ics" not in early
    assert "ny.ics" in late
    assert "ny-again.ics" in late
    assert "tokyo.ics" not in late


def test_parses_in_parallel_threads_each_read_their_own_definition() -> None:
    offsets = {n: timedelta(hours=n - 6) for n in range(12)}
    wrong: list[tuple[int, Any]] = []

    def parse(n: int) -> None:
        sign = "+" if offsets[n] >= timedelta(0) else "-"
        hours = abs(offsets[n]) // timedelta(hours=1)
        text = _object(f"t{n}", _fixed_zone("Shared Name", f"{sign}{hours:02d}00"), "Shared Name")
        for _ in range(30):
            start = Calendar.from_ical(text).events[0].start
            if start.utcoffset() != offsets[n]:
                wrong.append((n, start))

    threads = [threading.Thread(target=parse, args=(n,)) for n in offsets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


# ------------------------------------------------------------------ bounded VTIMEZONE input


def _observance(kind: str, start: str, offset_from: str, offset_to: str, *lines: str) -> str:
    extra = "".join(f"{line}\n" for line in lines)
    return (
        f"BEGIN:{kind}\nDTSTART:{start}\nTZOFFSETFROM:{offset_from}\nTZOFFSETTO:{offset_to}\n"
        f"{extra}END:{kind}\n"
    )


def _zone(tzid: str, *observances: str) -> str:
    return f"BEGIN:VTIMEZONE\nTZID:{tzid}\n{''.join(observances)}END:VTIMEZONE\n"


def _hourly() -> str:
    return _zone(
        "Hourly",
        _observance("STANDARD", "16010101T000000", "+0100", "+0000", "RRULE:FREQ=HOURLY"),
        _observance("DAYLIGHT", "16010101T003000", "+0000", "+0100", "RRULE:FREQ=HOURLY"),
    )


def _many_observances() -> str:
    return _zone(
        "Many",
        *(
            _observance(
                "STANDARD", f"{1700 + i // 12:04d}{i % 12 + 1:02d}01T000000", "+0100", "+0000"
            )
            for i in range(20_000)
        ),
    )


def _many_rdates() -> str:
    rdates = ",".join(f"{1700 + i // 12:04d}{i % 12 + 1:02d}01T000000" for i in range(1_500))
    return _zone(
        "Dates", _observance("STANDARD", "16010101T000000", "+0100", "+0000", f"RDATE:{rdates}")
    )


def _daily_by_monthday() -> str:
    days = ",".join(str(d) for d in range(1, 32))
    rule = f"RRULE:FREQ=MONTHLY;BYMONTHDAY={days}"
    return _zone("Daily", _observance("STANDARD", "16010101T000000", "+0100", "+0000", rule))


def _many_zones() -> str:
    return "".join(_fixed_zone(f"Zone {n}", "+0100") for n in range(60))


CASES = {
    "hourly-rules": (_hourly, "Hourly", "YEARLY or MONTHLY (not HOURLY)"),
    "20000-observances": (_many_observances, "Many", f"at most {timezones.MAX_OBSERVANCES}"),
    "1500-rdates": (_many_rdates, "Dates", f"at most {timezones.MAX_RDATES} RDATEs"),
    "daily-transitions": (_daily_by_monthday, "Daily", f"at most {timezones.MAX_TRANSITIONS}"),
    "60-vtimezones": (_many_zones, "Zone 1", f"at most {timezones.MAX_VTIMEZONES} VTIMEZONEs"),
}


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts, in the server process, of time zones built (by icalendar or by vobject,
    both through dateutil's tzical) and of observances parsed."""
    counted = {"zones built": 0, "observances parsed": 0}
    build, begin = tzical._parse_rfc, ComponentIcalParser.handle_begin_component

    def counting_build(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted["zones built"] += 1
        return build(self, *args, **kwargs)

    def counting_begin(self: Any, vals: str) -> None:
        counted["observances parsed"] += vals.upper() in ("STANDARD", "DAYLIGHT")
        begin(self, vals)

    monkeypatch.setattr(tzical, "_parse_rfc", counting_build)
    monkeypatch.setattr(ComponentIcalParser, "handle_begin_component", counting_begin)
    return counted


def _rows(world: World) -> tuple[int, int]:
    with world.database.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Interaction)) or 0,
            session.scalar(select(func.count()).select_from(StoredItem)) or 0,
        )


@pytest.mark.parametrize("calendar", ["interactions", "personal"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_vtimezone_beyond_a_bound_is_refused_naming_the_limit_before_it_is_expanded(
    server: RunningServer, work: dict[str, int], calendar: str, case: str
) -> None:
    make, tzid, reason = CASES[case]
    url = (
        _personal(server, "alice") if calendar == "personal" else f"{server.url}alice/interactions/"
    )
    before = _rows(server.world)
    text = _object(f"{case}@alice", make(), tzid, "ORGANIZER:mailto:alice@example.com")
    answer = _put(server, "alice", f"{url}{case}.ics", text)
    assert answer.status_code == 400, answer.text
    assert reason in answer.text
    assert _rows(server.world) == before
    # nothing expanded; only the zones within the bound of how many an object holds are built
    assert work["zones built"] <= (timezones.MAX_VTIMEZONES if case == "60-vtimezones" else 0)
    assert work["observances parsed"] <= timezones.MAX_OBSERVANCES + 2


def test_real_clients_time_zones_are_within_the_bounds(server: RunningServer) -> None:
    """Exchange's nine zones in one object, a full IANA history (1900 on), a served zone."""
    exchange = (SAMPLES / "exchange2010-windows-zone-names.ics").read_text()
    zones = exchange[exchange.index("BEGIN:VTIMEZONE") : exchange.rindex("END:VTIMEZONE") + 14]
    history = Timezone.from_tzid(
        "Europe/Paris", first_date=date(1900, 1, 1), last_date=date(2100, 1, 1)
    )
    served = timezones.vtimezone("America/New_York", date(2026, 1, 1))
    personal = _personal(server, "alice")
    for n, (block, tzid) in enumerate(
        (
            (zones.replace("\r\n", "\n") + "\n", "W. Europe Standard Time"),
            (history.to_ical().decode().replace("\r\n", "\n"), "Europe/Paris"),
            (served.to_ical().decode().replace("\r\n", "\n"), "America/New_York"),
        )
    ):
        answer = _put(server, "alice", f"{personal}real-{n}.ics", _object(f"real-{n}", block, tzid))
        assert answer.status_code == 201, answer.text


# ------------------------------------------------------------------ served zones for the span


def _served_zone(calendar: Calendar, tzid: str) -> tzinfo:
    """The calendar's own VTIMEZONE as a time zone, built by a fresh parser (not zoneinfo)."""
    (component,) = [c for c in calendar.walk("VTIMEZONE") if str(c["TZID"]) == tzid]
    return tzp.create_timezone(Timezone.from_ical(component.to_ical()))


def _real(moment: datetime, zone: ZoneInfo) -> bool:
    """A local time that exists (not in the hour skipped in spring)."""
    aware = moment.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moment


def _assert_valid_for(
    calendar: Calendar, name: str, instants: list[datetime], until: datetime
) -> None:
    zone, served = ZoneInfo(name), _served_zone(calendar, name)
    for local in instants:
        assert local.replace(tzinfo=served).utcoffset() == local.replace(tzinfo=zone).utcoffset(), (
            local
        )
    hour = instants[0]
    while hour < until:  # every hour of the span, not only the occurrences
        if _real(hour, zone):
            assert (
                hour.replace(tzinfo=served).utcoffset() == hour.replace(tzinfo=zone).utcoffset()
            ), hour
        hour += timedelta(hours=1)


ENDLESS, EIGHTY = "FREQ=WEEKLY", "FREQ=WEEKLY;COUNT=80"
SERIES = {
    # zone, first local start, RRULE, a far instant of an endless series to check too
    "paris-80-weeks": ("Europe/Paris", datetime(2026, 12, 7, 10), EIGHTY, None),
    "paris-endless": ("Europe/Paris", datetime(2026, 12, 7, 10), ENDLESS, datetime(2040, 7, 2, 10)),
    "new-york": ("America/New_York", datetime(2026, 12, 7, 9), EIGHTY, None),
    "sydney": ("Australia/Sydney", datetime(2026, 12, 7, 9), ENDLESS, datetime(2040, 1, 9, 9)),
    "kolkata": ("Asia/Kolkata", datetime(2026, 12, 7, 9), EIGHTY, None),
    # Morocco moves its clocks back for Ramadan: changes undone within five weeks
    "casablanca": ("Africa/Casablanca", datetime(2026, 12, 7, 9), EIGHTY, None),
    # Brazil dropped daylight saving time in 2019
    "sao-paulo-2018-2020": (
        "America/Sao_Paulo",
        datetime(2018, 1, 8, 9),
        "FREQ=WEEKLY;UNTIL=20201231T120000Z",
        None,
    ),
}


def _weeks(first: datetime, rule: str, extra: datetime | None) -> list[datetime]:
    count = 80 if "COUNT" in rule else 157 if "UNTIL" in rule else 52 * 14
    return [first + timedelta(weeks=n) for n in range(count)] + ([extra] if extra else [])


def _feed(server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Calendar:
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", server.world.database.url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)
    capsys.readouterr()
    assert main(["feed", "create", "alice"]) in (0, None)
    address = capsys.readouterr().out.splitlines()[2].strip()
    path = address.split("://", 1)[1].split("/", 1)[1]
    return Calendar.from_ical(httpx.get(f"{server.url}{path}", timeout=TIMEOUT).content)


@pytest.mark.parametrize("series", list(SERIES))
def test_served_and_emailed_time_zones_hold_for_every_occurrence(
    server: RunningServer,
    smtp: tuple[SmtpSettings, Inbox],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    series: str,
) -> None:
    name, first, rule, extra = SERIES[series]
    text = _object(
        "series@alice",
        "",
        name,
        f"RRULE:{rule}",
        "ORGANIZER:mailto:alice@example.com",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com",
        start=first.strftime("%Y%m%dT%H%M%S"),
    )
    answer = _put(server, "alice", f"{server.url}alice/interactions/series.ics", text)
    assert answer.status_code == 201, answer.text
    instants = _weeks(first, rule, extra)
    until = min(instants[-1], datetime(2031, 1, 1)) if extra else instants[-1]
    with _client("alice") as client:
        served = Calendar.from_ical(client.get(f"{server.url}alice/interactions/series.ics").text)
    _assert_valid_for(served, name, instants, until)
    settings, inbox = smtp
    delivery.deliver_due(server.world.database, settings)
    (mail,) = [m for m in inbox.messages if m["To"] == "bob@example.com"]
    (part,) = [p for p in mail.walk() if p.get_content_type() == "text/calendar"]
    _assert_valid_for(Calendar.from_ical(part.get_content()), name, instants, until)
    _assert_valid_for(_feed(server, monkeypatch, capsys), name, instants, until)

"""Properties of the iCalendar mapping, both ways, through the real service.

An interaction made with ``InteractionService.create`` is rendered (the text the server serves),
parsed back the way a client's PUT is (``client_writes.parse_item`` and ``event_fields``), and
must give back what was stored: subject, notes, location and type as text, the same instants,
the same time zone, all day or not, and the same occurrences. Texts carry arbitrary unicode
(control characters, commas, semicolons, backslashes, line breaks), times run from 1970 to 2100
in zones with odd offsets and odd summer times, often right at a clock change.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from icalendar import Calendar
from sqlalchemy import func, select

from caldav_bridge.caldav.client_writes import ClientWrites, parse_item
from caldav_bridge.domain import recurrence
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction
from caldav_bridge.domain.periods import Draft, period_of
from caldav_bridge.ical.mapping import event_fields, series_of
from tests.conftest import World

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # half an hour of summer time
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/St_Johns",  # -03:30
    "Europe/Dublin",  # negative summer time in the database
    "Africa/Casablanca",  # summer time suspended each Ramadan
    "America/Sao_Paulo",  # clocks changed at midnight
    "Antarctica/Troll",  # two hours of summer time
    "Pacific/Kiritimati",  # +14
    "Pacific/Apia",  # skipped 30 December 2011
    "Asia/Tokyo",
]
# Where the server is asked for a default zone, one no generated interaction uses: the zone must
# come back from the text itself.
UNUSED_ZONE = "Pacific/Pago_Pago"
FIRST, LAST = datetime(1970, 1, 2), datetime(2100, 12, 30)

RULES = [
    "FREQ=DAILY;COUNT=5",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=6",
    "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=3",
    "FREQ=YEARLY;COUNT=2",
    "FREQ=DAILY;INTERVAL=3;COUNT=4",
]

SETTINGS = settings(
    max_examples=100,
    derandomize=True,  # the same examples on every run: CI does not flip on a new draw
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Pieces of text that iCalendar escapes, quotes or folds around, and some it forbids.
_SPECIAL = st.sampled_from(
    [
        *(",", ";", "\\", ":", '"', "^", "'", "<", "&", " ", "\t", "\\n", "\\,", "é", "漢", "🙂"),
        *("\ufeff", "\u200b", "\U0010fffd"),
    ]
)
# One-line fields refuse line and paragraph separators and control characters but the tab.
_ANY_BUT_BREAKS = st.characters(
    blacklist_categories=("Cs", "Cc", "Zl", "Zp"), whitelist_characters="\t"
)
_ANY_BUT_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
# icalendar 7 writes a literal backslash-N as an escaped line break (a known limit, README):
# left out of the texts here.
ONE_LINE = (
    st.lists(st.one_of(_SPECIAL, _ANY_BUT_BREAKS), max_size=60)
    .map("".join)
    .filter(lambda s: "\\N" not in s.replace("\ufeff", ""))
)
SUBJECTS = ONE_LINE.filter(lambda s: bool(s.replace("\ufeff", "").strip()))
NOTES = (
    st.lists(st.one_of(_SPECIAL, st.sampled_from(["\n", "\r\n", "\r"]), _ANY_BUT_NUL), max_size=200)
    .map("".join)
    .filter(lambda s: "\\N" not in s.replace("\ufeff", ""))
)


@functools.cache
def _clock_changes(zone_name: str, year: int) -> tuple[datetime, ...]:
    """The UTC instants (to the minute) at which the zone's offset changes in ``year``."""
    tz = ZoneInfo(zone_name)
    found: list[datetime] = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(tz).utcoffset()
    while moment.year == year:
        following = moment + timedelta(days=1)
        new = following.astimezone(tz).utcoffset()
        if new != offset:
            low, high = moment, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = new
        moment = following
    return tuple(found)


@st.composite
def instants(draw: Any, zone_name: str) -> datetime:
    """A UTC instant (whole seconds): anywhere in 1970..2100, or within three hours of one of
    the zone's clock changes (the skipped and the repeated hours)."""
    year = draw(st.integers(FIRST.year, LAST.year))
    changes = _clock_changes(zone_name, year)
    if changes and draw(st.booleans()):
        near = draw(st.sampled_from(changes)).replace(second=0, microsecond=0)
        # Half the time within the hour after the change: the repeated hour, when clocks go back.
        minutes = draw(st.one_of(st.integers(0, 59), st.integers(-180, 180)))
        instant = near + timedelta(minutes=minutes)
    else:
        local = draw(st.datetimes(min_value=FIRST, max_value=LAST)).replace(microsecond=0)
        fold = draw(st.integers(0, 1))
        instant = local.replace(fold=fold, tzinfo=ZoneInfo(zone_name)).astimezone(UTC)
    # The second pass of a repeated hour has no local name of its own: RFC 5545 (3.3.5) reads
    # a repeated local time as the first pass, so such an instant cannot survive a DTSTART
    # written with its TZID. A documented limit (README), left out here.
    local = instant.astimezone(ZoneInfo(zone_name))
    assume(local.replace(fold=0).astimezone(UTC) == instant)
    return instant


@st.composite
def drafts(draw: Any) -> Draft:
    zone_name = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone_name)
    start: datetime | date
    end: datetime | date
    if draw(st.booleans()):  # all day
        start = draw(st.dates(min_value=FIRST.date(), max_value=LAST.date()))
        end = start + timedelta(days=draw(st.integers(1, 30)))
        first_utc = datetime.combine(start, datetime.min.time(), tz).astimezone(UTC)
    else:
        first_utc = draw(instants(zone_name))
        start = first_utc.astimezone(tz)
        end = (first_utc + timedelta(seconds=draw(st.integers(0, 3 * 86400)))).astimezone(tz)
    rule = draw(st.sampled_from(["", "", *RULES, "UNTIL"]))
    if rule == "UNTIL":
        until = first_utc + timedelta(days=draw(st.integers(10, 400)))
        rule = f"FREQ=WEEKLY;INTERVAL=2;UNTIL={until:%Y%m%dT%H%M%SZ}"
    return Draft(
        subject=draw(SUBJECTS),
        start=start,
        end=end,
        timezone=zone_name,
        notes=draw(NOTES),
        kind=draw(st.sampled_from(["meeting", "call", "intervention"])),
        location=draw(ONE_LINE),
        rrule=rule,
    )


def _created(world: World, draft: Draft) -> tuple[int, str]:
    """The interaction alice creates from ``draft``: its id and the iCalendar served for it."""
    with world.database.session(write=True) as session:
        service = InteractionService(session)
        interaction = service.create(world.users(session)["alice"], draft)
        assert interaction.ical, "nothing rendered"
        return interaction.id, interaction.ical


def _describe(interaction: Interaction) -> dict[str, Any]:
    return {
        "subject": interaction.subject,
        "notes": interaction.notes,
        "kind": interaction.kind,
        "location": interaction.location,
        "all_day": interaction.all_day,
        "starts_at": interaction.starts_at,
        "ends_at": interaction.ends_at,
        "timezone": interaction.timezone,
        "rrule": interaction.rrule,
        "exdates": interaction.exdates,
        "sequence": interaction.sequence,
    }


@SETTINGS
@given(draft=drafts())
def test_every_rendered_interaction_parses_back_to_the_same_fields_times_zone_and_occurrences(
    world: World, draft: Draft
) -> None:
    interaction_id, text = _created(world, draft)
    calendar = Calendar.from_ical(text)
    errors = [(c.name, c.errors) for c in calendar.walk() if c.errors]
    assert not errors, f"icalendar could not read parts of the rendered text: {errors}"
    with world.database.session() as session:
        stored = InteractionService(session).get(interaction_id)
        default = stored.timezone if stored.all_day else UNUSED_ZONE
        fields = event_fields(parse_item(text).event, default)
        assert (fields.subject, fields.notes, fields.location, fields.kind) == (
            stored.subject,
            stored.notes,
            stored.location,
            stored.kind,
        )
        assert isinstance(fields.start, datetime) != stored.all_day
        assert fields.timezone == stored.timezone
        period = period_of(fields.start, fields.end, fields.timezone)
        assert (period.starts_at, period.ends_at, period.all_day) == (
            stored.starts_at,
            stored.ends_at,
            stored.all_day,
        )
        rule = recurrence.checked_rule(fields.rrule, fields.timezone)
        assert bool(rule) == bool(stored.rrule)
        parsed = recurrence.Series(
            period.starts_at,
            period.ends_at,
            period.all_day,
            fields.timezone,
            rule,
            recurrence.exdate_text(fields.exdates) if rule else "",
        )
        assert recurrence.instances(parsed) == recurrence.instances(series_of(stored))


@SETTINGS
@given(draft=drafts())
def test_the_owner_saving_back_the_served_event_changes_nothing(world: World, draft: Draft) -> None:
    interaction_id, text = _created(world, draft)
    with world.database.session(write=True) as session:
        service = InteractionService(session)
        interaction = service.get(interaction_id)
        before, etag = _describe(interaction), interaction.etag
        alice = world.users(session)["alice"]
        ClientWrites(service).put(alice, interaction.href, text, checked=interaction)
        assert _describe(interaction) == before
        assert interaction.etag == etag, "an unchanged save gave the event a new ETag"


_BROKEN_FIELDS = st.one_of(
    st.tuples(
        st.just("subject"),
        st.sampled_from(
            ["\r", "\n", "\r\n", "\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x85", "\u2028", "\u2029"]
        ),
    ),
    # A location may hold line breaks (Apple Calendar's map locations), nothing else.
    st.tuples(
        st.just("location"),
        st.sampled_from(["\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x85", "\u2028", "\u2029"]),
    ),
    st.just(("notes", "\x00")),  # notes are several lines, but never hold NUL
)


@SETTINGS
@given(draft=drafts(), broken=_BROKEN_FIELDS, text=st.text(max_size=20), at=st.integers(0, 20))
def test_breaks_in_one_line_fields_controls_in_the_location_and_nul_anywhere_are_refused(
    world: World, draft: Draft, broken: tuple[str, str], text: str, at: int
) -> None:
    field, breaker = broken
    changed: dict[str, Any] = {field: f"x{text[:at]}{breaker}{text[at:]}x"}
    hostile = replace(draft, **changed)
    with world.database.session() as session:
        count = session.scalar(select(func.count()).select_from(Interaction))
    with pytest.raises(InvalidInput):
        _created(world, hostile)
    with world.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Interaction)) == count

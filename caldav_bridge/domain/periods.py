"""When an interaction happens, as the owner gives it (a draft, an edit) and as it is stored:
UTC instants, a series with its rule, exceptions and moved occurrences, all checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from caldav_bridge.domain import recurrence
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.models import Interaction, OccurrenceMove, User
from caldav_bridge.domain.recurrence import Series
from caldav_bridge.ical.mapping import zone

# A moved occurrence: its RECURRENCE-ID and its new start and end (aware datetimes).
Move = tuple[datetime, datetime, datetime]


@dataclass(frozen=True)
class Draft:
    """A new interaction. ``start``/``end`` are both dates (all day) or both datetimes;
    naive datetimes are read in ``timezone``, which defaults to the owner's."""

    subject: str
    start: datetime | date
    end: datetime | date
    timezone: str | None = None
    notes: str = ""
    kind: str = "meeting"
    location: str = ""
    rrule: str = ""  # RFC 5545 RRULE value: a recurring interaction
    exdates: tuple[datetime | date, ...] = ()  # occurrences left out
    moves: tuple[Move, ...] = ()  # occurrences moved: (RECURRENCE-ID, start, end)


@dataclass(frozen=True)
class Changes:
    """An edit: only the fields that are not None change."""

    subject: str | None = None
    notes: str | None = None
    kind: str | None = None
    location: str | None = None
    start: datetime | date | None = None
    end: datetime | date | None = None
    timezone: str | None = None
    rrule: str | None = None  # "" makes it a single interaction again
    exdates: tuple[datetime | date, ...] | None = None
    moves: tuple[Move, ...] | None = None  # every moved occurrence (those not named move back)


@dataclass(frozen=True)
class Period:
    starts_at: datetime
    ends_at: datetime
    all_day: bool
    timezone: str


def period_of(start: datetime | date, end: datetime | date, timezone: str) -> Period:
    """Start and end as stored: UTC instants (local midnights for all-day), checked."""
    tz = zone(timezone)
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise InvalidInput("start and end must both be dates (all day) or both be times")
    if not isinstance(start, datetime):
        if end <= start:
            raise InvalidInput("an all-day interaction must end at least one day after it starts")
        try:
            starts_at = datetime.combine(start, time(0), tz).astimezone(UTC)
            ends_at = datetime.combine(end, time(0), tz).astimezone(UTC)
        except OverflowError as exc:
            raise InvalidInput("the interaction's days must lie in the years 1 to 9999") from exc
        return Period(starts_at, ends_at, True, timezone)
    assert isinstance(end, datetime)
    try:
        starts_at = (start if start.tzinfo else start.replace(tzinfo=tz)).astimezone(UTC)
        ends_at = (end if end.tzinfo else end.replace(tzinfo=tz)).astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput("the interaction's times must lie in the years 1 to 9999") from exc
    if ends_at < starts_at:
        raise InvalidInput("the interaction ends before it starts")
    return Period(starts_at, ends_at, False, timezone)


def series(period: Period, rule: str, excluded: str, moves: tuple[Move, ...] = ()) -> Series:
    return Series(
        period.starts_at, period.ends_at, period.all_day, period.timezone, rule, excluded, moves
    )


def checked_moves(series: Series, moves: Sequence[Move]) -> tuple[Move, ...]:
    """Moved occurrences in UTC, each naming an occurrence of the series and ending after
    it starts."""
    checked = []
    for move in moves:
        rid, start, end = (m.astimezone(UTC) for m in move)
        if recurrence.occurrence(series, rid) is None:
            raise InvalidInput(f"the series has no occurrence at {rid:%Y-%m-%d %H:%M} UTC")
        if end < start:
            raise InvalidInput("a moved occurrence ends before it starts")
        checked.append((rid, start, end))
    return tuple(sorted(checked))


def still_occurring(series: Series, moves: Sequence[Move]) -> tuple[Move, ...]:
    """The moves that still name an occurrence of ``series``, after an edit that named none
    (the CRM's pages and command change the series' times or rule, never one occurrence): an
    occurrence the series no longer has cannot stay moved, or it would occur twice."""
    return tuple(move for move in moves if recurrence.occurrence(series, move[0]) is not None)


def set_moves(interaction: Interaction, moves: Sequence[Move]) -> None:
    """The moved occurrences' rows made ``moves``, each occurrence's row kept and changed in
    place: SQLAlchemy's unit of work inserts before it deletes, so a new row for an occurrence
    already moved broke the unique (interaction, RECURRENCE-ID) constraint before its old row
    was gone."""
    rows = {row.recurrence_id: row for row in interaction.moves}
    kept = []
    for rid, start, end in moves:
        row = rows.get(rid) or OccurrenceMove(recurrence_id=rid)
        row.starts_at, row.ends_at = start, end
        kept.append(row)
    interaction.moves = kept


def same_times(one: Series, other: Series) -> bool:
    """The same occurrences: a new time zone alone changes nothing unless the interaction
    repeats (its occurrences follow the zone's clock)."""
    fields = ("starts_at", "ends_at", "all_day", "rrule", "exdates", "moves")
    same = all(getattr(one, name) == getattr(other, name) for name in fields)
    return same and (not one.rrule or one.timezone == other.timezone)


def edited_period(interaction: Interaction, changes: Changes) -> Period:
    """The interaction's period after ``changes``: moving the start alone keeps the duration."""
    if changes.start is None and changes.end is None and changes.timezone is None:
        return Period(
            interaction.starts_at,
            interaction.ends_at,
            interaction.all_day,
            interaction.timezone,
        )
    timezone = changes.timezone or interaction.timezone
    tz = zone(timezone)
    current_start: datetime | date = interaction.starts_at.astimezone(tz)
    current_end: datetime | date = interaction.ends_at.astimezone(tz)
    if interaction.all_day:
        current_start = interaction.starts_at.astimezone(tz).date()
        current_end = interaction.ends_at.astimezone(tz).date()
    start = changes.start if changes.start is not None else current_start
    end = changes.end if changes.end is not None else current_end
    if changes.start is not None and changes.end is None:
        # Moving the start alone keeps the duration.
        duration = _as_comparable(current_end) - _as_comparable(current_start)
        end = _from_comparable(_as_comparable(start) + duration, start)
    return period_of(start, end, timezone)


def changes_of(draft: Draft, owner: User) -> Changes:
    """A draft as the edit that makes an existing interaction what it says."""
    return Changes(
        subject=draft.subject,
        notes=draft.notes,
        kind=draft.kind,
        location=draft.location,
        start=draft.start,
        end=draft.end,
        timezone=draft.timezone or owner.timezone,
        rrule=draft.rrule,
        exdates=draft.exdates,
        moves=draft.moves,
    )


def _as_comparable(value: datetime | date) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time(0))


def _from_comparable(value: datetime, like: datetime | date) -> datetime | date:
    return value if isinstance(like, datetime) else value.date()

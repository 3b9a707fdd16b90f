"""Free-busy (RFC 5545 VFREEBUSY): when a user or a resource is taken, from the CRM.

One rule, used by the outbox's free-busy answers and the free-busy-query report alike: a user
is busy during the interactions they own and those they are linked to as Confirmed, tentatively
busy during those they are Invited to; cancelled interactions, declined links and what the user
marked TRANSPARENT in their copy (their own TRANSP, ``domain.per_user``) do not count.
A resource is busy during the interactions that booked it (a room that declined holds nothing).
Free-busy gives busy time only, never a subject or a place: a PRIVATE or CONFIDENTIAL meeting
(CLASS, RFC 5545 3.8.1.3) shows in it as every other one does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from icalendar import Calendar, FreeBusy, vCalAddress
from sqlalchemy import select
from sqlalchemy.orm import Session

from caldav_bridge.domain import per_user, recurrence
from caldav_bridge.domain.bookings import room_taken, taking_time
from caldav_bridge.domain.models import (
    Interaction,
    InteractionLink,
    LinkStatus,
    OccurrenceAnswer,
    OccurrenceMove,
    Resource,
    User,
    utcnow,
)
from caldav_bridge.ical.mapping import PRODID

BUSY = "BUSY"
TENTATIVE = "BUSY-TENTATIVE"


@dataclass(frozen=True, order=True)
class Busy:
    start: datetime
    end: datetime
    kind: str  # FBTYPE: BUSY or BUSY-TENTATIVE


_SERIES = (
    Interaction.starts_at,
    Interaction.ends_at,
    Interaction.all_day,
    Interaction.timezone,
    Interaction.rrule,
    Interaction.exdates,
    Interaction.id,
)


def _series(session: Session, rows: Sequence[Any]) -> list[recurrence.Series]:
    """The series of each row (the ``_SERIES`` columns first), moved occurrences included."""
    moves: dict[int, list[tuple[datetime, datetime, datetime]]] = {}
    recurring = [row[6] for row in rows if row[4]]
    if recurring:
        for move in session.scalars(
            select(OccurrenceMove).where(OccurrenceMove.interaction_id.in_(recurring))
        ):
            moves.setdefault(move.interaction_id, []).append(
                (move.recurrence_id, move.starts_at, move.ends_at)
            )
    return [
        recurrence.Series(
            row[0], row[1], row[2], row[3], row[4], row[5], tuple(moves.get(row[6], ()))
        )
        for row in rows
    ]


def _within(
    series: recurrence.Series, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, datetime]]:
    """The instances (RECURRENCE-ID, start, end) of ``series`` overlapping [start, end)."""
    return [i for i in recurrence.instances(series, start, end) if i[1] < end and i[2] > start]


def _busy(session: Session, rows: Sequence[Any], start: datetime, end: datetime) -> list[Busy]:
    return [
        Busy(s, e, BUSY)
        for series in _series(session, rows)
        for _, s, e in _within(series, start, end)
    ]


def busy_user(session: Session, user: User, start: datetime, end: datetime) -> list[Busy]:
    """The periods of [start, end) taken by ``user``'s interactions (every occurrence; an
    occurrence the user answered apart counts by that answer), within one work budget."""
    with recurrence.budget():
        return _busy_user(session, user, start, end)


def _busy_user(session: Session, user: User, start: datetime, end: datetime) -> list[Busy]:
    owned = session.execute(
        select(*_SERIES).where(Interaction.owner_id == user.id, taking_time(start, end))
    ).all()
    linked = session.execute(
        select(*_SERIES, InteractionLink.status, InteractionLink.id)
        .join(InteractionLink, InteractionLink.interaction_id == Interaction.id)
        .where(InteractionLink.user_id == user.id, taking_time(start, end))
    ).all()
    apart = {
        (link_id, moment): status
        for link_id, moment, status in session.execute(
            select(
                OccurrenceAnswer.link_id, OccurrenceAnswer.recurrence_id, OccurrenceAnswer.status
            ).where(OccurrenceAnswer.link_id.in_([row[8] for row in linked]))
        )
    }
    own = per_user.transparency(session, user.id)  # what the user marked TRANSPARENT
    periods = [
        Busy(first, last, BUSY)
        for row, series in zip(owned, _series(session, owned), strict=True)
        for rid, first, last in _within(series, start, end)
        if not own.transparent(row[6], rid)
    ]
    for row, series in zip(linked, _series(session, linked), strict=True):
        for rid, first, last in _within(series, start, end):
            status = apart.get((row[8], rid), row[7])
            if status is not LinkStatus.DECLINED and not own.transparent(row[6], rid):
                kind = BUSY if status is LinkStatus.CONFIRMED else TENTATIVE
                periods.append(Busy(first, last, kind))
    return _clipped(periods, start, end)


def busy_resource(
    session: Session, resource: Resource, start: datetime, end: datetime
) -> list[Busy]:
    """The periods of [start, end) during which ``resource`` is booked."""
    with recurrence.budget():
        return _busy_resource(session, resource, start, end)


def _busy_resource(
    session: Session, resource: Resource, start: datetime, end: datetime
) -> list[Busy]:
    rows = session.execute(select(*_SERIES).where(room_taken(resource.id, start, end))).all()
    return _clipped(_busy(session, rows, start, end), start, end)


def _clipped(periods: Iterable[Busy], start: datetime, end: datetime) -> list[Busy]:
    return [
        Busy(max(p.start, start), min(p.end, end), p.kind)
        for p in periods
        if min(p.end, end) > max(p.start, start)
    ]


def merged(periods: Iterable[Busy]) -> list[Busy]:
    """Overlapping periods of one kind joined; a busy period hides a tentative one under it."""
    result: list[Busy] = []
    for kind in (BUSY, TENTATIVE):
        for period in sorted(p for p in periods if p.kind == kind):
            if result and result[-1].kind == kind and period.start <= result[-1].end:
                last = result.pop()
                result.append(Busy(last.start, max(last.end, period.end), kind))
            else:
                result.append(period)
    busy = [p for p in result if p.kind == BUSY]
    tentative = [
        p
        for p in result
        if p.kind == TENTATIVE and not any(b.start <= p.start and p.end <= b.end for b in busy)
    ]
    return sorted(busy + tentative)


def vfreebusy(
    periods: Iterable[Busy],
    start: datetime,
    end: datetime,
    *,
    method: str | None = None,
    uid: str | None = None,
    organizer: vCalAddress | None = None,
    attendee: vCalAddress | None = None,
) -> str:
    """A VCALENDAR with one VFREEBUSY: a REPLY to a free-busy request when ``method`` is
    given (RFC 5546 section 3.3.2), else the body of a free-busy-query report."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    if method:
        calendar.add("method", method)
    component = FreeBusy()
    if uid:
        component.add("uid", uid)
    component.add("dtstamp", utcnow().replace(microsecond=0))
    component.add("dtstart", start)
    component.add("dtend", end)
    if organizer is not None:
        component.add("organizer", organizer)
    if attendee is not None:
        component.add("attendee", attendee)
    for period in merged(periods):
        component.add("freebusy", (period.start, period.end), parameters={"FBTYPE": period.kind})
    calendar.add_component(component)
    return str(calendar.to_ical().decode())

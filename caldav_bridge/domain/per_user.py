"""Each user's own data of an interaction (``ical.per_user`` says what it is): kept per
(interaction, user), across every change the organizer makes, and shown in that user's copy
only. Never in iTIP: messages and every other copy are rendered from the interaction alone.

A user's copy is rendered when it changes (their data, or the interaction: ``render_all``,
called as the interaction is published) and stored with its ETag beside their data, so that
serving it parses nothing. A user without data of their own is served the shared copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from icalendar import Calendar
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from caldav_bridge.domain import changelog, recurrence
from caldav_bridge.domain.models import Interaction, PerUserData
from caldav_bridge.domain.queries import name_of, placement_of, shown_to
from caldav_bridge.ical import per_user
from caldav_bridge.ical.mapping import series_of

_MOMENT = "%Y%m%dT%H%M%SZ"


def etag_of(text: str) -> str:
    """The ETag of a served text: its content hash."""
    return f'"{hashlib.sha256(text.encode()).hexdigest()}"'


def _row(session: Session, interaction_id: int, user_id: int) -> PerUserData | None:
    return session.scalar(
        select(PerUserData).where(
            PerUserData.interaction_id == interaction_id, PerUserData.user_id == user_id
        )
    )


def copy_for(session: Session, interaction: Interaction, user_id: int) -> tuple[str, str]:
    """The text and ETag of the user's copy."""
    row = _row(session, interaction.id, user_id)
    return (interaction.ical, interaction.etag) if row is None else (row.ical, row.etag)


def keep(session: Session, interaction: Interaction, user_id: int, mine: Calendar) -> bool:
    """Keep ``mine`` (``split_per_user``'s) as the user's data; False if it is what was kept.
    Their copy is rendered again and logged in the calendar holding it for them (their ETag
    changes, nobody else's)."""
    data = "" if per_user.is_empty(mine) else str(mine.to_ical().decode())
    row = _row(session, interaction.id, user_id)
    if (row.data if row is not None else "") == data:
        return False
    if not data:
        assert row is not None
        session.delete(row)
    else:
        if row is None:
            row = PerUserData(interaction_id=interaction.id, user_id=user_id)
            session.add(row)
        row.data = data
        if interaction.ical:  # else it is rendered as the change that creates it ends
            _render(row, interaction, mine)
    session.flush()
    calendar = changelog.holding(user_id, placement_of(interaction, user_id))
    changelog.record(session, {calendar}, name_of(interaction, user_id), interaction.cancelled)
    return True


def render_all(session: Session, interaction: Interaction) -> None:
    """Render again the copy of each user with data of their own, after the interaction's
    shared text changed; the data of those no longer shown it goes."""
    rows = session.scalars(
        select(PerUserData).where(PerUserData.interaction_id == interaction.id)
    ).all()
    for row in rows:
        if shown_to(interaction, row.user_id, in_calendars=False):
            _render(row, interaction, Calendar.from_ical(row.data))
        else:
            session.delete(row)


def _render(row: PerUserData, interaction: Interaction, mine: Calendar) -> None:
    series = series_of(interaction)
    with recurrence.budget():
        row.ical = per_user.merged(
            interaction.ical,
            mine,
            interaction.timezone,
            lambda rid: recurrence.occurrence(series, rid),
        )
    row.etag = etag_of(row.ical)
    transparent, apart = per_user.transparency(mine)
    row.transparent = transparent
    row.transparency_apart = ",".join(moment.strftime(_MOMENT) for moment in apart)


@dataclass(frozen=True)
class Transparency:
    """Which of their interactions a user marked TRANSPARENT (their free-busy is free then):
    by interaction, the series' mark and the occurrences marked the other way."""

    marked: dict[int, tuple[bool, frozenset[datetime]]]

    def transparent(self, interaction_id: int, occurrence: datetime) -> bool:
        series, apart = self.marked.get(interaction_id, (False, frozenset()))
        return series != (occurrence in apart)


def transparency(session: Session, user_id: int) -> Transparency:
    """The user's marks (index columns only, nothing parsed): the few rows that mark one."""
    rows = session.execute(
        select(
            PerUserData.interaction_id, PerUserData.transparent, PerUserData.transparency_apart
        ).where(
            PerUserData.user_id == user_id,
            or_(PerUserData.transparent.is_(True), PerUserData.transparency_apart != ""),
        )
    )
    return Transparency(
        {
            interaction_id: (transparent, frozenset(_moments(apart)))
            for interaction_id, transparent, apart in rows
        }
    )


def _moments(text: str) -> list[datetime]:
    return [datetime.strptime(v, _MOMENT).replace(tzinfo=UTC) for v in text.split(",") if v]

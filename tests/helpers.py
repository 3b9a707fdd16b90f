"""Small builders shared by the tests."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from caldav_bridge.interactions import Draft, InteractionService
from caldav_bridge.models import CalendarChange, Channel, Interaction, OutboxMessage, User

PARIS = ZoneInfo("Europe/Paris")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in January 2030, Paris."""
    return datetime(2030, 1, day, hour, minute, tzinfo=PARIS)


def create(
    service: InteractionService,
    owner: User,
    subject: str = "Planning",
    start: datetime | date | None = None,
    end: datetime | date | None = None,
    **fields: str,
) -> Interaction:
    draft = Draft(subject, start or at(7, 10), end or at(7, 11), **fields)
    return service.create(owner, draft)


def outbox(session: Session, channel: Channel | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if channel is not None:
        query = query.where(OutboxMessage.channel == channel)
    return list(session.scalars(query))


def changes(session: Session) -> list[CalendarChange]:
    return list(session.scalars(select(CalendarChange).order_by(CalendarChange.id)))


def unfolded(ical: str) -> str:
    return ical.replace("\r\n ", "")

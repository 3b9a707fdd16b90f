"""The data sets: the same events for every server, and a CRM-scale set for the bridge."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.db import Database
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import (
    Booking,
    Interaction,
    InteractionLink,
    InteractionStatus,
    LinkStatus,
    Resource,
    User,
)
from caldav_bridge.domain.periods import Draft

YEAR_START = datetime(2030, 1, 7, tzinfo=UTC)  # a Monday
WEEK = (YEAR_START + timedelta(days=14), YEAR_START + timedelta(days=21))


@dataclass(frozen=True)
class Sample:
    uid: str
    subject: str
    notes: str
    location: str
    start: datetime
    end: datetime

    @property
    def href(self) -> str:
        return f"{self.uid}.ics"

    def ical(self) -> str:
        calendar = Calendar()
        calendar.add("prodid", "-//caldav-bridge bench//EN")
        calendar.add("version", "2.0")
        event = Event()
        event.add("uid", self.uid)
        event.add("dtstamp", YEAR_START)
        event.add("dtstart", self.start)
        event.add("dtend", self.end)
        event.add("summary", self.subject)
        event.add("description", self.notes)
        event.add("location", self.location)
        calendar.add_component(event)
        return str(calendar.to_ical().decode())


def events(count: int, seed: int = 7, prefix: str = "bench") -> list[Sample]:
    """``count`` events spread over a year of working days, 30 minutes to 2 hours each."""
    rng = random.Random(seed)
    samples = []
    for number in range(count):
        day = YEAR_START + timedelta(days=rng.randrange(364))
        start = day.replace(hour=rng.randrange(7, 18), minute=rng.choice((0, 15, 30, 45)))
        samples.append(
            Sample(
                uid=f"{prefix}-{number:06d}@caldav-bridge.bench",
                subject=f"Customer meeting {number}",
                notes="Agenda: pipeline review, next steps, open questions. " * 3,
                location=f"Office {rng.randrange(1, 40)}",
                start=start,
                end=start + timedelta(minutes=rng.choice((30, 45, 60, 90, 120))),
            )
        )
    return samples


def load_interactions(session: Session, owner: User, samples: list[Sample]) -> None:
    """The samples as interactions owned by ``owner``, through the interaction service."""
    service = InteractionService(session)
    for sample in samples:
        draft = Draft(
            sample.subject,
            sample.start,
            sample.end,
            "UTC",
            sample.notes,
            "meeting",
            sample.location,
        )
        service.create(owner, draft, uid=sample.uid, href=sample.href)


@dataclass(frozen=True)
class CrmScale:
    users: int
    interactions: int
    rooms: int


def load_crm(
    database: Database, scale: CrmScale, seed: int = 11, chunk: int = 2000
) -> list[Sample]:
    """Users, rooms and interactions with 3 to 6 linked users each, in mixed statuses.

    Built directly (a bulk load, not a user's action) in transactions of ``chunk``
    interactions, then published through the service so that every calendar shows them
    exactly as the service would. Returns the samples of the interactions user ``crm0000``
    sees, for serving the same events from a file calendar.
    """
    rng = random.Random(seed)
    with database.session(write=True) as session:
        directory = Directory(session)
        for n in range(scale.users):
            directory.add_user(
                f"crm{n:04d}", f"CRM user {n}", [f"crm{n:04d}@example.com"], None, "UTC"
            )
        directory.user("crm0000").password_hash = bench_password_hash()
        for n in range(scale.rooms):
            directory.add_resource(
                f"bench-room-{n:02d}", f"Room {n}", f"bench-room-{n:02d}@example.com"
            )
    statuses = [LinkStatus.INVITED, LinkStatus.CONFIRMED, LinkStatus.DECLINED]
    seen: list[Sample] = []
    samples = events(scale.interactions, seed, prefix="crm")
    for first in range(0, len(samples), chunk):
        with database.session(write=True) as session:
            users = list(
                session.scalars(
                    select(User)
                    .order_by(User.login)
                    .where(User.login.startswith("crm"))
                    .options(selectinload(User.emails))
                )
            )
            rooms = list(session.scalars(select(Resource).order_by(Resource.slug)))
            service = InteractionService(session)
            for number, sample in enumerate(samples[first : first + chunk], start=first):
                # crm0000 owns one interaction in 50 and is linked to others at random.
                owner = users[0] if number % 50 == 0 else rng.choice(users[1:])
                others = rng.sample([u for u in users if u.id != owner.id], rng.randint(3, 6))
                interaction = Interaction(
                    uid=sample.uid,
                    href=sample.href,
                    owner=owner,
                    subject=sample.subject,
                    notes=sample.notes,
                    kind="meeting",
                    all_day=False,
                    starts_at=sample.start,
                    ends_at=sample.end,
                    last_ends_at=sample.end,
                    timezone="UTC",
                    location=sample.location,
                    status=InteractionStatus.PLANNED,
                    sequence=0,
                    created_at=YEAR_START,
                    modified_at=YEAR_START,
                    links=[
                        InteractionLink(user=u, status=rng.choice(statuses), tentative=False)
                        for u in others
                    ],
                    bookings=(
                        [Booking(resource=rooms[number % len(rooms)])] if number % 3 == 0 else []
                    ),
                    guests=[],
                )
                session.add(interaction)
                service.publish(interaction)
                if owner is users[0] or users[0] in others:
                    seen.append(sample)
    return seen


def bench_password_hash() -> str:
    from caldav_bridge.domain.passwords import hash_password

    return hash_password(BENCH_PASSWORD)


BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password"

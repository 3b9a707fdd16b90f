"""A small, realistic data set around today, for trying the bridge out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.orm import Session

from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import AlreadyExists
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, LinkStatus, Resource, ResourceKind, User
from caldav_bridge.domain.periods import Draft
from caldav_bridge.ical.mapping import Answer, zone

WARNING = (
    "WARNING: demo users alice, bob, carol and dave have their login as password. "
    "For demonstrations only: never use this database for real."
)
TIMEZONE = "Europe/Paris"
USERS = [
    ("alice", "Alice Martin", True),
    ("bob", "Bob Dupont", False),
    ("carol", "Carol Nguyen", False),
    ("dave", "Dave Okafor", False),
]


def load(session: Session, public_url: str, today: date | None = None) -> bool:
    """Load the demo into an empty database; False if it is there already.

    Refuses a database that holds other users: the demo never mixes with real data. Its users
    are written to the directory directly, their login as password, below the password rule on
    purpose (``WARNING`` says so).
    """
    directory = Directory(session)
    if directory.find_user("alice") is not None:
        return False
    if directory.count_users():
        raise AlreadyExists("the database already holds users: load the demo into an empty one")
    users = {
        login: directory.add_user(login, name, [f"{login}@example.com"], login, TIMEZONE, admin)
        for login, name, admin in USERS
    }
    rooms = {
        "everest": directory.add_resource(
            "room-everest", "Everest meeting room", "room-everest@example.com", capacity=12
        ),
        "kilimanjaro": directory.add_resource(
            "room-kilimanjaro",
            "Kilimanjaro meeting room",
            "room-kilimanjaro@example.com",
            capacity=6,
        ),
        "van": directory.add_resource(
            "van-1", "Service van 1", "van-1@example.com", kind=ResourceKind.VEHICLE
        ),
    }
    Administration(session, OPERATOR).set_multi_user(True)
    today = today or datetime.now(zone(TIMEZONE)).date()
    week = _Week(InteractionService(session, public_url), users, rooms, today)
    _these_days(week)
    _later_this_week(week)
    return True


@dataclass
class _Week:
    """The demo's week around ``today``, in the demo's time zone."""

    service: InteractionService
    users: dict[str, User]
    rooms: dict[str, Resource]
    today: date

    def at(self, days: int, hour: int, minute: int = 0) -> datetime:
        day = self.today + timedelta(days=days)
        return datetime.combine(day, time(hour, minute), zone(TIMEZONE))

    def create(
        self,
        owner: str,
        subject: str,
        start: datetime | date,
        end: datetime | date,
        kind: str = "meeting",
        location: str = "",
        notes: str = "",
    ) -> Interaction:
        draft = Draft(subject, start, end, TIMEZONE, notes, kind, location)
        return self.service.create(self.users[owner], draft)


def _these_days(week: _Week) -> None:
    """From two days ago to tomorrow: done, pending, tentative and cancelled."""
    service, rooms = week.service, week.rooms
    alice, bob, carol = (week.users[k] for k in ("alice", "bob", "carol"))
    review = week.create(
        "alice",
        "Weekly sales review",
        week.at(-2, 10),
        week.at(-2, 11),
        notes="Pipeline, forecasts, blockers.",
    )
    service.link(alice, review, bob, LinkStatus.CONFIRMED)
    service.link(alice, review, carol, LinkStatus.CONFIRMED)
    service.book(alice, review, rooms["everest"])
    service.mark_done(alice, review)

    planning = week.create(
        "alice",
        "Quarterly planning",
        week.at(0, 14),
        week.at(0, 15, 30),
        notes="Agenda: targets for next quarter — préparez vos chiffres.",
    )
    service.link(alice, planning, bob, LinkStatus.INVITED)
    service.link(alice, planning, carol, LinkStatus.CONFIRMED)
    service.book(alice, planning, rooms["everest"])

    acme = week.create(
        "alice", "Call with Acme Corp", week.at(1, 9, 30), week.at(1, 10), kind="call"
    )
    service.link(alice, acme, bob, LinkStatus.INVITED)
    service.answer(bob, acme, Answer.TENTATIVE)

    budget = week.create("alice", "Budget meeting", week.at(1, 11), week.at(1, 12))
    service.link(alice, budget, bob, LinkStatus.INVITED)
    service.book(alice, budget, rooms["kilimanjaro"])
    service.cancel(alice, budget)


def _later_this_week(week: _Week) -> None:
    """The next days: a declined demo, an all-day intervention with the van, a training."""
    service, rooms, today = week.service, week.rooms, week.today
    alice, bob, carol, dave = (week.users[k] for k in ("alice", "bob", "carol", "dave"))
    demo = week.create(
        "alice",
        "Product demo for Globex",
        week.at(3, 16),
        week.at(3, 17),
        location="Globex HQ, 12 rue de la Paix, Paris",
    )
    service.link(alice, demo, carol, LinkStatus.INVITED)
    service.answer(carol, demo, Answer.DECLINE)
    service.link(alice, demo, dave, LinkStatus.INVITED)
    service.link(alice, demo, bob, LinkStatus.INVITED)
    service.answer(bob, demo, Answer.ACCEPT)

    intervention = week.create(
        "bob",
        "On-site intervention at Durand SA",
        today + timedelta(days=2),
        today + timedelta(days=3),
        kind="intervention",
        location="Durand SA, Lyon",
    )
    service.link(bob, intervention, dave, LinkStatus.CONFIRMED)
    service.book(bob, intervention, rooms["van"])

    training = week.create(
        "carol", "CRM training session", week.at(4, 10), week.at(4, 11, 30), kind="training"
    )
    service.link(carol, training, alice, LinkStatus.INVITED)
    service.link(carol, training, bob, LinkStatus.CONFIRMED)
    service.book(carol, training, rooms["kilimanjaro"])

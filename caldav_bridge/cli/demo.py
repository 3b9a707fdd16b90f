"""A small, realistic data set around today, for trying the bridge out."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy.orm import Session

from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import AlreadyExists
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, LinkStatus, ResourceKind
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

    Refuses a database that holds other users: the demo never mixes with real data.
    """
    directory = Directory(session)
    if directory.find_user("alice") is not None:
        return False
    if directory.count_users():
        raise AlreadyExists("the database already holds users: load the demo into an empty one")
    tz = zone(TIMEZONE)
    today = today or datetime.now(tz).date()
    users = {
        login: directory.add_user(login, name, [f"{login}@example.com"], login, TIMEZONE, admin)
        for login, name, admin in USERS
    }
    everest = directory.add_resource(
        "room-everest", "Everest meeting room", "room-everest@example.com", capacity=12
    )
    kilimanjaro = directory.add_resource(
        "room-kilimanjaro", "Kilimanjaro meeting room", "room-kilimanjaro@example.com", capacity=6
    )
    van = directory.add_resource(
        "van-1", "Service van 1", "van-1@example.com", kind=ResourceKind.VEHICLE
    )
    service = InteractionService(session, public_url)
    service.set_multi_user(True)

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(today + timedelta(days=days), time(hour, minute), tz)

    def create(
        owner: str,
        subject: str,
        start: datetime | date,
        end: datetime | date,
        kind: str = "meeting",
        location: str = "",
        notes: str = "",
    ) -> Interaction:
        draft = Draft(subject, start, end, TIMEZONE, notes, kind, location)
        return service.create(users[owner], draft)

    alice, bob, carol, dave = (users[k] for k in ("alice", "bob", "carol", "dave"))

    review = create(
        "alice",
        "Weekly sales review",
        at(-2, 10),
        at(-2, 11),
        notes="Pipeline, forecasts, blockers.",
    )
    service.link(alice, review, bob, LinkStatus.CONFIRMED)
    service.link(alice, review, carol, LinkStatus.CONFIRMED)
    service.book(alice, review, everest)
    service.mark_done(alice, review)

    planning = create(
        "alice",
        "Quarterly planning",
        at(0, 14),
        at(0, 15, 30),
        notes="Agenda: targets for next quarter — préparez vos chiffres.",
    )
    service.link(alice, planning, bob, LinkStatus.INVITED)
    service.link(alice, planning, carol, LinkStatus.CONFIRMED)
    service.book(alice, planning, everest)

    acme = create("alice", "Call with Acme Corp", at(1, 9, 30), at(1, 10), kind="call")
    service.link(alice, acme, bob, LinkStatus.INVITED)
    service.answer(bob, acme, Answer.TENTATIVE)

    budget = create("alice", "Budget meeting", at(1, 11), at(1, 12))
    service.link(alice, budget, bob, LinkStatus.INVITED)
    service.book(alice, budget, kilimanjaro)
    service.cancel(alice, budget)

    demo = create(
        "alice",
        "Product demo for Globex",
        at(3, 16),
        at(3, 17),
        location="Globex HQ, 12 rue de la Paix, Paris",
    )
    service.link(alice, demo, carol, LinkStatus.INVITED)
    service.answer(carol, demo, Answer.DECLINE)
    service.link(alice, demo, dave, LinkStatus.INVITED)
    service.link(alice, demo, bob, LinkStatus.INVITED)
    service.answer(bob, demo, Answer.ACCEPT)

    intervention = create(
        "bob",
        "On-site intervention at Durand SA",
        today + timedelta(days=2),
        today + timedelta(days=3),
        kind="intervention",
        location="Durand SA, Lyon",
    )
    service.link(bob, intervention, dave, LinkStatus.CONFIRMED)
    service.book(bob, intervention, van)

    training = create("carol", "CRM training session", at(4, 10), at(4, 11, 30), kind="training")
    service.link(carol, training, alice, LinkStatus.INVITED)
    service.link(carol, training, bob, LinkStatus.CONFIRMED)
    service.book(carol, training, kilimanjaro)
    return True

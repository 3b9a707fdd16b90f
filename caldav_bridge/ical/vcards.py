"""The CRM's directory as vCards: every user's read-only address book "Colleagues and rooms".

One card per active user (KIND:individual) and per active resource (KIND:location for a room,
KIND:device for a vehicle or equipment, RFC 6350 6.1.4 and RFC 6869), holding only what lets a
client complete an attendee's or a room's name: the name (FN, N), the email addresses and, for a
resource with one, its capacity (X-CAPACITY for programs, NOTE for people: no vCard property
says it). Cards are vCard 3.0, which every CardDAV client reads (RFC 6352 5.1.1); KIND, a
vCard 4.0 property, is kept by the clients that know it and ignored by the others.

A card's name (``<login>.vcf``) and UID derive from the login or the resource's identifier,
which never change; its ETag from what it shows. Every change to what cards show (a user or
resource added, renamed, given other addresses, deactivated) writes a change-log row for the
directory, in the transaction of the change, whatever channel made it (CLI, web pages, tests):
the listener below watches the ORM's flushes, so the CTag and sync deltas are exact.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import uuid
from collections.abc import Iterable
from typing import Any

import vobject
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.domain import changelog
from caldav_bridge.domain.models import Resource, ResourceKind, User, UserEmail

# What clients show of the address book in every user's home (its path: ``caldav.paths``).
DISPLAY_NAME = "Colleagues and rooms"
DESCRIPTION = "Everyone in the CRM, its rooms and other resources (read-only)"
READ_ONLY = (
    f"the address book {DISPLAY_NAME!r} is the CRM's directory and is read-only: "
    "people and rooms are added and changed in the CRM"
)

# Bumped when the cards' layout changes, so that every ETag changes with it.
_LAYOUT = 1
_UIDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:caldav-bridge:directory")
_KINDS = {ResourceKind.ROOM: "location"}  # vehicles and equipment: "device"

# What a card shows: an attribute changing on one of these changes a card.
_USER_FIELDS = ("login", "display_name", "active", "emails")
_EMAIL_FIELDS = ("address", "position", "user_id")
_RESOURCE_FIELDS = ("slug", "name", "email", "kind", "capacity", "active")


@dataclasses.dataclass(frozen=True)
class Card:
    """One person's or resource's card, as every user sees it."""

    name: str  # the login or the resource's identifier
    kind: str
    full_name: str
    emails: tuple[str, ...]
    capacity: int | None = None

    @property
    def href(self) -> str:
        return card_href(self.name)

    @property
    def uid(self) -> str:
        return f"urn:uuid:{uuid.uuid5(_UIDS, self.name)}"

    @property
    def etag(self) -> str:
        shown = json.dumps([_LAYOUT, dataclasses.astuple(self)], ensure_ascii=False)
        return f'"{hashlib.sha256(shown.encode()).hexdigest()[:32]}"'

    def text(self) -> str:
        return _vcard(self)


def card_href(name: str) -> str:
    return f"{name}.vcf"


def _split(full_name: str) -> tuple[str, str]:
    """(family, given) of a person's display name: the CRM keeps one name, so the first word
    is taken as the given name and the rest as the family name ("Alice Martin": Martin;
    Alice). A resource's whole name is its N's family name, which clients show as it is."""
    given, _, family = full_name.partition(" ")
    return (family.strip(), given) if family.strip() else (given, "")


@functools.lru_cache(maxsize=4096)
def _vcard(card: Card) -> str:
    """The card's text (cached: every user's book holds the same cards)."""
    vcard = vobject.vCard()
    vcard.add("uid").value = card.uid
    vcard.add("fn").value = card.full_name
    family, given = _split(card.full_name) if card.kind == "individual" else (card.full_name, "")
    vcard.add("n").value = vobject.vcard.Name(family=family, given=given)
    vcard.add("kind").value = card.kind
    for position, address in enumerate(card.emails):
        email = vcard.add("email")
        email.value = address
        email.params["TYPE"] = ["INTERNET", "PREF"] if position == 0 else ["INTERNET"]
    if card.capacity is not None:
        vcard.add("x-capacity").value = str(card.capacity)
        vcard.add("note").value = f"Capacity: {card.capacity}"
    text: str = vcard.serialize()
    return text


def cards(session: Session) -> list[Card]:
    """The directory's cards: active users by login, then active resources by identifier."""
    users = session.scalars(
        select(User)
        .where(User.active.is_(True))
        .order_by(User.login)
        .options(selectinload(User.emails))
    ).all()
    resources = session.scalars(
        select(Resource).where(Resource.active.is_(True)).order_by(Resource.slug)
    ).all()
    found = [
        Card(user.login, "individual", user.display_name, tuple(e.address for e in user.emails))
        for user in users
    ]
    found += [
        Card(
            resource.slug,
            _KINDS.get(resource.kind, "device"),
            resource.name,
            (resource.email,),
            resource.capacity,
        )
        for resource in resources
    ]
    return found


# ---------------------------------------------------------------------------- change log


def _changed(thing: Any, fields: Iterable[str]) -> bool:
    attributes = inspect(thing).attrs
    return any(attributes[field].history.has_changes() for field in fields)


def _former(thing: Any, field: str) -> list[str]:
    """The values ``field`` had before this flush changed it (a card left under that name)."""
    return [value for value in inspect(thing).attrs[field].history.deleted if value]


def _touched(session: Session) -> dict[str, bool]:
    """The names of the cards this flush changes, each with whether it leaves the book."""
    touched: dict[str, bool] = {}
    for thing in [*session.new, *session.dirty, *session.deleted]:
        gone = thing in session.deleted
        new = thing in session.new
        if isinstance(thing, User) and (new or gone or _changed(thing, _USER_FIELDS)):
            touched.update(dict.fromkeys(_former(thing, "login"), True))
            touched[thing.login] = gone or thing.active is False  # None: active by default
        elif isinstance(thing, Resource) and (new or gone or _changed(thing, _RESOURCE_FIELDS)):
            touched.update(dict.fromkeys(_former(thing, "slug"), True))
            touched[thing.slug] = gone or thing.active is False
        elif isinstance(thing, UserEmail) and (new or gone or _changed(thing, _EMAIL_FIELDS)):
            owner = thing.user or (session.get(User, thing.user_id) if thing.user_id else None)
            if owner is not None:
                touched.setdefault(owner.login, owner.active is False)
    return touched


@event.listens_for(Session, "before_flush")
def _log_directory_changes(session: Session, *_: Any) -> None:
    touched = _touched(session)
    for gone in (False, True):
        names = sorted(name for name, left in touched.items() if left is gone)
        items = [(changelog.DIRECTORY_BOOK, card_href(name)) for name in names]
        changelog.record_items(session, items, deleted=gone)

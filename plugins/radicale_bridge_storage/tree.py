"""Which collection a path names (``paths`` says how paths are laid out): the root and the
principals, the calendars the server makes in every home, and the collections clients made."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from radicale import storage
from sqlalchemy import select
from sqlalchemy.orm import Session

from caldav_bridge.caldav import paths
from caldav_bridge.domain.models import Resource, StoredCollection, User
from plugins.radicale_bridge_storage.base import Folder
from plugins.radicale_bridge_storage.directory_book import DirectoryBook
from plugins.radicale_bridge_storage.inbox import InboxCalendar
from plugins.radicale_bridge_storage.projections import BookingsCalendar, InteractionsCalendar
from plugins.radicale_bridge_storage.stored import StoredCalendar

if TYPE_CHECKING:
    from plugins.radicale_bridge_storage import Storage

Lookup = Callable[[Session, list[str]], storage.BaseCollection | None]


def stored_row(session: Session, path: str) -> StoredCollection | None:
    return session.scalar(select(StoredCollection).where(StoredCollection.path == path))


def props_in(session: Session, path: str) -> dict[str, str]:
    row = stored_row(session, path)
    return json.loads(row.props) if row else {}


def _active_user(session: Session, login: str) -> User | None:
    return session.scalar(select(User).where(User.login == login, User.active.is_(True)))


def principal(storage_: Storage, session: Session, name: str) -> Folder | None:
    user = _active_user(session, name)
    if user is not None:
        meta = {"D:displayname": user.display_name, **props_in(session, name)}
        return Folder(storage_, name, meta)
    resource = session.scalar(select(Resource).where(Resource.slug == name))
    if resource is not None:
        return Folder(storage_, name, {"D:displayname": resource.name})
    return None


def _server_made(storage_: Storage, session: Session, place: paths.Place) -> Any:
    """The collection the server makes at ``place`` in a home (``paths.MADE_BY_SERVER``)."""
    path = paths.stored(list(place.parts))
    if place.child == paths.BOOKINGS:
        resource = session.scalar(select(Resource).where(Resource.slug == place.home))
        if resource is None:
            return None
        props = props_in(session, path)
        return BookingsCalendar(storage_, resource.id, resource.slug, resource.name, props)
    user = _active_user(session, place.home)
    if user is None:
        return None
    if place.child == paths.INTERACTIONS:
        props = props_in(session, path)
        return InteractionsCalendar(storage_, user.id, user.login, user.display_name, props)
    if place.child == paths.DIRECTORY:
        return DirectoryBook(storage_, user.login)
    if place.child == paths.INBOX:
        return InboxCalendar(storage_, user.id, user.login)
    return Folder(storage_, path, {"D:displayname": "Schedule outbox"})


def lookup(storage_: Storage, session: Session, parts: list[str]) -> Any:
    """The collection at the path of names ``parts``, or None."""
    place = paths.Place(tuple(parts))
    if not parts:
        return Folder(storage_, "", {})
    if place.is_principal:
        return principal(storage_, session, place.home)
    if place.made_by_server:
        return _server_made(storage_, session, place)
    if place.child in paths.MADE_BY_SERVER:
        return None  # these hold items only, no collections
    if principal(storage_, session, place.home) is None:
        return None
    row = stored_row(session, paths.stored(parts))
    if row is None:
        return None
    props = json.loads(row.props)
    owner = session.scalar(select(User.id).where(User.login == place.home))
    if props.get("tag") and owner is not None:
        return StoredCalendar(storage_, row, owner)
    return Folder(storage_, row.path, props)


def children(session: Session, parent: storage.BaseCollection, collection: Lookup) -> list[Any]:
    """The collections in ``parent``, each looked up by ``collection``."""
    parts = paths.names(parent.path)
    found: list[Any] = []
    if len(parts) == 1:
        for name in paths.HOME_CALENDARS:
            child = collection(session, [*parts, name])
            if child is not None:
                found.append(child)
    if parts:
        prefix = f"{parent.path}/"
        rows = session.scalars(
            select(StoredCollection).where(
                StoredCollection.path.startswith(prefix, autoescape=True)
            )
        ).all()
        for row in rows:
            rest = row.path[len(prefix) :]
            if rest and "/" not in rest and rest not in paths.MADE_BY_SERVER:
                child = collection(session, paths.names(row.path))
                if child is not None:
                    found.append(child)
    return found

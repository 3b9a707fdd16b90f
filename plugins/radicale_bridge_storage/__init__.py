"""Radicale storage plugin: every collection and item lives in the CRM's SQL database.

Radicale loads ``type = plugins.radicale_bridge_storage`` and takes ``Storage``. The paths it
serves are laid out in ``caldav_bridge.caldav.paths``; the collections behind them:

- ``projections``: a user's interactions calendar, a resource's bookings (the interactions
  the CRM holds, as the interaction service stored them), and the meetings a user's own
  calendar holds;
- ``inbox``: a user's schedule inbox; ``directory_book``: their address book of colleagues;
- ``stored``: the calendars, address books and folders clients made;
- ``base``: what they share, ``sync``: sync tokens and pages, ``tree``: which path is which,
  ``moves``: MOVE, ``request``: what the storage keeps for the request being answered.

The application also reaches the database through the storage (``database``, ``public_url``)
and tells it of each request (``begin_request``, ``page_sync``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from radicale import item as radicale_item
from radicale import pathutils, storage
from sqlalchemy import select
from sqlalchemy.orm import Session

from caldav_bridge.caldav import paths
from caldav_bridge.caldav.headers import Conditions
from caldav_bridge.caldav.server import settings_of, shared_database
from caldav_bridge.domain.errors import AlreadyExists, NotAllowed
from caldav_bridge.domain.models import Interaction, StoredCollection, User
from caldav_bridge.ical import vcards as contacts
from plugins.radicale_bridge_storage import moves, tree
from plugins.radicale_bridge_storage.base import Calendar
from plugins.radicale_bridge_storage.request import RequestLocal, RequestState, Written
from plugins.radicale_bridge_storage.stored import (
    StoredCalendar,
    delete_tree,
    item_name,
    store_item,
)
from plugins.radicale_bridge_storage.sync import SyncPaging

__all__ = ["Storage"]


class Storage(storage.BaseStorage):
    _is_collision_free = True
    _supports_unicode = True
    _supports_trailing_whitespace = True
    _supports_problematic_chars = True

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        settings = settings_of(configuration)
        self.database = shared_database(settings.database_url)
        self.public_url = settings.public_url
        self._local = RequestLocal()

    @property
    def request(self) -> RequestState:
        """The state of the request this thread answers."""
        return self._local.state

    def warm_up(self) -> str | None:
        """Run, once at start-up, the statements a calendar client's first requests run, so
        that the first client does not wait for SQLAlchemy to compile them. Returns the user
        whose calendars were read, for the application's own warm-up requests."""
        with self.database.session() as session:
            login = session.scalar(select(User.login).where(User.active.is_(True)).limit(1))
        if login is None:
            return None
        for collection in self.discover(f"/{login}/", depth="1"):
            if isinstance(collection, Calendar):
                _ = (collection.etag, collection.get_meta())
                token, _ = collection.sync()
                collection.sync(token)
                collection.entries([], dated=True)
        return str(login)

    def own_calendars(self, login: str) -> list[StoredCalendar]:
        """The calendars ``login`` made in their home (free-busy reads them too), not their
        address books."""
        home = next(iter(self.discover(f"/{login}/")), None)
        if home is None:
            return []
        with self.database.session() as session:
            children = tree.children(session, home, self._collection)
        return [c for c in children if isinstance(c, StoredCalendar) and c.tag == "VCALENDAR"]

    def read_only_reason(self, path: str) -> str | None:
        """Why nothing may be written at ``path`` whoever asks, or None: the address book of
        colleagues and rooms is the CRM's directory (the rights make it read-only, so that
        clients show it so; Radicale's refusal says no more than 403)."""
        return contacts.READ_ONLY if paths.Place.of(path).in_directory else None

    def begin_request(self, conditions: Conditions) -> None:
        """Called by the application before each request: Radicale discovers the same
        principal and calendar several times in one request; the CRM-made ones (homes,
        interactions and bookings calendars) are looked up once per request and thread.
        The request's ``conditions`` are checked again inside the write."""
        self._local.state = RequestState(conditions=conditions, known={})

    def page_sync(self, limit: int) -> SyncPaging:
        """Called by the application for a sync-collection REPORT with DAV:limit that
        Radicale answers: the calendar's ``sync`` then answers one page of at most ``limit``
        items, and says in the object returned whether it truncated."""
        self.request.paging = SyncPaging(limit)
        return self.request.paging

    def sent(self, text: str) -> None:
        """Called by the application for a PUT: the object as the client wrote it, which a
        calendar of the client's own stores and serves (Radicale is given, and re-serialises,
        a text it can read: ``caldav.put.for_radicale``)."""
        self.request.sent = text

    def check_conditions(self, current_etag: str | None, schedule_tag: str | None = None) -> None:
        """Raise PreconditionFailed unless the request's conditions hold for the item as the
        write transaction sees it, locked: checked before the write, two clients writing at
        once could both pass."""
        self.request.conditions.check(current_etag, schedule_tag)

    def written(self, href: str, interaction: Interaction) -> None:
        """Remember, for the rest of the request, the interaction written as ``href``."""
        self.request.written[href] = Written(interaction.id, f'"{interaction.schedule_tag}"')

    def written_interaction(self, href: str) -> Written | None:
        """The interaction this request wrote as ``href``, if it wrote one."""
        return self.request.written.get(href)

    def _collection(self, session: Session, parts: list[str]) -> storage.BaseCollection | None:
        known = self.request.known
        key = tuple(parts)
        if known is not None and key in known:
            return known[key]
        found: storage.BaseCollection | None = tree.lookup(self, session, parts)
        if known is not None and found is not None and paths.Place(key).made_by_server:
            known[key] = found
        return found

    def discover(
        self,
        path: str,
        depth: str = "0",
        child_context_manager: Callable[[str, str | None], ContextManager[None]] | None = None,
        user_groups: set[str] = set(),  # noqa: B006 - Radicale's signature
    ) -> Iterator[Any]:
        sane = pathutils.strip_path(path)
        parts = paths.names(sane)
        manager = child_context_manager or (lambda *_: contextlib.nullcontext())
        with self.database.session() as session:
            collection = self._collection(session, parts)
            if collection is None and parts:
                parent = self._collection(session, parts[:-1])
                if isinstance(parent, Calendar):
                    item = dict(parent.get_multi([parts[-1]])).get(parts[-1])
                    if item is not None:
                        yield item
                return
            if collection is None:
                return
            yield collection
            if depth == "0":
                return
            if isinstance(collection, Calendar):
                for item in collection.get_all():
                    with manager(sane, item.href):
                        yield item
            for child in tree.children(session, collection, self._collection):
                with manager(child.path, None):
                    yield child

    def create_collection(
        self,
        href: str,
        items: Iterable[radicale_item.Item] | None = None,
        props: Mapping[str, str] | None = None,
    ) -> tuple[storage.BaseCollection, dict[str, radicale_item.Item], list[str]]:
        sane = pathutils.strip_path(href)
        parts = paths.names(sane)
        place = paths.Place(tuple(parts))
        if items is not None:  # a PUT of a whole collection: its conditions hold for it
            replaced = list(self.discover(href))
            self.check_conditions(replaced[0].etag if replaced else None)
        with self.database.session(write=True) as session:
            if len(parts) <= 1 or place.child in paths.MADE_BY_SERVER:
                existing = self._collection(session, parts)
                if existing is not None and not props:
                    return existing, {}, []
                raise NotAllowed(f"/{sane}/ is made by the CRM and cannot be created or replaced")
            if tree.principal(self, session, place.home) is None or len(parts) > 4:
                raise NotAllowed(f"/{sane}/ is not inside a calendar home")
            if items is None and tree.stored_row(session, sane) is not None:  # MKCALENDAR, MKCOL
                raise AlreadyExists(f"/{sane}/ exists already (made at the same moment)")
            if items is not None:  # a PUT of a whole collection replaces it
                delete_tree(session, sane)
                session.flush()
            # else two making it at once: the unique path refuses the second's insert (deleting
            # first would have removed the winner's, committed since this one looked)
            row = StoredCollection(path=sane, props=json.dumps(dict(props or {}), sort_keys=True))
            session.add(row)
            session.flush()
            hrefs: list[str] = []
            if props and props.get("tag"):
                for item in items or ():
                    name = item.href or item_name(item.uid, props["tag"], hrefs)
                    store_item(session, row.id, name, item)
                    hrefs.append(name)
            collection = self._collection(session, parts)
        assert collection is not None
        return collection, {}, hrefs

    def move(
        self, item: radicale_item.Item, to_collection: storage.BaseCollection, to_href: str
    ) -> None:
        moves.move(self.database, self.public_url, item, to_collection, to_href)

    @contextlib.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
        # Each read and write is its own database transaction: nothing to lock in the process.
        yield

    def verify(self) -> bool:
        return self.database.is_current()

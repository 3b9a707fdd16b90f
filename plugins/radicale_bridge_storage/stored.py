"""The collections a client made: calendars, address books and folders, their items stored
as they came, and the meetings their owner organises or keeps in a calendar of theirs."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from radicale import item as radicale_item
from radicale import pathutils, storage
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from caldav_bridge.caldav import paths
from caldav_bridge.caldav.client_writes import ClientWrites, organised_by
from caldav_bridge.caldav.put import for_radicale
from caldav_bridge.db import locked
from caldav_bridge.domain import changelog, outside
from caldav_bridge.domain import queries as calendar_contents
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import UidConflict
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, StoredCollection, StoredItem, User
from plugins.radicale_bridge_storage.base import Calendar, Entry, LazyItem, save_props
from plugins.radicale_bridge_storage.projections import PlacedInteractions

if TYPE_CHECKING:
    from plugins.radicale_bridge_storage import Storage


class ClientItem(LazyItem):
    """An item stored as its client wrote it, and served so; Radicale's filters read it as
    Radicale read it when it was put (``for_radicale``, then Radicale's own sanitising)."""

    @property
    def vobject_item(self) -> Any:
        if self._vobject_item is None:
            try:
                objects = radicale_item.read_components(for_radicale(self.serialize()))
            except Exception as exc:  # whatever vobject's parser raises
                raise RuntimeError(f"Failed to parse item {self.href!r}: {exc}") from exc
            tag = "VCALENDAR" if self.name == "VCALENDAR" else "VADDRESSBOOK"
            with contextlib.suppress(ValueError, RuntimeError):  # as it was stored
                radicale_item.check_and_sanitize_items(objects, 0, tag=tag)
            self._vobject_item = objects[0]
        return self._vobject_item


class StoredCalendar(Calendar):
    """A collection a client made, with its items stored as they came, and the meetings its
    owner organises or keeps in it (interactions, served as their interactions calendar
    would serve them)."""

    def __init__(self, storage_: Storage, row: StoredCollection, owner_id: int) -> None:
        super().__init__(storage_, row.path)
        self.collection_id, self.owner_id = row.id, owner_id
        self.login = paths.Place.of(row.path).home
        self._props: dict[str, str] = json.loads(row.props)
        self.calendar_key = changelog.stored_calendar(row.id)
        self._placed = PlacedInteractions(storage_, self)

    _href = StoredItem.__table__.c.href
    _uid = StoredItem.__table__.c.uid
    _etag = StoredItem.__table__.c.etag
    _name = StoredItem.__table__.c.name
    _component = StoredItem.__table__.c.component
    _modified = StoredItem.__table__.c.modified_at
    _item_type = ClientItem

    def _mine(self) -> Any:
        return StoredItem.collection_id == self.collection_id

    def _listing(self) -> Any:
        return select(
            StoredItem.href,
            StoredItem.etag,
            StoredItem.uid,
            StoredItem.name,
            StoredItem.component,
            StoredItem.starts_ts.label("start"),
            StoredItem.ends_ts.label("end"),
            StoredItem.modified_at.label("modified"),
        ).where(self._mine())

    def _text_rows(self) -> Any:
        return select(StoredItem.href, StoredItem.text).where(self._mine())

    def _in_period(self, start: int, end: int) -> Any:
        return and_(StoredItem.starts_ts < end, StoredItem.ends_ts > start)

    def _bounds(self, row: Any) -> tuple[int, int]:
        return int(row.start), int(row.end)

    # Reading: the stored items, then the interactions held here.

    def texts(self, hrefs: list[str] | None) -> dict[str, str]:
        return {**super().texts(hrefs), **self._placed.texts(hrefs)}

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        wanted = list(dict.fromkeys(hrefs))
        stored = dict(super().get_multi(wanted))
        missing = [href for href in wanted if stored.get(href) is None]
        placed = dict(self._placed.get_multi(missing)) if missing else {}
        return [(href, stored.get(href) or placed.get(href)) for href in wanted]

    def get_all(self) -> Iterable[radicale_item.Item]:
        return [*super().get_all(), *self._placed.get_all()]

    def entries(self, hrefs: list[str] | None = None, dated: bool = True) -> list[Entry]:
        return super().entries(hrefs, dated) + self._placed.entries(hrefs, dated)

    def get_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[radicale_item.Item, bool]]:
        filters = list(filters)
        yield from self.stored_filtered(filters)
        yield from self._placed.get_filtered(filters)

    def stored_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[radicale_item.Item, bool]]:
        """The stored items only (free-busy reads the interactions from the CRM)."""
        return super().get_filtered(filters)

    def has_uid(self, uid: str) -> bool:
        return super().has_uid(uid) or self._placed.has_uid(uid)

    def _all_hrefs(self) -> Iterator[str]:
        yield from super()._all_hrefs()
        yield from self._placed._all_hrefs()

    def schedule_tags(self, hrefs: list[str]) -> dict[str, str]:
        return self._placed.schedule_tags(hrefs)

    def held(self, session: Session, href: str) -> Interaction | None:
        """The interaction held here as ``href``, if one is."""
        return self._placed.held(session, href)

    # Writing.

    def _current_etag(self, session: Session, href: str) -> str | None:
        query = select(StoredItem.etag).where(
            StoredItem.collection_id == self.collection_id, StoredItem.href == href
        )
        return session.scalar(locked(session, query))

    def _check_uid(self, session: Session, href: str, item: radicale_item.Item) -> None:
        """A UID names one item of this calendar (RFC 4791 5.3.2.1), checked inside the write
        with the calendar locked, so that two items saved at once cannot both take it; and a
        meeting already in another of the owner's calendars is not copied into this one."""
        mine = select(StoredCollection.id).where(StoredCollection.id == self.collection_id)
        session.execute(locked(session, mine))
        other = session.scalar(
            select(StoredItem.href).where(
                self._mine(), StoredItem.uid == item.uid, StoredItem.href != href
            )
        )
        if other is not None:
            raise UidConflict(f"{other} in this calendar has the UID {item.uid!r} already")
        if item.name == "VCALENDAR":
            calendar_contents.check_one_copy(
                session, self.owner_id, str(item.uid), self.collection_id, href
            )

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        """A meeting the owner organises, or one the CRM holds here already, is written
        through the interaction service (RFC 6638 schedules in any calendar); anything else
        is stored as the client wrote it (the PUT's body), and served so."""
        text = item.serialize()
        with self._session(write=True) as session:
            self._check_uid(session, href, item)
            placed = self._placed.held_for_write(session, href, item)
            if placed is None:
                self._storage.check_conditions(self._current_etag(session, href))
            actor = Directory(session).user(self.login)
            sent, self._storage.request.sent = self._storage.request.sent, None
            if placed is None and not organised_by(text, actor):
                self._store_as_theirs(session, actor, href, item, sent or text)
            else:
                session.execute(delete(StoredItem).where(self._mine(), StoredItem.href == href))
                service = InteractionService(session, self._storage.public_url)
                writes = ClientWrites(service)
                interaction = writes.put(actor, href, text, self.collection_id, placed)
                self._storage.written(href, interaction)
                return self._placed._item_of(session, interaction), None
        stored = dict(self.get_multi([href]))[href]
        assert stored is not None
        return stored, None

    def _store_as_theirs(
        self, session: Session, actor: User, href: str, item: radicale_item.Item, text: str
    ) -> None:
        """Stored as written; the owner's answer to an organizer outside the CRM (their
        PARTSTAT changed in this save) is sent to the organizer (``outside.answered``)."""
        before = session.scalar(
            select(StoredItem.text).where(self._mine(), StoredItem.href == href)
        )
        store_item(session, self.collection_id, href, item, text)
        outside.answered(session, actor, before, text)

    def delete(self, href: str | None = None) -> None:
        if href is None:
            self._storage.check_conditions(self.etag)
        with self._session(write=True) as session:
            if href is None:
                delete_tree(session, self.path)
                return
            placed = self._placed.held(session, href)
            if placed is not None:
                self._storage.check_conditions(placed.etag, f'"{placed.schedule_tag}"')
                service = InteractionService(session, self._storage.public_url)
                actor = Directory(session).user(self.login)
                ClientWrites(service).delete(actor, service.get(placed.id))
                return
            self._storage.check_conditions(self._current_etag(session, href))
            self._remove_stored(session, href)

    def _remove_stored(self, session: Session, href: str) -> None:
        """An item stored as written removed; removing an invitation from an organizer
        outside the CRM declines it (``outside.removed``)."""
        gone = session.execute(
            delete(StoredItem)
            .where(StoredItem.collection_id == self.collection_id, StoredItem.href == href)
            .returning(StoredItem.text)
        ).scalar()
        if gone is None:
            raise storage.ComponentNotFoundError(href)
        changelog.record(session, {self.calendar_key}, href, deleted=True)
        if "ORGANIZER" in gone:
            outside.removed(session, Directory(session).user(self.login), gone)

    def get_meta(self, key: str | None = None) -> Any:
        return dict(self._props) if key is None else self._props.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        with self._session(write=True) as session:
            save_props(session, self.path, props)
        self._props = dict(props)


def store_item(
    session: Session,
    collection_id: int,
    href: str,
    item: radicale_item.Item,
    sent: str | None = None,
) -> None:
    """Store ``item`` as ``sent`` (the client's text, which Radicale read as ``item``), or
    as Radicale serialises it (the items of a whole calendar PUT at once)."""
    text = sent or item.serialize()
    start, end = item.time_range
    row = session.scalar(
        select(StoredItem).where(StoredItem.collection_id == collection_id, StoredItem.href == href)
    )
    if row is None:
        row = StoredItem(collection_id=collection_id, href=href)
        session.add(row)
    row.uid, row.etag, row.text = item.uid, radicale_item.get_etag(text), text
    row.name, row.component = item.name, item.component_name
    row.starts_ts, row.ends_ts = start, end
    row.modified_at = datetime.now(UTC)
    changelog.record(session, {changelog.stored_calendar(collection_id)}, href)


def delete_tree(session: Session, path: str) -> None:
    """Remove a collection and those inside it; the interactions they held go back to their
    interactions calendars."""
    inside = or_(
        StoredCollection.path == path,
        StoredCollection.path.startswith(f"{path}/", autoescape=True),
    )
    service = InteractionService(session)
    for collection_id in session.scalars(select(StoredCollection.id).where(inside)).all():
        service.calendar_removed(collection_id)
    session.execute(
        delete(StoredCollection).where(
            or_(
                StoredCollection.path == path,
                StoredCollection.path.startswith(f"{path}/", autoescape=True),
            )
        )
    )


def item_name(uid: str | None, tag: str, taken: list[str]) -> str:
    suffix = ".vcf" if tag == "VADDRESSBOOK" else ".ics"
    name = f"{uid}{suffix}" if uid else ""
    if not name or not pathutils.is_safe_filesystem_path_component(name) or name in taken:
        name = f"{uuid.uuid4()}{suffix}"
    return name

"""Radicale storage plugin: every collection and item lives in the CRM's SQL database.

Paths:
    /                          the root
    /<login>/                  a CRM user's principal (their calendar home)
    /<login>/interactions/     the live projection of the interactions they own or are linked to
    /<login>/<name>/           calendars and folders the user made (stored generically)
    /<resource>/               a room or other resource's principal
    /<resource>/bookings/      the interactions that book it (read-only)

The projection serves the text, ETag and time range the interaction service stored at write
time; CTags and sync tokens come from the per-calendar change log, deletions included. Writes
to an interactions calendar go through ``ClientWrites`` and so through the interaction service.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from radicale import item as radicale_item
from radicale import pathutils, storage
from radicale.item import filter as radicale_filter
from sqlalchemy import and_, delete, literal, null, or_, select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge import calendar_contents, changelog, freebusy, recurrence
from caldav_bridge.client_writes import ClientWrites
from caldav_bridge.db import locked
from caldav_bridge.directory import Directory
from caldav_bridge.errors import (
    AlreadyExists,
    CalDavPrecondition,
    NotAllowed,
    PreconditionFailed,
    UidConflict,
)
from caldav_bridge.ical_mapping import series_of
from caldav_bridge.interactions import InteractionService
from caldav_bridge.models import (
    CalendarChange,
    Interaction,
    Resource,
    ScheduleMessage,
    StoredCollection,
    StoredItem,
    User,
)
from caldav_bridge.radicale_setup import settings_of, shared_database
from caldav_bridge.scheduling import INBOX, OUTBOX

INTERACTIONS = "interactions"
BOOKINGS = "bookings"
# Collections the server makes in every home: no client creates, replaces or removes them.
_MADE_BY_SERVER = (INTERACTIONS, BOOKINGS, INBOX, OUTBOX)
_TOKEN = re.compile(r"urn:caldav-bridge:sync:(?P<calendar>[^ ]+):(?P<revision>[0-9]+)")
# Properties of the projected calendars that clients may not change.
_FIXED = {"tag", "C:supported-calendar-component-set"}


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _moment(timestamp: int) -> datetime:
    """A POSIX time of Radicale's filters (which span years 1 to 9999) as a datetime."""
    return datetime.fromtimestamp(min(max(timestamp, -62135596800), 253402300799), UTC)


class _Node:
    """What every collection of the bridge shares: its path and its database."""

    def __init__(self, storage_: Storage, path: str) -> None:
        self._storage = storage_
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def _session(self, write: bool = False) -> ContextManager[Session]:
        if write:
            self._known_revision = None  # what this object read before may change now
        return self._storage.database.session(write=write)


class _Folder(_Node, storage.BaseCollection):
    """An untagged collection: the root or a principal. Holds no items."""

    def __init__(self, storage_: Storage, path: str, meta: dict[str, str]) -> None:
        super().__init__(storage_, path)
        self._meta = meta

    @property
    def etag(self) -> str:
        return radicale_item.get_etag(json.dumps(self._meta, sort_keys=True))

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        return ((href, None) for href in hrefs)

    def get_all(self) -> Iterable[radicale_item.Item]:
        return iter(())

    def has_uid(self, uid: str) -> bool:
        return False

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        raise NotAllowed("items are stored in calendars, not in a calendar home")

    def delete(self, href: str | None = None) -> None:
        raise NotAllowed("a calendar home cannot be deleted")

    def get_meta(self, key: str | None = None) -> Any:
        return dict(self._meta) if key is None else self._meta.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        with self._session(write=True) as session:
            _save_props(session, self.path, props)

    @property
    def last_modified(self) -> str:
        return _http_date(datetime(2000, 1, 1, tzinfo=UTC))


class _Texts:
    """The texts of one batch of items, read in one query when the first is needed.

    Listing a calendar (PROPFIND, sync) needs only names and ETags; the texts, the bulk of the
    data, are read only when a response includes calendar data.
    """

    def __init__(self, calendar: _Calendar, hrefs: list[str] | None) -> None:
        self._calendar, self._hrefs = calendar, hrefs
        self._texts: dict[str, str] | None = None

    def text(self, href: str) -> str:
        if self._texts is None:
            self._texts = self._calendar.texts(self._hrefs)
        return self._texts[href]


class _LazyItem(radicale_item.Item):
    def __init__(self, texts: _Texts, **kwargs: Any) -> None:
        super().__init__(text="", **kwargs)
        self._text = None
        self._texts = texts

    def serialize(self) -> str:
        if self._text is None:
            self._text = self._texts.text(str(self.href))
        return self._text

    @property
    def vobject_item(self) -> Any:
        self.serialize()
        return radicale_item.Item.vobject_item.fget(self)  # type: ignore[attr-defined]


# Above this many names, a lookup reads the whole calendar rather than a long IN list.
_MANY = 500


class _Calendar(_Node, storage.BaseCollection):
    """A calendar whose CTag and sync tokens come from its change log.

    Subclasses say which rows are theirs: ``_listing`` selects (href, etag, uid, component,
    start, end, modified) and ``_text_rows`` (href, text), both filtered by ``_href``.
    """

    calendar_key: str
    _href: Any
    _etag: Any
    _component: Any
    _modified: Any

    def _listing(self) -> Any:
        raise NotImplementedError

    def _text_rows(self) -> Any:
        raise NotImplementedError

    def _in_period(self, start: int, end: int) -> Any:
        raise NotImplementedError

    def _bounds(self, row: Any) -> tuple[int, int]:
        raise NotImplementedError

    def texts(self, hrefs: list[str] | None) -> dict[str, str]:
        query = self._text_rows()
        if hrefs is not None and len(hrefs) <= _MANY:
            query = query.where(self._href.in_(hrefs))
        with self._session() as session:
            return {row[0]: self._served(row) for row in session.execute(query)}

    def _served(self, row: Any) -> str:
        """The text served of a ``_text_rows`` row: as stored."""
        return str(row[1])

    def _items(self, query: Any) -> list[radicale_item.Item]:
        with self._session() as session:
            rows = session.execute(query).all()
        texts = _Texts(self, [row.href for row in rows])
        items: list[radicale_item.Item] = []
        for row in rows:
            start, end = self._bounds(row)
            items.append(
                _LazyItem(
                    texts,
                    collection=self,
                    href=row.href,
                    etag=row.etag,
                    uid=row.uid,
                    name="VCALENDAR",
                    component_name=row.component,
                    time_range=(start, max(end, start + 1)),
                    last_modified=_http_date(row.modified),
                )
            )
        return items

    _known_revision: tuple[int, datetime | None] | None = None

    @property
    def tag(self) -> str:
        return str(self.get_meta("tag") or "")

    def _revision(self) -> tuple[int, datetime | None]:
        """The newest change of this calendar: one row read through the (calendar, revision) index,
        once per request (a collection object lives for one request; writes forget it)."""
        if self._known_revision is None:
            self._known_revision = self._read_revision()
        return self._known_revision

    def _read_revision(self) -> tuple[int, datetime | None]:
        with self._session() as session:
            row = session.execute(
                select(CalendarChange.revision, CalendarChange.changed_at)
                .where(
                    CalendarChange.calendar == self.calendar_key,
                    CalendarChange.revision.is_not(None),
                )
                .order_by(CalendarChange.revision.desc())
                .limit(1)
            ).one_or_none()
        return (0, None) if row is None else (int(row.revision), row.changed_at)

    @property
    def etag(self) -> str:
        revision, _ = self._revision()
        meta = json.dumps(self.get_meta(), sort_keys=True)
        return f'"{revision}-{hashlib.sha256(meta.encode()).hexdigest()[:16]}"'

    @property
    def last_modified(self) -> str:
        _, changed = self._revision()
        return _http_date(changed or datetime(2000, 1, 1, tzinfo=UTC))

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        revision, _ = self._revision()
        token = f"urn:caldav-bridge:sync:{self.calendar_key}:{revision}"
        if not old_token:
            return token, self._all_hrefs()
        match = _TOKEN.fullmatch(old_token)
        if not match or match["calendar"] != self.calendar_key or int(match["revision"]) > revision:
            raise ValueError(f"unknown sync token {old_token!r}")
        with self._session() as session:
            hrefs = session.scalars(
                select(CalendarChange.item_href)
                .where(
                    CalendarChange.calendar == self.calendar_key,
                    CalendarChange.revision > int(match["revision"]),
                )
                .distinct()
            ).all()
        return token, list(hrefs)

    def _all_hrefs(self) -> Iterator[str]:
        """Read only when iterated: a PROPFIND asking for the token alone never reads it."""
        with self._session() as session:
            hrefs = session.scalars(self._text_rows().with_only_columns(self._href)).all()
        yield from hrefs

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        wanted = list(dict.fromkeys(hrefs))
        query = self._listing()
        if len(wanted) <= _MANY:
            query = query.where(self._href.in_(wanted))
        found = {i.href: i for i in self._items(query)}
        return [(href, found.get(href)) for href in wanted]

    def get_all(self) -> Iterable[radicale_item.Item]:
        return self._items(self._listing())

    def entries(
        self, hrefs: list[str] | None = None, dated: bool = True
    ) -> list[tuple[str, str, str, datetime | None]]:
        """Names, ETags, components and (when ``dated``) modification times of all items, or
        of those of ``hrefs`` that exist, for the application's fast listing: plain rows, no
        items. Times are left out unless asked: reading them costs more than the rest."""
        modified = self._modified if dated else null()
        query = self._listing().with_only_columns(self._href, self._etag, self._component, modified)
        if hrefs is not None and len(hrefs) <= _MANY:
            query = query.where(self._href.in_(hrefs))
        with self._session() as session:
            rows = session.connection().execute(query).all()
        if hrefs is not None and len(hrefs) > _MANY:
            wanted = set(hrefs)
            rows = [row for row in rows if row[0] in wanted]
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def get_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[radicale_item.Item, bool]]:
        tag, start, end, simple = radicale_filter.simplify_prefilters(filters, self.tag)
        for item in self._items(self._listing().where(self._in_period(start, end))):
            if tag is not None and tag != item.component_name:
                continue
            istart, iend = item.time_range
            yield item, simple and (start <= istart or iend <= end)

    def has_uid(self, uid: str) -> bool:
        query = self._listing().where(self._uid == uid).limit(1)
        with self._session() as session:
            return session.execute(query).first() is not None

    _uid: Any


class _Projection(_Calendar):
    """Interactions shown in a calendar; subclasses say which ones."""

    # Table columns, not ORM attributes: these classes are not mapped.
    _href = Interaction.__table__.c.href
    _uid = Interaction.__table__.c.uid
    _etag = Interaction.__table__.c.etag
    _component = literal("VEVENT")
    _modified = Interaction.__table__.c.modified_at

    def _which(self) -> Any:
        raise NotImplementedError

    def _visible(self) -> Any:
        return calendar_contents.shown(self._which())

    def _listing(self) -> Any:
        return select(
            Interaction.href,
            Interaction.etag,
            Interaction.uid,
            literal("VEVENT").label("component"),
            Interaction.first_starts_at.label("start"),  # a recurring one: its whole span
            Interaction.last_ends_at.label("end"),
            Interaction.modified_at.label("modified"),
        ).where(self._visible())

    def _text_rows(self) -> Any:
        return select(Interaction.href, Interaction.ical).where(self._visible())

    def _in_period(self, start: int, end: int) -> Any:
        return and_(
            Interaction.first_starts_at < _moment(end),
            or_(
                Interaction.last_ends_at > _moment(start),
                and_(
                    Interaction.last_ends_at == Interaction.first_starts_at,
                    Interaction.first_starts_at >= _moment(start),
                ),
            ),
        )

    def _bounds(self, row: Any) -> tuple[int, int]:
        return _timestamp(row.start), _timestamp(row.end)

    def get_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[radicale_item.Item, bool]]:
        """A time range alone is decided here, occurrence by occurrence with the bounded
        expansion (Radicale's own would search a rule without bound)."""
        filters = list(filters)
        tag, start, end, simple = radicale_filter.simplify_prefilters(filters, self.tag)
        whole = (start, end) == (radicale_filter.TIMESTAMP_MIN, radicale_filter.TIMESTAMP_MAX)
        if not simple or whole or tag not in (None, "VEVENT"):
            yield from super().get_filtered(filters)
            return
        low, high = _moment(start), _moment(end)
        query = (
            select(Interaction)
            .where(self._visible(), self._in_period(start, end))
            .options(selectinload(Interaction.moves))
        )
        with self._session() as session, recurrence.budget():
            wanted = {
                interaction.href
                for interaction in session.scalars(query)
                if recurrence.instances(series_of(interaction), low, high)
            }
        for item in self._items(self._listing().where(self._in_period(start, end))):
            if item.href in wanted:
                yield item, True

    def _set_props(self, props: dict[str, str]) -> None:
        self._meta = {**self._default_meta(), **props, **_PROJECTED}

    def get_meta(self, key: str | None = None) -> Any:
        return dict(self._meta) if key is None else self._meta.get(key)

    def _default_meta(self) -> dict[str, str]:
        raise NotImplementedError

    def set_meta(self, props: Mapping[str, str]) -> None:
        props = {k: v for k, v in props.items() if k not in _FIXED}
        with self._session(write=True) as session:
            _save_props(session, self.path, props)
        self._set_props(props)


_PROJECTED = {"tag": "VCALENDAR", "C:supported-calendar-component-set": "VEVENT"}


class InteractionsCalendar(_Projection):
    def __init__(
        self, storage_: Storage, user_id: int, login: str, name: str, props: dict[str, str]
    ) -> None:
        super().__init__(storage_, f"{login}/{INTERACTIONS}")
        self.user_id, self.login, self.display_name = user_id, login, name
        self.calendar_key = changelog.user_calendar(user_id)
        self._set_props(props)

    def busy(self, start: datetime, end: datetime) -> list[freebusy.Busy]:
        with self._session() as session:
            user = session.get(User, self.user_id)
            assert user is not None
            return freebusy.busy_user(session, user, start, end)

    def _which(self) -> Any:
        return calendar_contents.of_user(self.user_id)

    def _default_meta(self) -> dict[str, str]:
        return {
            "D:displayname": "CRM interactions",
            "C:calendar-description": f"Interactions {self.display_name} owns or is linked to",
        }

    def _check_conditions(self, session: Session, href: str) -> None:
        query = select(Interaction.etag, Interaction.schedule_tag).where(
            calendar_contents.shown(Interaction.href == href)  # a cancelled one is gone
        )
        row = session.execute(locked(session, query)).one_or_none()
        if row is None:
            self._storage.check_conditions(None)
        else:
            self._storage.check_conditions(row.etag, f'"{row.schedule_tag}"')

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        with self._session(write=True) as session:
            self._check_conditions(session, href)
            actor = Directory(session).user(self.login)
            service = InteractionService(session, self._storage.public_url)
            interaction = ClientWrites(service).put(actor, href, item.serialize())
            # Saved cancelled, it leaves the calendar: the client's next sync says so.
            stored = self._item_of(interaction)
            self._storage.written(interaction.href, interaction.schedule_tag)
        return stored, None

    def _item_of(self, interaction: Interaction) -> radicale_item.Item:
        """The item as stored, from the interaction just written (no second read)."""
        start = _timestamp(interaction.first_starts_at)
        end = _timestamp(interaction.last_ends_at)
        return radicale_item.Item(
            collection=self,
            href=interaction.href,
            text=interaction.ical,
            etag=interaction.etag,
            uid=interaction.uid,
            name="VCALENDAR",
            component_name="VEVENT",
            time_range=(start, max(end, start + 1)),
            last_modified=_http_date(interaction.modified_at),
        )

    def delete(self, href: str | None = None) -> None:
        if href is None:
            raise NotAllowed("the interactions calendar cannot be deleted")
        with self._session(write=True) as session:
            service = InteractionService(session, self._storage.public_url)
            interaction_id = session.scalar(
                select(Interaction.id).where(self._visible(), Interaction.href == href)
            )
            if interaction_id is None:
                raise storage.ComponentNotFoundError(href)
            self._check_conditions(session, href)
            actor = Directory(session).user(self.login)
            ClientWrites(service).delete(actor, service.get(interaction_id))


class BookingsCalendar(_Projection):
    def __init__(
        self, storage_: Storage, resource_id: int, slug: str, name: str, props: dict[str, str]
    ) -> None:
        super().__init__(storage_, f"{slug}/{BOOKINGS}")
        self.resource_id, self.display_name = resource_id, name
        self.calendar_key = changelog.resource_calendar(resource_id)
        self._set_props(props)

    def _which(self) -> Any:
        return calendar_contents.of_resource(self.resource_id)

    def _text_rows(self) -> Any:
        return select(Interaction.href, Interaction.ical, Interaction.etag).where(self._visible())

    def _served(self, row: Any) -> str:
        """Each booking as every user may read it: its times and subject only."""
        return calendar_contents.booking_text(row[2], row[1])

    def _default_meta(self) -> dict[str, str]:
        return {"D:displayname": f"{self.display_name} bookings"}

    def busy(self, start: datetime, end: datetime) -> list[freebusy.Busy]:
        with self._session() as session:
            resource = session.get(Resource, self.resource_id)
            assert resource is not None
            return freebusy.busy_resource(session, resource, start, end)

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        raise NotAllowed("a resource's bookings are made by booking it for an interaction")

    def delete(self, href: str | None = None) -> None:
        raise NotAllowed("a resource's bookings are released from the interaction")


class InboxCalendar(_Calendar):
    """A user's schedule inbox (RFC 6638 section 2.2): the iTIP messages the server delivered
    to them, which their client reads and deletes. Only the server writes into it."""

    def __init__(self, storage_: Storage, user_id: int, login: str) -> None:
        super().__init__(storage_, f"{login}/{INBOX}")
        self.user_id = user_id
        self.calendar_key = changelog.inbox_calendar(user_id)

    _href = ScheduleMessage.__table__.c.href
    _uid = ScheduleMessage.__table__.c.uid
    _etag = ScheduleMessage.__table__.c.etag
    _component = literal("VEVENT")
    _modified = ScheduleMessage.__table__.c.created_at

    def _mine(self) -> Any:
        return ScheduleMessage.user_id == self.user_id

    def _listing(self) -> Any:
        return select(
            ScheduleMessage.href,
            ScheduleMessage.etag,
            ScheduleMessage.uid,
            literal("VEVENT").label("component"),
            ScheduleMessage.created_at.label("modified"),
        ).where(self._mine())

    def _text_rows(self) -> Any:
        return select(ScheduleMessage.href, ScheduleMessage.ical).where(self._mine())

    def _in_period(self, start: int, end: int) -> Any:
        return self._mine()  # messages are not filtered by time

    def _bounds(self, row: Any) -> tuple[int, int]:
        return 0, 2**62

    def get_meta(self, key: str | None = None) -> Any:
        meta = {"tag": "VCALENDAR", "D:displayname": "Schedule inbox"}
        return meta if key is None else meta.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        raise NotAllowed("the schedule inbox has no properties to change")

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        raise NotAllowed("the schedule inbox is written by the server's scheduling only")

    def delete(self, href: str | None = None) -> None:
        """A client deletes a message once it has processed it."""
        if href is None:
            raise NotAllowed("the schedule inbox cannot be deleted")
        with self._session(write=True) as session:
            gone = session.execute(
                delete(ScheduleMessage).where(self._mine(), ScheduleMessage.href == href)
            )
            if not gone.rowcount:  # type: ignore[attr-defined]
                raise storage.ComponentNotFoundError(href)
            changelog.record(session, {self.calendar_key}, href, deleted=True)


class StoredCalendar(_Calendar):
    """A collection a client made, with its items stored as they came."""

    def __init__(self, storage_: Storage, row: StoredCollection) -> None:
        super().__init__(storage_, row.path)
        self.collection_id = row.id
        self._props: dict[str, str] = json.loads(row.props)
        self.calendar_key = changelog.stored_calendar(row.id)

    _href = StoredItem.__table__.c.href
    _uid = StoredItem.__table__.c.uid
    _etag = StoredItem.__table__.c.etag
    _component = StoredItem.__table__.c.component
    _modified = StoredItem.__table__.c.modified_at

    def _mine(self) -> Any:
        return StoredItem.collection_id == self.collection_id

    def _listing(self) -> Any:
        return select(
            StoredItem.href,
            StoredItem.etag,
            StoredItem.uid,
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

    def _current_etag(self, session: Session, href: str) -> str | None:
        query = select(StoredItem.etag).where(
            StoredItem.collection_id == self.collection_id, StoredItem.href == href
        )
        return session.scalar(locked(session, query))

    def _check_uid(self, session: Session, href: str, item: radicale_item.Item) -> None:
        """A UID names one item of this calendar (RFC 4791 5.3.2.1), checked inside the write
        with the calendar locked, so that two items saved at once cannot both take it; and a
        meeting already in the owner's interactions calendar is not copied into this one."""
        mine = select(StoredCollection.id).where(StoredCollection.id == self.collection_id)
        session.execute(locked(session, mine))
        other = session.scalar(
            select(StoredItem.href).where(
                self._mine(), StoredItem.uid == item.uid, StoredItem.href != href
            )
        )
        if other is not None:
            raise UidConflict(f"{other} in this calendar has the UID {item.uid!r} already")
        owner = session.scalar(select(User.id).where(User.login == self.path.split("/")[0]))
        shown = owner and calendar_contents.in_user_calendar(session, owner, str(item.uid))
        if item.name == "VCALENDAR" and shown:
            raise CalDavPrecondition(
                "C:unique-scheduling-object-resource",
                f"this meeting is in your calendar 'CRM interactions' already "
                f"({self.path.split('/')[0]}/{INTERACTIONS}/{shown}): answer it there",
            )

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        with self._session(write=True) as session:
            self._storage.check_conditions(self._current_etag(session, href))
            self._check_uid(session, href, item)
            _store_item(session, self.collection_id, href, item)
        stored = dict(self.get_multi([href]))[href]
        assert stored is not None
        return stored, None

    def delete(self, href: str | None = None) -> None:
        with self._session(write=True) as session:
            if href is None:
                _delete_tree(session, self.path)
                return
            self._storage.check_conditions(self._current_etag(session, href))
            gone = session.execute(
                delete(StoredItem).where(
                    StoredItem.collection_id == self.collection_id, StoredItem.href == href
                )
            )
            if not gone.rowcount:  # type: ignore[attr-defined]
                raise storage.ComponentNotFoundError(href)
            changelog.record(session, {self.calendar_key}, href, deleted=True)

    def get_meta(self, key: str | None = None) -> Any:
        return dict(self._props) if key is None else self._props.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        with self._session(write=True) as session:
            _save_props(session, self.path, props)
        self._props = dict(props)


# ---------------------------------------------------------------------------- writing helpers


def _etag_matches(condition: str, current: str | None) -> bool:
    """Whether an If-Match / If-None-Match value names the current ETag (RFC 9110 13.1)."""
    if current is None:
        return False
    wanted = {tag.strip().removeprefix("W/") for tag in condition.split(",")}
    return "*" in wanted or current in wanted


def _save_props(session: Session, path: str, props: Mapping[str, str]) -> None:
    row = session.scalar(select(StoredCollection).where(StoredCollection.path == path))
    text = json.dumps(dict(props), sort_keys=True)
    if row is None:
        session.add(StoredCollection(path=path, props=text))
    else:
        row.props, row.modified_at = text, datetime.now(UTC)


def _store_item(session: Session, collection_id: int, href: str, item: radicale_item.Item) -> None:
    text = item.serialize()
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


def _delete_tree(session: Session, path: str) -> None:
    session.execute(
        delete(StoredCollection).where(
            or_(
                StoredCollection.path == path,
                StoredCollection.path.startswith(f"{path}/", autoescape=True),
            )
        )
    )


def _made_by_crm(parts: list[str]) -> bool:
    """A principal, or its interactions or bookings calendar: no request can change them."""
    return len(parts) == 1 or (len(parts) == 2 and parts[1] in _MADE_BY_SERVER)


# ---------------------------------------------------------------------------- the storage


class Storage(storage.BaseStorage):
    _is_collision_free = True
    _supports_unicode = True
    _supports_trailing_whitespace = False
    _supports_problematic_chars = False

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        settings = settings_of(configuration)
        self.database = shared_database(settings.database_url)
        self.public_url = settings.public_url
        self._request = threading.local()

    def warm_up(self) -> str | None:
        """Run, once at start-up, the statements a calendar client's first requests run, so
        that the first client does not wait for SQLAlchemy to compile them. Returns the user
        whose calendars were read, for the application's own warm-up requests."""
        with self.database.session() as session:
            login = session.scalar(select(User.login).where(User.active.is_(True)).limit(1))
        if login is None:
            return None
        for collection in self.discover(f"/{login}/", depth="1"):
            if isinstance(collection, _Calendar):
                _ = (collection.etag, collection.get_meta())
                token, _ = collection.sync()
                collection.sync(token)
                collection.entries([], dated=True)
        return str(login)

    def _stored(self, session: Session, path: str) -> StoredCollection | None:
        return session.scalar(select(StoredCollection).where(StoredCollection.path == path))

    def _principal(self, session: Session, name: str) -> storage.BaseCollection | None:
        user = session.scalar(select(User).where(User.login == name, User.active.is_(True)))
        if user is not None:
            meta = {"D:displayname": user.display_name, **self._props_in(session, name)}
            return _Folder(self, name, meta)
        resource = session.scalar(select(Resource).where(Resource.slug == name))
        if resource is not None:
            return _Folder(self, name, {"D:displayname": resource.name})
        return None

    def _props_in(self, session: Session, path: str) -> dict[str, str]:
        row = self._stored(session, path)
        return json.loads(row.props) if row else {}

    def own_calendars(self, login: str) -> list[StoredCalendar]:
        """The calendars ``login`` made in their home (free-busy reads them too)."""
        home = next(iter(self.discover(f"/{login}/")), None)
        if home is None:
            return []
        with self.database.session() as session:
            children = self._children(session, home)
        return [c for c in children if isinstance(c, StoredCalendar)]

    def begin_request(
        self,
        if_match: str | None = None,
        if_none_match: str | None = None,
        if_schedule_tag_match: str | None = None,
    ) -> None:
        """Called by the application before each request: Radicale discovers the same
        principal and calendar several times in one request; the CRM-made ones (homes,
        interactions and bookings calendars) are looked up once per request and thread.
        The request's If-Match and If-None-Match are checked again inside the write."""
        self._request.known = {}
        self._request.tags = {}
        self._request.conditions = (if_match, if_none_match, if_schedule_tag_match)

    def check_conditions(self, current_etag: str | None, schedule_tag: str | None = None) -> None:
        """Raise PreconditionFailed unless the request's If-Match / If-None-Match (and, for
        an interaction, If-Schedule-Tag-Match, RFC 6638 8.3) hold for the item as the write
        transaction sees it, locked: checked before the write, two clients writing at once
        could both pass."""
        conditions = getattr(self._request, "conditions", (None, None, None))
        if_match, if_none_match, if_schedule_tag_match = conditions
        if if_schedule_tag_match is not None and schedule_tag != if_schedule_tag_match.strip():
            raise PreconditionFailed(
                "the event changed since you read it (If-Schedule-Tag-Match): read it again"
            )
        if if_match and not _etag_matches(if_match, current_etag):
            raise PreconditionFailed("the item changed since you read it (If-Match)")
        if if_none_match and _etag_matches(if_none_match, current_etag):
            raise PreconditionFailed("the item exists already (If-None-Match)")

    def written(self, href: str, schedule_tag: int) -> None:
        """Remember, for the rest of the request, the Schedule-Tag of an interaction written."""
        tags: dict[str, str] | None = getattr(self._request, "tags", None)
        if tags is not None:
            tags[href] = f'"{schedule_tag}"'

    def written_schedule_tag(self, href: str) -> str | None:
        tags: dict[str, str] = getattr(self._request, "tags", None) or {}
        return tags.get(href)

    def _collection(self, session: Session, parts: list[str]) -> storage.BaseCollection | None:
        known: dict[tuple[str, ...], storage.BaseCollection] | None = getattr(
            self._request, "known", None
        )
        key = tuple(parts)
        if known is not None and key in known:
            return known[key]
        found = self._lookup(session, parts)
        if known is not None and found is not None and _made_by_crm(parts):
            known[key] = found
        return found

    def _lookup(self, session: Session, parts: list[str]) -> storage.BaseCollection | None:
        if not parts:
            return _Folder(self, "", {})
        if len(parts) == 1:
            return self._principal(session, parts[0])
        if len(parts) == 2 and parts[1] == INTERACTIONS:
            user = session.scalar(select(User).where(User.login == parts[0], User.active.is_(True)))
            if user is not None:
                return InteractionsCalendar(
                    self,
                    user.id,
                    user.login,
                    user.display_name,
                    self._props_in(session, "/".join(parts)),
                )
        if len(parts) == 2 and parts[1] in (INBOX, OUTBOX):
            user = session.scalar(select(User).where(User.login == parts[0], User.active.is_(True)))
            if user is None:
                return None
            if parts[1] == INBOX:
                return InboxCalendar(self, user.id, user.login)
            return _Folder(self, "/".join(parts), {"D:displayname": "Schedule outbox"})
        if len(parts) == 2 and parts[1] == BOOKINGS:
            resource = session.scalar(select(Resource).where(Resource.slug == parts[0]))
            if resource is not None:
                return BookingsCalendar(
                    self,
                    resource.id,
                    resource.slug,
                    resource.name,
                    self._props_in(session, "/".join(parts)),
                )
        if parts[1] in _MADE_BY_SERVER:
            return None  # these hold items only, no collections
        if self._principal(session, parts[0]) is None:
            return None
        row = self._stored(session, "/".join(parts))
        if row is None:
            return None
        props = json.loads(row.props)
        if props.get("tag"):
            return StoredCalendar(self, row)
        return _Folder(self, row.path, props)

    def _children(self, session: Session, parent: storage.BaseCollection) -> list[Any]:
        parts = parent.path.split("/") if parent.path else []
        found: list[Any] = []
        if len(parts) == 1:
            for name in (INTERACTIONS, BOOKINGS):
                child = self._collection(session, [*parts, name])
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
                if rest and "/" not in rest and rest not in _MADE_BY_SERVER:
                    child = self._collection(session, row.path.split("/"))
                    if child is not None:
                        found.append(child)
        return found

    def discover(
        self,
        path: str,
        depth: str = "0",
        child_context_manager: Callable[[str, str | None], ContextManager[None]] | None = None,
        user_groups: set[str] = set(),  # noqa: B006 - Radicale's signature
    ) -> Iterator[Any]:
        sane = pathutils.strip_path(path)
        parts = sane.split("/") if sane else []
        manager = child_context_manager or (lambda *_: contextlib.nullcontext())
        with self.database.session() as session:
            collection = self._collection(session, parts)
            if collection is None and parts:
                parent = self._collection(session, parts[:-1])
                if isinstance(parent, _Calendar):
                    item = dict(parent.get_multi([parts[-1]])).get(parts[-1])
                    if item is not None:
                        yield item
                return
            if collection is None:
                return
            yield collection
            if depth == "0":
                return
            if isinstance(collection, _Calendar):
                for item in collection.get_all():
                    with manager(sane, item.href):
                        yield item
            for child in self._children(session, collection):
                with manager(child.path, None):
                    yield child

    def create_collection(
        self,
        href: str,
        items: Iterable[radicale_item.Item] | None = None,
        props: Mapping[str, str] | None = None,
    ) -> tuple[storage.BaseCollection, dict[str, radicale_item.Item], list[str]]:
        sane = pathutils.strip_path(href)
        parts = sane.split("/") if sane else []
        with self.database.session(write=True) as session:
            if len(parts) <= 1 or parts[1] in _MADE_BY_SERVER:
                existing = self._collection(session, parts)
                if existing is not None and not props:
                    return existing, {}, []
                raise NotAllowed(f"/{sane}/ is made by the CRM and cannot be created or replaced")
            if self._principal(session, parts[0]) is None or len(parts) > 4:
                raise NotAllowed(f"/{sane}/ is not inside a calendar home")
            if items is None and self._stored(session, sane) is not None:  # MKCALENDAR, MKCOL
                raise AlreadyExists(f"/{sane}/ exists already (made at the same moment)")
            _delete_tree(session, sane)
            session.flush()
            row = StoredCollection(path=sane, props=json.dumps(dict(props or {}), sort_keys=True))
            session.add(row)
            session.flush()
            hrefs: list[str] = []
            if props and props.get("tag"):
                for item in items or ():
                    name = item.href or _item_name(item.uid, props["tag"], hrefs)
                    _store_item(session, row.id, name, item)
                    hrefs.append(name)
            collection = self._collection(session, parts)
        assert collection is not None
        return collection, {}, hrefs

    def move(
        self, item: radicale_item.Item, to_collection: storage.BaseCollection, to_href: str
    ) -> None:
        source = item.collection
        if not isinstance(source, StoredCalendar) or not isinstance(to_collection, StoredCalendar):
            raise NotAllowed("only items of your own calendars can be moved")
        with self.database.session(write=True) as session:
            session.execute(
                delete(StoredItem).where(
                    StoredItem.collection_id == to_collection.collection_id,
                    StoredItem.href == to_href,
                )
            )
            row = session.scalar(
                select(StoredItem).where(
                    StoredItem.collection_id == source.collection_id, StoredItem.href == item.href
                )
            )
            if row is None:
                raise storage.ComponentNotFoundError(str(item.href))
            row.collection_id, row.href = to_collection.collection_id, to_href
            changelog.record(session, {source.calendar_key}, str(item.href), deleted=True)
            changelog.record(session, {to_collection.calendar_key}, to_href)

    @contextlib.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
        # Each read and write is its own database transaction: nothing to lock in the process.
        yield

    def verify(self) -> bool:
        return self.database.is_current()


def _item_name(uid: str | None, tag: str, taken: list[str]) -> str:
    suffix = ".vcf" if tag == "VADDRESSBOOK" else ".ics"
    name = f"{uid}{suffix}" if uid else ""
    if not name or not pathutils.is_safe_filesystem_path_component(name) or name in taken:
        name = f"{uuid.uuid4()}{suffix}"
    return name

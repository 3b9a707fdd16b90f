"""Radicale storage plugin: every collection and item lives in the CRM's SQL database.

Paths:
    /                          the root
    /<login>/                  a CRM user's principal (their calendar home)
    /<login>/interactions/     the live projection of the interactions they own or are linked to
    /<login>/directory/        their read-only address book of colleagues and rooms
    /<login>/<name>/           calendars, address books and folders the user made (stored)
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
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from radicale import item as radicale_item
from radicale import pathutils, storage
from radicale.item import filter as radicale_filter
from sqlalchemy import and_, delete, literal, null, or_, select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.caldav.client_writes import ClientWrites, organised_by
from caldav_bridge.caldav.scheduling import INBOX, OUTBOX
from caldav_bridge.caldav.server import settings_of, shared_database
from caldav_bridge.db import locked
from caldav_bridge.domain import changelog, recurrence
from caldav_bridge.domain import queries as calendar_contents
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import (
    AlreadyExists,
    NotAllowed,
    PreconditionFailed,
    UidConflict,
)
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import (
    CalendarChange,
    Interaction,
    Resource,
    ScheduleMessage,
    StoredCollection,
    StoredItem,
    User,
)
from caldav_bridge.ical import freebusy
from caldav_bridge.ical import vcards as contacts
from caldav_bridge.ical.mapping import series_of

INTERACTIONS = "interactions"
BOOKINGS = "bookings"
# Collections the server makes in every home: no client creates, replaces or removes them.
_MADE_BY_SERVER = (INTERACTIONS, BOOKINGS, contacts.DIRECTORY, INBOX, OUTBOX)
# A sync token names a calendar and the revision a client has seen changes up to; a page of a
# limited initial sync adds "-<revision>": the calendar was listed as it was then, so items
# removed up to it were never the client's (tokens without it are the older, plain kind).
_TOKEN = re.compile(
    r"urn:caldav-bridge:sync:(?P<calendar>[^ ]+):(?P<revision>[0-9]+)(?:-(?P<listed>[0-9]+))?"
)
# Properties of the projected calendars that clients may not change.
_FIXED = {"tag", "C:supported-calendar-component-set"}


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _moment(timestamp: int) -> datetime:
    """A POSIX time of Radicale's filters (which span years 1 to 9999) as a datetime."""
    return datetime.fromtimestamp(min(max(timestamp, -62135596800), 253402300799), UTC)


@dataclass
class SyncPaging:
    """A sync-collection REPORT's DAV:limit, and whether its answer had to be truncated."""

    limit: int
    truncated: bool = False


@dataclass(frozen=True)
class SyncPage:
    """One page of a limited sync: its token, the items it names, and whether more follow."""

    token: str
    hrefs: list[str]
    truncated: bool


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


# Names are looked up _MANY at a time (an IN list each); above _BY_NAME names, a lookup reads
# the whole calendar instead.
_MANY = 500
_BY_NAME = 20 * _MANY


class _Calendar(_Node, storage.BaseCollection):
    """A calendar whose CTag and sync tokens come from its change log.

    Subclasses say which rows are theirs: ``_listing`` selects (href, etag, uid, name,
    component, start, end, modified) and ``_text_rows`` (href, text), both filtered by
    ``_href``.
    """

    calendar_key: str
    _href: Any
    _etag: Any
    _name: Any
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

    def _name_in(self, hrefs: list[str]) -> Any:
        """Those items named one of ``hrefs``."""
        return self._href.in_(hrefs)

    def _named(self, query: Any, hrefs: list[str] | None) -> list[Any]:
        """The rows of ``query`` (its first column the item's name) of ``hrefs``, or all rows:
        a page of a limited sync costs its own size, not the calendar's."""
        with self._session() as session:
            connection = session.connection()
            if hrefs is not None and len(hrefs) <= _BY_NAME:
                # No names: one query still, the one the start-up warm-up runs to compile it.
                starts = range(0, max(len(hrefs), 1), _MANY)
                batches = (hrefs[start : start + _MANY] for start in starts)
                return [
                    row
                    for batch in batches
                    for row in connection.execute(query.where(self._name_in(batch)))
                ]
            rows = connection.execute(query).all()
        wanted = None if hrefs is None else set(hrefs)
        return list(rows) if wanted is None else [row for row in rows if row[0] in wanted]

    def texts(self, hrefs: list[str] | None) -> dict[str, str]:
        return {row[0]: self._served(row) for row in self._named(self._text_rows(), hrefs)}

    def _served(self, row: Any) -> str:
        """The text served of a ``_text_rows`` row: as stored."""
        return str(row[1])

    def _items(self, query: Any, hrefs: list[str] | None = None) -> list[radicale_item.Item]:
        rows = self._named(query, hrefs)
        texts = _Texts(self, [row.href for row in rows])
        items: list[radicale_item.Item] = []
        for row in rows:
            start, end = self._bounds(row)
            items.append(
                _LazyItem(
                    texts,
                    collection=self._shown_in or self,
                    href=row.href,
                    etag=row.etag,
                    uid=row.uid,
                    name=row.name,
                    component_name=row.component,
                    time_range=(start, max(end, start + 1)),
                    last_modified=_http_date(row.modified),
                )
            )
        return items

    _known_revision: tuple[int, datetime | None] | None = None
    # The collection whose items these are, when this one serves part of another's.
    _shown_in: _Calendar | None = None

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

    def _token(self, revision: int, listed: int = 0) -> str:
        base = f"urn:caldav-bridge:sync:{self.calendar_key}:{revision}"
        return f"{base}-{listed}" if listed > revision else base

    def _position(self, old_token: str, revision: int) -> tuple[int, int]:
        """(revision seen, revision listed) of a token this calendar handed out, the newest
        being ``revision``; ValueError for any other token (Radicale answers it)."""
        match = _TOKEN.fullmatch(old_token)
        seen, listed = (int(match["revision"]), int(match["listed"] or 0)) if match else (0, 0)
        if not match or match["calendar"] != self.calendar_key or max(seen, listed) > revision:
            raise ValueError(f"unknown sync token {old_token!r}")
        return seen, listed

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        paging = self._storage.sync_paging()
        if paging is not None:  # a sync-collection REPORT with DAV:limit
            page = self.sync_page(old_token, paging.limit)
            paging.truncated = page.truncated
            return page.token, page.hrefs
        revision, _ = self._revision()
        token = self._token(revision)
        if not old_token:
            return token, self._all_hrefs()
        seen, _ = self._position(old_token, revision)
        with self._session() as session:
            hrefs = session.scalars(
                select(CalendarChange.item_href)
                .where(
                    CalendarChange.calendar == self.calendar_key,
                    CalendarChange.revision > seen,
                )
                .distinct()
            ).all()
        return token, list(hrefs)

    def sync_page(self, old_token: str, limit: int) -> SyncPage:
        """At most ``limit`` items changed since ``old_token`` (or, without one, of the whole
        calendar), in the order of their latest change, with the token that goes on where the
        page ends (RFC 6578 sections 3.6 and 3.7). An initial sync is read from the change log
        too, as changes since revision 0: items written between two pages come in a later one,
        removals of items a page listed as well, and an item is named again only if it
        changed again."""
        revision, _ = self._revision()
        seen, listed = self._position(old_token, revision) if old_token else (0, revision)
        with self._session() as session:
            rows = changelog.latest_changes(session, self.calendar_key, seen, listed, limit + 1)
        hrefs = list(dict.fromkeys(href for href, _ in rows[:limit]))
        if len(rows) <= limit:
            return SyncPage(self._token(revision), hrefs, truncated=False)
        return SyncPage(self._token(rows[limit - 1][1], listed), hrefs, truncated=True)

    def _all_hrefs(self) -> Iterator[str]:
        """Read only when iterated: a PROPFIND asking for the token alone never reads it."""
        with self._session() as session:
            hrefs = session.scalars(self._text_rows().with_only_columns(self._href)).all()
        yield from hrefs

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        wanted = list(dict.fromkeys(hrefs))
        found = {i.href: i for i in self._items(self._listing(), wanted)}
        return [(href, found.get(href)) for href in wanted]

    def get_all(self) -> Iterable[radicale_item.Item]:
        return self._items(self._listing())

    def entries(
        self, hrefs: list[str] | None = None, dated: bool = True
    ) -> list[tuple[str, str, str, str, datetime | None]]:
        """Names, ETags, object names and components (VCALENDAR and VEVENT, VCARD and none)
        and (when ``dated``) modification times of all items, or of those of ``hrefs`` that
        exist, for the application's fast listing: plain rows, no items. Times are left out
        unless asked: reading them costs more than the rest."""
        modified = self._modified if dated else null()
        query = self._listing().with_only_columns(
            self._href, self._etag, self._name, self._component, modified
        )
        return [(row[0], row[1], row[2], row[3], row[4]) for row in self._named(query, hrefs)]

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
    _name = literal("VCALENDAR")
    _component = literal("VEVENT")
    _modified = Interaction.__table__.c.modified_at

    # Whose names the calendar shows (``calendar_contents.name_in``); None: the shared ones.
    _user_id: int | None = None

    def _use_names_of(self, user_id: int) -> None:
        self._user_id = user_id
        self._href = calendar_contents.name_in(user_id)

    def _name_in(self, hrefs: list[str]) -> Any:
        if self._user_id is None:
            return super()._name_in(hrefs)
        return calendar_contents.named(self._user_id, hrefs)

    def _name_of(self, interaction: Interaction) -> str:
        if self._user_id is None:
            return interaction.href
        return calendar_contents.name_of(interaction, self._user_id)

    def _which(self) -> Any:
        raise NotImplementedError

    def _visible(self) -> Any:
        return calendar_contents.shown(self._which())

    def held(self, session: Session, href: str) -> Interaction | None:
        """The interaction held here as ``href``, locked for the write."""
        query = select(Interaction).where(self._visible(), self._name_in([href]))
        return session.scalar(locked(session, query))

    def held_for_write(
        self, session: Session, href: str, item: radicale_item.Item
    ) -> Interaction | None:
        """The interaction a PUT of ``item`` as ``href`` replaces, once the request's
        conditions hold for it; a new event cannot take the name of another (Radicale
        checks it too, before the write's transaction: this holds against a concurrent one)."""
        held = self.held(session, href)
        if held is None:
            return None
        self._storage.check_conditions(held.etag, f'"{held.schedule_tag}"')
        if held.uid != item.uid:
            raise UidConflict(
                f"{href} is another meeting (UID {held.uid!r}): a new event needs a name of its own"
            )
        return held

    def _listing(self) -> Any:
        return select(
            self._href.label("href"),
            Interaction.etag,
            Interaction.uid,
            literal("VCALENDAR").label("name"),
            literal("VEVENT").label("component"),
            Interaction.first_starts_at.label("start"),  # a recurring one: its whole span
            Interaction.last_ends_at.label("end"),
            Interaction.modified_at.label("modified"),
        ).where(self._visible())

    def _text_rows(self) -> Any:
        return select(self._href.label("href"), Interaction.ical).where(self._visible())

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
                self._name_of(interaction)
                for interaction in session.scalars(query)
                if recurrence.instances(series_of(interaction), low, high)
            }
        for item in self._items(self._listing().where(self._in_period(start, end))):
            if item.href in wanted:
                yield item, True

    def _item_of(self, interaction: Interaction) -> radicale_item.Item:
        """The item as stored, from the interaction just written (no second read)."""
        start = _timestamp(interaction.first_starts_at)
        end = _timestamp(interaction.last_ends_at)
        return radicale_item.Item(
            collection=self._shown_in or self,
            href=self._name_of(interaction),
            text=interaction.ical,
            etag=interaction.etag,
            uid=interaction.uid,
            name="VCALENDAR",
            component_name="VEVENT",
            time_range=(start, max(end, start + 1)),
            last_modified=_http_date(interaction.modified_at),
        )

    def schedule_tags(self, hrefs: list[str]) -> dict[str, str]:
        """The Schedule-Tags of those of ``hrefs`` held here (RFC 6638 section 3.2.10)."""
        query = select(self._href, Interaction.schedule_tag).where(
            self._visible(), self._name_in(hrefs)
        )
        with self._session() as session:
            return {href: f'"{tag}"' for href, tag in session.execute(query)}

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
        self._use_names_of(user_id)
        self._set_props(props)

    def busy(self, start: datetime, end: datetime) -> list[freebusy.Busy]:
        with self._session() as session:
            user = session.get(User, self.user_id)
            assert user is not None
            return freebusy.busy_user(session, user, start, end)

    def _which(self) -> Any:
        return calendar_contents.of_interactions_calendar(self.user_id)

    def _default_meta(self) -> dict[str, str]:
        return {
            "D:displayname": "CRM interactions",
            "C:calendar-description": f"Interactions {self.display_name} owns or is linked to",
        }

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        with self._session(write=True) as session:
            held = self.held_for_write(session, href, item)
            if held is None:
                self._storage.check_conditions(None)
            actor = Directory(session).user(self.login)
            service = InteractionService(session, self._storage.public_url)
            interaction = ClientWrites(service).put(actor, href, item.serialize(), None, held)
            # Saved cancelled, it leaves the calendar: the client's next sync says so.
            stored = self._item_of(interaction)
            self._storage.written(href, interaction)
        return stored, None

    def delete(self, href: str | None = None) -> None:
        if href is None:
            raise NotAllowed("the interactions calendar cannot be deleted")
        with self._session(write=True) as session:
            service = InteractionService(session, self._storage.public_url)
            held = self.held(session, href)  # a cancelled one is gone
            if held is None:
                raise storage.ComponentNotFoundError(href)
            self._storage.check_conditions(held.etag, f'"{held.schedule_tag}"')
            actor = Directory(session).user(self.login)
            ClientWrites(service).delete(actor, service.get(held.id))


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

    def schedule_tags(self, hrefs: list[str]) -> dict[str, str]:
        """None: a booking, as served, is no scheduling object (it names no attendee)."""
        return {}

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
    _name = literal("VCALENDAR")
    _component = literal("VEVENT")
    _modified = ScheduleMessage.__table__.c.created_at

    def _mine(self) -> Any:
        return ScheduleMessage.user_id == self.user_id

    def _listing(self) -> Any:
        return select(
            ScheduleMessage.href,
            ScheduleMessage.etag,
            ScheduleMessage.uid,
            literal("VCALENDAR").label("name"),
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
    """A collection a client made, with its items stored as they came, and the meetings its
    owner organises or keeps in it (interactions, served as their interactions calendar
    would serve them)."""

    def __init__(self, storage_: Storage, row: StoredCollection, owner_id: int) -> None:
        super().__init__(storage_, row.path)
        self.collection_id, self.owner_id = row.id, owner_id
        self.login = row.path.split("/")[0]
        self._props: dict[str, str] = json.loads(row.props)
        self.calendar_key = changelog.stored_calendar(row.id)
        self._placed = PlacedInteractions(storage_, self)

    _href = StoredItem.__table__.c.href
    _uid = StoredItem.__table__.c.uid
    _etag = StoredItem.__table__.c.etag
    _name = StoredItem.__table__.c.name
    _component = StoredItem.__table__.c.component
    _modified = StoredItem.__table__.c.modified_at

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

    def entries(
        self, hrefs: list[str] | None = None, dated: bool = True
    ) -> list[tuple[str, str, str, str, datetime | None]]:
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
        is stored as it came."""
        text = item.serialize()
        with self._session(write=True) as session:
            self._check_uid(session, href, item)
            placed = self._placed.held_for_write(session, href, item)
            if placed is None:
                self._storage.check_conditions(self._current_etag(session, href))
            actor = Directory(session).user(self.login)
            if placed is None and not organised_by(text, actor):
                _store_item(session, self.collection_id, href, item)
            else:
                session.execute(delete(StoredItem).where(self._mine(), StoredItem.href == href))
                service = InteractionService(session, self._storage.public_url)
                writes = ClientWrites(service)
                interaction = writes.put(actor, href, text, self.collection_id, placed)
                self._storage.written(href, interaction)
                return self._placed._item_of(interaction), None
        stored = dict(self.get_multi([href]))[href]
        assert stored is not None
        return stored, None

    def delete(self, href: str | None = None) -> None:
        with self._session(write=True) as session:
            if href is None:
                _delete_tree(session, self.path)
                return
            placed = self._placed.held(session, href)
            if placed is not None:
                self._storage.check_conditions(placed.etag, f'"{placed.schedule_tag}"')
                service = InteractionService(session, self._storage.public_url)
                actor = Directory(session).user(self.login)
                ClientWrites(service).delete(actor, service.get(placed.id))
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


class PlacedInteractions(_Projection):
    """The interactions a calendar a user made holds for them: the meetings they organise
    there and the invitations they moved there. Its items are the calendar's."""

    def __init__(self, storage_: Storage, calendar: StoredCalendar) -> None:
        super().__init__(storage_, calendar.path)
        self._shown_in = calendar
        self.collection_id = calendar.collection_id
        self.calendar_key = calendar.calendar_key
        self._use_names_of(calendar.owner_id)
        self._set_props({})

    def _which(self) -> Any:
        return calendar_contents.of_calendar(self.collection_id)

    def _default_meta(self) -> dict[str, str]:
        return {}


class DirectoryBook(_Calendar):
    """A user's read-only address book of colleagues and rooms: the CRM's directory as
    vCards (``contacts``), made when asked; its CTag and sync tokens come from the directory's
    change log, which every user's book shares."""

    calendar_key = changelog.DIRECTORY_BOOK

    def __init__(self, storage_: Storage, login: str) -> None:
        super().__init__(storage_, f"{login}/{contacts.DIRECTORY}")
        self._cards: dict[str, contacts.Card] | None = None

    def _all(self) -> dict[str, contacts.Card]:
        """The cards, read once per request (a collection object lives for one request)."""
        if self._cards is None:
            with self._session() as session:
                self._cards = {card.href: card for card in Directory(session).cards()}
        return self._cards

    def _item(self, card: contacts.Card, texts: _Texts) -> radicale_item.Item:
        return _LazyItem(
            texts,
            collection=self,
            href=card.href,
            etag=card.etag,
            uid=card.uid,
            name="VCARD",
            component_name="",
            time_range=(radicale_filter.TIMESTAMP_MIN, radicale_filter.TIMESTAMP_MAX),
            last_modified=self.last_modified,
        )

    def _items_of(self, cards: list[contacts.Card]) -> list[radicale_item.Item]:
        texts = _Texts(self, [card.href for card in cards])
        return [self._item(card, texts) for card in cards]

    def texts(self, hrefs: list[str] | None) -> dict[str, str]:
        cards = self._all()
        return {href: cards[href].text() for href in (cards if hrefs is None else hrefs)}

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        cards = self._all()
        wanted = list(dict.fromkeys(hrefs))
        found = {i.href: i for i in self._items_of([cards[h] for h in wanted if h in cards])}
        return [(href, found.get(href)) for href in wanted]

    def get_all(self) -> Iterable[radicale_item.Item]:
        return self._items_of(list(self._all().values()))

    def get_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[radicale_item.Item, bool]]:
        """Every card: Radicale matches each against the addressbook-query's filters."""
        return ((item, False) for item in self.get_all())

    def entries(
        self, hrefs: list[str] | None = None, dated: bool = True
    ) -> list[tuple[str, str, str, str, datetime | None]]:
        cards = self._all()
        wanted = cards.values() if hrefs is None else [cards[h] for h in hrefs if h in cards]
        modified = self._revision()[1] if dated else None
        return [(card.href, card.etag, "VCARD", "", modified) for card in wanted]

    def _all_hrefs(self) -> Iterator[str]:
        yield from self._all()

    def has_uid(self, uid: str) -> bool:
        return any(card.uid == uid for card in self._all().values())

    def get_meta(self, key: str | None = None) -> Any:
        meta = {
            "tag": "VADDRESSBOOK",
            "D:displayname": contacts.DISPLAY_NAME,
            "CR:addressbook-description": contacts.DESCRIPTION,
        }
        return meta if key is None else meta.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        raise NotAllowed(contacts.READ_ONLY)

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        raise NotAllowed(contacts.READ_ONLY)

    def delete(self, href: str | None = None) -> None:
        raise NotAllowed(contacts.READ_ONLY)


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


def _made_by_crm(parts: list[str]) -> bool:
    """A principal, or its interactions or bookings calendar: no request can change them."""
    return len(parts) == 1 or (len(parts) == 2 and parts[1] in _MADE_BY_SERVER)


# ---------------------------------------------------------------------------- the storage


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
        """The calendars ``login`` made in their home (free-busy reads them too), not their
        address books."""
        home = next(iter(self.discover(f"/{login}/")), None)
        if home is None:
            return []
        with self.database.session() as session:
            children = self._children(session, home)
        return [c for c in children if isinstance(c, StoredCalendar) and c.tag == "VCALENDAR"]

    def read_only_reason(self, path: str) -> str | None:
        """Why nothing may be written at ``path`` whoever asks, or None: the address book of
        colleagues and rooms is the CRM's directory (the rights make it read-only, so that
        clients show it so; Radicale's refusal says no more than 403)."""
        parts = pathutils.strip_path(path).split("/")
        return contacts.READ_ONLY if len(parts) > 1 and parts[1] == contacts.DIRECTORY else None

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
        self._request.paging = None

    def page_sync(self, limit: int) -> SyncPaging:
        """Called by the application for a sync-collection REPORT with DAV:limit that
        Radicale answers: the calendar's ``sync`` then answers one page of at most ``limit``
        items, and says in the object returned whether it truncated."""
        self._request.paging = SyncPaging(limit)
        return self._request.paging  # type: ignore[no-any-return]

    def sync_paging(self) -> SyncPaging | None:
        return getattr(self._request, "paging", None)

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

    def written(self, href: str, interaction: Interaction) -> None:
        """Remember, for the rest of the request, the interaction written as ``href``."""
        tags: dict[str, tuple[int, str]] | None = getattr(self._request, "tags", None)
        if tags is not None:
            tags[href] = (interaction.id, f'"{interaction.schedule_tag}"')

    def written_schedule_tag(self, href: str) -> str | None:
        tags: dict[str, tuple[int, str]] = getattr(self._request, "tags", None) or {}
        return tags[href][1] if href in tags else None

    def written_interaction(self, href: str) -> int | None:
        tags: dict[str, tuple[int, str]] = getattr(self._request, "tags", None) or {}
        return tags[href][0] if href in tags else None

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
        if len(parts) == 2 and parts[1] in (INBOX, OUTBOX, contacts.DIRECTORY):
            user = session.scalar(select(User).where(User.login == parts[0], User.active.is_(True)))
            if user is None:
                return None
            if parts[1] == contacts.DIRECTORY:
                return DirectoryBook(self, user.login)
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
        owner = session.scalar(select(User.id).where(User.login == parts[0]))
        if props.get("tag") and owner is not None:
            return StoredCalendar(self, row, owner)
        return _Folder(self, row.path, props)

    def _children(self, session: Session, parent: storage.BaseCollection) -> list[Any]:
        parts = parent.path.split("/") if parent.path else []
        found: list[Any] = []
        if len(parts) == 1:
            for name in (INTERACTIONS, contacts.DIRECTORY, BOOKINGS):
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
            if items is not None:  # a PUT of a whole collection replaces it
                _delete_tree(session, sane)
                session.flush()
            # else two making it at once: the unique path refuses the second's insert (deleting
            # first would have removed the winner's, committed since this one looked)
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
        """An item of a user's own calendars to another of them. A meeting the CRM holds
        (in the interactions calendar or one of the user's) moves for that user only, under
        its name, which every attendee's calendar shares."""
        source = item.collection
        kept = (InteractionsCalendar, StoredCalendar)
        if not isinstance(source, kept) or not isinstance(to_collection, kept):
            raise NotAllowed("only items of your own calendars can be moved")
        if source.path.split("/")[0] != to_collection.path.split("/")[0]:
            raise NotAllowed("an item moves between calendars of one home")
        with self.database.session(write=True) as session:
            held = source.held(session, str(item.href))
            if held is not None:
                self._move_interaction(session, held.id, source, to_collection, to_href)
            elif isinstance(source, StoredCalendar) and isinstance(to_collection, StoredCalendar):
                self._move_stored(session, item, source, to_collection, to_href)
            else:
                raise NotAllowed(
                    "the interactions calendar holds CRM meetings only: save the event there "
                    "to make it one"
                )

    def _move_interaction(
        self,
        session: Session,
        interaction_id: int,
        source: InteractionsCalendar | StoredCalendar,
        target: InteractionsCalendar | StoredCalendar,
        to_href: str,
    ) -> None:
        service = InteractionService(session, self.public_url)
        interaction = service.get(interaction_id)
        actor = Directory(session).user(source.path.split("/")[0])
        name = calendar_contents.name_of(interaction, actor.id)
        if to_href != name:
            raise NotAllowed(f"a meeting keeps its name when it moves: move it to {name}")
        if isinstance(target, StoredCalendar):
            session.execute(
                delete(StoredItem).where(
                    StoredItem.collection_id == target.collection_id, StoredItem.href == to_href
                )
            )
        service.place(
            actor, interaction, target.collection_id if isinstance(target, StoredCalendar) else None
        )

    @staticmethod
    def _move_stored(
        session: Session,
        item: radicale_item.Item,
        source: StoredCalendar,
        target: StoredCalendar,
        to_href: str,
    ) -> None:
        session.execute(
            delete(StoredItem).where(
                StoredItem.collection_id == target.collection_id, StoredItem.href == to_href
            )
        )
        row = session.scalar(
            select(StoredItem).where(
                StoredItem.collection_id == source.collection_id, StoredItem.href == item.href
            )
        )
        if row is None:
            raise storage.ComponentNotFoundError(str(item.href))
        row.collection_id, row.href = target.collection_id, to_href
        changelog.record(session, {source.calendar_key}, str(item.href), deleted=True)
        changelog.record(session, {target.calendar_key}, to_href)

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

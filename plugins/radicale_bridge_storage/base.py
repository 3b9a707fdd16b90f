"""What every collection of the storage shares: its path and database (``Node``), the folders
(the root, principals), and ``Calendar``: items listed from index columns, their texts read in
one query when first needed, CTags and sync tokens from the calendar's change log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from radicale import item as radicale_item
from radicale import storage
from radicale.item import filter as radicale_filter
from sqlalchemy import null, select
from sqlalchemy.orm import Session

from caldav_bridge.domain.errors import NotAllowed
from caldav_bridge.domain.models import CalendarChange, StoredCollection
from plugins.radicale_bridge_storage import sync as tokens

if TYPE_CHECKING:
    from plugins.radicale_bridge_storage import Storage

# One listing entry: (href, ETag, object name, component, last modification or None).
Entry = tuple[str, str, str, str, datetime | None]


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def moment(timestamp: int) -> datetime:
    """A POSIX time of Radicale's filters (which span years 1 to 9999) as a datetime."""
    return datetime.fromtimestamp(min(max(timestamp, -62135596800), 253402300799), UTC)


class Node:
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


class Folder(Node, storage.BaseCollection):
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
            save_props(session, self.path, props)

    @property
    def last_modified(self) -> str:
        return http_date(datetime(2000, 1, 1, tzinfo=UTC))


class Texts:
    """The texts of one batch of items, read in one query when the first is needed.

    Listing a calendar (PROPFIND, sync) needs only names and ETags; the texts, the bulk of the
    data, are read only when a response includes calendar data.
    """

    def __init__(self, calendar: Calendar, hrefs: list[str] | None) -> None:
        self._calendar, self._hrefs = calendar, hrefs
        self._texts: dict[str, str] | None = None

    def text(self, href: str) -> str:
        if self._texts is None:
            self._texts = self._calendar.texts(self._hrefs)
        return self._texts[href]


class LazyItem(radicale_item.Item):
    def __init__(self, texts: Texts, **kwargs: Any) -> None:
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


class Calendar(Node, storage.BaseCollection):
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
        texts = Texts(self, [row.href for row in rows])
        items: list[radicale_item.Item] = []
        for row in rows:
            start, end = self._bounds(row)
            items.append(
                self._item_type(
                    texts,
                    collection=self._shown_in or self,
                    href=row.href,
                    etag=row.etag,
                    uid=row.uid,
                    name=row.name,
                    component_name=row.component,
                    time_range=(start, max(end, start + 1)),
                    last_modified=http_date(row.modified),
                )
            )
        return items

    _known_revision: tuple[int, datetime | None] | None = None
    # The items' type: the text Radicale's filters parse may differ from the text served.
    _item_type: type[LazyItem] = LazyItem
    # The collection whose items these are, when this one serves part of another's.
    _shown_in: Calendar | None = None

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
        return http_date(changed or datetime(2000, 1, 1, tzinfo=UTC))

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        paging = self._storage.request.paging
        if paging is not None:  # a sync-collection REPORT with DAV:limit
            found = self.sync_page(old_token, paging.limit)
            paging.truncated = found.truncated
            return found.token, found.hrefs
        revision, _ = self._revision()
        token = tokens.token(self.calendar_key, revision)
        if not old_token:
            return token, self._all_hrefs()
        seen, _ = tokens.position(self.calendar_key, old_token, revision)
        with self._session() as session:
            return token, tokens.changed_since(session, self.calendar_key, seen)

    def sync_page(self, old_token: str, limit: int) -> tokens.SyncPage:
        """A page of at most ``limit`` changes (``tokens.page``)."""
        revision, _ = self._revision()
        with self._session() as session:
            return tokens.page(session, self.calendar_key, old_token, revision, limit)

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

    def entries(self, hrefs: list[str] | None = None, dated: bool = True) -> list[Entry]:
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


def save_props(session: Session, path: str, props: Mapping[str, str]) -> None:
    row = session.scalar(select(StoredCollection).where(StoredCollection.path == path))
    text = json.dumps(dict(props), sort_keys=True)
    if row is None:
        session.add(StoredCollection(path=path, props=text))
    else:
        row.props, row.modified_at = text, datetime.now(UTC)

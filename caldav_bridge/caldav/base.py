"""What the application's parts (one module per HTTP method, as Radicale's ``radicale/app/``)
share: the storage as the application reaches the database through it, and the request's
body and XML as the door left them.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from http import HTTPStatus
from typing import Any, Protocol, cast, runtime_checkable

import defusedxml.ElementTree as DefusedET
from radicale import types
from radicale.app.base import ApplicationBase

from caldav_bridge.caldav.headers import Conditions
from caldav_bridge.db import Database
from caldav_bridge.ical import freebusy

# A request handler's arguments after ``self`` and its answer, as Radicale calls them.
Handler = Callable[..., types.WSGIResponse]
# One item of a listing: (href, ETag, object name, component, last modification or None).
Entry = tuple[str, str, str, str, datetime | None]


class Written(Protocol):
    interaction_id: int
    schedule_tag: str


class Paging(Protocol):
    truncated: bool


class SyncPage(Protocol):
    token: str
    hrefs: list[str]
    truncated: bool


@runtime_checkable
class BridgeStorage(Protocol):
    """The storage plugin (``plugins.radicale_bridge_storage``) as the application uses it."""

    database: Database
    public_url: str

    def warm_up(self) -> str | None: ...
    def begin_request(self, conditions: Conditions) -> None: ...
    def page_sync(self, limit: int) -> Paging: ...
    def written_interaction(self, href: str) -> Written | None: ...
    def own_calendars(self, login: str) -> list[Any]: ...
    def read_only_reason(self, path: str) -> str | None: ...
    def sent(self, text: str) -> None: ...
    def discover(self, path: str, depth: str = "0") -> Iterator[Any]: ...


@runtime_checkable
class Listable(Protocol):
    """A calendar or address book that can list its items' names, ETags and stamps without
    reading them."""

    path: str

    def entries(self, hrefs: list[str] | None = None, dated: bool = True) -> list[Entry]:
        """(href, ETag, object name, component, last modification when ``dated``) of each item
        (or of those of ``hrefs`` that exist)."""
        ...

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]: ...

    def sync_page(self, old_token: str, limit: int) -> SyncPage: ...


@runtime_checkable
class Scheduled(Protocol):
    """A calendar that holds interactions, and so Schedule-Tags."""

    def schedule_tags(self, hrefs: list[str]) -> dict[str, str]: ...


@runtime_checkable
class Busy(Protocol):
    """A calendar the CRM's free-busy rule answers for (interactions, bookings)."""

    def busy(self, start: datetime, end: datetime) -> list[freebusy.Busy]: ...


class Part(ApplicationBase):
    """What every part of the application reaches: the bridge's storage."""

    @property
    def _bridge_storage(self) -> BridgeStorage:
        """The bridge's storage plugin (Radicale types it as any storage)."""
        return cast(BridgeStorage, self._storage)

    def database_session(self) -> Any:
        return self._bridge_storage.database.session()

    def collection(self, path: str) -> Any:
        """What the storage finds at ``path`` (a collection or an item), or None."""
        return next(iter(self._storage.discover(path)), None)


def text(status: HTTPStatus, reason: str) -> types.WSGIResponse:
    """A plain-text answer with the reason (Radicale appends the charset)."""
    return int(status), {"Content-Type": "text/plain"}, f"{reason}\n", None


def buffered(environ: types.WSGIEnviron) -> tuple[bytes, types.WSGIEnviron]:
    """The request body, and an environ from which Radicale can still read it."""
    raw: bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return raw, {**environ, "wsgi.input": io.BytesIO(raw)}


def with_body(environ: types.WSGIEnviron, raw: bytes, **fields: str) -> types.WSGIEnviron:
    """``environ`` carrying ``raw`` as its body (and ``fields`` besides)."""
    return {**environ, **fields, "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw)}


# Where the door leaves the request body it parsed, for the handlers.
PARSED_XML = "caldav_bridge.xml"


def _parse(raw: bytes) -> Any:
    try:
        return DefusedET.fromstring(raw) if raw.strip() else None
    except Exception:  # malformed or hostile XML: Radicale answers it
        return None


def request_xml(environ: types.WSGIEnviron, raw: bytes) -> Any:
    """The request's XML body, as the door parsed it once (None when there is none)."""
    return environ.get(PARSED_XML) if PARSED_XML in environ else _parse(raw)


def fields(headers: Any) -> dict[str, str]:
    """An answer's headers as a dict to change."""
    return dict(headers)

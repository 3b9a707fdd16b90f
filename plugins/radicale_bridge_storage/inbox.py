"""A user's schedule inbox (RFC 6638 section 2.2): the iTIP messages the server delivered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from radicale import item as radicale_item
from radicale import storage
from sqlalchemy import and_, delete, literal, select

from caldav_bridge.caldav import paths
from caldav_bridge.db import locked
from caldav_bridge.domain import changelog
from caldav_bridge.domain.errors import NotAllowed
from caldav_bridge.domain.models import ScheduleMessage
from plugins.radicale_bridge_storage.base import Calendar

if TYPE_CHECKING:
    from plugins.radicale_bridge_storage import Storage


class InboxCalendar(Calendar):
    """A user's schedule inbox (RFC 6638 section 2.2): the iTIP messages the server delivered
    to them, which their client reads and deletes. Only the server writes into it."""

    def __init__(self, storage_: Storage, user_id: int, login: str) -> None:
        super().__init__(storage_, paths.stored([login, paths.INBOX]))
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
        message = and_(self._mine(), ScheduleMessage.href == href)
        with self._session(write=True) as session:
            current = session.scalar(locked(session, select(ScheduleMessage.etag).where(message)))
            if current is None:
                raise storage.ComponentNotFoundError(href)
            self._storage.check_conditions(current)
            session.execute(delete(ScheduleMessage).where(message))
            changelog.record(session, {self.calendar_key}, href, deleted=True)

"""The calendars that show interactions: a user's interactions calendar, a resource's
bookings, and the meetings a calendar a user made holds (``PlacedInteractions``). They serve
the text, ETag and time range the interaction service stored at write time; writes go
through ``ClientWrites`` and so through the interaction service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from radicale import item as radicale_item
from radicale import storage
from radicale.item import filter as radicale_filter
from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.caldav import paths
from caldav_bridge.caldav.client_writes import ClientWrites
from caldav_bridge.caldav.put import for_radicale
from caldav_bridge.db import locked
from caldav_bridge.domain import changelog, per_user, recurrence
from caldav_bridge.domain import queries as calendar_contents
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import NotAllowed, UidConflict
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, PerUserData, Resource, User
from caldav_bridge.ical import freebusy
from caldav_bridge.ical.mapping import series_of
from plugins.radicale_bridge_storage.base import (
    Calendar,
    http_date,
    moment,
    save_props,
    timestamp,
)

if TYPE_CHECKING:
    from plugins.radicale_bridge_storage import Storage
    from plugins.radicale_bridge_storage.stored import StoredCalendar

_PER_USER = PerUserData.__table__

# Properties of the projected calendars that clients may not change.
_FIXED = {"tag", "C:supported-calendar-component-set"}


class Projection(Calendar):
    """Interactions shown in a calendar; subclasses say which ones."""

    # Table columns, not ORM attributes: these classes are not mapped.
    _href = Interaction.__table__.c.href
    _uid = Interaction.__table__.c.uid
    _etag: Any = Interaction.__table__.c.etag
    _name = literal("VCALENDAR")
    _component = literal("VEVENT")
    _modified = Interaction.__table__.c.modified_at
    _text: Any = Interaction.__table__.c.ical

    # Whose copies the calendar shows, by the names they have there
    # (``calendar_contents.name_in``) and with that user's own data (``per_user``); None: the
    # shared ones.
    _user_id: int | None = None

    def _use_names_of(self, user_id: int) -> None:
        self._user_id = user_id
        self._href = calendar_contents.name_in(user_id)
        self._etag = func.coalesce(_PER_USER.c.etag, Interaction.__table__.c.etag)
        self._text = func.coalesce(_PER_USER.c.ical, Interaction.__table__.c.ical)

    def _with_copies(self, query: Any) -> Any:
        """``query`` joined to the calendar user's own data, when it shows their copies."""
        if self._user_id is None:
            return query
        return query.outerjoin(
            _PER_USER,
            and_(
                _PER_USER.c.interaction_id == Interaction.__table__.c.id,
                _PER_USER.c.user_id == self._user_id,
            ),
        )

    def _copy_of(self, session: Session, interaction: Interaction) -> tuple[str, str]:
        """The text and ETag of ``interaction`` as this calendar serves it."""
        if self._user_id is None:
            return interaction.ical, interaction.etag
        return per_user.copy_for(session, interaction, self._user_id)

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
        self._storage.check_conditions(self._copy_of(session, held)[1], f'"{held.schedule_tag}"')
        if held.uid != item.uid:
            raise UidConflict(
                f"{href} is another meeting (UID {held.uid!r}): a new event needs a name of its own"
            )
        return held

    def _listing(self) -> Any:
        query = select(
            self._href.label("href"),
            self._etag.label("etag"),
            Interaction.uid,
            literal("VCALENDAR").label("name"),
            literal("VEVENT").label("component"),
            Interaction.first_starts_at.label("start"),  # a recurring one: its whole span
            Interaction.last_ends_at.label("end"),
            Interaction.modified_at.label("modified"),
        ).where(self._visible())
        return self._with_copies(query)

    def _text_rows(self) -> Any:
        query = select(self._href.label("href"), self._text.label("ical"))
        return self._with_copies(query).where(self._visible())

    def _in_period(self, start: int, end: int) -> Any:
        return and_(
            Interaction.first_starts_at < moment(end),
            or_(
                Interaction.last_ends_at > moment(start),
                and_(
                    Interaction.last_ends_at == Interaction.first_starts_at,
                    Interaction.first_starts_at >= moment(start),
                ),
            ),
        )

    def _bounds(self, row: Any) -> tuple[int, int]:
        return timestamp(row.start), timestamp(row.end)

    def get_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[radicale_item.Item, bool]]:
        """A time range alone is decided here, occurrence by occurrence with the bounded
        expansion (Radicale's own would search a rule without bound)."""
        filters = list(filters)
        tag, start, end, simple = radicale_filter.simplify_prefilters(filters, self.tag)
        whole = (start, end) == (radicale_filter.TIMESTAMP_MIN, radicale_filter.TIMESTAMP_MAX)
        if not simple or whole or tag not in (None, "VEVENT"):
            yield from super().get_filtered(filters)
            return
        low, high = moment(start), moment(end)
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

    def _item_of(self, session: Session, interaction: Interaction) -> radicale_item.Item:
        """The item as stored, from the interaction just written."""
        start = timestamp(interaction.first_starts_at)
        end = timestamp(interaction.last_ends_at)
        text, etag = self._copy_of(session, interaction)
        return radicale_item.Item(
            collection=self._shown_in or self,
            href=self._name_of(interaction),
            text=text,
            etag=etag,
            uid=interaction.uid,
            name="VCALENDAR",
            component_name="VEVENT",
            time_range=(start, max(end, start + 1)),
            last_modified=http_date(interaction.modified_at),
        )

    def schedule_tags(self, hrefs: list[str]) -> dict[str, str]:
        """The Schedule-Tags of those of ``hrefs`` held here (RFC 6638 section 3.2.10)."""
        query = select(self._href, Interaction.schedule_tag).where(
            self._visible(), self._name_in(hrefs)
        )
        with self._session() as session:
            return {href: f'"{tag}"' for href, tag in session.execute(query)}

    def _set_props(self, props: dict[str, str]) -> None:
        self._meta = {**self._default_meta(), **props, **PROJECTED}

    def get_meta(self, key: str | None = None) -> Any:
        return dict(self._meta) if key is None else self._meta.get(key)

    def _default_meta(self) -> dict[str, str]:
        raise NotImplementedError

    def set_meta(self, props: Mapping[str, str]) -> None:
        props = {k: v for k, v in props.items() if k not in _FIXED}
        with self._session(write=True) as session:
            save_props(session, self.path, props)
        self._set_props(props)


PROJECTED = {"tag": "VCALENDAR", "C:supported-calendar-component-set": "VEVENT"}


class InteractionsCalendar(Projection):
    def __init__(
        self, storage_: Storage, user_id: int, login: str, name: str, props: dict[str, str]
    ) -> None:
        super().__init__(storage_, paths.stored([login, paths.INTERACTIONS]))
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
            # The organizer's event is kept as their client wrote it (``keep_source``), read as
            # Radicale reads it (``for_radicale``), not as Radicale re-serialises it (vobject
            # cuts a VALUE=URI value at its first comma).
            sent, self._storage.request.sent = self._storage.request.sent, None
            text = for_radicale(sent) if sent else item.serialize()
            interaction = ClientWrites(service).put(actor, href, text, None, held)
            # Saved cancelled, it leaves the calendar: the client's next sync says so.
            stored = self._item_of(session, interaction)
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


class BookingsCalendar(Projection):
    def __init__(
        self, storage_: Storage, resource_id: int, slug: str, name: str, props: dict[str, str]
    ) -> None:
        super().__init__(storage_, paths.stored([slug, paths.BOOKINGS]))
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


class PlacedInteractions(Projection):
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

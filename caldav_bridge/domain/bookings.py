"""Rooms and other resources booked by interactions: never two bookings of one resource at
once, checked per occurrence at any date; a client's room attendee answered at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, select

from caldav_bridge.domain import changelog, recurrence, rules
from caldav_bridge.domain.errors import AlreadyExists, BookingConflict, NotAllowed, NotFound
from caldav_bridge.domain.models import (
    Booking,
    Interaction,
    InteractionStatus,
    Resource,
    User,
)
from caldav_bridge.domain.outbox import describe_when
from caldav_bridge.domain.queries import of_resource
from caldav_bridge.domain.recurrence import Series
from caldav_bridge.domain.service import ServiceBase, one_change
from caldav_bridge.ical.mapping import series_of


def taking_time(start: datetime, end: datetime) -> ColumnElement[bool]:
    """The interactions that may take their people and rooms during [start, end): not
    cancelled, their span (first start to last end) overlapping it. Which occurrences do is
    for the caller (``recurrence``)."""
    return and_(
        Interaction.status != InteractionStatus.CANCELLED,
        Interaction.first_starts_at < end,
        Interaction.last_ends_at > start,
    )


def room_taken(resource_id: int, start: datetime, end: datetime) -> ColumnElement[bool]:
    """The room-busy query, for the booking check and free-busy alike: the interactions the
    resource is booked for (not those it declined) that may take it during [start, end)."""
    return and_(of_resource(resource_id), taking_time(start, end))


class Bookings(ServiceBase):
    """The service's commands on resources."""

    @one_change
    def book(self, actor: User, interaction: Interaction, resource: Resource) -> None:
        """Book a resource; an overlapping booking is refused with the conflicting interaction."""
        self._require_bookable(actor, interaction, resource)
        existing = self._find_booking(interaction, resource)
        if existing is not None and not existing.declined:
            raise AlreadyExists(f"{resource.name} is already booked by this interaction")
        self._check_free(resource, series_of(interaction), interaction)
        self._take(interaction, resource, existing)

    @one_change
    def ask_room(self, actor: User, interaction: Interaction, resource: Resource) -> bool:
        """A calendar client's room attendee: the room answers at once, ACCEPTED (booked) when
        it is free and DECLINED (kept, holding nothing) when it is not. Returns the answer."""
        self._require_bookable(actor, interaction, resource)
        existing = self._find_booking(interaction, resource)
        if existing is not None and not existing.declined:
            return True
        try:
            self._check_free(resource, series_of(interaction), interaction)
        except BookingConflict:
            if existing is None:
                interaction.bookings.append(Booking(resource=resource, declined=True))
                self.session.flush()
                self._updated(interaction, reschedule=False)
            return False
        self._take(interaction, resource, existing)
        return True

    def _take(self, interaction: Interaction, resource: Resource, existing: Booking | None) -> None:
        """The resource held by the interaction (its declined booking taken back, if any)."""
        if existing is not None:
            existing.declined = False
        else:
            interaction.bookings.append(Booking(resource=resource))
        self.session.flush()
        self._updated(interaction, reschedule=True)

    @one_change
    def release(self, actor: User, interaction: Interaction, resource: Resource) -> None:
        rules.require_owner(actor, interaction)
        booking = self._find_booking(interaction, resource)
        if booking is None:
            raise NotFound(f"{resource.name} is not booked by interaction #{interaction.id}")
        interaction.bookings.remove(booking)
        self.session.flush()
        changelog.record(
            self.session, {changelog.resource_calendar(resource.id)}, interaction.href, True
        )
        self._updated(interaction, reschedule=not interaction.cancelled and not booking.declined)

    def _require_bookable(self, actor: User, interaction: Interaction, resource: Resource) -> None:
        rules.require_owner(actor, interaction)
        rules.require_open(interaction)
        if not resource.active:
            raise NotAllowed(f"{resource.name} is inactive and cannot be booked")

    def _find_booking(self, interaction: Interaction, resource: Resource) -> Booking | None:
        return next((b for b in interaction.bookings if b.resource_id == resource.id), None)

    def _rooms_for(self, interaction: Interaction, series: Series, rooms_answer: bool) -> None:
        """Check (or, with ``rooms_answer``, let answer) every room for new times."""
        self.hold_resources(booking.resource for booking in interaction.bookings)
        if not rooms_answer:
            for booking in interaction.bookings:
                if not booking.declined:
                    self._check_free(booking.resource, series, interaction)
            return
        for booking in interaction.bookings:
            free = self._conflict(booking.resource, series, interaction) is None
            if free == booking.declined:
                booking.declined = not free
                if not free:  # it leaves the room's calendar
                    room = changelog.resource_calendar(booking.resource_id)
                    changelog.record(self.session, {room}, interaction.href, True)

    def _check_free(self, resource: Resource, series: Series, interaction: Interaction) -> None:
        other = self._conflict(resource, series, interaction)
        if other is not None:
            when = describe_when(other, other.timezone)
            raise BookingConflict(resource.name, other.id, other.subject, when)

    def _conflict(
        self, resource: Resource, series: Series, interaction: Interaction
    ) -> Interaction | None:
        """The first other interaction holding ``resource`` during one of the occurrences of
        ``series``, at any date (``recurrence.collide``), if any."""
        self.hold_resources([resource])  # bookings of this resource, one after the other
        first, last = recurrence.span(series)
        candidates = self.session.scalars(
            select(Interaction)
            .where(room_taken(resource.id, first, last), Interaction.id != interaction.id)
            .order_by(Interaction.starts_at)
        )
        for other in candidates:
            if recurrence.collide(series, series_of(other)):
                return other
        return None

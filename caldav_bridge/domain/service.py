"""What every command of the interaction service shares: one change at a time (each
interaction rendered and logged once, SEQUENCE bumped at most once, each person told once), the
locks every change takes in one order, and the telling of attendees.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.config import DEFAULT_PUBLIC_URL
from caldav_bridge.db import locked
from caldav_bridge.domain import changelog, per_user, recurrence
from caldav_bridge.domain import settings as crm_settings
from caldav_bridge.domain.errors import NotFound
from caldav_bridge.domain.models import (
    Booking,
    Interaction,
    InteractionLink,
    NotificationKind,
    Resource,
    User,
    utcnow,
)
from caldav_bridge.domain.outbox import Notifier
from caldav_bridge.domain.queries import name_of
from caldav_bridge.ical.mapping import interaction_ical

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="ServiceBase")


def one_change(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """A command that runs inside ``ServiceBase.one_change``, within the recurrence budget."""

    def in_one_change(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with recurrence.budget(), self.one_change():
            return method(self, *args, **kwargs)

    functools.update_wrapper(in_one_change, method)
    return in_one_change


# What every caller of the service reads: owner, linked users and bookings in three queries.
LOADED = (
    selectinload(Interaction.owner).selectinload(User.emails),
    selectinload(Interaction.links).selectinload(InteractionLink.user).selectinload(User.emails),
    selectinload(Interaction.bookings).selectinload(Booking.resource),
    selectinload(Interaction.guests),
)


class ServiceBase:
    def __init__(self, session: Session, public_url: str = DEFAULT_PUBLIC_URL) -> None:
        self.session = session
        self.notifier = Notifier(session, public_url)
        self._depth = 0  # nesting of one_change()
        self._touched: dict[int, Interaction] = {}  # to publish when the change ends
        self._organizer_changed: set[int] = set()  # their Schedule-Tag changes
        self._created: set[int] = set()
        self._bumped: set[int] = set()

    # ------------------------------------------------------------------ one change

    @contextmanager
    def one_change(self) -> Iterator[None]:
        """Several calls that make one change (a client's PUT that edits, books and links):
        each interaction is rendered and logged once at the end, its SEQUENCE grows at most
        once (not at all when it was created in the change), and each person gets one
        notice. Every changing method below runs inside one."""
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if not self._depth:
                self._forget()
            raise
        self._depth -= 1
        if not self._depth:
            for interaction in self._touched.values():
                if interaction.id in self._organizer_changed:
                    interaction.schedule_tag += 1
                self._render_and_log(interaction)
            self.notifier.flush()
            self._forget()

    def _forget(self) -> None:
        self._touched.clear()
        self._organizer_changed.clear()
        self._created.clear()
        self._bumped.clear()
        self.notifier.discard()

    # ------------------------------------------------------------------ settings

    def multi_user_enabled(self) -> bool:
        return crm_settings.get_flag(self.session, crm_settings.MULTI_USER)

    # ------------------------------------------------------------------ reading

    def get(self, interaction_id: int) -> Interaction:
        query = select(Interaction).where(Interaction.id == interaction_id).options(*LOADED)
        interaction = self.session.scalar(locked(self.session, query))
        if interaction is None:
            raise NotFound(f"no interaction #{interaction_id}")
        return interaction

    def find_by_uid(self, uid: str) -> Interaction | None:
        query = select(Interaction).where(Interaction.uid == uid).options(*LOADED)
        return self.session.scalar(locked(self.session, query))

    def hold_resources(self, resources: Iterable[Resource]) -> None:
        """Lock the rows of ``resources`` for the rest of the transaction, in the one order
        every change takes its locks in, so that no two changes wait on each other: first the
        interaction's row (``get``, ``find_by_uid``), then its resources all at once, by
        ascending id, then, last, the change log of its calendars (``changelog``). A change
        that will look at several resources holds them all here before the first: taken one
        by one as an event names them, two events naming two rooms in opposite orders
        deadlocked. On SQLite the writing transaction holds the database's one write lock."""
        ids = sorted({resource.id for resource in resources})
        if ids:
            self.session.execute(
                select(Resource.id)
                .where(Resource.id.in_(ids))
                .order_by(Resource.id)
                .with_for_update()
            )

    def _find_link(self, interaction: Interaction, user: User) -> InteractionLink | None:
        return next((k for k in interaction.links if k.user_id == user.id), None)

    def _updated(
        self,
        interaction: Interaction,
        reschedule: bool,
        kind: NotificationKind = NotificationKind.UPDATE,
    ) -> None:
        """An owner's change: SEQUENCE grows for time, place and cancellation; every attendee
        is told, those who declined too (RFC 6638 3.2.1.2: they may change their mind, and
        their client must show the new time or the cancellation), their answer kept."""
        if reschedule and interaction.id not in self._created | self._bumped:
            interaction.sequence += 1
            self._bumped.add(interaction.id)
        interaction.modified_at = utcnow()
        self.publish(interaction)
        for link in interaction.links:
            self._tell(interaction, link, kind, not link.client_scheduled)
        for guest in interaction.guests:
            self.notifier.to_attendee(interaction, guest, kind, not guest.client_scheduled)

    def _tell(
        self, interaction: Interaction, link: InteractionLink, kind: NotificationKind, itip: bool
    ) -> None:
        """Tell a linked user of the organizer's change. A scheduling message delivered to one
        who took the event out of their calendar puts it back there, with their answer
        (Declined) kept: RFC 6638 4.3, the server creates an attendee's copy when they have
        none. A cancellation leaves every calendar anyway."""
        if itip and link.removed and kind is not NotificationKind.CANCELLATION:
            link.removed = False
            self.publish(interaction, by_organizer=False)
        self.notifier.to_attendee(interaction, link.user, kind, itip)

    def publish(self, interaction: Interaction, by_organizer: bool = True) -> None:
        """Render the new content and log it in every calendar that shows it: now, or when
        the current change ends.

        Every change above ends here; a bulk loader that builds interactions itself (the
        benchmark's data sets) calls it too. A cancelled interaction leaves every calendar
        (clients see a deletion); the CRM keeps it.
        """
        if self._depth:
            self._touched[interaction.id] = interaction
            if by_organizer:
                self._organizer_changed.add(interaction.id)
        else:
            self._render_and_log(interaction)

    def _render_and_log(self, interaction: Interaction) -> None:
        interaction.ical = interaction_ical(interaction)
        interaction.etag = per_user.etag_of(interaction.ical)
        per_user.render_all(self.session, interaction)
        calendars = {
            changelog.holding(k.user_id, k.calendar_id) for k in interaction.links if not k.removed
        }
        calendars.update(
            changelog.resource_calendar(b.resource_id)
            for b in interaction.bookings
            if not b.declined
        )
        owner = changelog.holding(interaction.owner_id, interaction.calendar_id)
        own_name = name_of(interaction, interaction.owner_id)
        changelog.record_items(
            self.session,
            sorted({(owner, own_name), *((c, interaction.href) for c in calendars)}),
            interaction.cancelled,
        )

"""Which interactions each calendar shows: a user's interactions calendar and a room's bookings
calendar, as CalDAV serves them and as their ICS feeds publish them (one rule for both)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select, union

from caldav_bridge.models import Booking, Interaction, InteractionLink, InteractionStatus


def of_user(user_id: int) -> Any:
    """Those the user owns or is linked to, unless they took it out of their calendar."""
    # A union of two index lookups: an OR across the tables would scan every interaction.
    owned = select(Interaction.id).where(Interaction.owner_id == user_id)
    linked = select(InteractionLink.interaction_id).where(
        InteractionLink.user_id == user_id, InteractionLink.removed.is_(False)
    )
    return Interaction.id.in_(union(owned, linked))


def of_resource(resource_id: int) -> Any:
    """Those the resource is booked for (not those it declined)."""
    booked = select(Booking.interaction_id).where(
        Booking.resource_id == resource_id, Booking.declined.is_(False)
    )
    return Interaction.id.in_(booked)


def shown(which: Any) -> Any:
    """Of ``which``, those a calendar shows: a cancelled interaction leaves every calendar."""
    return and_(which, Interaction.status != InteractionStatus.CANCELLED)

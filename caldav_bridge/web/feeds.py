"""ICS feeds: a read-only subscription per user and per room at a secret URL, for clients
without CalDAV (Outlook desktop, web calendars' "subscribe from URL").

A feed holds what the CalDAV calendar shows (``calendar_contents``; of a PRIVATE or
CONFIDENTIAL meeting, what a bookings calendar shows: a feed is read by whoever has its URL), as
one VCALENDAR with REFRESH-INTERVAL (RFC 7986) and X-PUBLISHED-TTL (Outlook's name for it). Its
ETag comes from the items' ETags, so a client's If-None-Match is answered 304 without
rendering anything.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

from icalendar import Calendar, vDuration
from sqlalchemy import select
from sqlalchemy.orm import Session

from caldav_bridge.domain import queries as calendar_contents
from caldav_bridge.domain.models import Interaction, User
from caldav_bridge.domain.tokens import FeedSubject
from caldav_bridge.ical import timezones
from caldav_bridge.ical.mapping import PRODID

REFRESH = timedelta(minutes=15)


def title(subject: FeedSubject) -> str:
    if isinstance(subject, User):
        return f"{subject.display_name}: CRM interactions"
    return f"{subject.name} bookings"


def _shown(subject: FeedSubject) -> Any:
    if isinstance(subject, User):
        return calendar_contents.shown(calendar_contents.of_user(subject.id))
    return calendar_contents.shown(calendar_contents.of_resource(subject.id))


def etag(session: Session, subject: FeedSubject) -> str:
    """Changes whenever an item of the feed, or its title, does."""
    digest = hashlib.sha256(title(subject).encode())
    query = select(Interaction.etag).where(_shown(subject)).order_by(Interaction.id)
    for item_etag in session.scalars(query):
        digest.update(item_etag.encode())
    return f'"{digest.hexdigest()[:40]}"'


def body(session: Session, subject: FeedSubject) -> bytes:
    feed = Calendar()
    feed.add("prodid", PRODID)
    feed.add("version", "2.0")
    feed.add("calscale", "GREGORIAN")
    feed.add("name", title(subject))
    feed.add("x-wr-calname", title(subject))
    feed.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    feed.add("x-published-ttl", vDuration(REFRESH))
    zones: dict[str, date] = {}  # TZID: the first day it is needed
    events = []
    query = select(Interaction.etag, Interaction.ical).where(_shown(subject))
    for item_etag, ical in session.execute(query.order_by(Interaction.starts_at)):
        room = not isinstance(subject, User)  # its feed holds what its bookings calendar shows
        text = calendar_contents.booking_text(item_etag, ical) if room else ical
        calendar = Calendar.from_ical(text)
        if not room and calendar_contents.restricted(calendar):
            # Anyone holding the feed's URL reads it: a PRIVATE or CONFIDENTIAL meeting shows
            # what a bookings calendar shows of it (``queries.shown_summary``).
            calendar = Calendar.from_ical(calendar_contents.booking_text(item_etag, ical))
        for component in calendar.subcomponents:
            if component.name != "VTIMEZONE":
                events.append(component)
                start = component.get("DTSTART")
                tzid = str(start.params.get("TZID", "")) if start is not None else ""
                if tzid and tzid not in zones:
                    zones[tzid] = start.dt
    for tzid, first in zones.items():  # valid for every event of the feed, not only the first
        feed.add_component(timezones.vtimezone(tzid, first))
    for event in events:
        feed.add_component(event)
    return bytes(feed.to_ical())

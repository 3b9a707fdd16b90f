"""POST: a free-busy request to the user's own schedule outbox (RFC 6638 section 5), answered
by the CRM's free-busy rule and what the calendars the user made hold; every other POST is
Radicale's."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # builds XML only; requests are parsed with defusedxml
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from icalendar import Calendar, vCalAddress
from radicale import httputils, types
from radicale.app import report as radicale_report
from radicale.app.post import ApplicationPartPost
from sqlalchemy.orm import Session

from caldav_bridge.caldav import multistatus, paths
from caldav_bridge.caldav.base import Part, buffered, text
from caldav_bridge.caldav.multistatus import C
from caldav_bridge.caldav.scheduling import principals_by_addresses
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import CalDavPrecondition, InvalidInput
from caldav_bridge.domain.models import User
from caldav_bridge.ical import freebusy
from caldav_bridge.ical.mapping import addresses_of, normalize_address

# Bounds of one free-busy request (RFC 6638 section 5 leaves them to the server), refused with
# the limit named: the range, the attendees (each address counts once), and the busy periods
# and calendar items the answers may gather, which stops the work where it would pass them.
LONGEST_RANGE = timedelta(days=400)
MAX_ATTENDEES = 100
MAX_WORK = 50_000


# ---------------------------------------------------------------------------- the outbox


def freebusy_request(text: str, sender: User) -> tuple[Calendar, datetime, datetime]:
    """A free-busy request POSTed to ``sender``'s outbox (RFC 6638 section 5), checked."""
    try:
        calendar = Calendar.from_ical(text)
    except ValueError as exc:
        raise InvalidInput(f"malformed iCalendar: {exc}") from exc
    method = str(calendar.get("METHOD", "")).upper()
    requests = list(calendar.walk("VFREEBUSY"))
    if method != "REQUEST" or len(requests) != 1:
        raise CalDavPrecondition(
            "C:valid-calendar-data",
            "the outbox takes free-busy requests (METHOD:REQUEST with one VFREEBUSY): events "
            "are scheduled by the server when they are saved",
        )
    request = requests[0]
    organizer = request.get("ORGANIZER")
    if organizer is None or normalize_address(organizer) not in addresses_of(sender):
        raise CalDavPrecondition(
            "C:organizer-allowed", "the request's ORGANIZER must be one of your addresses"
        )
    try:
        start = as_utc(request.decoded("DTSTART"))
        end = as_utc(request.decoded("DTEND"))
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput("a free-busy request needs DTSTART and DTEND date-times") from exc
    check_range(start, end)
    if not request.get("ATTENDEE"):
        raise InvalidInput("a free-busy request names at least one ATTENDEE")
    if len(attendees_of(calendar)) > MAX_ATTENDEES:
        raise InvalidInput(f"a free-busy request names at most {MAX_ATTENDEES} attendees")
    return calendar, start, end


def check_range(start: datetime, end: datetime) -> None:
    if not start < end or end - start > LONGEST_RANGE:
        raise InvalidInput(
            f"the free-busy range must end after it starts and span at most "
            f"{LONGEST_RANGE.days} days"
        )


class Budget:
    """The work one free-busy request may cause: busy periods gathered and calendar items
    read. Spending past it refuses the request, with the limit named."""

    def __init__(self) -> None:
        self.units = self.left = MAX_WORK

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise InvalidInput(
                f"the free-busy request would gather more than {self.units} busy periods and "
                "calendar items: ask about fewer attendees or a shorter range"
            )


def as_utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("not a date-time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def attendees_of(calendar: Calendar) -> list[vCalAddress]:
    """The request's attendees, each address once (the first time it is named)."""
    found = calendar.walk("VFREEBUSY")[0].get("ATTENDEE")
    unique: dict[str, vCalAddress] = {}
    for attendee in found if isinstance(found, list) else [found]:
        unique.setdefault(normalize_address(attendee), attendee)
    return list(unique.values())


OwnBusy = Callable[[User, datetime, datetime, Budget], list[freebusy.Busy]]


def freebusy_answers(
    session: Session,
    calendar: Calendar,
    start: datetime,
    end: datetime,
    own_calendars: OwnBusy,
    budget: Budget | None = None,
) -> list[tuple[str, str, str | None]]:
    """Each recipient's answer to a free-busy request: their VFREEBUSY reply, or why not.
    ``own_calendars`` adds what a user's calendars of their own hold."""
    budget = budget or Budget()
    request = calendar.walk("VFREEBUSY")[0]
    attendees = attendees_of(calendar)
    principals = principals_by_addresses(session, [str(a) for a in attendees])
    answers: list[tuple[str, str, str | None]] = []
    for attendee in attendees:
        who = principals.get(normalize_address(attendee))
        if who is None:
            answers.append((str(attendee), "3.7;Invalid calendar user", None))
            continue
        if who.user is not None:
            periods = freebusy.busy_user(session, who.user, start, end)
            budget.spend(len(periods))
            periods += own_calendars(who.user, start, end, budget)
        else:
            assert who.resource is not None
            periods = freebusy.busy_resource(session, who.resource, start, end)
            budget.spend(len(periods))
        reply = freebusy.vfreebusy(
            periods,
            start,
            end,
            method="REPLY",
            uid=str(request.get("UID", "")) or None,
            organizer=request.get("ORGANIZER"),
            attendee=attendee,
        )
        answers.append((str(attendee), "2.0;Success", reply))
    return answers


class PostPart(Part, ApplicationPartPost):
    def do_POST(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """A free-busy request POSTed to the user's own schedule outbox (RFC 6638 section
        5); every other POST is Radicale's."""
        place = paths.Place.of(path)
        if place.schedule_box != paths.OUTBOX:
            return super().do_POST(environ, base_prefix, path, user, user_groups, request_info)
        if not user:  # Radicale answers 401 with the authentication challenge
            return httputils.NOT_ALLOWED
        if place.home != user:
            return text(HTTPStatus.FORBIDDEN, "you can only post to your own schedule outbox")
        raw, _ = buffered(environ)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return text(HTTPStatus.BAD_REQUEST, "the body is not valid UTF-8")
        with self.database_session() as session:
            sender = Directory(session).user(user)
            calendar, start, end = freebusy_request(body, sender)
            answers = freebusy_answers(session, calendar, start, end, self._own_busy)
        response = multistatus.schedule_response(answers)
        return 200, {"Content-Type": multistatus.CONTENT_TYPE}, response, None

    def _own_busy(
        self, user: User, start: datetime, end: datetime, budget: Budget
    ) -> list[freebusy.Busy]:
        """What the calendars a user made themselves hold, by Radicale's free-busy rules
        (recurrences expanded, transparent and cancelled events left out)."""
        periods: list[freebusy.Busy] = []
        for calendar in self._bridge_storage.own_calendars(user.login):
            for item, _ in calendar.stored_filtered([_time_filter(start, end)]):
                budget.spend(1)
                try:
                    found = radicale_report.freebusy_periods(item, start, end, _MAX_OCCURRENCES)
                except ValueError:  # too many occurrences to list: busy all along, to be safe
                    found = [(start, end, freebusy.BUSY)]
                budget.spend(len(found))
                periods += [
                    freebusy.Busy(as_utc(first), as_utc(last), kind)
                    for first, last, kind in found
                    if kind != "FREE"
                ]
        return periods


_MAX_OCCURRENCES = 10_000


def _time_filter(start: datetime, end: datetime) -> ET.Element:
    """A calendar-query filter for events overlapping [start, end), as Radicale reads it."""
    stamp = "%Y%m%dT%H%M%SZ"
    root = ET.Element(f"{{{C}}}filter")
    calendar = ET.SubElement(root, f"{{{C}}}comp-filter", name="VCALENDAR")
    event = ET.SubElement(calendar, f"{{{C}}}comp-filter", name="VEVENT")
    ET.SubElement(event, f"{{{C}}}time-range", start=start.strftime(stamp), end=end.strftime(stamp))
    return root

"""PUT: Radicale's, once the object is checked (what Radicale would refuse without a reason, or
not at all) and its TEXT values escaped; a meeting's answer carries its Schedule-Tag, and its
stored representation when the client prefers it (RFC 7240)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from icalendar import Calendar, Component
from icalendar.parser import Contentline, Contentlines
from icalendar.prop import vText, vUnknown
from radicale import httputils, types
from radicale import item as radicale_item
from radicale.app.put import ApplicationPartPut, prepare
from sqlalchemy import select

from caldav_bridge.caldav import headers, multistatus, paths
from caldav_bridge.caldav.base import BridgeStorage, buffered, fields, text, with_body
from caldav_bridge.caldav.scheduling import SchedulingPart
from caldav_bridge.domain import per_user, recurrence, validation
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.models import Interaction, User

_MAX_ATTENDEES = 500
_MAX_NESTING = 4  # VCALENDAR > VEVENT > VALARM, VTIMEZONE > STANDARD: never deeper


class _NotOneObject(InvalidInput):
    """What breaks RFC 4791 4.1's rules for one calendar object resource."""


def _nesting(component: Any, depth: int = 1) -> int:
    if depth > _MAX_NESTING:
        return depth
    return max([depth, *(_nesting(sub, depth + 1) for sub in component.subcomponents)])


def _check_component(component: Component, uids: set[str]) -> None:
    """Refuse what one component holds that no calendar may; gather its UID in ``uids``."""
    for name, error in component.errors:
        raise InvalidInput(f"{component.name} {name}: {error}")
    if component.name in ("VEVENT", "VTODO", "VJOURNAL"):
        if "UID" not in component:
            raise InvalidInput(f"a {component.name} has no UID")
        uids.add(validation.uid(str(component["UID"]), f"the UID of a {component.name}"))
        attendees = component.get("ATTENDEE", [])
        attendees = attendees if isinstance(attendees, list) else [attendees]
        if len(attendees) > _MAX_ATTENDEES:
            raise InvalidInput(f"an event has at most {_MAX_ATTENDEES} attendees")
        if any(not str(a).strip() for a in [*attendees, component.get("ORGANIZER", "x")]):
            raise InvalidInput("an ATTENDEE or the ORGANIZER has no address")
    if component.name == "VEVENT" and "DTSTART" in component and "DTEND" in component:
        start, end = component.decoded("DTSTART"), component.decoded("DTEND")
        floating = {getattr(m, "tzinfo", None) is None for m in (start, end)}
        if type(start) is type(end) and len(floating) == 1 and end < start:
            raise InvalidInput("the event ends (DTEND) before it starts (DTSTART)")


def _check_recurrence(component: Component) -> None:
    """Refuse an invalid or runaway RRULE, before Radicale expands it, in any calendar."""
    found = component.get("RRULE")
    for rule in found if isinstance(found, list) else [found] if found is not None else []:
        value = rule.to_ical()
        rule_text = value.decode() if isinstance(value, bytes) else value
        stored = recurrence.checked_rule(rule_text, "UTC")
        if "DTSTART" in component:
            recurrence.check_object_rule(stored, component.decoded("DTSTART"))


def _check_rules(calendar: Calendar, one_object: bool = True, own: bool = False) -> None:
    """Refuse, with a reason, what Radicale would refuse without one (or not at all): values
    that are not what they claim (February 30), components without a UID or with several,
    an end before the start, nesting no calendar has, an invalid or runaway RRULE, too many
    attendees, and occurrences (RECURRENCE-ID) sent without their series, except in a
    calendar of the user's ``own`` (an invitation from outside to one occurrence is kept
    there). A whole calendar (a PUT on a collection: ``one_object`` False) may hold many
    UIDs."""
    if _nesting(calendar) > _MAX_NESTING:
        raise InvalidInput(f"components are nested more than {_MAX_NESTING} deep")
    uids: set[str] = set()
    for component in calendar.walk():
        _check_component(component, uids)
    if one_object and len(uids) > 1:
        raise _NotOneObject("one calendar object holds one UID (RFC 4791 4.1): send one each")
    events = calendar.walk("VEVENT")
    if events and not own and all("RECURRENCE-ID" in e for e in events):
        raise _NotOneObject(
            "the object holds single occurrences (RECURRENCE-ID) without their series: "
            "send the whole recurring event"
        )
    for component in calendar.walk():
        _check_recurrence(component)


# TEXT properties whose commas separate values (RFC 5545 3.8.1.10, 3.8.8.3; CATEGORIES is
# typed as a list by icalendar already): their commas are left as they are.
_TEXT_LISTS = frozenset({"RESOURCES", "REQUEST-STATUS"})
_TEXT_TYPES = (vText, vUnknown)  # an X- or unknown property's value is TEXT (RFC 5545 3.8.8)
# What a content line (name, parameters, raw value, the line) is rewritten as, or None.
LineRewrite = Callable[[str, Any, str, Contentline], Contentline | None]


def _texts_escaped(text: str) -> str:
    """``text`` with each TEXT value escaped as RFC 5545 (3.3.11) writes it.

    A comma left unescaped in a single TEXT value (``SUMMARY:Dentist, then lunch``) breaks
    the RFC, but icalendar and calendar clients read the value whole; vobject, which Radicale
    parses a PUT with, reads it as a list and keeps its first item (``Dentist``), in every
    property it does not know as a list (UID and X- properties included). Escaped here, before
    Radicale reads the body, every reader sees the whole value, in the interactions calendar
    and in one's own calendars. Lines without a comma, and values of other types, are left
    as they came."""
    return _rewritten(text, ",", _text_escaped)


def _text_escaped(name: str, params: Any, raw: str, line: Contentline) -> Contentline | None:
    try:
        value = line.parts()[2]
    except ValueError:  # not a content line: Radicale says so
        return None
    kind = Component.types_factory.for_property(name, params.get("VALUE"))
    if name.upper() in _TEXT_LISTS or kind not in _TEXT_TYPES:
        return None
    if vText(value).to_ical().decode() == raw:
        return None
    escaped: Contentline = Contentline.from_parts(name, params, vText(value), sorted=False)
    return escaped


def _rewritten(text: str, mark: str, rewrite: LineRewrite) -> str:
    """``text`` with each content line holding ``mark`` replaced by what ``rewrite`` makes of
    its name, parameters, raw value and itself, where it makes one; ``text`` when none."""
    if mark not in text:
        return text
    lines = Contentlines.from_ical(text)  # type: ignore[no-untyped-call]
    changed = False
    for index, line in enumerate(lines):
        if mark not in line:
            continue
        try:
            name, params, raw = line.raw_parts()
        except ValueError:  # not a content line: Radicale says so
            continue
        rewritten = rewrite(name, params, raw, line)
        if rewritten is not None:
            lines[index], changed = rewritten, True
    return str(lines.to_ical().decode()) if changed else text


# A property's name: what precedes its parameters or value.
_NAME = re.compile(r"[^;:]*")
# LAST-MODIFIED is a UTC date-time (RFC 5545 3.8.7.3); Apple iCal 5 wrote a bare date.
_BARE_DATE_MODIFIED = re.compile(r"^(LAST-MODIFIED(?:;[^:\r\n]*)?:)([0-9]{8})(\r?$)", re.M | re.I)


_ZONE_RULES = frozenset({"STANDARD", "DAYLIGHT"})


def _components_readable(text: str) -> str:
    """``text`` without the DURATION of a component that has a DTEND too (Thunderbird writes
    both in invitations; RFC 5545 allows one): the DTEND counts, as it does for the clients
    that write both (a VALARM's DURATION, its repeat interval, is its own component's); and
    with a time zone rule's DTSTART written as a date (Evolution) read as that day's midnight,
    the local time RFC 5545 3.6.5 asks for."""
    upper = text.upper()
    both = "DURATION" in upper and "DTEND" in upper
    if not both and ("VALUE=DATE:" not in upper or "VTIMEZONE" not in upper):
        return text
    lines = Contentlines.from_ical(text)  # type: ignore[no-untyped-call]
    scopes: list[tuple[str, dict[str, list[int]]]] = []
    dropped: set[int] = set()
    for index, line in enumerate(lines):
        match = _NAME.match(line)
        name = match.group().upper() if match else ""
        if name == "BEGIN":
            scopes.append((line[6:].strip().upper(), {}))
        elif name == "END" and scopes:
            component, seen = scopes.pop()
            if "DTEND" in seen:
                dropped.update(seen.get("DURATION", []))
            for at in seen.get("DTSTART", []) if component in _ZONE_RULES else []:
                midnight = _ZONE_DATE.sub(r"DTSTART:\1T000000", lines[at])
                lines[at] = Contentline(midnight)  # type: ignore[no-untyped-call]
        elif scopes:
            scopes[-1][1].setdefault(name, []).append(index)
    kept = Contentlines(line for index, line in enumerate(lines) if index not in dropped)
    return str(kept.to_ical().decode())  # type: ignore[no-untyped-call]


# A time zone rule's DTSTART written as a date.
_ZONE_DATE = re.compile(r"^DTSTART;VALUE=DATE:([0-9]{8})$", re.I)


def _parameters_quoted(text: str) -> str:
    """``text`` with a parameter value Apple wrote with ``\\;`` for a semicolon (the X-TITLE
    of X-APPLE-STRUCTURED-LOCATION; RFC 5545 3.2 has no escapes there, and vobject cannot
    read the line) written quoted, as RFC 5545 writes a value with a semicolon."""
    return _rewritten(text, "\\;", _parameter_quoted)


def _parameter_quoted(name: str, params: Any, raw: str, line: Contentline) -> Contentline | None:
    if "\\" not in line[: len(line) - len(raw) - 1]:
        return None
    quoted = Contentline.from_parts(name, params, "", sorted=False)
    return Contentline(f"{quoted}{raw}")  # type: ignore[no-untyped-call]


def for_radicale(text: str) -> str:
    """The text Radicale (vobject) reads of what a client wrote, which is stored and served
    as the client wrote it: TEXT values escaped (``_texts_escaped``), parameter values with
    a semicolon quoted (``_parameters_quoted``), a DURATION beside a DTEND left out and a
    zone rule's date read as its midnight (``_components_readable``), a bare-date
    LAST-MODIFIED read as that day's midnight UTC. Each is what the client meant; vobject
    refuses or cuts them as written."""
    text = _components_readable(_parameters_quoted(_texts_escaped(text)))
    return _BARE_DATE_MODIFIED.sub(r"\1\2T000000Z\3", text)


# The control characters Radicale takes out of what it reads (iCalendar has none, RFC 5545
# 3.1; a database keeps no NUL): out of the text stored as the client wrote it too.
_CONTROLS = re.compile(r"[\x00-\x08\x0B\x0C\x0E-\x1F]")


# What a calendar object's body starts with when a client sent a component without the
# VCALENDAR around it.
_BARE = re.compile(r"BEGIN:(VEVENT|VTODO|VJOURNAL|VFREEBUSY|VTIMEZONE)\b", re.I)


def _refused(element: str, reason: str) -> types.WSGIResponse:
    """400 with the CalDAV precondition refused and the reason (RFC 4791 5.3.2.1)."""
    return 400, {"Content-Type": multistatus.CONTENT_TYPE}, multistatus.error(element, reason), None


def _calendar_refusal(body: str, whole: bool, own: bool) -> types.WSGIResponse | None:
    """The answer to a calendar body the bridge refuses before Radicale reads it, or None;
    ``own``: a calendar of the user's own, where single occurrences may stand alone."""
    start = body.lstrip()
    bare = _BARE.match(start)
    if bare:
        return _refused(
            "C:valid-calendar-data",
            f"the body is a {bare.group(1).upper()} without the VCALENDAR around it: a calendar "
            "object is a whole iCalendar object (BEGIN:VCALENDAR ... END:VCALENDAR, RFC 5545 3.4)",
        )
    if not start.upper().startswith("BEGIN:VCALENDAR"):
        return None
    try:
        _check_rules(Calendar.from_ical(body), not whole, own)
    except _NotOneObject as exc:
        return _refused("C:valid-calendar-object-resource", str(exc))
    except InvalidInput as exc:  # a TimezoneLimit is a ValueError too
        return _refused("C:valid-calendar-data", str(exc))
    except ValueError as exc:
        return _refused("C:valid-calendar-data", f"malformed iCalendar: {exc}")
    return None


class PutPart(SchedulingPart, ApplicationPartPut):
    def do_PUT(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """Radicale reads ``for_radicale`` of the body; the storage keeps the body itself."""
        raw, environ = buffered(environ)
        if len(raw) > self._max_resource_size:
            return text(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"a calendar object is at most {self._max_resource_size} bytes",
            )
        try:  # a byte-order mark (Windows writers) is no part of the text
            body = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return text(HTTPStatus.BAD_REQUEST, "the body is not valid UTF-8")
        own = paths.Place.of(path).child not in paths.MADE_BY_SERVER
        refused = _calendar_refusal(body, whole=path.endswith("/"), own=own)
        if refused is not None:
            return refused
        read = for_radicale(body)
        if read != body or raw.startswith(codecs.BOM_UTF8):
            environ = with_body(environ, read.encode())
        if isinstance(self._storage, BridgeStorage):
            self._storage.sent(_CONTROLS.sub("", body))
        answer = super().do_PUT(environ, base_prefix, path, user, user_groups, request_info)
        answer = self._with_put_reason(answer, environ, path, read)
        answer = self.with_schedule_tag(answer, path, written=True)
        return self.with_representation(answer, environ, path, user)

    def _with_put_reason(
        self, answer: types.WSGIResponse, environ: types.WSGIEnviron, path: str, body: str
    ) -> types.WSGIResponse:
        """Radicale's bare 400 for an object it or vobject refused (a vCard without UID, one
        that does not parse, two SUMMARY lines, an RRULE whose UNTIL is before DTSTART, a vCard
        in a calendar), with the reason and the precondition: Radicale logs it and answers
        "Bad Request". Its own reading and checks give the reason, run again here only for a
        refusal."""
        if answer[0] != HTTPStatus.BAD_REQUEST or answer[2] != httputils.BAD_REQUEST[2]:
            return answer
        whole = path.endswith("/")
        parent = None if whole else self.collection(paths.parent(path))
        tag = getattr(parent, "tag", "") or None
        element = "CR:valid-address-data" if tag == "VADDRESSBOOK" else "C:valid-calendar-data"
        try:
            objects = radicale_item.read_components(body)
        except Exception as exc:  # whatever vobject's parser raises
            return _refused(element, f"the object cannot be read: {exc}")
        kind = str(environ.get("CONTENT_TYPE", "")).split(";", maxsplit=1)[0]
        limits = (self._max_resource_size, self._max_vevent_rrule_occurrence)
        failed = prepare(objects, path, kind, whole, not whole, *limits, tag, whole)[4]
        if failed is None:
            return answer
        cause = failed[1].__cause__ or failed[1]
        return _refused(element, f"the object was refused ({type(cause).__name__}): {cause}")

    def with_representation(
        self, answer: types.WSGIResponse, environ: types.WSGIEnviron, path: str, user: str
    ) -> types.WSGIResponse:
        """``Prefer: return=representation`` (RFC 7240) on a PUT of a meeting: the event as
        the server stored it, room answers and SCHEDULE-STATUS included, in the answer: the
        writer's copy (``per_user``)."""
        status, answered, _, xml = answer
        item = paths.Place.of(path).item()
        written = None if item is None else self._bridge_storage.written_interaction(item[1])
        wanted = headers.preferences(environ).get("return") == "representation"
        if written is None or status not in (201, 204) or not wanted:
            return answer
        with self.database_session() as session:
            interaction = session.get(Interaction, written.interaction_id)
            writer = session.scalar(select(User.id).where(User.login == user))
            if interaction is None or writer is None:
                return answer
            text, etag = per_user.copy_for(session, interaction, writer)
        found = fields(answered)
        found.update(
            {
                "Content-Type": "text/calendar",  # Radicale adds the charset
                "ETag": etag,
                "Preference-Applied": "return=representation",
            }
        )
        return 201 if status == 201 else 200, found, text, xml

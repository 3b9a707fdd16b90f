"""Time zones: how a client's VTIMEZONEs are read, and the VTIMEZONEs the server writes.

Reading. icalendar and vobject (Radicale's parser) each keep one process-wide table of the
custom VTIMEZONEs they have seen, by TZID, first definition wins: one user's "W. Europe
Standard Time" at +05:00 then decided how everybody's later events with that TZID were read.
Neither library offers a way to scope that table, so both tables are replaced here, once, by a
mapping held in a context variable (per thread): icalendar's lives for one parse, vobject's
until the next parse in the thread (vobject reads values again after it serialises them).
Each object's times are read with its own VTIMEZONEs, or with zoneinfo where the TZID is an
IANA name or a Windows name icalendar maps; no object's zones reach another's reading.

The same parse hook bounds VTIMEZONE input before any expansion: VTIMEZONEs per object,
observances per VTIMEZONE, RDATEs per observance, RRULEs coarser than daily, and the
transitions all rules can give in 400 years (one Gregorian cycle), worked out from the rules
without expanding them. Beyond the bounds the parse stops with ``TimezoneLimit``, which says
which limit.

Writing. ``vtimezone`` gives a zone valid from a date on, for ever: the zone's current rule as
yearly RRULE observances (as Outlook, Apple and Thunderbird write them), preceded by the
zone's history from that date where it differs.
"""

from __future__ import annotations

import calendar as gregorian
import copy
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache, wraps
from typing import Any
from zoneinfo import ZoneInfo

import vobject.base
import vobject.icalendar
from icalendar import Timezone, TimezoneDaylight, TimezoneStandard, vRecur
from icalendar.parser.ical.component import ComponentIcalParser
from icalendar.timezone import tzp

from caldav_bridge.domain.errors import InvalidInput

MAX_VTIMEZONES = 50  # per object; Exchange sends one per zone it knows of (9 seen)
MAX_OBSERVANCES = 1000  # per VTIMEZONE; a full IANA history has a few hundred
MAX_RDATES = 1000  # per observance
MAX_TRANSITIONS = 20_000  # per object: RRULE onsets in 400 years, RDATEs and DTSTARTs
_COARSEST = {"YEARLY", "MONTHLY"}  # what real zones use


class TimezoneLimit(InvalidInput, ValueError):
    """A VTIMEZONE beyond a bound (a ValueError too: it stops the parse like bad syntax)."""


@dataclass
class _Parse:
    """What one icalendar parse knows: its own time zones, and what it has counted."""

    zones: dict[str, tzinfo] = field(default_factory=dict)
    vtimezones: int = 0
    observances: int = 0
    transitions: int = 0


_current: ContextVar[_Parse | None] = ContextVar("caldav_bridge_parse", default=None)
# vobject turns values back into text when it serialises and reads them again when they are
# next used (Radicale serialises an item before it asks for its time range): its table lives
# from one parse to the next in the same thread, and each request starts with none (forget).
_vobject_zones: ContextVar[dict[str, tzinfo] | None] = ContextVar(
    "caldav_bridge_vobject_zones", default=None
)


def _icalendar_zones() -> dict[str, tzinfo] | None:
    parse = _current.get()
    return None if parse is None else parse.zones


def forget() -> None:
    """End the time zones vobject learnt in this thread (at the start of each request)."""
    _vobject_zones.set(None)


class _PerParse(MutableMapping[str, tzinfo]):
    """A library's TZID table, as seen by the current parse (``own``); outside a parse,
    ``fixed`` only (what the library registered at import), and nothing is kept."""

    def __init__(
        self, own: Callable[[], dict[str, tzinfo] | None], fixed: dict[str, tzinfo]
    ) -> None:
        self._own, self._fixed = own, fixed

    def __getitem__(self, key: str) -> tzinfo:
        own = self._own()
        if own is not None and key in own:
            return own[key]
        return self._fixed[key]

    def __setitem__(self, key: str, value: tzinfo) -> None:
        own = self._own()
        if own is not None:
            own[key] = value

    def __delitem__(self, key: str) -> None:
        own = self._own()
        if own is not None:
            own.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter({**self._fixed, **(self._own() or {})})

    def __len__(self) -> int:
        return len({**self._fixed, **(self._own() or {})})


@contextmanager
def _one_parse() -> Iterator[_Parse]:
    """The parse under way, or a new one (a nested parse belongs to its outer one)."""
    parse = _current.get()
    if parse is not None:
        yield parse
        return
    token = _current.set(_Parse())
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)


def _begin(parse: _Parse, name: str, parent: Any) -> None:
    name = name.upper()
    if name == "VTIMEZONE":
        parse.vtimezones += 1
        parse.observances = 0
        if parse.vtimezones > MAX_VTIMEZONES:
            raise TimezoneLimit(f"an object holds at most {MAX_VTIMEZONES} VTIMEZONEs")
    elif name in ("STANDARD", "DAYLIGHT") and getattr(parent, "name", "") == "VTIMEZONE":
        parse.observances += 1
        if parse.observances > MAX_OBSERVANCES:
            raise TimezoneLimit(f"a VTIMEZONE holds at most {MAX_OBSERVANCES} STANDARD/DAYLIGHT")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _per_month(rule: Any) -> int:
    """At most how many days of a month BYMONTHDAY and BYDAY select: a weekday without an
    ordinal falls on up to 5 days of a month, and on the BYMONTHDAY values of one remainder
    by 7 (those counted from the end may fall on any)."""
    monthdays = [int(day) for day in rule.get("BYMONTHDAY", ())]
    days = [str(day) for day in rule.get("BYDAY", ())]
    plain = sum(1 for day in days if not day[:-2].strip("+-"))
    if not days:
        return max(len(monthdays), 1)
    if not monthdays:
        return len(days) - plain + 5 * plain
    remainders = Counter(day % 7 for day in monthdays if day > 0)
    per_weekday = max(remainders.values(), default=0) + sum(1 for day in monthdays if day < 0)
    return min(len(monthdays), len(days) - plain + plain * per_weekday)


def _per_period(rule: Any, yearly: bool) -> int:
    """At most how many onsets one year (``yearly``) or one month of ``rule`` gives: the
    months, the days of each, the times of each day; BYSETPOS keeps that many."""
    months = len(rule.get("BYMONTH", ())) if yearly else 1
    if yearly and not months:
        months = 12 if "BYMONTHDAY" in rule or "BYDAY" in rule else 1
    count = max(months, 1) * _per_month(rule) * max(len(rule.get("BYYEARDAY", ())), 1)
    count *= 7 * len(rule["BYWEEKNO"]) if "BYWEEKNO" in rule else 1
    for part in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        count *= max(len(rule.get(part, ())), 1)
    return min(count, len(rule["BYSETPOS"])) if "BYSETPOS" in rule else count


def _onsets(observance: Any) -> int:
    """At most how many onsets an observance has in 400 years (a Gregorian cycle), worked
    out from its rules without expanding them, refusing what no real zone has."""
    rdates = sum(len(r.dts) for r in _listed(observance.get("RDATE")))
    if rdates > MAX_RDATES:
        raise TimezoneLimit(f"a VTIMEZONE observance holds at most {MAX_RDATES} RDATEs")
    count = 1 + rdates
    for rule in _listed(observance.get("RRULE")):
        frequency = str((rule.get("FREQ") or [""])[0]).upper()
        if frequency not in _COARSEST:
            raise TimezoneLimit(
                f"a VTIMEZONE observance repeats YEARLY or MONTHLY (not {frequency or '?'})"
            )
        yearly = frequency == "YEARLY"
        interval = max(int((rule.get("INTERVAL") or [1])[0]), 1)
        periods = -(-(400 if yearly else 4800) // interval)
        onsets = periods * _per_period(rule, yearly)
        if "COUNT" in rule:
            onsets = min(onsets, int(rule["COUNT"][0]))
        count += onsets
    return count


def _end_zone(parse: _Parse, zone: Any) -> None:
    """Count a VTIMEZONE's transitions before icalendar builds (and expands) it."""
    for observance in zone.subcomponents:
        parse.transitions += _onsets(observance)
        if parse.transitions > MAX_TRANSITIONS:
            raise TimezoneLimit(
                f"the VTIMEZONEs of an object give at most {MAX_TRANSITIONS} transitions "
                "in 400 years"
            )


def _install() -> None:
    """Give icalendar's and vobject's TZID tables one life per parse, and bound VTIMEZONEs
    as they are parsed."""
    if isinstance(getattr(tzp, "_TZP__tz_cache", None), _PerParse):
        return
    if not hasattr(tzp, "_TZP__tz_cache") or not hasattr(vobject.icalendar, "__tzidMap"):
        raise RuntimeError("icalendar or vobject changed: ical.timezones needs a look")
    tzp._TZP__tz_cache = _PerParse(_icalendar_zones, {})
    utc = vobject.icalendar.utc
    vobject.icalendar.__dict__["__tzidMap"] = _PerParse(_vobject_zones.get, {"UTC": utc})

    parse, begin, end = (
        ComponentIcalParser.parse,
        ComponentIcalParser.handle_begin_component,
        ComponentIcalParser.handle_end_component,
    )

    @wraps(parse)
    def parse_alone(self: ComponentIcalParser) -> Any:
        with _one_parse():
            return parse(self)

    @wraps(begin)
    def counted_begin(self: ComponentIcalParser, vals: str) -> None:
        current = _current.get()
        if current is not None:
            _begin(current, vals, self.component)
        begin(self, vals)

    @wraps(end)
    def checked_end(self: ComponentIcalParser, vals: str) -> None:
        current = _current.get()
        if current is not None and vals.upper() == "VTIMEZONE" and self.component is not None:
            _end_zone(current, self.component)
        end(self, vals)

    ComponentIcalParser.parse = parse_alone  # type: ignore[method-assign]
    ComponentIcalParser.handle_begin_component = counted_begin  # type: ignore[method-assign]
    ComponentIcalParser.handle_end_component = checked_end  # type: ignore[method-assign]

    read = vobject.base.readComponents

    @wraps(read)
    def read_alone(*args: Any, **kwargs: Any) -> Iterator[Any]:
        _vobject_zones.set({})
        return iter(list(read(*args, **kwargs)))

    vobject.base.readComponents = read_alone
    vobject.readComponents = read_alone


_install()


# ---------------------------------------------------------------------------- writing

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_REFERENCE_YEAR = 2100  # past every table of future transitions (Morocco's ends in 2087)


@dataclass(frozen=True)
class _Onset:
    """One transition: local onset (in the offset before), offsets, name, daylight."""

    local: datetime
    before: timedelta
    after: timedelta
    name: str
    daylight: bool


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _transitions(zone: ZoneInfo, year: int) -> list[_Onset]:
    """The year's transitions, found by weekly steps and halving (to the second)."""
    found: list[_Onset] = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    while moment < end:
        step = min(moment + timedelta(days=7), end)
        if _offset(zone, moment) != _offset(zone, step):
            low, high = int(moment.timestamp()), int(step.timestamp())
            while high - low > 1:
                middle = (low + high) // 2
                same = _offset(zone, _at(low)) == _offset(zone, _at(middle))
                low, high = (middle, high) if same else (low, middle)
            before, after = _offset(zone, _at(low)), _offset(zone, _at(high))
            local = _at(high).astimezone(zone)
            found.append(
                _Onset(
                    (_at(high) + before).replace(tzinfo=None),
                    before,
                    after,
                    local.tzname() or "",
                    bool(local.dst()),
                )
            )
        moment = step
    return found


@dataclass(frozen=True)
class _Rule:
    """A yearly onset: the ``nth`` (1 to 4, or -1 for the last) ``weekday`` of ``month``."""

    onset: _Onset
    nth: int

    def in_year(self, year: int) -> datetime:
        local = self.onset.local
        weekday = local.weekday()
        days = gregorian.monthrange(year, local.month)[1]
        if self.nth > 0:
            first = date(year, local.month, 1)
            day = 1 + (weekday - first.weekday()) % 7 + 7 * (self.nth - 1)
        else:
            last = date(year, local.month, days)
            day = days - (last.weekday() - weekday) % 7
        return local.replace(year=year, day=day)


def _candidates(onset: _Onset) -> list[_Rule]:
    day, days = onset.local.day, gregorian.monthrange(onset.local.year, onset.local.month)[1]
    rules = [_Rule(onset, (day - 1) // 7 + 1)] if day <= 28 else []
    return [*rules, _Rule(onset, -1)] if day + 7 > days else rules


def _holds(rules: tuple[_Rule, ...], actual: list[_Onset], year: int) -> bool:
    expected = {(r.in_year(year), r.onset.before, r.onset.after) for r in rules}
    return expected == {(o.local, o.before, o.after) for o in actual}


@cache
def _current_rules(tzid: str, floor: int) -> tuple[int, tuple[_Rule, ...], _Onset | None] | None:
    """(the first year, from ``floor`` on, of the zone's current rule, its yearly onsets, or
    the fixed offset when it has none), or None when the rule is not a yearly weekday
    pattern."""
    zone = ZoneInfo(tzid)
    reference = _transitions(zone, _REFERENCE_YEAR)
    choices: list[tuple[_Rule, ...]] = [()]
    for onset in reference:
        choices = [(*c, r) for c in choices for r in _candidates(onset)]
    since: dict[tuple[_Rule, ...], int] = {}
    year = _REFERENCE_YEAR
    while choices and year > floor:
        actual = _transitions(zone, year - 1)
        held = [rules for rules in choices if _holds(rules, actual, year - 1)]
        since.update((rules, year) for rules in choices if rules not in held)
        choices, year = held, year - 1
    since.update((rules, year) for rules in choices)
    best = min(((y, r) for r, y in since.items()), key=lambda found: found[0], default=None)
    if best is None or best[0] > max(floor, _REFERENCE_YEAR - 10):
        return None
    if best[1]:
        return best[0], best[1], None
    noon = datetime(_REFERENCE_YEAR, 1, 1, 12, tzinfo=UTC).astimezone(zone)
    offset = noon.utcoffset() or timedelta(0)
    fixed = _Onset(datetime(best[0], 1, 1), offset, offset, noon.tzname() or "", False)
    return best[0], (), fixed


def _observance(onset: _Onset, start: datetime, rule: _Rule | None) -> Any:
    observance = TimezoneDaylight() if onset.daylight else TimezoneStandard()
    observance.add("dtstart", start)
    observance.add("tzoffsetfrom", onset.before)
    observance.add("tzoffsetto", onset.after)
    if onset.name:
        observance.add("tzname", onset.name)
    if rule is not None:
        day = f"{rule.nth}{_WEEKDAYS[rule.onset.local.weekday()]}"
        observance.add("rrule", vRecur(freq="YEARLY", bymonth=rule.onset.local.month, byday=day))
    return observance


def _history(zone: ZoneInfo, year: int, since: int) -> list[Any]:
    """The zone's transitions from ``year`` to ``since``, one observance per kind of change
    with its later onsets as RDATEs (icalendar's ``from_tzinfo`` steps 64 days at a time and
    misses changes undone within them: Morocco's Ramadan)."""
    if year >= since:
        return []
    start = datetime(year, 1, 1)
    aware = start.replace(tzinfo=zone)
    offset = aware.utcoffset() or timedelta(0)
    onsets = [_Onset(start, offset, offset, aware.tzname() or "", bool(aware.dst()))]
    onsets += [onset for y in range(year, since) for onset in _transitions(zone, y)]
    kinds: dict[tuple[timedelta, timedelta, str, bool], list[_Onset]] = {}
    for onset in onsets:
        kinds.setdefault((onset.before, onset.after, onset.name, onset.daylight), []).append(onset)
    observances = []
    for first, *later in kinds.values():
        observance = _observance(first, first.local, None)
        if later:
            observance.add("rdate", [onset.local for onset in later])
        observances.append(observance)
    return observances


@cache
def _vtimezone(tzid: str, year: int) -> Timezone:
    zone = ZoneInfo(tzid)
    current = _current_rules(tzid, year)
    since = current[0] if current else _REFERENCE_YEAR
    result = Timezone()
    result.add("tzid", tzid)
    for observance in _history(zone, year, since):
        result.add_component(observance)
    if current is not None:
        first = max(since, year)
        _, rules, fixed = current
        if fixed is not None:
            result.add_component(_observance(fixed, fixed.local.replace(year=first), None))
        for rule in sorted(rules, key=lambda r: r.in_year(first)):
            result.add_component(_observance(rule.onset, rule.in_year(first), rule))
    return result


def vtimezone(tzid: str, first: date) -> Timezone:
    """The VTIMEZONE of an IANA zone for everything from ``first`` on (from the year before,
    so that the offset in force at ``first`` is stated). A zone whose rule is no yearly
    weekday pattern is written transition by transition up to 2100."""
    return copy.deepcopy(_vtimezone(tzid, first.year - 1))

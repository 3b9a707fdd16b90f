"""Finding users and rooms: the principal searches calendar clients send.

- RFC 3744 section 9.4 DAV:principal-property-search: each DAV:property-search names
  properties and a DAV:match; all must match, or any with Apple's ``test="anyof"``, and
  Apple's ``match-type`` (contains, starts-with, equals) is honoured. Thunderbird looks its
  own principal up by C:calendar-home-set, Apple Calendar people by name and address.
- Apple's calendarserver-principal-search: free-text CS:search-token elements, each to be
  found in a name, login or address; ``context="location"`` asks for rooms only,
  ``"resource"`` for other resources.
- RFC 3744 section 9.5 DAV:principal-search-property-set: which properties can be searched.

Only active users and resources are found. Text is matched case-insensitively as plain text
(LIKE with its wildcards escaped), and a search answers at most ``limit`` principals (the
request's DAV:limit or CS:limit, at most ``MOST``); more matches are reported truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from caldav_bridge.caldav import paths
from caldav_bridge.caldav.multistatus import CS, C, D
from caldav_bridge.domain.models import Resource, ResourceKind, User, UserEmail
from caldav_bridge.ical.mapping import normalize_address

DEFAULT_LIMIT = 50
MOST = 200

# What each searchable property is matched against.
_FIELDS: dict[str, frozenset[str]] = {
    f"{{{D}}}displayname": frozenset({"name"}),
    f"{{{CS}}}first-name": frozenset({"name"}),
    f"{{{CS}}}last-name": frozenset({"name"}),
    f"{{{C}}}calendar-user-address-set": frozenset({"address"}),
    f"{{{CS}}}email-address-set": frozenset({"address"}),
    f"{{{C}}}calendar-home-set": frozenset({"home"}),
    f"{{{D}}}principal-URL": frozenset({"home"}),
}
_FREE_TEXT = frozenset({"name", "login", "address"})

# RFC 3744 section 9.5: what a client may search by, described.
SEARCHABLE = (
    (f"{{{D}}}displayname", "Name"),
    (f"{{{C}}}calendar-user-address-set", "Calendar user address (mailto:)"),
    (f"{{{CS}}}email-address-set", "Email address"),
)

# Children of a principal-property-search that are not properties to answer with.
_STRUCTURE = {
    f"{{{D}}}property-search",
    f"{{{D}}}prop",
    f"{{{D}}}apply-to-principal-collection-set",
    f"{{{D}}}limit",
}

_MATCH_TYPES = ("starts-with", "equals")  # Apple's; "contains" is the default
_KINDS = {"location": frozenset({"room"}), "resource": frozenset({"resource"})}
_EVERY_KIND = frozenset({"user", "room", "resource"})


@dataclass(frozen=True)
class Condition:
    """One text to find in some of a principal's fields, as ``match`` says."""

    fields: frozenset[str]  # name, login, address, home (the principal's own URL)
    text: str
    match: str = "contains"  # or starts-with, equals


@dataclass(frozen=True)
class PrincipalSearch:
    conditions: tuple[Condition, ...]  # none: every principal
    any_of: bool
    kinds: frozenset[str]  # user, room, resource
    props: tuple[str, ...]  # Clark names of the properties to answer with
    limit: int


def _limit(text: str | None) -> int:
    value = (text or "").strip()
    number = int(value) if value.isascii() and value.isdigit() and len(value) < 6 else 0
    return min(number, MOST) if number else DEFAULT_LIMIT


def _property_searches(root: Any) -> list[Condition]:
    found = []
    for search in root.findall(f"{{{D}}}property-search"):
        match = search.find(f"{{{D}}}match")
        text = (match.text or "").strip() if match is not None else ""
        if not text:
            continue  # nothing to look for: a malformed part, left out
        prop = search.find(f"{{{D}}}prop")
        names = [child.tag for child in prop] if prop is not None else []
        fields = frozenset().union(*(_FIELDS.get(name, frozenset()) for name in names))
        kind = (match.get("match-type") or "contains") if match is not None else "contains"
        found.append(
            Condition(fields, text, kind if kind in ("starts-with", "equals") else "contains")
        )
    return found


def parse(root: Any) -> PrincipalSearch | None:
    """The search a REPORT body (parsed) asks for, else None. Malformed parts are read as
    far as they go: python-caldav, for one, sends the properties it wants beside an empty
    DAV:prop rather than in it, and no DAV:property-search when it lists everybody."""
    if root is None:
        return None
    prop = root.find(f"{{{D}}}prop")
    props = [child.tag for child in prop] if prop is not None else []
    if root.tag == f"{{{D}}}principal-property-search":
        props += [child.tag for child in root if child.tag not in _STRUCTURE]
        conditions = _property_searches(root)
        any_of = root.get("test") == "anyof"
        kinds = _EVERY_KIND
        limit = _limit(root.findtext(f"{{{D}}}limit/{{{D}}}nresults"))
    elif root.tag == f"{{{CS}}}calendarserver-principal-search":
        tokens = [(token.text or "").strip() for token in root.findall(f"{{{CS}}}search-token")]
        conditions = [Condition(_FREE_TEXT, token) for token in tokens if token]
        any_of = root.get("test") == "anyof"
        kinds = _KINDS.get(root.get("context") or "", _EVERY_KIND)
        limit = _limit(root.findtext(f"{{{CS}}}limit/{{{CS}}}nresults"))
    else:
        return None
    wanted = tuple(dict.fromkeys(props)) or (f"{{{D}}}displayname",)
    return PrincipalSearch(tuple(conditions), any_of, kinds, wanted, limit)


def asks_searchable(root: Any) -> bool:
    """Whether a REPORT body (parsed) is a DAV:principal-search-property-set."""
    return root is not None and root.tag == f"{{{D}}}principal-search-property-set"


def _text(column: Any, text: str, match: str) -> Any:
    if match == "equals":
        return column == text
    if match == "starts-with":
        return column.startswith(text, autoescape=True)
    return column.contains(text, autoescape=True)


def _name(column: Any, text: str, match: str) -> Any:
    """A name matches "starts-with" where any of its words starts so (first or last name)."""
    word = text.lower()
    lowered = func.lower(column)
    if match == "starts-with":
        return or_(_text(lowered, word, match), lowered.contains(f" {word}", autoescape=True))
    return _text(lowered, word, match)


def _home(text: str) -> str:
    """The principal a URL or path names (``/bob/``, ``http://host/bob/interactions/``)."""
    return paths.Place(tuple(paths.of_url(text))).home


def _user_condition(condition: Condition) -> Any:
    text, match, fields = condition.text, condition.match, condition.fields
    tests = []
    if "name" in fields:
        tests.append(_name(User.display_name, text, match))
    if "login" in fields:
        tests.append(_text(func.lower(User.login), text.lower(), match))
    if "address" in fields:
        address = _text(func.lower(UserEmail.address), normalize_address(text), match)
        tests.append(User.id.in_(select(UserEmail.user_id).where(address)))
    if "home" in fields:
        tests.append(User.login == _home(text))
    return or_(*tests) if tests else false()


def _resource_condition(condition: Condition) -> Any:
    text, match, fields = condition.text, condition.match, condition.fields
    tests = []
    if "name" in fields:
        tests.append(_name(Resource.name, text, match))
    if "login" in fields:
        tests.append(_text(func.lower(Resource.slug), text.lower(), match))
    if "address" in fields:
        tests.append(_text(func.lower(Resource.email), normalize_address(text), match))
    if "home" in fields:
        tests.append(Resource.slug == _home(text))
    return or_(*tests) if tests else false()


def _combined(tests: list[Any], any_of: bool) -> Any:
    if not tests:
        return true()
    return or_(*tests) if any_of else and_(*tests)


def find(session: Session, request: PrincipalSearch) -> tuple[list[str], bool]:
    """The names (logins, then slugs) of the principals found, at most ``request.limit``,
    and whether more matched."""
    most = request.limit + 1
    names: list[str] = []
    if "user" in request.kinds:
        users = _combined([_user_condition(c) for c in request.conditions], request.any_of)
        names += session.scalars(
            select(User.login).where(User.active.is_(True), users).order_by(User.login).limit(most)
        ).all()
    kinds = [ResourceKind.ROOM] if "room" in request.kinds else []
    if "resource" in request.kinds:
        kinds += [kind for kind in ResourceKind if kind is not ResourceKind.ROOM]
    if kinds and len(names) < most:
        resources = _combined([_resource_condition(c) for c in request.conditions], request.any_of)
        names += session.scalars(
            select(Resource.slug)
            .where(Resource.active.is_(True), Resource.kind.in_(kinds), resources)
            .order_by(Resource.slug)
            .limit(most - len(names))
        ).all()
    return names[: request.limit], len(names) > request.limit

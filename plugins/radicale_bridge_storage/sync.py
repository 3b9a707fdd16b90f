"""Sync tokens and pages of a calendar's change log (RFC 6578).

A sync token names a calendar and the revision a client has seen changes up to; a page of a
limited initial sync adds "-<revision>": the calendar was listed as it was then, so items
removed up to it were never the client's (tokens without it are the older, plain kind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from caldav_bridge.domain import changelog
from caldav_bridge.domain.models import CalendarChange

_TOKEN = re.compile(
    r"urn:caldav-bridge:sync:(?P<calendar>[^ ]+):(?P<revision>[0-9]+)(?:-(?P<listed>[0-9]+))?"
)


@dataclass
class SyncPaging:
    """A sync-collection REPORT's DAV:limit, and whether its answer had to be truncated."""

    limit: int
    truncated: bool = False


@dataclass(frozen=True)
class SyncPage:
    """One page of a limited sync: its token, the items it names, and whether more follow."""

    token: str
    hrefs: list[str]
    truncated: bool


def token(calendar_key: str, revision: int, listed: int = 0) -> str:
    base = f"urn:caldav-bridge:sync:{calendar_key}:{revision}"
    return f"{base}-{listed}" if listed > revision else base


def position(calendar_key: str, old_token: str, revision: int) -> tuple[int, int]:
    """(revision seen, revision listed) of a token the calendar ``calendar_key`` handed out,
    its newest revision being ``revision``; ValueError for any other token (Radicale answers
    it)."""
    match = _TOKEN.fullmatch(old_token)
    seen, listed = (int(match["revision"]), int(match["listed"] or 0)) if match else (0, 0)
    if not match or match["calendar"] != calendar_key or max(seen, listed) > revision:
        raise ValueError(f"unknown sync token {old_token!r}")
    return seen, listed


def changed_since(session: Session, calendar_key: str, seen: int) -> list[str]:
    """The names of the items changed (or removed) after revision ``seen``."""
    return list(
        session.scalars(
            select(CalendarChange.item_href)
            .where(CalendarChange.calendar == calendar_key, CalendarChange.revision > seen)
            .distinct()
        ).all()
    )


def page(
    session: Session, calendar_key: str, old_token: str, revision: int, limit: int
) -> SyncPage:
    """At most ``limit`` items changed since ``old_token`` (or, without one, of the whole
    calendar), in the order of their latest change, with the token that goes on where the
    page ends (RFC 6578 sections 3.6 and 3.7). An initial sync is read from the change log
    too, as changes since revision 0: items written between two pages come in a later one,
    removals of items a page listed as well, and an item is named again only if it
    changed again."""
    seen, listed = position(calendar_key, old_token, revision) if old_token else (0, revision)
    rows = changelog.latest_changes(session, calendar_key, seen, listed, limit + 1)
    hrefs = list(dict.fromkeys(href for href, _ in rows[:limit]))
    if len(rows) <= limit:
        return SyncPage(token(calendar_key, revision), hrefs, truncated=False)
    return SyncPage(token(calendar_key, rows[limit - 1][1], listed), hrefs, truncated=True)

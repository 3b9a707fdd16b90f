"""The per-calendar change log that CalDAV sync reads (RFC 6578 deltas, deletions included).

Calendars are named by what they show: a user's interactions calendar, a resource's bookings.

A sync token and a CTag are a calendar's highest revision. For a delta to miss nothing, no
change may become visible after one of a higher revision of its calendar has been: a revision
given at insert would break that (a transaction inserting first may commit last). So rows are
written without a revision, and get one as their transaction commits: on PostgreSQL under a
lock per calendar held until the commit is done (taken last, in one order, so it adds no
deadlock); SQLite has one writer at a time, whose ids already come in commit order.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Sequence, bindparam, event, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, SessionTransaction, aliased
from sqlalchemy.types import Integer

from caldav_bridge.domain.models import CalendarChange, utcnow

# Calendars this transaction logged changes in, whose rows await their revision.
_PENDING = "caldav_bridge.domain.changelog.pending"
_REVISIONS = Sequence("calendar_change_revisions")  # PostgreSQL's (migration 0008)
# The first key of the advisory locks (pg_advisory_xact_lock(space, calendar)): "CalD".
_LOCK_SPACE = 0x43616C44
_LOCK = text(
    "SELECT pg_advisory_xact_lock(:space, calendar) FROM unnest(:calendars) AS calendar"
).bindparams(bindparam("calendars", type_=ARRAY(Integer)))


def user_calendar(user_id: int) -> str:
    return f"user/{user_id}/interactions"


def resource_calendar(resource_id: int) -> str:
    return f"resource/{resource_id}/bookings"


def inbox_calendar(user_id: int) -> str:
    return f"user/{user_id}/inbox"


def stored_calendar(collection_id: int) -> str:
    return f"stored/{collection_id}"


def holding(user_id: int, calendar_id: int | None) -> str:
    """The calendar that holds an interaction for a user: one of their own (``calendar_id``),
    or their interactions calendar."""
    return user_calendar(user_id) if calendar_id is None else stored_calendar(calendar_id)


# Every user's address book of colleagues and rooms shows the same cards (``contacts``).
DIRECTORY_BOOK = "directory"


def record(session: Session, calendars: set[str], item_href: str, deleted: bool = False) -> None:
    """One item changed in each of ``calendars`` (a meeting with twenty attendees is in
    twenty-one calendars)."""
    record_items(session, [(calendar, item_href) for calendar in sorted(calendars)], deleted)


def record_items(session: Session, items: list[tuple[str, str]], deleted: bool = False) -> None:
    """(calendar, item name) pairs that changed, written in one statement."""
    now = utcnow()
    rows = [
        {"calendar": calendar, "item_href": href, "deleted": deleted, "changed_at": now}
        for calendar, href in items
    ]
    if rows:
        session.execute(insert(CalendarChange), rows)
        session.info.setdefault(_PENDING, set()).update(calendar for calendar, _ in items)


def latest_changes(
    session: Session, calendar: str, after: int, listed: int, count: int
) -> list[tuple[str, int]]:
    """(item name, revision) of the first ``count`` items of ``calendar`` whose latest change
    is after revision ``after``, in the order of those changes, leaving out items removed at
    ``listed`` or before (a client listing the calendar as it was then never had them).

    Each item is named once, at its latest change: a page of a sync holds what changed up to
    its last revision, and the next page starts there. The log is walked in revision order
    through the (calendar, revision) index, each row read with its item's latest revision
    (through the (calendar, item, revision) index, for the rows read only): a page costs its
    own rows and those of items that changed again later, never the whole log. A subquery in
    the WHERE clause would let a database plan a join over the whole log instead."""
    later = aliased(CalendarChange)
    latest = (
        select(func.max(later.revision))
        .where(later.calendar == CalendarChange.calendar)
        .where(later.item_href == CalendarChange.item_href)
        .scalar_subquery()
    )
    found: list[tuple[str, int]] = []
    while len(found) < count:
        rows = session.execute(
            select(
                CalendarChange.item_href,
                CalendarChange.revision,
                CalendarChange.deleted,
                latest.label("latest"),
            )
            .where(CalendarChange.calendar == calendar, CalendarChange.revision > after)
            .order_by(CalendarChange.revision)
            .limit(count)
        ).all()
        if not rows:
            break
        found += [
            (str(row.item_href), int(row.revision))
            for row in rows
            if row.latest == row.revision and (not row.deleted or row.revision > listed)
        ]
        after = int(rows[-1].revision)
    return found[:count]


def _lock_key(calendar: str) -> int:
    digest = hashlib.blake2b(calendar.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


@event.listens_for(Session, "before_commit")
def _give_revisions(session: Session) -> None:
    """Number this transaction's changes, last thing before it commits."""
    if session.in_nested_transaction():  # a savepoint: the transaction goes on
        return
    # The last flush comes first: whatever it waits for on other transactions' rows it waits
    # for before the lock, and the changes it logs itself (the directory's) are numbered too.
    session.flush()
    calendars = session.info.pop(_PENDING, None)
    if not calendars:
        return
    revision: Any = CalendarChange.id
    if session.get_bind().dialect.name == "postgresql":
        keys = sorted({_lock_key(calendar) for calendar in calendars})
        session.execute(_LOCK, {"space": _LOCK_SPACE, "calendars": keys})
        revision = _REVISIONS.next_value()
    session.execute(
        update(CalendarChange)
        .where(CalendarChange.calendar.in_(calendars), CalendarChange.revision.is_(None))
        .values(revision=revision)
        .execution_options(synchronize_session=False)
    )


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back: its rows are gone
        session.info.pop(_PENDING, None)

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

from sqlalchemy import Sequence, bindparam, event, insert, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.types import Integer

from caldav_bridge.models import CalendarChange, utcnow

# Calendars this transaction logged changes in, whose rows await their revision.
_PENDING = "caldav_bridge.changelog.pending"
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

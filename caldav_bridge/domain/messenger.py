"""The in-CRM messenger: each user's notices (the outbox's messenger rows), newest first."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from caldav_bridge.domain.models import Channel, OutboxMessage, User, utcnow


def notices(
    session: Session, user: User, unread_only: bool = False, limit: int = 100
) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(
        OutboxMessage.channel == Channel.MESSENGER, OutboxMessage.recipient_user_id == user.id
    )
    if unread_only:
        query = query.where(OutboxMessage.read_at.is_(None))
    return list(session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)))


def mark_read(session: Session, user: User, ids: Collection[int] | None = None) -> int:
    """Mark ``user``'s notices read (those of ``ids``, or all); returns how many changed.
    Other users' notices are never touched, whatever ``ids`` names."""
    query = update(OutboxMessage).where(
        OutboxMessage.channel == Channel.MESSENGER,
        OutboxMessage.recipient_user_id == user.id,
        OutboxMessage.read_at.is_(None),
    )
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(list(ids)))
    result = session.execute(query.values(read_at=utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]


def as_json(notice: OutboxMessage) -> dict[str, Any]:
    return {
        "id": notice.id,
        "kind": notice.kind.value,
        "interaction": notice.interaction_id,
        "subject": notice.subject,
        "text": notice.body,
        "link": notice.link,
        "created": notice.created_at.isoformat(),
        "read": notice.read_at is not None,
    }

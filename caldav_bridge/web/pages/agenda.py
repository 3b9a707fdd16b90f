"""The week's agenda: seven columns, Monday first."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.web.pages.common import day, midnight, row, signed_in_user, today
from caldav_bridge.web.session import Page, Request, page


def agenda(session: Session, request: Request) -> Page:
    user = signed_in_user(request)
    shown = day(request.query.get("week", ""), today(user))
    monday = shown - timedelta(days=shown.weekday())
    entries = InteractionService(session).agenda(
        user, midnight(monday, user), midnight(monday + timedelta(days=7), user)
    )
    rows = [row(e, user) for e in entries]
    days = [monday + timedelta(days=n) for n in range(7)]
    columns = [(d, [r for r in rows if r.day == d]) for d in days]
    return page(
        session,
        request,
        "agenda.html",
        columns=columns,
        monday=monday,
        previous=monday - timedelta(days=7),
        following=monday + timedelta(days=7),
        today=today(user),
    )

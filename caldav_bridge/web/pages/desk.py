"""The desk: the next two weeks, the invitations waiting for an answer, the latest notices."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

from sqlalchemy.orm import Session

from caldav_bridge.domain import messenger
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.ical.mapping import zone
from caldav_bridge.web.pages.common import done, midnight, row, signed_in_user, today
from caldav_bridge.web.session import PAGES, Page, Request, page

DESK_DAYS = 14


def desk(session: Session, request: Request) -> Page:
    user = signed_in_user(request)
    service = InteractionService(session)
    start_ = midnight(today(user), user)
    upcoming = [row(e, user) for e in service.agenda(user, start_, start_ + timedelta(DESK_DAYS))]
    pending = [row(e, user) for e in service.invitations(user, start_)]
    notices = messenger.notices(session, user, limit=10)
    return page(
        session,
        request,
        "desk.html",
        pending=pending,
        notices=notices,
        tz=zone(user.timezone),
        upcoming=upcoming,
        days=DESK_DAYS,
        done=done(request),
    )


def notices_read(session: Session, request: Request) -> Page:
    messenger.mark_read(session, signed_in_user(request))
    return Page(HTTPStatus.SEE_OTHER, location=PAGES)

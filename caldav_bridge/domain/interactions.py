"""The interaction service: the one place that decides the rules of DESIGN.md section 1.

Status transitions, booking conflicts and SEQUENCE rules live here and nowhere else. Every
channel (CalDAV, email replies, web pages, CLI) calls these methods inside a write transaction
(``Database.session(write=True)``); each change writes its notifications and its calendar change
log rows in that same transaction, so they are stored together or not at all.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.config import DEFAULT_PUBLIC_URL
from caldav_bridge.db import locked
from caldav_bridge.domain import changelog, recurrence, validation
from caldav_bridge.domain import settings as crm_settings
from caldav_bridge.domain.errors import (
    AlreadyExists,
    BookingConflict,
    InteractionCancelled,
    InvalidInput,
    InvalidTransition,
    MultiUserDisabled,
    NotAllowed,
    NotFound,
)
from caldav_bridge.domain.models import (
    Booking,
    Guest,
    Interaction,
    InteractionLink,
    InteractionStatus,
    LinkStatus,
    NotificationKind,
    OccurrenceAnswer,
    OccurrenceMove,
    Resource,
    User,
    utcnow,
)
from caldav_bridge.domain.outbox import Notifier, describe_when
from caldav_bridge.domain.queries import name_of
from caldav_bridge.domain.recurrence import Series
from caldav_bridge.domain.validation import mail_address, one_line
from caldav_bridge.ical.mapping import Answer, answer_to, interaction_ical, series_of, zone

P = ParamSpec("P")
R = TypeVar("R")


def _one_change(
    method: Callable[Concatenate[InteractionService, P], R],
) -> Callable[Concatenate[InteractionService, P], R]:
    def in_one_change(self: InteractionService, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with recurrence.budget(), self.one_change():
            return method(self, *args, **kwargs)

    functools.update_wrapper(in_one_change, method)
    return in_one_change


# A moved occurrence: its RECURRENCE-ID and its new start and end (aware datetimes).
Move = tuple[datetime, datetime, datetime]


@dataclass(frozen=True)
class Draft:
    """A new interaction. ``start``/``end`` are both dates (all day) or both datetimes;
    naive datetimes are read in ``timezone``, which defaults to the owner's."""

    subject: str
    start: datetime | date
    end: datetime | date
    timezone: str | None = None
    notes: str = ""
    kind: str = "meeting"
    location: str = ""
    rrule: str = ""  # RFC 5545 RRULE value: a recurring interaction
    exdates: tuple[datetime | date, ...] = ()  # occurrences left out
    moves: tuple[Move, ...] = ()  # occurrences moved: (RECURRENCE-ID, start, end)


@dataclass(frozen=True)
class Changes:
    """An edit: only the fields that are not None change."""

    subject: str | None = None
    notes: str | None = None
    kind: str | None = None
    location: str | None = None
    start: datetime | date | None = None
    end: datetime | date | None = None
    timezone: str | None = None
    rrule: str | None = None  # "" makes it a single interaction again
    exdates: tuple[datetime | date, ...] | None = None
    moves: tuple[Move, ...] | None = None  # every moved occurrence (those not named move back)


@dataclass(frozen=True)
class GuestEntry:
    """An attendee outside the CRM, as the organizer's event names it."""

    address: str
    name: str = ""
    partstat: str = "NEEDS-ACTION"
    client_scheduled: bool = False


@dataclass(frozen=True)
class AgendaEntry:
    """One occurrence of an interaction in a user's agenda (the only one, unless it repeats)."""

    interaction: Interaction
    link: InteractionLink | None  # None when the user is the owner
    starts_at: datetime
    ends_at: datetime

    @property
    def role(self) -> str:
        return "owner" if self.link is None else "linked"


def link_label(link: InteractionLink) -> str:
    """The status in the CRM's words, with a client's tentative answer shown."""
    label = link.status.value.capitalize()
    return f"{label} (tentative)" if link.tentative else label


_GUEST_LABELS = {
    "ACCEPTED": "Confirmed",
    "DECLINED": "Declined",
    "TENTATIVE": "Confirmed (tentative)",
}


def guest_label(partstat: str) -> str:
    """An outside attendee's PARTSTAT in the CRM's words, as ``link_label`` says a user's."""
    return _GUEST_LABELS.get(partstat, "Invited")


@dataclass(frozen=True)
class _Period:
    starts_at: datetime
    ends_at: datetime
    all_day: bool
    timezone: str


def period_of(start: datetime | date, end: datetime | date, timezone: str) -> _Period:
    """Start and end as stored: UTC instants (local midnights for all-day), checked."""
    tz = zone(timezone)
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise InvalidInput("start and end must both be dates (all day) or both be times")
    if not isinstance(start, datetime):
        if end <= start:
            raise InvalidInput("an all-day interaction must end at least one day after it starts")
        try:
            starts_at = datetime.combine(start, time(0), tz).astimezone(UTC)
            ends_at = datetime.combine(end, time(0), tz).astimezone(UTC)
        except OverflowError as exc:
            raise InvalidInput("the interaction's days must lie in the years 1 to 9999") from exc
        return _Period(starts_at, ends_at, True, timezone)
    assert isinstance(end, datetime)
    try:
        starts_at = (start if start.tzinfo else start.replace(tzinfo=tz)).astimezone(UTC)
        ends_at = (end if end.tzinfo else end.replace(tzinfo=tz)).astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput("the interaction's times must lie in the years 1 to 9999") from exc
    if ends_at < starts_at:
        raise InvalidInput("the interaction ends before it starts")
    return _Period(starts_at, ends_at, False, timezone)


def _series(period: _Period, rule: str, excluded: str, moves: tuple[Move, ...] = ()) -> Series:
    return Series(
        period.starts_at, period.ends_at, period.all_day, period.timezone, rule, excluded, moves
    )


def _checked_moves(series: Series, moves: Sequence[Move]) -> tuple[Move, ...]:
    """Moved occurrences in UTC, each naming an occurrence of the series and ending after
    it starts."""
    checked = []
    for move in moves:
        rid, start, end = (m.astimezone(UTC) for m in move)
        if recurrence.occurrence(series, rid) is None:
            raise InvalidInput(f"the series has no occurrence at {rid:%Y-%m-%d %H:%M} UTC")
        if end < start:
            raise InvalidInput("a moved occurrence ends before it starts")
        checked.append((rid, start, end))
    return tuple(sorted(checked))


def _still_occurring(series: Series, moves: Sequence[Move]) -> tuple[Move, ...]:
    """The moves that still name an occurrence of ``series``, after an edit that named none
    (the CRM's pages and command change the series' times or rule, never one occurrence): an
    occurrence the series no longer has cannot stay moved, or it would occur twice."""
    return tuple(move for move in moves if recurrence.occurrence(series, move[0]) is not None)


def _set_moves(interaction: Interaction, moves: Sequence[Move]) -> None:
    """The moved occurrences' rows made ``moves``, each occurrence's row kept and changed in
    place: SQLAlchemy's unit of work inserts before it deletes, so a new row for an occurrence
    already moved broke the unique (interaction, RECURRENCE-ID) constraint before its old row
    was gone."""
    rows = {row.recurrence_id: row for row in interaction.moves}
    kept = []
    for rid, start, end in moves:
        row = rows.get(rid) or OccurrenceMove(recurrence_id=rid)
        row.starts_at, row.ends_at = start, end
        kept.append(row)
    interaction.moves = kept


# What each answer makes of a linked user: (status, tentative).
_ANSWERED = {
    Answer.ACCEPT: (LinkStatus.CONFIRMED, False),
    Answer.DECLINE: (LinkStatus.DECLINED, False),
    Answer.TENTATIVE: (LinkStatus.INVITED, True),
}


def _relinks(link: InteractionLink, status: LinkStatus) -> bool:
    """Whether the owner linking an already linked user as ``status`` changes their link.

    Invited asks for an answer: it changes only a Declined link (inviting again). A user who
    confirmed, or answered tentatively, keeps their answer and gets no second invitation.
    Confirmed confirms an Invited user (tentative or not), never one who declined."""
    if status is LinkStatus.INVITED:
        return link.status is LinkStatus.DECLINED
    if link.status is LinkStatus.DECLINED:
        raise InvalidTransition(
            f"{link.user.login} declined: invite them again to ask for their agreement"
        )
    return link.status is not LinkStatus.CONFIRMED


def _same_times(one: Series, other: Series) -> bool:
    """The same occurrences: a new time zone alone changes nothing unless the interaction
    repeats (its occurrences follow the zone's clock)."""
    fields = ("starts_at", "ends_at", "all_day", "rrule", "exdates", "moves")
    same = all(getattr(one, name) == getattr(other, name) for name in fields)
    return same and (not one.rrule or one.timezone == other.timezone)


def _notes(value: str) -> str:
    if "\x00" in value or len(value) > 100_000:
        raise InvalidInput("notes must be text of at most 100,000 characters")
    # One kind of line break, as iCalendar has (RFC 5545 3.3.11): a client saving the notes
    # back unchanged does not change them.
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").strip()


def _kind(value: str) -> str:
    return one_line(value, "the interaction type", 40, required=True).lower()


# Item names that are safe in a URL path and on every client.
_SAFE_HREF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,250}")

# What every caller of the service reads: owner, linked users and bookings in three queries.
_LOADED = (
    selectinload(Interaction.owner).selectinload(User.emails),
    selectinload(Interaction.links).selectinload(InteractionLink.user).selectinload(User.emails),
    selectinload(Interaction.bookings).selectinload(Booking.resource),
    selectinload(Interaction.guests),
)


# Each guest gets an email carrying the whole event: their number is bounded.
MAX_GUESTS = 200


class InteractionService:
    def __init__(self, session: Session, public_url: str = DEFAULT_PUBLIC_URL) -> None:
        self.session = session
        self.notifier = Notifier(session, public_url)
        self._depth = 0  # nesting of one_change()
        self._touched: dict[int, Interaction] = {}  # to publish when the change ends
        self._organizer_changed: set[int] = set()  # their Schedule-Tag changes
        self._created: set[int] = set()
        self._bumped: set[int] = set()

    # ------------------------------------------------------------------ one change

    @contextmanager
    def one_change(self) -> Iterator[None]:
        """Several calls that make one change (a client's PUT that edits, books and links):
        each interaction is rendered and logged once at the end, its SEQUENCE grows at most
        once (not at all when it was created in the change), and each person gets one
        notice. Every changing method below runs inside one."""
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if not self._depth:
                self._forget()
            raise
        self._depth -= 1
        if not self._depth:
            for interaction in self._touched.values():
                if interaction.id in self._organizer_changed:
                    interaction.schedule_tag += 1
                self._render_and_log(interaction)
            self.notifier.flush()
            self._forget()

    def _forget(self) -> None:
        self._touched.clear()
        self._organizer_changed.clear()
        self._created.clear()
        self._bumped.clear()
        self.notifier.discard()

    # ------------------------------------------------------------------ settings

    def multi_user_enabled(self) -> bool:
        return crm_settings.get_flag(self.session, crm_settings.MULTI_USER)

    # ------------------------------------------------------------------ reading

    def get(self, interaction_id: int) -> Interaction:
        query = select(Interaction).where(Interaction.id == interaction_id).options(*_LOADED)
        interaction = self.session.scalar(locked(self.session, query))
        if interaction is None:
            raise NotFound(f"no interaction #{interaction_id}")
        return interaction

    def find_by_uid(self, uid: str) -> Interaction | None:
        query = select(Interaction).where(Interaction.uid == uid).options(*_LOADED)
        return self.session.scalar(locked(self.session, query))

    def agenda(self, user: User, start: datetime, end: datetime) -> list[AgendaEntry]:
        """The interactions ``user`` owns or is linked to that overlap [start, end)."""
        linked = select(InteractionLink.interaction_id).where(InteractionLink.user_id == user.id)
        overlapping = or_(
            and_(Interaction.first_starts_at < end, Interaction.last_ends_at > start),
            and_(
                Interaction.starts_at == Interaction.ends_at,
                Interaction.starts_at >= start,
                Interaction.starts_at < end,
            ),
        )
        rows = self.session.scalars(
            select(Interaction)
            .where(or_(Interaction.owner_id == user.id, Interaction.id.in_(linked)), overlapping)
            .order_by(Interaction.starts_at, Interaction.id)
            .options(*_LOADED)
        ).all()
        entries = []
        for interaction in rows:
            link = next((k for k in interaction.links if k.user_id == user.id), None)
            link = None if interaction.owner_id == user.id else link
            for first, last in recurrence.occurrences(series_of(interaction), start, end):
                entries.append(AgendaEntry(interaction, link, first, last))
        return sorted(entries, key=lambda e: (e.starts_at, e.interaction.id))

    def invitations(self, user: User, after: datetime) -> list[AgendaEntry]:
        """What ``user`` is invited to and has not answered, not over by ``after``: each
        interaction once, at its next occurrence; soonest first."""
        rows = self.session.scalars(
            select(Interaction)
            .join(InteractionLink, InteractionLink.interaction_id == Interaction.id)
            .where(
                InteractionLink.user_id == user.id,
                InteractionLink.status == LinkStatus.INVITED,
                InteractionLink.removed.is_(False),
                Interaction.status == InteractionStatus.PLANNED,
                Interaction.last_ends_at > after,
            )
            .options(*_LOADED)
        ).all()
        entries = []
        for interaction in rows:
            link = next(k for k in interaction.links if k.user_id == user.id)
            upcoming = recurrence.next_occurrence(series_of(interaction), after)
            if upcoming:
                entries.append(AgendaEntry(interaction, link, *upcoming))
        return sorted(entries, key=lambda e: (e.starts_at, e.interaction.id))

    # ------------------------------------------------------------------ the owner's changes

    @_one_change
    def create(
        self,
        owner: User,
        draft: Draft,
        uid: str | None = None,
        href: str | None = None,
        calendar_id: int | None = None,
    ) -> Interaction:
        """A new interaction; ``uid`` and ``href`` keep what a calendar client chose, and
        ``calendar_id`` the calendar of the owner's own where they saved it. The UID of the
        owner's own cancelled interaction brings that one back (``restore``), as the draft
        says, in that calendar."""
        self._require_active(owner)
        uid = validation.uid(uid) if uid else f"{uuid.uuid4()}"
        existing = self.find_by_uid(uid)
        if existing is not None:
            if not existing.cancelled or existing.owner_id != owner.id:
                raise AlreadyExists(f"an interaction with UID {uid!r} already exists")
            self.restore(owner, existing, href)
            existing.calendar_id = calendar_id
            self.edit(owner, existing, _changes_of(draft, owner), rooms_answer=True)
            return existing
        href, organizer_href = self._names(uid, href)
        period = period_of(draft.start, draft.end, draft.timezone or owner.timezone)
        rule = recurrence.checked_rule(draft.rrule, period.timezone, period.all_day)
        excluded = recurrence.exdate_text(draft.exdates) if rule else ""
        moves = _checked_moves(_series(period, rule, excluded), draft.moves) if rule else ()
        recurrence.check_occurs(_series(period, rule, excluded))
        span = recurrence.span(_series(period, rule, excluded, moves))
        now = utcnow()
        interaction = Interaction(
            uid=uid,
            owner=owner,
            subject=one_line(draft.subject, "the subject", 500, required=True),
            notes=_notes(draft.notes),
            kind=_kind(draft.kind),
            location=one_line(draft.location, "the location", 500),
            all_day=period.all_day,
            starts_at=period.starts_at,
            ends_at=period.ends_at,
            timezone=period.timezone,
            rrule=rule,
            exdates=excluded,
            first_starts_at=span[0],
            last_ends_at=span[1],
            moves=[OccurrenceMove(recurrence_id=r, starts_at=s, ends_at=e) for r, s, e in moves],
            status=InteractionStatus.PLANNED,
            sequence=0,
            created_at=now,
            modified_at=now,
            href=href,
            organizer_href=organizer_href,
            calendar_id=calendar_id,
            links=[],
            bookings=[],
            guests=[],
        )
        self.session.add(interaction)
        self.session.flush()
        self._created.add(interaction.id)
        self.publish(interaction)
        return interaction

    def _names(
        self, uid: str, chosen: str | None, interaction: Interaction | None = None
    ) -> tuple[str, str | None]:
        """The name every calendar shares for ``interaction`` (or a new one), and the owner's
        own when the one their client chose is another organizer's live meeting (names are
        per calendar; ``check_one_copy`` and each calendar's own items keep them unique in
        each). A cancelled interaction holding the name takes one of its own: it left every
        calendar, whose clients saw it go under that name and then see the new item come."""
        if chosen is None:
            default = f"{uid}.ics"
            return (default if _SAFE_HREF.fullmatch(default) else f"{uuid.uuid4()}.ics"), None
        query = select(Interaction).where(Interaction.href == chosen)
        holder = self.session.scalar(locked(self.session, query))
        if holder is None or holder is interaction:
            return chosen, None
        if not holder.cancelled:
            return f"{uuid.uuid4()}.ics", chosen
        holder.href, holder.organizer_href = f"{uuid.uuid4()}.ics", None
        self.session.flush()  # the name is free before anyone takes it (a unique column)
        return chosen, None

    @_one_change
    def edit(
        self,
        actor: User,
        interaction: Interaction,
        changes: Changes,
        rooms_answer: bool = False,
    ) -> bool:
        """Apply an owner's edit; a change of time or place bumps SEQUENCE. False if no-op.

        A booked room that is busy at the new time refuses the move, unless ``rooms_answer``
        (a calendar client's edit): then each room answers for the new time, declining when
        busy and accepting again when it is free."""
        self._require_owner(actor, interaction)
        self._require_open(interaction)
        before = (interaction.subject, interaction.notes, interaction.kind)
        if changes.subject is not None:
            interaction.subject = one_line(changes.subject, "the subject", 500, required=True)
        if changes.notes is not None:
            interaction.notes = _notes(changes.notes)
        if changes.kind is not None:
            interaction.kind = _kind(changes.kind)
        reschedule = False
        if changes.location is not None:
            location = one_line(changes.location, "the location", 500)
            reschedule = location != interaction.location
            interaction.location = location
        period = self._edited_period(interaction, changes)
        rule = interaction.rrule
        if changes.rrule is not None:
            rule = recurrence.checked_rule(changes.rrule, period.timezone, period.all_day)
        excluded = interaction.exdates
        if changes.exdates is not None:
            excluded = recurrence.exdate_text(changes.exdates)
        excluded = excluded if rule else ""
        moves: tuple[Move, ...] = ()
        if rule and changes.moves is not None:
            moves = _checked_moves(_series(period, rule, excluded), changes.moves)
        elif rule:
            moves = _still_occurring(_series(period, rule, excluded), series_of(interaction).moves)
        new = _series(period, rule, excluded, moves)
        recurrence.check_occurs(new)
        if not _same_times(new, series_of(interaction)):
            reschedule = True
            self._rooms_for(interaction, new, rooms_answer)
        interaction.starts_at, interaction.ends_at = period.starts_at, period.ends_at
        interaction.all_day, interaction.timezone = period.all_day, period.timezone
        interaction.rrule, interaction.exdates = rule, excluded
        _set_moves(interaction, new.moves)
        interaction.first_starts_at, interaction.last_ends_at = recurrence.span(new)
        if not reschedule and before == (interaction.subject, interaction.notes, interaction.kind):
            return False
        self._updated(interaction, reschedule)
        return True

    def _edited_period(self, interaction: Interaction, changes: Changes) -> _Period:
        if changes.start is None and changes.end is None and changes.timezone is None:
            return _Period(
                interaction.starts_at,
                interaction.ends_at,
                interaction.all_day,
                interaction.timezone,
            )
        timezone = changes.timezone or interaction.timezone
        tz = zone(timezone)
        current_start: datetime | date = interaction.starts_at.astimezone(tz)
        current_end: datetime | date = interaction.ends_at.astimezone(tz)
        if interaction.all_day:
            current_start = interaction.starts_at.astimezone(tz).date()
            current_end = interaction.ends_at.astimezone(tz).date()
        start = changes.start if changes.start is not None else current_start
        end = changes.end if changes.end is not None else current_end
        if changes.start is not None and changes.end is None:
            # Moving the start alone keeps the duration.
            duration = _as_comparable(current_end) - _as_comparable(current_start)
            end = _from_comparable(_as_comparable(start) + duration, start)
        return period_of(start, end, timezone)

    @_one_change
    def cancel(self, actor: User, interaction: Interaction) -> bool:
        """Cancel: SEQUENCE + 1, a cancellation to every linked user, rooms freed."""
        self._require_owner(actor, interaction)
        if interaction.cancelled:
            return False
        interaction.status = InteractionStatus.CANCELLED
        self._updated(interaction, reschedule=True, kind=NotificationKind.CANCELLATION)
        return True

    @_one_change
    def restore(self, actor: User, interaction: Interaction, href: str | None = None) -> bool:
        """The owner bringing back their cancelled interaction: undoing a deletion, or saving
        its UID again (a re-import), under its name or ``href``. False if it is not cancelled.

        It is the same interaction, not a new one with the same UID: the UID is the
        interaction's, kept forever (DESIGN.md section 2), and its history in the CRM stays one
        record (created, answered, cancelled, back). SEQUENCE goes on growing (iTIP, RFC
        5546): attendees' clients hold the CANCEL, and take the new REQUEST because its
        SEQUENCE is higher; an interaction starting again at 0 would be older than the
        cancellation to them. Everyone linked is Invited again, their answers (to a meeting
        they were then told was off) cleared, and is sent an invitation; so are the guests.
        Its rooms answer again, declining where another interaction took them since."""
        self._require_owner(actor, interaction)
        if not interaction.cancelled:
            return False
        if href is not None and href != name_of(interaction, actor.id):
            interaction.href, interaction.organizer_href = self._names(
                interaction.uid, href, interaction
            )
        interaction.status = InteractionStatus.PLANNED
        for link in interaction.links:
            link.status, link.tentative, link.answered_at = LinkStatus.INVITED, False, None
            link.removed = False
            link.occurrence_answers.clear()
        for guest in interaction.guests:
            guest.partstat = "NEEDS-ACTION"
        self._rooms_for(interaction, series_of(interaction), rooms_answer=True)
        self._updated(interaction, reschedule=True, kind=NotificationKind.INVITATION)
        return True

    @_one_change
    def mark_done(self, actor: User, interaction: Interaction) -> bool:
        """Record that the interaction took place; attendees are not notified."""
        self._require_owner(actor, interaction)
        self._require_open(interaction)
        if interaction.status is InteractionStatus.DONE:
            return False
        interaction.status = InteractionStatus.DONE
        interaction.modified_at = utcnow()
        self.publish(interaction)
        return True

    # ------------------------------------------------------------------ linked users

    def link(self, actor: User, interaction: Interaction, user: User, status: LinkStatus) -> bool:
        """Link ``user`` as Invited or Confirmed, or change their status (``_relinks``).
        False when nothing changed."""
        return bool(self.link_users(actor, interaction, [user], status))

    @_one_change
    def link_users(
        self,
        actor: User,
        interaction: Interaction,
        users: Sequence[User],
        status: LinkStatus,
        client_scheduled: Collection[int] = (),
    ) -> list[User]:
        """``link`` for several users in one change (a client's event with many attendees):
        all are checked before any is linked. Returns those whose link changed. New links of
        the users of ``client_scheduled`` (ids) are told by the organizer's client itself."""
        self._require_owner(actor, interaction)
        self._require_open(interaction)
        if not self.multi_user_enabled():
            raise MultiUserDisabled()
        if status is LinkStatus.DECLINED:
            raise InvalidTransition(
                "only the invited user can decline: link them as invited or confirmed"
            )
        links = {k.user_id: k for k in interaction.links}
        changed = []
        for user in users:
            if user.id == interaction.owner_id:
                raise InvalidTransition(
                    f"{user.login} owns interaction #{interaction.id} and cannot also be a "
                    "linked user"
                )
            if not user.active:
                raise NotAllowed(f"user {user.login} is inactive and cannot be linked")
            existing = links.get(user.id)
            if existing is None or _relinks(existing, status):
                changed.append(user)
        if not changed:
            return []
        for user in changed:
            existing = links.get(user.id)
            if existing is None:
                interaction.links.append(
                    InteractionLink(
                        user=user,
                        status=status,
                        tentative=False,
                        client_scheduled=user.id in client_scheduled,
                    )
                )
            else:
                existing.status, existing.tentative, existing.answered_at = status, False, None
                existing.removed = False
        interaction.modified_at = utcnow()
        self.session.flush()
        self.publish(interaction)
        kind = (
            NotificationKind.INVITATION
            if status is LinkStatus.INVITED
            else NotificationKind.CONFIRMATION
        )
        links = {k.user_id: k for k in interaction.links}
        for user in changed:
            itip = not links[user.id].client_scheduled
            self.notifier.to_attendee(interaction, user, kind, itip)
        return changed

    @_one_change
    def schedule_by_client(
        self, actor: User, interaction: Interaction, user_ids: Collection[int]
    ) -> bool:
        """Which linked users the organizer's client tells itself (SCHEDULE-AGENT=CLIENT,
        RFC 6638 section 7.1); the server tells the others. False if nothing changed."""
        self._require_owner(actor, interaction)
        changed = False
        for link in interaction.links:
            wanted = link.user_id in user_ids
            if link.client_scheduled != wanted:
                link.client_scheduled, changed = wanted, True
        if changed:
            self.publish(interaction)
        return changed

    @_one_change
    def send_again(self, actor: User, interaction: Interaction, users: Collection[int]) -> None:
        """SCHEDULE-FORCE-SEND=REQUEST: send the current event to these linked users again."""
        self._require_owner(actor, interaction)
        self._require_open(interaction)
        for link in interaction.links:
            if link.user_id in users:
                self._tell(interaction, link, NotificationKind.UPDATE, itip=True)

    @_one_change
    def unlink(self, actor: User, interaction: Interaction, user: User) -> None:
        """Remove a linked user: they are told, and the interaction leaves their calendar."""
        self._require_owner(actor, interaction)
        link = self._find_link(interaction, user)
        if link is None:
            raise NotFound(f"{user.login} is not linked to interaction #{interaction.id}")
        interaction.links.remove(link)
        interaction.modified_at = utcnow()
        self.session.flush()
        own = changelog.holding(user.id, link.calendar_id)
        changelog.record(self.session, {own}, interaction.href, True)
        self.publish(interaction)
        if not interaction.cancelled:
            self.notifier.to_attendee(
                interaction, user, NotificationKind.REMOVAL, not link.client_scheduled
            )

    @_one_change
    def answer(
        self,
        user: User,
        interaction: Interaction,
        answer: Answer,
        itip: bool = True,
        remove: bool = False,
    ) -> bool:
        """A linked user's own answer; never bumps SEQUENCE. False if it changes nothing.

        ``itip`` False when the attendee's client sends the REPLY itself (SCHEDULE-AGENT=CLIENT
        on the ORGANIZER): the owner gets the messenger notice only. ``remove`` with a decline:
        the user also took the event out of their calendar (a client's DELETE)."""
        self._require_active(user)
        self._require_open(interaction)
        link = self._find_link(interaction, user)
        if link is None:
            raise NotAllowed(f"{user.login} is not linked to interaction #{interaction.id}")
        self._keep_in_calendar(interaction, link, answer, remove)
        status, tentative = _ANSWERED[answer]
        if (link.status, link.tentative) == (status, tentative):
            return False
        link.status, link.tentative, link.answered_at = status, tentative, utcnow()
        interaction.modified_at = utcnow()
        self.publish(interaction, by_organizer=False)
        self.notifier.to_owner(interaction, user, answer, itip)
        return True

    @_one_change
    def answer_occurrence(
        self,
        user: User,
        interaction: Interaction,
        occurrence: datetime,
        answer: Answer,
        itip: bool = True,
    ) -> bool:
        """A linked user's answer to one occurrence (its UTC start) of a recurring
        interaction: only that occurrence changes. False if it changes nothing."""
        self._require_active(user)
        self._require_open(interaction)
        link = self._find_link(interaction, user)
        if link is None:
            raise NotAllowed(f"{user.login} is not linked to interaction #{interaction.id}")
        self._keep_in_calendar(interaction, link, answer)
        if recurrence.occurrence(series_of(interaction), occurrence) is None:
            raise InvalidInput(f"interaction #{interaction.id} has no occurrence at {occurrence}")
        wanted = _ANSWERED[answer]
        if answer_to(link, occurrence) == wanted:
            return False
        mine = next((a for a in link.occurrence_answers if a.recurrence_id == occurrence), None)
        if wanted == (link.status, link.tentative):  # back to the series' answer
            if mine is not None:
                link.occurrence_answers.remove(mine)
        elif mine is None:
            link.occurrence_answers.append(
                OccurrenceAnswer(recurrence_id=occurrence, status=wanted[0], tentative=wanted[1])
            )
        else:
            mine.status, mine.tentative = wanted
        interaction.modified_at = utcnow()
        self.session.flush()
        self.publish(interaction, by_organizer=False)
        self.notifier.to_owner(interaction, user, answer, itip, occurrence)
        return True

    def _keep_in_calendar(
        self, interaction: Interaction, link: InteractionLink, answer: Answer, remove: bool = False
    ) -> None:
        """Whether the interaction is in the user's calendar follows their latest answer: a
        decline by deleting it takes it out; any later accept or tentative answer, on any
        channel, brings it back (the change ends by logging it there, so sync sees it), as
        does the organizer's next scheduling message (``_tell``)."""
        if remove and answer is Answer.DECLINE and not link.removed:
            link.removed = True
            own = changelog.holding(link.user_id, link.calendar_id)
            changelog.record(self.session, {own}, interaction.href, deleted=True)
        elif answer is not Answer.DECLINE and link.removed:
            link.removed = False
            interaction.modified_at = utcnow()
            self.publish(interaction, by_organizer=False)

    @_one_change
    def guest_answer(self, interaction: Interaction, address: str, answer: Answer) -> bool:
        """An answer from an attendee outside the CRM (an emailed REPLY): their PARTSTAT in
        every copy; the owner is told by the messenger (the email reached them already)."""
        self._require_open(interaction)
        guest = next((g for g in interaction.guests if g.address == address), None)
        if guest is None:
            raise NotAllowed(f"{address} is not an attendee of interaction #{interaction.id}")
        partstat = {
            Answer.ACCEPT: "ACCEPTED",
            Answer.DECLINE: "DECLINED",
            Answer.TENTATIVE: "TENTATIVE",
        }[answer]
        if guest.partstat == partstat:
            return False
        guest.partstat = partstat
        interaction.modified_at = utcnow()
        self.publish(interaction, by_organizer=False)
        self.notifier.to_owner(interaction, guest, answer, itip=False)
        return True

    @_one_change
    def set_guests(
        self, actor: User, interaction: Interaction, guests: Sequence[GuestEntry]
    ) -> bool:
        """Replace the attendees who are not CRM users. New guests are invited by email and
        removed ones told, unless the organizer's client tells them itself."""
        self._require_owner(actor, interaction)
        if len(guests) > MAX_GUESTS:
            raise InvalidInput(f"an interaction has at most {MAX_GUESTS} attendees from outside")
        for entry in guests:  # each gets an email: one address each, nothing more
            mail_address(entry.address)
            one_line(entry.name, "an attendee's name", 200)
        wanted = {g.address: g for g in guests}
        current = {
            g.address: GuestEntry(g.address, g.name, g.partstat, g.client_scheduled)
            for g in interaction.guests
        }
        if wanted == current:
            return False
        removed = [g for g in interaction.guests if g.address not in wanted]
        rows = {g.address: g for g in interaction.guests}
        kept = []
        for entry in wanted.values():  # each address's row changed in place (see _set_moves)
            row = rows.get(entry.address) or Guest(address=entry.address)
            row.name, row.partstat = entry.name, entry.partstat
            row.client_scheduled = entry.client_scheduled
            kept.append(row)
        interaction.guests = kept
        interaction.modified_at = utcnow()
        self.session.flush()
        self.publish(interaction)
        if not interaction.cancelled:
            for guest in interaction.guests:
                if guest.address not in current:
                    self.notifier.to_attendee(
                        interaction, guest, NotificationKind.INVITATION, not guest.client_scheduled
                    )
            for guest in removed:
                self.notifier.to_attendee(
                    interaction, guest, NotificationKind.REMOVAL, not guest.client_scheduled
                )
        return True

    # ------------------------------------------------------------------ resources

    @_one_change
    def book(self, actor: User, interaction: Interaction, resource: Resource) -> None:
        """Book a resource; an overlapping booking is refused with the conflicting interaction."""
        self._require_bookable(actor, interaction, resource)
        existing = self._find_booking(interaction, resource)
        if existing is not None and not existing.declined:
            raise AlreadyExists(f"{resource.name} is already booked by this interaction")
        self._check_free(resource, series_of(interaction), interaction)
        if existing is not None:
            existing.declined = False
        else:
            interaction.bookings.append(Booking(resource=resource))
        self.session.flush()
        self._updated(interaction, reschedule=True)

    @_one_change
    def ask_room(self, actor: User, interaction: Interaction, resource: Resource) -> bool:
        """A calendar client's room attendee: the room answers at once, ACCEPTED (booked) when
        it is free and DECLINED (kept, holding nothing) when it is not. Returns the answer."""
        self._require_bookable(actor, interaction, resource)
        existing = self._find_booking(interaction, resource)
        if existing is not None and not existing.declined:
            return True
        try:
            self._check_free(resource, series_of(interaction), interaction)
        except BookingConflict:
            if existing is None:
                interaction.bookings.append(Booking(resource=resource, declined=True))
                self.session.flush()
                self._updated(interaction, reschedule=False)
            return False
        if existing is not None:
            existing.declined = False
        else:
            interaction.bookings.append(Booking(resource=resource))
        self.session.flush()
        self._updated(interaction, reschedule=True)
        return True

    @_one_change
    def release(self, actor: User, interaction: Interaction, resource: Resource) -> None:
        self._require_owner(actor, interaction)
        booking = self._find_booking(interaction, resource)
        if booking is None:
            raise NotFound(f"{resource.name} is not booked by interaction #{interaction.id}")
        interaction.bookings.remove(booking)
        self.session.flush()
        changelog.record(
            self.session, {changelog.resource_calendar(resource.id)}, interaction.href, True
        )
        self._updated(interaction, reschedule=not interaction.cancelled and not booking.declined)

    def hold_resources(self, resources: Iterable[Resource]) -> None:
        """Lock the rows of ``resources`` for the rest of the transaction, in the one order
        every change takes its locks in, so that no two changes wait on each other: first the
        interaction's row (``get``, ``find_by_uid``), then its resources all at once, by
        ascending id, then, last, the change log of its calendars (``changelog``). A change
        that will look at several resources holds them all here before the first: taken one
        by one as an event names them, two events naming two rooms in opposite orders
        deadlocked. On SQLite the writing transaction holds the database's one write lock."""
        ids = sorted({resource.id for resource in resources})
        if ids:
            self.session.execute(
                select(Resource.id)
                .where(Resource.id.in_(ids))
                .order_by(Resource.id)
                .with_for_update()
            )

    def _require_bookable(self, actor: User, interaction: Interaction, resource: Resource) -> None:
        self._require_owner(actor, interaction)
        self._require_open(interaction)
        if not resource.active:
            raise NotAllowed(f"{resource.name} is inactive and cannot be booked")

    def _find_booking(self, interaction: Interaction, resource: Resource) -> Booking | None:
        return next((b for b in interaction.bookings if b.resource_id == resource.id), None)

    def _rooms_for(self, interaction: Interaction, series: Series, rooms_answer: bool) -> None:
        """Check (or, with ``rooms_answer``, let answer) every room for new times."""
        self.hold_resources(booking.resource for booking in interaction.bookings)
        if not rooms_answer:
            for booking in interaction.bookings:
                if not booking.declined:
                    self._check_free(booking.resource, series, interaction)
            return
        for booking in interaction.bookings:
            free = self._conflict(booking.resource, series, interaction) is None
            if free == booking.declined:
                booking.declined = not free
                if not free:  # it leaves the room's calendar
                    room = changelog.resource_calendar(booking.resource_id)
                    changelog.record(self.session, {room}, interaction.href, True)

    def _check_free(self, resource: Resource, series: Series, interaction: Interaction) -> None:
        other = self._conflict(resource, series, interaction)
        if other is not None:
            when = describe_when(other, other.timezone)
            raise BookingConflict(resource.name, other.id, other.subject, when)

    def _conflict(
        self, resource: Resource, series: Series, interaction: Interaction
    ) -> Interaction | None:
        """The first other interaction holding ``resource`` during one of the occurrences of
        ``series``, at any date (``recurrence.collide``), if any."""
        self.hold_resources([resource])  # bookings of this resource, one after the other
        first, last = recurrence.span(series)
        candidates = self.session.scalars(
            select(Interaction)
            .join(Booking, Booking.interaction_id == Interaction.id)
            .where(
                Booking.resource_id == resource.id,
                Booking.declined.is_(False),
                Interaction.id != interaction.id,
                Interaction.status != InteractionStatus.CANCELLED,
                Interaction.first_starts_at < last,
                Interaction.last_ends_at > first,
            )
            .order_by(Interaction.starts_at)
        )
        for other in candidates:
            if recurrence.collide(series, series_of(other)):
                return other
        return None

    # ------------------------------------------------------------------ helpers

    @_one_change
    def place(self, actor: User, interaction: Interaction, calendar_id: int | None) -> None:
        """Keep the interaction, for ``actor``, in a calendar of their own (None: in their
        interactions calendar). It leaves the calendar that held it; nobody else sees a
        change, and nothing is sent."""
        self._require_active(actor)
        holder: Interaction | InteractionLink | None = interaction
        if interaction.owner_id != actor.id:
            holder = self._find_link(interaction, actor)
        if holder is None or (isinstance(holder, InteractionLink) and holder.removed):
            raise NotAllowed(f"interaction #{interaction.id} is not in your calendars")
        if holder.calendar_id == calendar_id:
            return
        name = name_of(interaction, actor.id)
        before = changelog.holding(actor.id, holder.calendar_id)
        changelog.record(self.session, {before}, name, deleted=True)
        holder.calendar_id = calendar_id
        self.session.flush()
        after = changelog.holding(actor.id, calendar_id)
        changelog.record(self.session, {after}, name, interaction.cancelled)

    def calendar_removed(self, collection_id: int) -> None:
        """A calendar a user made is deleted: the interactions it held go back to their
        interactions calendar (removing a calendar cancels no meeting and declines none)."""
        held: list[Interaction | InteractionLink] = [
            *self.session.scalars(
                select(Interaction).where(Interaction.calendar_id == collection_id)
            ),
            *self.session.scalars(
                select(InteractionLink).where(InteractionLink.calendar_id == collection_id)
            ),
        ]
        for holder in held:
            holder.calendar_id = None
            interaction = holder if isinstance(holder, Interaction) else holder.interaction
            user_id = holder.owner_id if isinstance(holder, Interaction) else holder.user_id
            if not (isinstance(holder, InteractionLink) and holder.removed):
                changelog.record(
                    self.session,
                    {changelog.user_calendar(user_id)},
                    name_of(interaction, user_id),
                    interaction.cancelled,
                )
        self.session.flush()

    def _find_link(self, interaction: Interaction, user: User) -> InteractionLink | None:
        return next((k for k in interaction.links if k.user_id == user.id), None)

    def _require_owner(self, actor: User, interaction: Interaction) -> None:
        self._require_active(actor)
        if actor.id != interaction.owner_id:
            raise NotAllowed(
                f"only the owner ({interaction.owner.login}) can change interaction "
                f"#{interaction.id}"
            )

    @staticmethod
    def _require_active(user: User) -> None:
        if not user.active:
            raise NotAllowed(f"user {user.login} is inactive")

    @staticmethod
    def _require_open(interaction: Interaction) -> None:
        if interaction.cancelled:
            raise InteractionCancelled(f"interaction #{interaction.id} is cancelled")

    def _updated(
        self,
        interaction: Interaction,
        reschedule: bool,
        kind: NotificationKind = NotificationKind.UPDATE,
    ) -> None:
        """An owner's change: SEQUENCE grows for time, place and cancellation; every attendee
        is told, those who declined too (RFC 6638 3.2.1.2: they may change their mind, and
        their client must show the new time or the cancellation), their answer kept."""
        if reschedule and interaction.id not in self._created | self._bumped:
            interaction.sequence += 1
            self._bumped.add(interaction.id)
        interaction.modified_at = utcnow()
        self.publish(interaction)
        for link in interaction.links:
            self._tell(interaction, link, kind, not link.client_scheduled)
        for guest in interaction.guests:
            self.notifier.to_attendee(interaction, guest, kind, not guest.client_scheduled)

    def _tell(
        self, interaction: Interaction, link: InteractionLink, kind: NotificationKind, itip: bool
    ) -> None:
        """Tell a linked user of the organizer's change. A scheduling message delivered to one
        who took the event out of their calendar puts it back there, with their answer
        (Declined) kept: RFC 6638 4.3, the server creates an attendee's copy when they have
        none. A cancellation leaves every calendar anyway."""
        if itip and link.removed and kind is not NotificationKind.CANCELLATION:
            link.removed = False
            self.publish(interaction, by_organizer=False)
        self.notifier.to_attendee(interaction, link.user, kind, itip)

    def publish(self, interaction: Interaction, by_organizer: bool = True) -> None:
        """Render the new content and log it in every calendar that shows it: now, or when
        the current change ends.

        Every change above ends here; a bulk loader that builds interactions itself (the
        benchmark's data sets) calls it too. A cancelled interaction leaves every calendar
        (clients see a deletion); the CRM keeps it.
        """
        if self._depth:
            self._touched[interaction.id] = interaction
            if by_organizer:
                self._organizer_changed.add(interaction.id)
        else:
            self._render_and_log(interaction)

    def _render_and_log(self, interaction: Interaction) -> None:
        interaction.ical = interaction_ical(interaction)
        interaction.etag = f'"{hashlib.sha256(interaction.ical.encode()).hexdigest()}"'
        calendars = {
            changelog.holding(k.user_id, k.calendar_id) for k in interaction.links if not k.removed
        }
        calendars.update(
            changelog.resource_calendar(b.resource_id)
            for b in interaction.bookings
            if not b.declined
        )
        owner = changelog.holding(interaction.owner_id, interaction.calendar_id)
        own_name = name_of(interaction, interaction.owner_id)
        changelog.record_items(
            self.session,
            sorted({(owner, own_name), *((c, interaction.href) for c in calendars)}),
            interaction.cancelled,
        )


def _changes_of(draft: Draft, owner: User) -> Changes:
    """A draft as the edit that makes an existing interaction what it says."""
    return Changes(
        subject=draft.subject,
        notes=draft.notes,
        kind=draft.kind,
        location=draft.location,
        start=draft.start,
        end=draft.end,
        timezone=draft.timezone or owner.timezone,
        rrule=draft.rrule,
        exdates=draft.exdates,
        moves=draft.moves,
    )


def _as_comparable(value: datetime | date) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time(0))


def _from_comparable(value: datetime, like: datetime | date) -> datetime | date:
    return value if isinstance(like, datetime) else value.date()

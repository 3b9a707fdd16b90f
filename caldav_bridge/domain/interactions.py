"""The interaction service: the one place that decides the rules of DESIGN.md section 1.

Status transitions, booking conflicts and SEQUENCE rules live in the domain and nowhere else
(``rules``, ``periods``, ``bookings``, ``answers``, ``participants``); this class gathers the
commands. Every channel (CalDAV, email replies, web pages, CLI) calls them inside a write
transaction (``Database.session(write=True)``); each change writes its notifications and its
calendar change log rows in that same transaction, so they are stored together or not at all.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select

from caldav_bridge.db import locked
from caldav_bridge.domain import changelog, periods, recurrence, rules, validation
from caldav_bridge.domain.answers import Answers
from caldav_bridge.domain.bookings import Bookings
from caldav_bridge.domain.errors import AlreadyExists, InvalidInput, NotAllowed
from caldav_bridge.domain.models import (
    Interaction,
    InteractionLink,
    InteractionStatus,
    LinkStatus,
    NotificationKind,
    OccurrenceMove,
    User,
    utcnow,
)
from caldav_bridge.domain.participants import Participants
from caldav_bridge.domain.periods import Changes, Draft, Move
from caldav_bridge.domain.queries import name_of, of_user
from caldav_bridge.domain.service import LOADED, one_change
from caldav_bridge.domain.validation import one_line
from caldav_bridge.ical import source
from caldav_bridge.ical.mapping import interaction_ical, series_of


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


def _notes(value: str) -> str:
    if "\x00" in value or len(value) > 100_000:
        raise InvalidInput("notes must be text of at most 100,000 characters")
    # One kind of line break, as iCalendar has (RFC 5545 3.3.11): a client saving the notes
    # back unchanged does not change them.
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").strip()


def _location(value: str) -> str:
    """The typed place, several lines allowed (Apple Calendar writes a map location's name
    and address on lines of their own): shown as written, never in an email header."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").strip()
    for line in text.split("\n"):
        one_line(line, "the location", 500)
    if len(text) > 500:
        raise InvalidInput("the location must be at most 500 characters")
    return text


def _kind(value: str) -> str:
    return one_line(value, "the interaction type", 40, required=True).lower()


# Item names that are safe in a URL path and on every client.
_SAFE_HREF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,250}")


class InteractionService(Bookings, Answers, Participants):
    """The interaction service: every command of every channel."""

    def agenda(self, user: User, start: datetime, end: datetime) -> list[AgendaEntry]:
        """The interactions shown to ``user`` (``queries.of_user``: owned or linked, taken
        out of their calendar or not) that overlap [start, end)."""
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
            .where(of_user(user.id, in_calendars=False), overlapping)
            .order_by(Interaction.starts_at, Interaction.id)
            .options(*LOADED)
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
            .options(*LOADED)
        ).all()
        entries = []
        for interaction in rows:
            link = next(k for k in interaction.links if k.user_id == user.id)
            upcoming = recurrence.next_occurrence(series_of(interaction), after)
            if upcoming:
                entries.append(AgendaEntry(interaction, link, *upcoming))
        return sorted(entries, key=lambda e: (e.starts_at, e.interaction.id))

    @one_change
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
        rules.require_active(owner)
        uid = validation.uid(uid) if uid else f"{uuid.uuid4()}"
        existing = self.find_by_uid(uid)
        if existing is not None:
            if not existing.cancelled or existing.owner_id != owner.id:
                raise AlreadyExists(f"an interaction with UID {uid!r} already exists")
            self.restore(owner, existing, href)
            existing.calendar_id = calendar_id
            self.edit(owner, existing, periods.changes_of(draft, owner), rooms_answer=True)
            return existing
        href, organizer_href = self._names(uid, href)
        period = periods.period_of(draft.start, draft.end, draft.timezone or owner.timezone)
        rule = recurrence.checked_rule(draft.rrule, period.timezone, period.all_day)
        excluded = recurrence.exdate_text(draft.exdates) if rule else ""
        moves = (
            periods.checked_moves(periods.series(period, rule, excluded), draft.moves)
            if rule
            else ()
        )
        recurrence.check_occurs(periods.series(period, rule, excluded))
        span = recurrence.span(periods.series(period, rule, excluded, moves))
        now = utcnow()
        interaction = Interaction(
            uid=uid,
            owner=owner,
            subject=one_line(draft.subject, "the subject", 500, required=True),
            notes=_notes(draft.notes),
            kind=_kind(draft.kind),
            location=_location(draft.location),
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

    @one_change
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
        rules.require_owner(actor, interaction)
        rules.require_open(interaction)
        before = (interaction.subject, interaction.notes, interaction.kind)
        if changes.subject is not None:
            interaction.subject = one_line(changes.subject, "the subject", 500, required=True)
        if changes.notes is not None:
            interaction.notes = _notes(changes.notes)
        if changes.kind is not None:
            interaction.kind = _kind(changes.kind)
        reschedule = False
        if changes.location is not None:
            location = _location(changes.location)
            reschedule = location != interaction.location
            interaction.location = location
        period = periods.edited_period(interaction, changes)
        rule = interaction.rrule
        if changes.rrule is not None:
            rule = recurrence.checked_rule(changes.rrule, period.timezone, period.all_day)
        excluded = interaction.exdates
        if changes.exdates is not None:
            excluded = recurrence.exdate_text(changes.exdates)
        excluded = excluded if rule else ""
        moves: tuple[Move, ...] = ()
        if rule and changes.moves is not None:
            moves = periods.checked_moves(periods.series(period, rule, excluded), changes.moves)
        elif rule:
            moves = periods.still_occurring(
                periods.series(period, rule, excluded), series_of(interaction).moves
            )
        new = periods.series(period, rule, excluded, moves)
        recurrence.check_occurs(new)
        if not periods.same_times(new, series_of(interaction)):
            reschedule = True
            self._rooms_for(interaction, new, rooms_answer)
        interaction.starts_at, interaction.ends_at = period.starts_at, period.ends_at
        interaction.all_day, interaction.timezone = period.all_day, period.timezone
        interaction.rrule, interaction.exdates = rule, excluded
        periods.set_moves(interaction, new.moves)
        interaction.first_starts_at, interaction.last_ends_at = recurrence.span(new)
        if not reschedule and before == (interaction.subject, interaction.notes, interaction.kind):
            return False
        self._updated(interaction, reschedule)
        return True

    @one_change
    def keep_source(
        self, actor: User, interaction: Interaction, text: str, edited: bool = False
    ) -> None:
        """Keep ``text``, the organizer's event as their client wrote it, beside the
        interaction (``mapping``: what the CRM does not rule comes back from it). When the
        CRM's fields did not change (not ``edited``) and what attendees are sent did (a
        conference link, an attachment), they are sent the update."""
        rules.require_owner(actor, interaction)
        if text == interaction.source:
            return
        before = None if edited else self._sent(interaction)
        interaction.source = text
        news = before is not None and before != self._sent(interaction)
        # The Schedule-Tag changes with what attendees are sent (RFC 6638 3.2.10), not with
        # what the organizer's client keeps for itself.
        self.publish(interaction, by_organizer=edited or news)
        if news:
            self._updated(interaction, reschedule=False)

    @staticmethod
    def _sent(interaction: Interaction) -> list[str]:
        """What an invitation to ``interaction`` says that is news to attendees."""
        return source.news(interaction_ical(interaction, "REQUEST", stamp=interaction.modified_at))

    @one_change
    def cancel(self, actor: User, interaction: Interaction) -> bool:
        """Cancel: SEQUENCE + 1, a cancellation to every linked user, rooms freed."""
        rules.require_owner(actor, interaction)
        if interaction.cancelled:
            return False
        interaction.status = InteractionStatus.CANCELLED
        self._updated(interaction, reschedule=True, kind=NotificationKind.CANCELLATION)
        return True

    @one_change
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
        rules.require_owner(actor, interaction)
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
            link.answer_sequence = link.answer_dtstamp = None  # no answer to this version yet
        for guest in interaction.guests:
            guest.partstat = rules.NEEDS_ACTION
            guest.answer_sequence = guest.answer_dtstamp = None
        self._rooms_for(interaction, series_of(interaction), rooms_answer=True)
        self._updated(interaction, reschedule=True, kind=NotificationKind.INVITATION)
        return True

    @one_change
    def mark_done(self, actor: User, interaction: Interaction) -> bool:
        """Record that the interaction took place; attendees are not notified."""
        rules.require_owner(actor, interaction)
        rules.require_open(interaction)
        if interaction.status is InteractionStatus.DONE:
            return False
        interaction.status = InteractionStatus.DONE
        interaction.modified_at = utcnow()
        self.publish(interaction)
        return True

    @one_change
    def place(self, actor: User, interaction: Interaction, calendar_id: int | None) -> None:
        """Keep the interaction, for ``actor``, in a calendar of their own (None: in their
        interactions calendar). It leaves the calendar that held it; nobody else sees a
        change, and nothing is sent."""
        rules.require_active(actor)
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

"""Writes the outbox and the schedule inboxes: one row per message, in the caller's transaction.

Each notice goes to the in-CRM messenger and, as iTIP, to the schedule inbox (RFC 6638) and by
email (iMIP, RFC 6047), its calendar part rendered now, so that what is sent is what was true
when the change was made. Delivery (SMTP, messenger) reads these rows; it never decides anything.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from caldav_bridge.domain import changelog, links, tokens
from caldav_bridge.domain.models import (
    Channel,
    Guest,
    Interaction,
    NotificationKind,
    OutboxMessage,
    OutboxState,
    ScheduleMessage,
    User,
    utcnow,
)
from caldav_bridge.domain.rules import ANSWER_WORDS, Answer
from caldav_bridge.ical.mapping import interaction_ical, zone

_METHOD = {
    NotificationKind.INVITATION: "REQUEST",
    NotificationKind.CONFIRMATION: "REQUEST",
    NotificationKind.UPDATE: "REQUEST",
    NotificationKind.CANCELLATION: "CANCEL",
    NotificationKind.REMOVAL: "CANCEL",
    NotificationKind.REPLY: "REPLY",
}

# The iTIP messages that name only one attendee: the removed one (CANCEL), the answering one.
_ONE_ATTENDEE = {NotificationKind.REMOVAL, NotificationKind.REPLY}


def describe_when(interaction: Interaction, timezone: str) -> str:
    """The interaction's time in words, in the reader's time zone."""
    if interaction.all_day:
        tz = zone(interaction.timezone)
        first = interaction.starts_at.astimezone(tz)
        last = interaction.ends_at.astimezone(tz) - timedelta(days=1)
        repeating = ", repeating" if interaction.rrule else ""
        if last.date() <= first.date():
            return f"{first:%a %d %b %Y} (all day{repeating})"
        return f"{first:%a %d %b %Y} to {last:%a %d %b %Y} (all day{repeating})"
    tz = zone(timezone)
    start = interaction.starts_at.astimezone(tz)
    end = interaction.ends_at.astimezone(tz)
    end_text = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%a %d %b %Y %H:%M}"
    repeats = ", repeating" if interaction.rrule else ""
    return f"{start:%a %d %b %Y %H:%M}–{end_text} ({timezone}){repeats}"


_RANK = {NotificationKind.UPDATE: 0}  # every other kind outranks an update

Attendee = User | Guest


class Notifier:
    """Collects the notices of one change and writes them when the change ends (``flush``).

    A change made of several steps (a client's PUT that edits, books and links) tells each
    person once, in words and iCalendar that describe the end result: an update is dropped
    for whoever gets a stronger notice (an invitation, a removal) in the same change.

    A CRM user is told by the messenger and, unless the organizer's client schedules them
    itself (SCHEDULE-AGENT=CLIENT), by an iTIP message in their schedule inbox (RFC 6638) and
    by email (iMIP) where they have an address. A guest (an attendee outside the CRM) gets
    the email only.
    """

    def __init__(self, session: Session, public_url: str) -> None:
        self.session = session
        self.public_url = public_url.rstrip("/")
        self._pending: dict[tuple[int, str, str | None, datetime | None], _Notice] = {}
        # One change telling many people renders each iTIP message once.
        self._rendered: dict[tuple[object, ...], str] = {}

    def link(self, interaction: Interaction, recipient: Attendee) -> str | None:
        """The RSVP page, signed for a CRM user; a guest answers from their mail program."""
        if not isinstance(recipient, User):
            return None
        token = tokens.rsvp_token(self.session, recipient, interaction.id)
        return links.rsvp(self.public_url, interaction.id, token)

    def to_attendee(
        self,
        interaction: Interaction,
        attendee: Attendee,
        kind: NotificationKind,
        itip: bool = True,
    ) -> None:
        """Tell a linked user or a guest (or one just removed) about the interaction;
        ``itip`` False when the organizer's client schedules them itself."""
        if isinstance(attendee, Guest) and not itip:
            return
        key = (interaction.id, _key(attendee), None, None)
        earlier = self._pending.get(key)
        if earlier is None or _RANK.get(kind, 1) >= _RANK.get(earlier.kind, 1):
            self._pending[key] = _Notice(interaction, attendee, kind, attendee, itip)

    def to_owner(
        self,
        interaction: Interaction,
        attendee: Attendee,
        answer: Answer,
        itip: bool = True,
        occurrence: datetime | None = None,
    ) -> None:
        """Tell the owner what an attendee answered, to the series or to one ``occurrence``
        (an iTIP REPLY, unless ``itip`` is False: the owner has it already)."""
        key = (interaction.id, _key(interaction.owner), _key(attendee), occurrence)
        self._pending[key] = _Notice(
            interaction,
            interaction.owner,
            NotificationKind.REPLY,
            attendee,
            itip,
            answer,
            occurrence,
        )

    def flush(self) -> None:
        """Write the collected notices, each kind of row in one statement. Called when a
        change ends, after its interactions were published."""
        outbox: list[dict[str, object]] = []
        inbox: list[dict[str, Any]] = []
        for notice in self._pending.values():
            self._rows(notice, outbox, inbox)
        self._pending.clear()
        if outbox:  # render_nulls: rows with and without an email part go in one batch
            self.session.execute(insert(OutboxMessage).execution_options(render_nulls=True), outbox)
        if inbox:
            self.session.execute(insert(ScheduleMessage), inbox)
            delivered = [(r["user_id"], r["href"]) for r in inbox]
            changelog.record_items(
                self.session, [(changelog.inbox_calendar(u), h) for u, h in delivered]
            )

    def discard(self) -> None:
        self._pending.clear()

    def _rows(
        self,
        notice: _Notice,
        outbox: list[dict[str, object]],
        inbox: list[dict[str, Any]],
    ) -> None:
        interaction, recipient, kind = notice.interaction, notice.recipient, notice.kind
        link = self.link(interaction, recipient)
        title, text = self._words(notice, link)
        user = recipient if isinstance(recipient, User) else None
        common: dict[str, object] = {
            "kind": kind,
            "interaction_id": interaction.id,
            "recipient_user_id": user.id if user else None,
            "sequence": interaction.sequence,
            "subject": title,
            "body": text,
            "link": link,
            "next_attempt_at": interaction.modified_at,
            "state": OutboxState.PENDING,
            "attempts": 0,
            "created_at": utcnow(),
        }
        if user is not None:
            outbox.append(
                {
                    **common,
                    "message_id": message_id(),
                    "channel": Channel.MESSENGER,
                    "recipient_address": None,
                    "itip_method": None,
                    "calendar": None,
                }
            )
        if not notice.itip:
            return
        method = _METHOD[kind]
        calendar = self._calendar(
            interaction,
            method,
            notice.attendee if kind in _ONE_ATTENDEE else None,
            notice.occurrence,
        )
        address = user.email if user is not None else _address(recipient)
        if address:
            outbox.append(
                {
                    **common,
                    "message_id": message_id(),
                    "channel": Channel.EMAIL,
                    "recipient_address": address,
                    "itip_method": method,
                    "calendar": calendar,
                }
            )
        if user is not None:
            inbox.append(
                {
                    "user_id": user.id,
                    "href": f"{uuid.uuid4().hex}.ics",
                    "uid": interaction.uid,
                    "method": method,
                    "ical": calendar,
                    "etag": f'"{hashlib.sha256(calendar.encode()).hexdigest()}"',
                    "created_at": utcnow(),
                }
            )

    def _words(self, notice: _Notice, link: str | None) -> tuple[str, str]:
        interaction, kind = notice.interaction, notice.kind
        subject = interaction.subject
        details = f" Details: {link}" if link else ""
        answer_at = f"Accept or decline: {link}" if link else "Reply from your calendar program."
        if kind is NotificationKind.REPLY:
            assert notice.answer is not None
            who = notice.attendee
            name = who.display_name if isinstance(who, User) else (who.name or who.address)
            words = ANSWER_WORDS[notice.answer]
            when = describe_when(interaction, interaction.owner.timezone)
            if notice.occurrence is not None:
                local = notice.occurrence.astimezone(zone(interaction.owner.timezone))
                when = f"the occurrence of {local:%a %d %b %Y %H:%M} only"
            return (
                f"{name} {words}: {subject}",
                f"{name} {words} {subject!r}, {when}.{details}",
            )
        owner = interaction.owner.display_name
        recipient = notice.recipient
        timezone = recipient.timezone if isinstance(recipient, User) else interaction.timezone
        when = describe_when(interaction, timezone)
        return {
            NotificationKind.INVITATION: (
                f"Invitation: {subject}",
                f"{owner} invites you to {subject!r}, {when}. {answer_at}",
            ),
            NotificationKind.CONFIRMATION: (
                f"Confirmed: {subject}",
                f"{owner} added you to {subject!r}, {when}, as confirmed.{details}",
            ),
            NotificationKind.UPDATE: (
                f"Updated: {subject}",
                f"{owner} changed {subject!r}: it is now {when}.{details}",
            ),
            NotificationKind.CANCELLATION: (
                f"Cancelled: {subject}",
                f"{owner} cancelled {subject!r}, {when}.",
            ),
            NotificationKind.REMOVAL: (
                f"Removed: {subject}",
                f"{owner} removed you from {subject!r}, {when}.",
            ),
        }[kind]

    def _calendar(
        self,
        interaction: Interaction,
        method: str,
        only: Attendee | None,
        occurrence: datetime | None = None,
    ) -> str:
        key = (
            interaction.id,
            interaction.sequence,
            interaction.modified_at,
            method,
            _key(only) if only is not None else None,
            occurrence,
        )
        if key not in self._rendered:
            self._rendered[key] = interaction_ical(
                interaction, method, only, stamp=interaction.modified_at, occurrence=occurrence
            )
        return self._rendered[key]


@dataclass(frozen=True)
class _Notice:
    interaction: Interaction
    recipient: Attendee
    kind: NotificationKind
    attendee: Attendee  # the attendee concerned: the one a REPLY or a removal's CANCEL names
    itip: bool  # False: messenger only (SCHEDULE-AGENT=CLIENT)
    answer: Answer | None = None
    occurrence: datetime | None = None  # the one occurrence a REPLY answers


def _key(attendee: Attendee) -> str:
    return f"user:{attendee.id}" if isinstance(attendee, User) else f"guest:{attendee.address}"


def _address(attendee: Attendee) -> str | None:
    return attendee.email if isinstance(attendee, User) else attendee.address


def message_id() -> str:
    return f"<{uuid.uuid4().hex}@caldav-bridge>"

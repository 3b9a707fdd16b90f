"""Writes the outbox: one row per message to deliver, in the caller's transaction.

Each notice goes to the in-CRM messenger and, where the recipient has an email address, as an
iMIP message whose calendar part is rendered now, so that what is sent is what was true when
the change was made. Delivery (SMTP, messenger) reads these rows; it never decides anything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from caldav_bridge.ical_mapping import Answer, interaction_ical, with_method, zone
from caldav_bridge.models import (
    Channel,
    Interaction,
    NotificationKind,
    OutboxMessage,
    OutboxState,
    User,
    utcnow,
)

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

_ANSWER_WORDS = {
    Answer.ACCEPT: "accepted",
    Answer.DECLINE: "declined",
    Answer.TENTATIVE: "tentatively accepted",
}


def describe_when(interaction: Interaction, timezone: str) -> str:
    """The interaction's time in words, in the reader's time zone."""
    if interaction.all_day:
        tz = zone(interaction.timezone)
        first = interaction.starts_at.astimezone(tz)
        last = interaction.ends_at.astimezone(tz) - timedelta(days=1)
        if last.date() <= first.date():
            return f"{first:%a %d %b %Y} (all day)"
        return f"{first:%a %d %b %Y} to {last:%a %d %b %Y} (all day)"
    tz = zone(timezone)
    start = interaction.starts_at.astimezone(tz)
    end = interaction.ends_at.astimezone(tz)
    end_text = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%a %d %b %Y %H:%M}"
    return f"{start:%a %d %b %Y %H:%M}–{end_text} ({timezone})"


_RANK = {NotificationKind.UPDATE: 0}  # every other kind outranks an update


class Notifier:
    """Collects the notices of one change and writes them when the change ends (``flush``).

    A change made of several steps (a client's PUT that edits, books and links) tells each
    person once, in words and iCalendar that describe the end result: an update is dropped
    for whoever gets a stronger notice (an invitation, a removal) in the same change.
    """

    def __init__(self, session: Session, public_url: str) -> None:
        self.session = session
        self.public_url = public_url.rstrip("/")
        self._pending: dict[tuple[int, int, int | None], _Notice] = {}
        # One change telling many people renders each iTIP message once.
        self._rendered: dict[tuple[object, ...], str] = {}

    def link(self, interaction: Interaction) -> str:
        return f"{self.public_url}/.bridge/interactions/{interaction.id}"

    def to_attendee(self, interaction: Interaction, user: User, kind: NotificationKind) -> None:
        """Tell a linked (or just removed) user about the interaction."""
        key = (interaction.id, user.id, None)
        earlier = self._pending.get(key)
        if earlier is None or _RANK.get(kind, 1) >= _RANK.get(earlier.kind, 1):
            self._pending[key] = _Notice(interaction, user, kind, user)

    def to_owner(self, interaction: Interaction, attendee: User, answer: Answer) -> None:
        """Tell the owner what a linked user answered (an iTIP REPLY by email)."""
        key = (interaction.id, interaction.owner_id, attendee.id)
        self._pending[key] = _Notice(
            interaction, interaction.owner, NotificationKind.REPLY, attendee, answer
        )

    def flush(self) -> None:
        """Write the collected notices as outbox rows, in one statement. Called when a change
        ends, after its interactions were published (a REQUEST is their stored text)."""
        rows: list[dict[str, object]] = []
        for notice in self._pending.values():
            rows.extend(self._rows(notice))
        self._pending.clear()
        if rows:  # render_nulls: rows with and without an email part go in one batch
            self.session.execute(insert(OutboxMessage).execution_options(render_nulls=True), rows)

    def discard(self) -> None:
        self._pending.clear()

    def _rows(self, notice: _Notice) -> list[dict[str, object]]:
        interaction, recipient, kind = notice.interaction, notice.recipient, notice.kind
        title, text = self._words(notice)
        common: dict[str, object] = {
            "kind": kind,
            "interaction_id": interaction.id,
            "recipient_user_id": recipient.id,
            "sequence": interaction.sequence,
            "subject": title,
            "body": text,
            "link": self.link(interaction),
            "next_attempt_at": interaction.modified_at,
            "state": OutboxState.PENDING,
            "attempts": 0,
            "created_at": utcnow(),
        }
        rows = [
            {
                **common,
                "message_id": _message_id(),
                "channel": Channel.MESSENGER,
                "recipient_address": None,
                "itip_method": None,
                "calendar": None,
            }
        ]
        if recipient.email:
            method = _METHOD[kind]
            only = notice.attendee if kind in _ONE_ATTENDEE else None
            rows.append(
                {
                    **common,
                    "message_id": _message_id(),
                    "channel": Channel.EMAIL,
                    "recipient_address": recipient.email,
                    "itip_method": method,
                    "calendar": self._calendar(interaction, method, only),
                }
            )
        return rows

    def _words(self, notice: _Notice) -> tuple[str, str]:
        interaction, kind = notice.interaction, notice.kind
        subject = interaction.subject
        link = self.link(interaction)
        if kind is NotificationKind.REPLY:
            assert notice.answer is not None
            name, words = notice.attendee.display_name, _ANSWER_WORDS[notice.answer]
            when = describe_when(interaction, interaction.owner.timezone)
            return (
                f"{name} {words}: {subject}",
                f"{name} {words} {subject!r}, {when}. Details: {link}",
            )
        owner = interaction.owner.display_name
        when = describe_when(interaction, notice.recipient.timezone)
        return {
            NotificationKind.INVITATION: (
                f"Invitation: {subject}",
                f"{owner} invites you to {subject!r}, {when}. Accept or decline: {link}",
            ),
            NotificationKind.CONFIRMATION: (
                f"Confirmed: {subject}",
                f"{owner} added you to {subject!r}, {when}, as confirmed. Details: {link}",
            ),
            NotificationKind.UPDATE: (
                f"Updated: {subject}",
                f"{owner} changed {subject!r}: it is now {when}. Details: {link}",
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

    def _calendar(self, interaction: Interaction, method: str, only: User | None) -> str:
        key = (
            interaction.id,
            interaction.sequence,
            interaction.modified_at,
            method,
            only.id if only else None,
        )
        if key not in self._rendered:
            if method == "REQUEST" and only is None:  # the stored event, just published
                self._rendered[key] = with_method(interaction.ical, method)
            else:
                self._rendered[key] = interaction_ical(
                    interaction, method, only, stamp=interaction.modified_at
                )
        return self._rendered[key]


@dataclass(frozen=True)
class _Notice:
    interaction: Interaction
    recipient: User
    kind: NotificationKind
    attendee: User  # the attendee concerned: the one a REPLY or a removal's CANCEL names
    answer: Answer | None = None


def _message_id() -> str:
    return f"<{uuid.uuid4().hex}@caldav-bridge>"

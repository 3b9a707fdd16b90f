"""Writes the outbox: one row per message to deliver, in the caller's transaction.

Each notice goes to the in-CRM messenger and, where the recipient has an email address, as an
iMIP message whose calendar part is rendered now, so that what is sent is what was true when
the change was made. Delivery (SMTP, messenger) reads these rows; it never decides anything.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from caldav_bridge.ical_mapping import Answer, interaction_ical, zone
from caldav_bridge.models import (
    Channel,
    Interaction,
    NotificationKind,
    OutboxMessage,
    User,
)

_METHOD = {
    NotificationKind.INVITATION: "REQUEST",
    NotificationKind.CONFIRMATION: "REQUEST",
    NotificationKind.UPDATE: "REQUEST",
    NotificationKind.CANCELLATION: "CANCEL",
    NotificationKind.REMOVAL: "CANCEL",
    NotificationKind.REPLY: "REPLY",
}

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


class Notifier:
    def __init__(self, session: Session, public_url: str) -> None:
        self.session = session
        self.public_url = public_url.rstrip("/")
        # One change telling many people renders each iTIP message once.
        self._rendered: dict[tuple[object, ...], str] = {}

    def _calendar(self, interaction: Interaction, method: str, only: User | None) -> str:
        key = (
            interaction.id,
            interaction.sequence,
            interaction.modified_at,
            method,
            only.id if only else None,
        )
        if key not in self._rendered:
            self._rendered[key] = interaction_ical(
                interaction, method, only, stamp=interaction.modified_at
            )
        return self._rendered[key]

    def link(self, interaction: Interaction) -> str:
        return f"{self.public_url}/.bridge/interactions/{interaction.id}"

    def to_attendee(self, interaction: Interaction, user: User, kind: NotificationKind) -> None:
        """Tell a linked (or just removed) user about the interaction."""
        owner = interaction.owner.display_name
        when = describe_when(interaction, user.timezone)
        subject = interaction.subject
        link = self.link(interaction)
        title, text = {
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
        only = user if kind is NotificationKind.REMOVAL else None
        self._write(interaction, user, kind, title, text, link, only_attendee=only)

    def to_owner(self, interaction: Interaction, attendee: User, answer: Answer) -> None:
        """Tell the owner what a linked user answered (an iTIP REPLY by email)."""
        words = _ANSWER_WORDS[answer]
        title = f"{attendee.display_name} {words}: {interaction.subject}"
        text = (
            f"{attendee.display_name} {words} {interaction.subject!r}, "
            f"{describe_when(interaction, interaction.owner.timezone)}. "
            f"Details: {self.link(interaction)}"
        )
        self._write(
            interaction,
            interaction.owner,
            NotificationKind.REPLY,
            title,
            text,
            self.link(interaction),
            only_attendee=attendee,
        )

    def _write(
        self,
        interaction: Interaction,
        recipient: User,
        kind: NotificationKind,
        title: str,
        text: str,
        link: str,
        only_attendee: User | None,
    ) -> None:
        common = {
            "kind": kind,
            "interaction_id": interaction.id,
            "recipient_user_id": recipient.id,
            "sequence": interaction.sequence,
            "subject": title,
            "body": text,
            "link": link,
            "next_attempt_at": interaction.modified_at,
        }
        self.session.add(
            OutboxMessage(message_id=_message_id(), channel=Channel.MESSENGER, **common)
        )
        if recipient.email:
            method = _METHOD[kind]
            self.session.add(
                OutboxMessage(
                    message_id=_message_id(),
                    channel=Channel.EMAIL,
                    recipient_address=recipient.email,
                    itip_method=method,
                    calendar=self._calendar(interaction, method, only_attendee),
                    **common,
                )
            )


def _message_id() -> str:
    return f"<{uuid.uuid4().hex}@caldav-bridge>"

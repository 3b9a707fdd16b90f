"""Who takes part in an interaction: linked users (Invited, Confirmed; the owner links, only
the user declines) and guests from outside the CRM, each told of what changes for them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from caldav_bridge.domain import changelog, rules
from caldav_bridge.domain.errors import (
    InvalidInput,
    InvalidTransition,
    MultiUserDisabled,
    NotAllowed,
    NotFound,
)
from caldav_bridge.domain.models import (
    Guest,
    Interaction,
    InteractionLink,
    LinkStatus,
    NotificationKind,
    User,
    utcnow,
)
from caldav_bridge.domain.service import ServiceBase, one_change
from caldav_bridge.domain.validation import mail_address, one_line

# Each guest gets an email carrying the whole event: their number is bounded.
MAX_GUESTS = 200


@dataclass(frozen=True)
class GuestEntry:
    """An attendee outside the CRM, as the organizer's event names it."""

    address: str
    name: str = ""
    partstat: str = rules.NEEDS_ACTION
    client_scheduled: bool = False


class Participants(ServiceBase):
    """The service's commands on who takes part."""

    def link(self, actor: User, interaction: Interaction, user: User, status: LinkStatus) -> bool:
        """Link ``user`` as Invited or Confirmed, or change their status (``rules.relinks``).
        False when nothing changed."""
        return bool(self.link_users(actor, interaction, [user], status))

    @one_change
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
        rules.require_owner(actor, interaction)
        rules.require_open(interaction)
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
            if existing is None or rules.relinks(existing, status):
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

    @one_change
    def schedule_by_client(
        self, actor: User, interaction: Interaction, user_ids: Collection[int]
    ) -> bool:
        """Which linked users the organizer's client tells itself (SCHEDULE-AGENT=CLIENT,
        RFC 6638 section 7.1); the server tells the others. False if nothing changed."""
        rules.require_owner(actor, interaction)
        changed = False
        for link in interaction.links:
            wanted = link.user_id in user_ids
            if link.client_scheduled != wanted:
                link.client_scheduled, changed = wanted, True
        if changed:
            self.publish(interaction)
        return changed

    @one_change
    def send_again(self, actor: User, interaction: Interaction, users: Collection[int]) -> None:
        """SCHEDULE-FORCE-SEND=REQUEST: send the current event to these linked users again."""
        rules.require_owner(actor, interaction)
        rules.require_open(interaction)
        for link in interaction.links:
            if link.user_id in users:
                self._tell(interaction, link, NotificationKind.UPDATE, itip=True)

    @one_change
    def unlink(self, actor: User, interaction: Interaction, user: User) -> None:
        """Remove a linked user: they are told, and the interaction leaves their calendar."""
        rules.require_owner(actor, interaction)
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

    @one_change
    def set_guests(
        self, actor: User, interaction: Interaction, guests: Sequence[GuestEntry]
    ) -> bool:
        """Replace the attendees who are not CRM users. New guests are invited by email and
        removed ones told, unless the organizer's client tells them itself."""
        rules.require_owner(actor, interaction)
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

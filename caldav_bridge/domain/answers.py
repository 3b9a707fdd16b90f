"""Attendees' answers: a linked user's, to the series or to one occurrence, and an outside
guest's (an emailed REPLY). An answer never bumps SEQUENCE and re-invites nobody.

An answer carried by an iTIP message (an emailed REPLY, an attendee's copy PUT over CalDAV)
comes with its ``message`` stamp: one older than what is known (``rules.stale``) raises
StaleMessage before anything changes, and each channel ignores it in its way. Every answer
taken keeps its stamp, the pages' and the RSVP page's too (stamped now).
"""

from __future__ import annotations

from datetime import datetime

from caldav_bridge.domain import changelog, recurrence, rules
from caldav_bridge.domain.errors import InvalidInput, NotAllowed, StaleMessage
from caldav_bridge.domain.models import (
    Guest,
    Interaction,
    InteractionLink,
    OccurrenceAnswer,
    User,
    utcnow,
)
from caldav_bridge.domain.service import ServiceBase, one_change
from caldav_bridge.ical.mapping import Answer, answer_to, series_of


class Answers(ServiceBase):
    """The service's commands for attendees."""

    @one_change
    def answer(
        self,
        user: User,
        interaction: Interaction,
        answer: Answer,
        itip: bool = True,
        remove: bool = False,
        message: rules.Stamp | None = None,
    ) -> bool:
        """A linked user's own answer; never bumps SEQUENCE. False if it changes nothing.

        ``itip`` False when the attendee's client sends the REPLY itself (SCHEDULE-AGENT=CLIENT
        on the ORGANIZER): the owner gets the messenger notice only. ``remove`` with a decline:
        the user also took the event out of their calendar (a client's DELETE)."""
        rules.require_active(user)
        link = self._find_link(interaction, user)
        if link is None:
            raise NotAllowed(f"{user.login} is not linked to interaction #{interaction.id}")
        if remove and not interaction.cancelled and not rules.answerable(interaction):
            # One who deletes a meeting that took place takes it out of their calendar; their
            # answer to it stays what it was.
            self._keep_in_calendar(interaction, link, answer, remove)
            return False
        rules.require_answerable(
            interaction, (link.status, link.tentative) != rules.ANSWERED[answer]
        )
        self._taken(interaction, link, link, message, user.login)
        self._keep_in_calendar(interaction, link, answer, remove)
        status, tentative = rules.ANSWERED[answer]
        if (link.status, link.tentative) == (status, tentative):
            return False
        link.status, link.tentative, link.answered_at = status, tentative, utcnow()
        interaction.modified_at = utcnow()
        self.publish(interaction, by_organizer=False)
        self.notifier.to_owner(interaction, user, answer, itip)
        return True

    @one_change
    def answer_occurrence(
        self,
        user: User,
        interaction: Interaction,
        occurrence: datetime,
        answer: Answer,
        itip: bool = True,
        message: rules.Stamp | None = None,
    ) -> bool:
        """A linked user's answer to one occurrence (its UTC start) of a recurring
        interaction: only that occurrence changes. False if it changes nothing."""
        rules.require_active(user)
        link = self._find_link(interaction, user)
        if link is None:
            raise NotAllowed(f"{user.login} is not linked to interaction #{interaction.id}")
        rules.require_answerable(interaction, answer_to(link, occurrence) != rules.ANSWERED[answer])
        if recurrence.occurrence(series_of(interaction), occurrence) is None:
            raise InvalidInput(f"interaction #{interaction.id} has no occurrence at {occurrence}")
        mine = next((a for a in link.occurrence_answers if a.recurrence_id == occurrence), None)
        # Compared with the last answer to this occurrence only: an instance a client adds to
        # its copy may carry an older DTSTAMP than the series it answers beside.
        self._taken(interaction, mine, mine, message, user.login)
        self._keep_in_calendar(interaction, link, answer)
        wanted = rules.ANSWERED[answer]
        if answer_to(link, occurrence) == wanted:
            return False
        if wanted == (link.status, link.tentative):  # back to the series' answer
            if mine is not None:
                link.occurrence_answers.remove(mine)
        elif mine is None:
            mine = OccurrenceAnswer(recurrence_id=occurrence, status=wanted[0], tentative=wanted[1])
            self._taken(interaction, None, mine, message, user.login)
            link.occurrence_answers.append(mine)
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

    @one_change
    def guest_answer(
        self,
        interaction: Interaction,
        address: str,
        answer: Answer,
        message: rules.Stamp | None = None,
    ) -> bool:
        """An answer from an attendee outside the CRM (an emailed REPLY): their PARTSTAT in
        every copy; the owner is told by the messenger (the email reached them already). It
        does not change the Schedule-Tag (RFC 6638 3.2.10): the organizer's next save keeps
        it (``rules.guest_partstat``)."""
        guest = next((g for g in interaction.guests if g.address == address), None)
        if guest is None:
            raise NotAllowed(f"{address} is not an attendee of interaction #{interaction.id}")
        partstat = rules.PARTSTAT_OF_ANSWER[answer]
        rules.require_answerable(interaction, guest.partstat != partstat)
        self._taken(interaction, guest, guest, message, address)
        if guest.partstat == partstat:
            return False
        guest.partstat = partstat
        interaction.modified_at = utcnow()
        self.publish(interaction, by_organizer=False)
        self.notifier.to_owner(interaction, guest, answer, itip=False)
        return True

    def _taken(
        self,
        interaction: Interaction,
        known: InteractionLink | OccurrenceAnswer | Guest | None,
        keeper: InteractionLink | OccurrenceAnswer | Guest | None,
        message: rules.Stamp | None,
        who: str,
    ) -> None:
        """Refuse an answer older than the ``known`` one (StaleMessage, nothing changed), else
        keep its stamp on ``keeper``."""
        if message is not None:
            reason = rules.stale(message, interaction.sequence, rules.last_answer(known))
            if reason is not None:
                raise StaleMessage(
                    f"an answer of {who} to interaction #{interaction.id} is stale: {reason}"
                )
        if keeper is not None:
            kept = rules.answer_stamp(message, interaction.sequence, utcnow())
            keeper.answer_sequence, keeper.answer_dtstamp = kept

"""What an attendee's copy of a meeting may change (RFC 6638 3.2.2.1): their own answer and
their per-user data; the organizer's properties are the organizer's, and a copy changing them is
refused, never dropped in silence.
"""

from __future__ import annotations

from caldav_bridge.domain import recurrence
from caldav_bridge.domain.errors import CalDavPrecondition
from caldav_bridge.domain.models import Interaction
from caldav_bridge.domain.periods import period_of
from caldav_bridge.ical.mapping import EventFields, location_text


def _same_text(copy: str, organizer: str) -> bool:
    """The same words: line breaks and spacing as each client writes them do not count."""
    return copy.split() == organizer.split()


def attendee_changes(interaction: Interaction, fields: EventFields, moved: bool) -> list[str]:
    """The organizer's properties an attendee's copy changes. RFC 6638 3.2.2.1 lets an
    attendee change only their own PARTSTAT and their per-user data (alarms, TRANSP); what
    clients write for themselves (DTSTAMP, LAST-MODIFIED, SEQUENCE, X- properties such as
    Thunderbird's X-MOZ-*) and CATEGORIES (a user's own labels in Thunderbird and Apple
    Calendar) are not compared. ``moved``: an instance of the copy is not where the
    organizer has that occurrence."""
    period = period_of(fields.start, fields.end, fields.timezone)
    rule = recurrence.checked_rule(fields.rrule, interaction.timezone, period.all_day)
    excluded = recurrence.exdate_text(fields.exdates) if rule else ""
    changed = {
        "SUMMARY": fields.subject != interaction.subject,
        "DESCRIPTION": not _same_text(fields.notes, interaction.notes),
        "LOCATION": fields.location != location_text(interaction),
        "DTSTART/DTEND": (period.starts_at, period.ends_at, period.all_day)
        != (interaction.starts_at, interaction.ends_at, interaction.all_day),
        "RRULE/EXDATE": (rule, excluded) != (interaction.rrule, interaction.exdates),
        "RECURRENCE-ID instances": moved,
    }
    return [name for name, differs in changed.items() if differs]


def require_attendee_change(interaction: Interaction, fields: EventFields, moved: bool) -> None:
    """An attendee's copy that changes what only the organizer may is refused, never dropped
    in silence: 403 with the CalDAV precondition (RFC 6638 3.2.2.1)."""
    changed = attendee_changes(interaction, fields, moved)
    if changed:
        raise CalDavPrecondition(
            "C:allowed-attendee-scheduling-object-change",
            f"only the organizer can change {', '.join(changed)} of interaction "
            f"#{interaction.id}; an attendee changes their own answer, alarms and "
            "transparency (if your copy is out of date, read the event again)",
        )

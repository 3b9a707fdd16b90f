"""Plain-text views of interactions for the terminal: a user's desk and one interaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from caldav_bridge.domain.interactions import AgendaEntry
from caldav_bridge.domain.models import Interaction, InteractionStatus, LinkStatus, User
from caldav_bridge.domain.outbox import describe_when
from caldav_bridge.domain.rules import link_label
from caldav_bridge.ical.mapping import location_text, zone


def render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "(none)"
    widths = [max(len(str(v)) for v in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=False)).rstrip()
        for line in lines
    )


def _status(entry: AgendaEntry) -> str:
    if entry.interaction.cancelled:
        return "Cancelled"
    label = "Owner" if entry.link is None else link_label(entry.link)
    return f"{label}, done" if entry.interaction.status is InteractionStatus.DONE else label


def _others(interaction: Interaction, user: User) -> str:
    people = [f"{k.user.login}: {link_label(k)}" for k in interaction.links if k.user_id != user.id]
    if interaction.owner_id != user.id:
        people.insert(0, f"{interaction.owner.login}: owner")
    return ", ".join(people)


def _row(entry: AgendaEntry, user: User) -> list[str]:
    interaction = entry.interaction
    tz = zone(user.timezone)
    start = entry.starts_at.astimezone(tz)
    end = entry.ends_at.astimezone(tz)
    when = (
        f"{start:%a %d %b}  all day"
        if interaction.all_day
        else f"{start:%a %d %b}  {start:%H:%M}–{end:%H:%M}"
    )
    return [
        when,
        f"#{interaction.id}",
        interaction.subject,
        interaction.kind,
        _status(entry),
        _others(interaction, user),
        location_text(interaction),
    ]


HEADERS = ["When", "Id", "Subject", "Type", "Your status", "With", "Where"]


def desk(user: User, entries: Sequence[AgendaEntry], first: date, days: int) -> str:
    """Pending invitations first, then every interaction of the period, in the user's zone."""
    waiting = {
        e.interaction.id: e  # a repeating invitation is answered once
        for e in reversed(entries)
        if e.link is not None
        and e.link.status is LinkStatus.INVITED
        and not e.interaction.cancelled
    }
    pending = sorted(waiting.values(), key=lambda e: (e.starts_at, e.interaction.id))
    last = first + timedelta(days=days - 1)
    parts = [f"Desk of {user.display_name} ({user.login}), times in {user.timezone}"]
    if pending:
        parts += [
            "",
            "Invitations waiting for an answer:",
            render(HEADERS, [_row(e, user) for e in pending]),
        ]
    parts += [
        "",
        f"Agenda {first:%a %d %b %Y} to {last:%a %d %b %Y}:",
        render(HEADERS, [_row(e, user) for e in entries]),
    ]
    return "\n".join(parts)


def describe(interaction: Interaction) -> str:
    owner = interaction.owner
    lines = [
        f"#{interaction.id}  {interaction.subject}",
        f"  UID:       {interaction.uid}",
        f"  Type:      {interaction.kind}",
        f"  Status:    {interaction.status.value}   SEQUENCE {interaction.sequence}",
        f"  When:      {describe_when(interaction, interaction.timezone)}",
        f"  Where:     {location_text(interaction) or '-'}",
        f"  Owner:     {owner.display_name} ({owner.login})",
    ]
    lines += [
        f"  Linked:    {k.user.display_name} ({k.user.login}): {link_label(k)}"
        for k in interaction.links
    ]
    lines += [
        f"  Booked:    {b.resource.name} ({b.resource.slug})"
        + (" - declined: busy at that time" if b.declined else "")
        for b in interaction.bookings
    ]
    if interaction.notes:
        lines += ["  Notes:", *("    " + line for line in interaction.notes.splitlines())]
    return "\n".join(lines)

"""What the CRM's pages share: an occurrence as the pages list it (``Row``), days in the
user's zone, and the words a page says after an action."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from caldav_bridge.domain.errors import InvalidInput, NotFound
from caldav_bridge.domain.interactions import AgendaEntry
from caldav_bridge.domain.models import User
from caldav_bridge.domain.rules import answerable, link_label
from caldav_bridge.ical.mapping import location_text, zone
from caldav_bridge.web.session import Request

# What a page says after an action: fixed words, never text taken from the address.
DONE = {
    "answered": "Your answer is recorded; the owner is told.",
    "linked": "Linked; they are told.",
    "unlinked": "Removed; they are told.",
    "booked": "Booked.",
    "released": "Released.",
    "saved": "Saved.",
}


def done(request: Request) -> str:
    return DONE.get(request.query.get("done", ""), "")


def signed_in_user(request: Request) -> User:
    """The user of a page past the login (the routes see to it)."""
    assert request.user is not None
    return request.user


@dataclass(frozen=True)
class Row:
    """One occurrence of an interaction, as the pages list it."""

    id: int
    when: str
    hours: str
    day: date
    subject: str
    kind: str
    status: str
    others: str
    where: str
    can_answer: bool


def row(entry: AgendaEntry, user: User) -> Row:
    interaction, tz = entry.interaction, zone(user.timezone)
    start_, end_ = entry.starts_at.astimezone(tz), entry.ends_at.astimezone(tz)
    when = "all day" if interaction.all_day else f"{start_:%H:%M}–{end_:%H:%M}"
    if interaction.cancelled:
        status = "Cancelled"
    else:
        status = "Owner" if entry.link is None else link_label(entry.link)
    people = [k.user.display_name for k in interaction.links if k.user_id != user.id]
    if interaction.owner_id != user.id:
        people.insert(0, interaction.owner.display_name)
    return Row(
        interaction.id,
        f"{start_:%a %d %b} {when}",
        when,
        start_.date(),
        interaction.subject,
        interaction.kind,
        status,
        ", ".join(people),
        location_text(interaction),
        entry.link is not None and answerable(interaction),
    )


def midnight(day: date, user: User) -> datetime:
    return datetime.combine(day, time(0), zone(user.timezone))


def today(user: User) -> date:
    return datetime.now(zone(user.timezone)).date()


def day(text: str, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not a date (use YYYY-MM-DD)") from exc


def number(text: str) -> int:
    """An interaction's number in a page's address."""
    if not (text.isascii() and text.isdecimal() and len(text) < 12):
        raise NotFound("there is no such interaction")
    return int(text)

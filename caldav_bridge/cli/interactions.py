"""``caldav-bridge interaction …``, ``link``, ``unlink``, ``answer``, ``book``, ``release`` and
``agenda``: the CRM's operations through ``InteractionService``, on behalf of the interaction's
owner (or of the answering user)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from caldav_bridge.cli import tables
from caldav_bridge.cli.base import (
    ID,
    MOMENT,
    ZONE,
    Commands,
    Context,
    command,
    group,
    typed,
    whole,
)
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.domain.periods import Changes, Draft
from caldav_bridge.domain.rules import ANSWER_WORDS, link_label
from caldav_bridge.domain.typed_period import day, span
from caldav_bridge.ical.mapping import Answer, interaction_ical, zone


def cmd_create(ctx: Context, args: argparse.Namespace) -> None:
    start, end = span(args.start, args.end)
    with ctx.database.session(write=True) as session:
        owner = Directory(session).user(args.owner)
        draft = Draft(
            subject=args.subject,
            start=start,
            end=end,
            timezone=args.timezone,
            notes=args.notes or "",
            kind=args.type,
            location=args.location or "",
            rrule=args.repeat or "",
        )
        service = ctx.service(session)
        back = args.uid is not None and service.find_by_uid(args.uid) is not None
        interaction = service.create(owner, draft, uid=args.uid)  # a cancelled one comes back
        verb = "restored" if back else "created"
        print(f"interaction #{interaction.id} {verb} (UID {interaction.uid})")


def cmd_edit(ctx: Context, args: argparse.Namespace) -> None:
    start: datetime | date | None = None
    end: datetime | date | None = None
    if args.start is not None:
        start, end = span(args.start, args.end)
        if args.end is None:
            end = None
    elif args.end is not None:
        end = args.end if isinstance(args.end, datetime) else args.end + timedelta(days=1)
    changes = Changes(
        subject=args.subject,
        notes=args.notes,
        kind=args.type,
        location=args.location,
        start=start,
        end=end,
        timezone=args.timezone,
        rrule=args.repeat,
    )
    with ctx.database.session(write=True) as session:
        service = ctx.service(session)
        interaction = service.get(args.id)
        changed = service.edit(interaction.owner, interaction, changes)
        print(
            f"interaction #{interaction.id} {'changed' if changed else 'unchanged'} "
            f"(SEQUENCE {interaction.sequence})"
        )


def _owner_action(
    verb: str, action: Callable[[InteractionService, int], bool]
) -> Callable[[Context, argparse.Namespace], None]:
    def run(ctx: Context, args: argparse.Namespace) -> None:
        with ctx.database.session(write=True) as session:
            changed = action(ctx.service(session), args.id)
        print(
            f"interaction #{args.id} {verb}"
            if changed
            else f"interaction #{args.id} was already {verb}"
        )

    return run


def _cancel(service: InteractionService, interaction_id: int) -> bool:
    interaction = service.get(interaction_id)
    return service.cancel(interaction.owner, interaction)


def _done(service: InteractionService, interaction_id: int) -> bool:
    interaction = service.get(interaction_id)
    return service.mark_done(interaction.owner, interaction)


def cmd_show(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session() as session:
        interaction = ctx.service(session).get(args.id)
        if args.ics:
            sys.stdout.write(interaction_ical(interaction))
            return
        print(tables.describe(interaction))


def cmd_link(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        service = ctx.service(session)
        interaction = service.get(args.id)
        user = Directory(session).user(args.login)
        changed = service.link(interaction.owner, interaction, user, LinkStatus(args.status))
        link = next(k for k in interaction.links if k.user_id == user.id)
        state = "linked as" if changed else "is already"
        print(f"{args.login} {state} {link_label(link).lower()} on interaction #{args.id}")


def cmd_unlink(ctx: Context, args: argparse.Namespace) -> None:
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidInput("removing a linked user must be confirmed: add --yes")
        reply = input(f"Remove {args.login} from interaction #{args.id}? They will be told. [y/N] ")
        if reply.strip().lower() not in {"y", "yes"}:
            print("nothing changed")
            return
    with ctx.database.session(write=True) as session:
        service = ctx.service(session)
        interaction = service.get(args.id)
        service.unlink(interaction.owner, interaction, Directory(session).user(args.login))
    print(f"{args.login} removed from interaction #{args.id}")


def cmd_answer(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        service = ctx.service(session)
        interaction = service.get(args.id)
        changed = service.answer(
            Directory(session).user(args.login), interaction, Answer(args.answer)
        )
    verb = ANSWER_WORDS[Answer(args.answer)]
    print(f"{args.login} {verb}" if changed else f"{args.login} had already answered so")


def cmd_book(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        service = ctx.service(session)
        interaction = service.get(args.id)
        resource = Directory(session).resource(args.resource)
        if args.release:
            service.release(interaction.owner, interaction, resource)
        else:
            service.book(interaction.owner, interaction, resource)
    print(
        f"{args.resource} {'released by' if args.release else 'booked for'} interaction #{args.id}"
    )


def cmd_agenda(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session() as session:
        user = Directory(session).user(args.login)
        tz = zone(user.timezone)
        first = args.start or datetime.now(tz).date()
        start = datetime.combine(first, time(0), tz)
        entries = ctx.service(session).agenda(user, start, start + timedelta(days=args.days))
        print(tables.desk(user, entries, first, args.days))


_REPEAT_HELP = "an iCalendar RRULE, e.g. 'FREQ=WEEKLY;COUNT=10' or 'FREQ=DAILY;UNTIL=20300131'"


def _add_interaction_commands(commands: Commands) -> None:
    actions = group(commands, "interaction", "create, edit, cancel and show")
    sub = command(actions, "create", cmd_create, "create an interaction")
    sub.add_argument("--owner", required=True)
    sub.add_argument("--subject", required=True)
    sub.add_argument(
        "--start", type=MOMENT, required=True, help="2026-11-30T10:00, or 2026-11-30 for all day"
    )
    sub.add_argument(
        "--end", type=MOMENT, help="default: one hour later, or the same day when all day"
    )
    sub.add_argument("--timezone", type=ZONE, help="default: the owner's")
    sub.add_argument("--type", default="meeting", help="meeting, call, intervention…")
    sub.add_argument("--location")
    sub.add_argument("--notes")
    sub.add_argument("--uid", help="keep this iCalendar UID")
    sub.add_argument("--repeat", help=_REPEAT_HELP)
    sub = command(actions, "edit", cmd_edit, "change an interaction (time and place bump SEQUENCE)")
    sub.add_argument("id", type=ID)
    for option in ("--subject", "--type", "--location", "--notes"):
        sub.add_argument(option)
    sub.add_argument("--start", type=MOMENT)
    sub.add_argument("--end", type=MOMENT)
    sub.add_argument("--timezone", type=ZONE)
    sub.add_argument("--repeat", help=f"{_REPEAT_HELP}; '' for a single interaction again")
    sub = command(actions, "cancel", _owner_action("cancelled", _cancel), "cancel an interaction")
    sub.add_argument("id", type=ID)
    sub = command(actions, "done", _owner_action("done", _done), "mark an interaction as done")
    sub.add_argument("id", type=ID)
    sub = command(actions, "show", cmd_show, "show an interaction")
    sub.add_argument("id", type=ID)
    sub.add_argument("--ics", action="store_true", help="print it as iCalendar")


def _add_participation_commands(commands: Commands) -> None:
    sub = command(commands, "link", cmd_link, "link a user to an interaction")
    sub.add_argument("id", type=ID)
    sub.add_argument("login")
    sub.add_argument("--status", choices=["invited", "confirmed"], default="invited")
    sub = command(commands, "unlink", cmd_unlink, "remove a linked user (they are told)")
    sub.add_argument("id", type=ID)
    sub.add_argument("login")
    sub.add_argument("--yes", action="store_true", help="confirm without asking")
    sub = command(commands, "answer", cmd_answer, "answer an invitation as the linked user")
    sub.add_argument("id", type=ID)
    sub.add_argument("login")
    sub.add_argument("answer", choices=[a.value for a in Answer])
    for name, release, text in (
        ("book", False, "book a resource for an interaction"),
        ("release", True, "release a resource booked by an interaction"),
    ):
        sub = command(commands, name, cmd_book, text)
        sub.add_argument("id", type=ID)
        sub.add_argument("resource")
        sub.set_defaults(release=release)


def add_commands(commands: Commands) -> None:
    _add_interaction_commands(commands)
    _add_participation_commands(commands)
    sub = command(
        commands, "agenda", cmd_agenda, "a user's desk: pending invitations, then their agenda"
    )
    sub.add_argument("login")
    sub.add_argument(
        "--from", dest="start", type=typed(day, "day"), help="first day (default: today)"
    )
    sub.add_argument(
        "--days", type=whole(1, 366), default=7, help="how many days (1 to 366, default 7)"
    )

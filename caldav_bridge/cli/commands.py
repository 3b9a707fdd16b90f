"""The ``caldav-bridge`` command: administration, the CRM operations, and the demo.

Every CRM operation goes through ``InteractionService``; the CLI acts on behalf of the
interaction's owner (or of the answering user). Refusals print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from caldav_bridge.cli import tables as agenda_table
from caldav_bridge.config import Settings, SmtpSettings, load_settings
from caldav_bridge.db import Database
from caldav_bridge.domain import links, tokens
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import BridgeError, ConfigurationError, InvalidInput, NotFound
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus, ResourceKind
from caldav_bridge.domain.periods import Changes, Draft
from caldav_bridge.domain.rules import ANSWER_WORDS, link_label
from caldav_bridge.domain.typed_period import day, moment, span
from caldav_bridge.ical.mapping import Answer, interaction_ical, zone

EXIT_REFUSED = 2
EXIT_TEMPFAIL = 75  # sysexits.h: a mail server piping a reply keeps it and tries again
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, not argparse's usage block: a person or a script reads the reason at once.
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {message}\n")


class Context:
    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database

    def service(self, session: Session) -> InteractionService:
        return InteractionService(session, self.settings.public_url)


# ---------------------------------------------------------------------------- parsing values


def _typed(read: Callable[[str], T], what: str) -> Callable[[str], T]:
    """An argparse type from a reader that raises InvalidInput: a bad value is argparse's
    one-line error with exit code 2 before anything runs, never a traceback."""

    def parse(text: str) -> T:
        try:
            return read(text)
        except (InvalidInput, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parse.__name__ = what
    return parse


def _whole(low: int, high: int) -> Callable[[str], int]:
    """Whole numbers from ``low`` to ``high``: ids and numbers the database stores in 32 bits."""

    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise InvalidInput(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise InvalidInput(f"{value} is not between {low} and {high}")
        return value

    return _typed(read, "number")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= 86_400):
        raise InvalidInput(f"{text!r} is not between 0 and 86400 seconds")
    return value


def _zone_name(text: str) -> str:
    zone(text)
    return text


_ID = _whole(1, 2**31 - 1)
_MOMENT = _typed(moment, "time")
_ZONE = _typed(_zone_name, "time zone")


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password again: "):
            raise InvalidInput("the two passwords differ")
    if not password:
        raise InvalidInput("the password must not be empty")
    return password


# ---------------------------------------------------------------------------- commands


def cmd_migrate(ctx: Context, _args: argparse.Namespace) -> None:
    ctx.database.migrate()
    print(f"database ready: {ctx.database.engine.url.render_as_string(hide_password=True)}")


def cmd_user_add(ctx: Context, args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin) if not args.no_password else None
    with ctx.database.session(write=True) as session:
        user = Directory(session).add_user(
            args.login, args.name, args.email, password, args.timezone, args.admin
        )
        print(f"user {user.login} added")


def cmd_user_list(ctx: Context, _args: argparse.Namespace) -> None:
    with ctx.database.session() as session:
        rows = [
            [
                u.login,
                u.display_name,
                ", ".join(e.address for e in u.emails),
                u.timezone,
                "yes" if u.active else "no",
                "yes" if u.is_admin else "",
            ]
            for u in Directory(session).users()
        ]
    print(agenda_table.render(["Login", "Name", "Email", "Time zone", "Active", "Admin"], rows))


def cmd_user_passwd(ctx: Context, args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)
    with ctx.database.session(write=True) as session:
        Directory(session).set_password(args.login, password)
    print(f"password of {args.login} changed")


def cmd_user_active(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        Directory(session).set_active(args.login, args.active)
    print(f"user {args.login} {'activated' if args.active else 'deactivated'}")


def cmd_resource_add(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        resource = Directory(session).add_resource(
            args.slug, args.name, args.email, ResourceKind(args.kind), args.capacity
        )
        print(f"{resource.kind.value} {resource.slug} added")


def cmd_resource_list(ctx: Context, _args: argparse.Namespace) -> None:
    with ctx.database.session() as session:
        rows = [
            [
                r.slug,
                r.kind.value,
                r.name,
                r.email,
                str(r.capacity or ""),
                "yes" if r.active else "no",
            ]
            for r in Directory(session).resources()
        ]
    print(agenda_table.render(["Id", "Kind", "Name", "Address", "Capacity", "Active"], rows))


def cmd_multi_user(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=args.state != "status") as session:
        service = ctx.service(session)
        if args.state != "status":
            service.set_multi_user(args.state == "on")
        enabled = service.multi_user_enabled()
    print(f"multi-user interactions are {'on' if enabled else 'off'}")


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
        print(agenda_table.describe(interaction))


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
        print(agenda_table.desk(user, entries, first, args.days))


def cmd_demo(ctx: Context, _args: argparse.Namespace) -> None:
    from caldav_bridge.cli import demo

    ctx.database.migrate()
    with ctx.database.session(write=True) as session:
        loaded = demo.load(session, ctx.settings.public_url)
    if loaded:
        print(demo.WARNING, file=sys.stderr, flush=True)
    else:
        print("demo data already loaded", file=sys.stderr, flush=True)
    with ctx.database.session() as session:
        user = Directory(session).user("alice")
        tz = zone(user.timezone)
        first = datetime.now(tz).date() - timedelta(days=2)
        start = datetime.combine(first, time(0), tz)
        entries = ctx.service(session).agenda(user, start, start + timedelta(days=7))
        print(agenda_table.desk(user, entries, first, 7))


def cmd_messages(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.domain import messenger

    with ctx.database.session(write=args.mark_read) as session:
        user = Directory(session).user(args.login)
        found = messenger.notices(session, user, unread_only=args.unread)
        rows = [
            [
                f"#{n.id}",
                f"{n.created_at.astimezone(zone(user.timezone)):%a %d %b %H:%M}",
                "read" if n.read_at else "new",
                n.subject,
                n.link or "",
            ]
            for n in found
        ]
        print(agenda_table.render(["Id", "When", "", "Notice", "Link"], rows))
        if args.mark_read:
            print(f"{messenger.mark_read(session, user)} marked read")


def cmd_imip_receive(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.mail import replies
    from caldav_bridge.mail.authentication import TemporaryFailure

    ctx.settings.imip.require_proof_source()
    raw = sys.stdin.buffer.read(10_000_001)
    if len(raw) > 10_000_000:
        raise InvalidInput("the message is larger than 10 MB")
    try:
        with ctx.database.session(write=True) as session:
            outcome = replies.receive(ctx.service(session), raw, ctx.settings.imip)
    except TemporaryFailure as exc:
        print(f"caldav-bridge: error: {exc}; try again later", file=sys.stderr)
        raise SystemExit(EXIT_TEMPFAIL) from exc
    print(outcome.reason)


def _mail_server(ctx: Context, interval: float) -> SmtpSettings:
    smtp = ctx.settings.smtp
    if not smtp.host:
        raise ConfigurationError(
            "no mail server is configured: set [smtp] host in the configuration file "
            "(see config/caldav-bridge.conf)"
        )
    print(
        f"delivering the outbox through {smtp.host}:{smtp.port} ({smtp.security}), "
        f"every {interval:g} s",
        flush=True,
    )
    return smtp


def cmd_worker(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.mail import delivery

    smtp = _mail_server(ctx, args.interval)
    if args.once:
        print(delivery.deliver_due(ctx.database, smtp), flush=True)
        return
    try:
        delivery.run(
            ctx.database, smtp, args.interval, threading.Event(), lambda r: print(r, flush=True)
        )
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


def cmd_imip_listen(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.mail.listener import Listener

    imip = ctx.settings.imip
    if args.verify_dkim:
        imip = dataclasses.replace(imip, verify_dkim=True)
    listener = Listener(
        ctx.database, ctx.settings.public_url, args.host, args.port, not args.smtp, imip
    )
    try:
        listener.start()
    except (OSError, RuntimeError) as exc:
        raise ConfigurationError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    protocol = "SMTP" if args.smtp else "LMTP"
    print(f"caldav-bridge: taking emailed replies by {protocol} on {args.host}:{args.port}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        listener.stop()


def _feed_subject(session: Session, args: argparse.Namespace) -> tokens.FeedSubject:
    if (args.login is None) == (args.room is None):
        raise InvalidInput("name a user (LOGIN) or a room (--room SLUG)")
    directory = Directory(session)
    return directory.user(args.login) if args.login else directory.resource(args.room)


def cmd_feed(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.web import feeds

    with ctx.database.session(write=args.action != "show") as session:
        subject = _feed_subject(session, args)
        name = args.login or args.room
        if args.action == "revoke":
            tokens.revoke_feed(subject)
            print(f"{name}'s feed is revoked: its link no longer works")
            return
        if args.action == "rotate" or (args.action == "create" and subject.feed_nonce is None):
            tokens.rotate_feed(subject)
        token = tokens.feed_token(session, subject)
        if token is None:
            raise NotFound(f"{name} has no feed: make one with 'caldav-bridge feed create'")
        address = links.feed(ctx.settings.public_url, token)
        print(f"{feeds.title(subject)}\n  {links.webcal(address)}\n  {address}")
        if args.action == "rotate":
            print("the previous link no longer works")


def cmd_rsvp_revoke(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        tokens.revoke_rsvp(Directory(session).user(args.login))
    print(f"every answer link sent to {args.login} so far no longer works")


DELIVERY_INTERVAL = 5.0


def cmd_serve(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.caldav import server as radicale_setup
    from caldav_bridge.cli import demo
    from caldav_bridge.mail import delivery

    if args.demo:
        ctx.database.migrate()
        with ctx.database.session(write=True) as session:
            if demo.load(session, ctx.settings.public_url):
                print(demo.WARNING, file=sys.stderr, flush=True)
    elif not ctx.database.is_current():
        raise ConfigurationError(
            "the database is not initialised or is out of date: run 'caldav-bridge migrate'"
        )
    configuration = radicale_setup.radicale_configuration(
        ctx.settings, extra={"logging": {"level": args.log_level}}
    )
    radicale_setup.log_to_stderr(args.log_level)
    stop_delivery = threading.Event()
    if args.deliver:
        smtp = _mail_server(ctx, DELIVERY_INTERVAL)
        threading.Thread(
            target=delivery.run,
            args=(ctx.database, smtp, DELIVERY_INTERVAL, stop_delivery, _log_round),
            daemon=True,
            name="caldav-bridge-delivery",
        ).start()
    try:
        server = radicale_setup.Server(configuration, args.host, args.port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror}"
        ) from exc
    print(
        f"caldav-bridge serving {server.url} (database "
        f"{ctx.database.engine.url.render_as_string(hide_password=True)})",
        flush=True,
    )
    print(f"the CRM's web pages: {server.url}.bridge/crm/", flush=True)
    if args.demo:
        print(
            "log in as alice, bob, carol or dave (password = login; alice administers); "
            f"calendars are at {server.url}<login>/interactions/",
            flush=True,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        stop_delivery.set()
        server.stop()


def _log_round(done: object) -> None:
    logging.getLogger("caldav_bridge.mail.delivery").info("outbox: %s", done)


# ---------------------------------------------------------------------------- the parser


_REPEAT_HELP = "an iCalendar RRULE, e.g. 'FREQ=WEEKLY;COUNT=10' or 'FREQ=DAILY;UNTIL=20300131'"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="caldav-bridge", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--database",
        help="database URL (default: CALDAV_BRIDGE_DATABASE_URL, "
        "the configuration file, or SQLite in the user's data directory)",
    )
    parser.add_argument("--config", help="configuration file (default: CALDAV_BRIDGE_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(
        name: str,
        handler: Callable[[Context, argparse.Namespace], None],
        text: str,
        parent: argparse._SubParsersAction[_Parser] = commands,
    ) -> _Parser:
        sub = parent.add_parser(name, help=text, description=text)
        sub.set_defaults(
            handler=handler, needs_schema=handler not in {cmd_migrate, cmd_demo, cmd_serve}
        )
        return sub

    command("migrate", cmd_migrate, "create the database or bring it to the newest schema")
    command(
        "demo", cmd_demo, "load demo users, rooms and a week of interactions, show alice's desk"
    )
    sub = command("messages", cmd_messages, "a user's messenger notices, newest first")
    sub.add_argument("login")
    sub.add_argument("--unread", action="store_true", help="only those not read yet")
    sub.add_argument("--mark-read", action="store_true", help="then mark them all read")
    command("imip-receive", cmd_imip_receive, "apply one emailed iTIP REPLY read on stdin")
    sub = command("worker", cmd_worker, "deliver the outbox: messenger notices and email")
    sub.add_argument("--once", action="store_true", help="one pass over what is due, then exit")
    sub.add_argument(
        "--interval",
        type=_typed(_seconds, "seconds"),
        default=5.0,
        help="seconds between passes (default 5)",
    )
    sub = command("imip-listen", cmd_imip_listen, "take emailed iTIP REPLYs by LMTP or SMTP")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=_whole(0, 65535), default=8024, help="port (default 8024)")
    sub.add_argument("--smtp", action="store_true", help="speak SMTP instead of LMTP")
    sub.add_argument(
        "--verify-dkim",
        action="store_true",
        help="check DKIM signatures here (DNS), besides the relay's Authentication-Results "
        "([imip] verify_dkim)",
    )
    sub = command("feed", cmd_feed, "a user's or a room's ICS feed link (no password needed)")
    sub.add_argument("action", choices=["create", "show", "rotate", "revoke"])
    sub.add_argument("login", nargs="?", help="the user's login")
    sub.add_argument("--room", help="a room's (or other resource's) slug instead of a user")
    sub = command("rsvp-revoke", cmd_rsvp_revoke, "stop every answer link sent to a user so far")
    sub.add_argument("login")
    sub = command("serve", cmd_serve, "run the CalDAV server")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=_whole(0, 65535), default=5232, help="port (default 5232)")
    sub.add_argument(
        "--demo", action="store_true", help="migrate and load the demo data first (empty database)"
    )
    sub.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        default="info",
        help="what the server logs (default info: every request; warning is lighter)",
    )
    sub.add_argument(
        "--deliver",
        action="store_true",
        help="also deliver the outbox in a background thread (needs [smtp]; or run 'worker')",
    )

    users = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    sub = command("add", cmd_user_add, "add a user (password prompted, or read from stdin)", users)
    sub.add_argument("login")
    sub.add_argument("--name", required=True, help="display name")
    sub.add_argument("--email", action="append", default=[], help="email address (repeatable)")
    sub.add_argument(
        "--timezone", type=_ZONE, default="UTC", help="IANA time zone, e.g. Europe/Paris"
    )
    sub.add_argument("--admin", action="store_true", help="may change CRM settings")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_argument("--no-password", action="store_true", help="the user cannot log in yet")
    command("list", cmd_user_list, "list users", users)
    sub = command("passwd", cmd_user_passwd, "set a user's password", users)
    sub.add_argument("login")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    for name, active in (("activate", True), ("deactivate", False)):
        sub = command(name, cmd_user_active, f"{name} a user", users)
        sub.add_argument("login")
        sub.set_defaults(active=active)

    resources = commands.add_parser("resource", help="manage rooms and other resources")
    resource_commands = resources.add_subparsers(dest="action", required=True, parser_class=_Parser)
    sub = command("add", cmd_resource_add, "add a room, vehicle or equipment", resource_commands)
    sub.add_argument("slug", help="short identifier, e.g. room-everest")
    sub.add_argument("--name", required=True)
    sub.add_argument("--email", required=True, help="its calendar address")
    sub.add_argument("--kind", choices=[k.value for k in ResourceKind], default="room")
    sub.add_argument("--capacity", type=_whole(1, 100_000))
    command("list", cmd_resource_list, "list resources", resource_commands)

    sub = command("multi-user", cmd_multi_user, "switch multi-user interactions on or off")
    sub.add_argument("state", choices=["on", "off", "status"])

    interactions = commands.add_parser("interaction", help="create, edit, cancel and show")
    actions = interactions.add_subparsers(dest="action", required=True, parser_class=_Parser)
    sub = command("create", cmd_create, "create an interaction", actions)
    sub.add_argument("--owner", required=True)
    sub.add_argument("--subject", required=True)
    sub.add_argument(
        "--start", type=_MOMENT, required=True, help="2026-11-30T10:00, or 2026-11-30 for all day"
    )
    sub.add_argument(
        "--end", type=_MOMENT, help="default: one hour later, or the same day when all day"
    )
    sub.add_argument("--timezone", type=_ZONE, help="default: the owner's")
    sub.add_argument("--type", default="meeting", help="meeting, call, intervention…")
    sub.add_argument("--location")
    sub.add_argument("--notes")
    sub.add_argument("--uid", help="keep this iCalendar UID")
    sub.add_argument("--repeat", help=_REPEAT_HELP)
    sub = command("edit", cmd_edit, "change an interaction (time and place bump SEQUENCE)", actions)
    sub.add_argument("id", type=_ID)
    for option in ("--subject", "--type", "--location", "--notes"):
        sub.add_argument(option)
    sub.add_argument("--start", type=_MOMENT)
    sub.add_argument("--end", type=_MOMENT)
    sub.add_argument("--timezone", type=_ZONE)
    sub.add_argument("--repeat", help=f"{_REPEAT_HELP}; '' for a single interaction again")
    sub = command("cancel", _owner_action("cancelled", _cancel), "cancel an interaction", actions)
    sub.add_argument("id", type=_ID)
    sub = command("done", _owner_action("done", _done), "mark an interaction as done", actions)
    sub.add_argument("id", type=_ID)
    sub = command("show", cmd_show, "show an interaction", actions)
    sub.add_argument("id", type=_ID)
    sub.add_argument("--ics", action="store_true", help="print it as iCalendar")

    sub = command("link", cmd_link, "link a user to an interaction")
    sub.add_argument("id", type=_ID)
    sub.add_argument("login")
    sub.add_argument("--status", choices=["invited", "confirmed"], default="invited")
    sub = command("unlink", cmd_unlink, "remove a linked user (they are told)")
    sub.add_argument("id", type=_ID)
    sub.add_argument("login")
    sub.add_argument("--yes", action="store_true", help="confirm without asking")
    sub = command("answer", cmd_answer, "answer an invitation as the linked user")
    sub.add_argument("id", type=_ID)
    sub.add_argument("login")
    sub.add_argument("answer", choices=[a.value for a in Answer])
    sub = command("book", cmd_book, "book a resource for an interaction")
    sub.add_argument("id", type=_ID)
    sub.add_argument("resource")
    sub.set_defaults(release=False)
    sub = command("release", cmd_book, "release a resource booked by an interaction")
    sub.add_argument("id", type=_ID)
    sub.add_argument("resource")
    sub.set_defaults(release=True)

    sub = command("agenda", cmd_agenda, "a user's desk: pending invitations, then their agenda")
    sub.add_argument("login")
    sub.add_argument(
        "--from", dest="start", type=_typed(day, "day"), help="first day (default: today)"
    )
    sub.add_argument(
        "--days", type=_whole(1, 366), default=7, help="how many days (1 to 366, default 7)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.database, args.config)
        database = Database(settings.database_url)
        if args.needs_schema and not database.is_current():
            raise ConfigurationError(
                "the database is not initialised or is out of date: run 'caldav-bridge migrate'"
            )
        args.handler(Context(settings, database), args)
    except BridgeError as exc:
        print(f"caldav-bridge: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OperationalError as exc:
        print(f"caldav-bridge: error: database unavailable: {exc.orig}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())

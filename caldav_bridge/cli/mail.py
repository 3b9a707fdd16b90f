"""``caldav-bridge worker``, ``messages``, ``imip-receive`` and ``imip-listen``: the outbox
delivered (messenger notices and email), a user's notices read, and emailed replies taken in."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading

from caldav_bridge.cli import tables
from caldav_bridge.cli.base import EXIT_TEMPFAIL, PORT, SECONDS, Commands, Context, command
from caldav_bridge.config import SmtpSettings
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import ConfigurationError, InvalidInput
from caldav_bridge.ical.mapping import zone


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
        print(tables.render(["Id", "When", "", "Notice", "Link"], rows))
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


def mail_server(ctx: Context, interval: float) -> SmtpSettings:
    """The configured SMTP server the outbox is delivered through, said on stdout."""
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


def log_round(done: object) -> None:
    logging.getLogger("caldav_bridge.mail.delivery").info("outbox: %s", done)


def cmd_worker(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.mail import delivery

    smtp = mail_server(ctx, args.interval)
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


def add_commands(commands: Commands) -> None:
    sub = command(commands, "messages", cmd_messages, "a user's messenger notices, newest first")
    sub.add_argument("login")
    sub.add_argument("--unread", action="store_true", help="only those not read yet")
    sub.add_argument("--mark-read", action="store_true", help="then mark them all read")
    command(
        commands,
        "imip-receive",
        cmd_imip_receive,
        "apply one emailed iTIP message read on stdin (a REPLY; a REQUEST or CANCEL from outside)",
    )
    sub = command(commands, "worker", cmd_worker, "deliver the outbox: messenger notices and email")
    sub.add_argument("--once", action="store_true", help="one pass over what is due, then exit")
    sub.add_argument(
        "--interval", type=SECONDS, default=5.0, help="seconds between passes (default 5)"
    )
    sub = command(
        commands,
        "imip-listen",
        cmd_imip_listen,
        "take emailed iTIP messages (REPLY; REQUEST, CANCEL from outside) by LMTP or SMTP",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=PORT, default=8024, help="port (default 8024)")
    sub.add_argument("--smtp", action="store_true", help="speak SMTP instead of LMTP")
    sub.add_argument(
        "--verify-dkim",
        action="store_true",
        help="check DKIM signatures here (DNS), besides the relay's Authentication-Results "
        "([imip] verify_dkim)",
    )

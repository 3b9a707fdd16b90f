"""``caldav-bridge migrate``, ``demo`` and ``serve``: the database made ready, the demo data
set, and the server (CalDAV and the bridge's pages, the outbox delivered alongside if asked)."""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import datetime, time, timedelta

from caldav_bridge.cli import tables
from caldav_bridge.cli.base import PORT, Commands, Context, command
from caldav_bridge.cli.mail import log_round, mail_server
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import ConfigurationError
from caldav_bridge.ical.mapping import zone

DELIVERY_INTERVAL = 5.0


def cmd_migrate(ctx: Context, _args: argparse.Namespace) -> None:
    ctx.database.migrate()
    print(f"database ready: {ctx.database.engine.url.render_as_string(hide_password=True)}")


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
        print(tables.desk(user, entries, first, 7))


def _prepare_database(ctx: Context, demo_data: bool) -> None:
    """The demo loaded into a migrated database, or a database that is current required."""
    from caldav_bridge.cli import demo

    if demo_data:
        ctx.database.migrate()
        with ctx.database.session(write=True) as session:
            if demo.load(session, ctx.settings.public_url):
                print(demo.WARNING, file=sys.stderr, flush=True)
    elif not ctx.database.is_current():
        raise ConfigurationError(
            "the database is not initialised or is out of date: run 'caldav-bridge migrate'"
        )


def _start_delivery(ctx: Context, stop: threading.Event) -> None:
    from caldav_bridge.mail import delivery

    smtp = mail_server(ctx, DELIVERY_INTERVAL)
    threading.Thread(
        target=delivery.run,
        args=(ctx.database, smtp, DELIVERY_INTERVAL, stop, log_round),
        daemon=True,
        name="caldav-bridge-delivery",
    ).start()


def cmd_serve(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.caldav import server as radicale_setup

    _prepare_database(ctx, args.demo)
    configuration = radicale_setup.radicale_configuration(
        ctx.settings, extra={"logging": {"level": args.log_level}}
    )
    radicale_setup.log_to_stderr(args.log_level)
    stop_delivery = threading.Event()
    if args.deliver:
        _start_delivery(ctx, stop_delivery)
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


def add_commands(commands: Commands) -> None:
    command(
        commands,
        "migrate",
        cmd_migrate,
        "create the database or bring it to the newest schema",
        needs_schema=False,
    )
    command(
        commands,
        "demo",
        cmd_demo,
        "load demo users, rooms and a week of interactions, show alice's desk",
        needs_schema=False,
    )
    sub = command(commands, "serve", cmd_serve, "run the CalDAV server", needs_schema=False)
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=PORT, default=5232, help="port (default 5232)")
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

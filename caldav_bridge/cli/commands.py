"""The ``caldav-bridge`` command: administration, the CRM operations, and the demo.

Each group of commands is a module of this package (``users``, ``resources``,
``interactions``, ``links``, ``mail``, ``serve``); this one assembles them and runs one.
Refusals print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from caldav_bridge.cli import interactions, links, mail, resources, serve, users
from caldav_bridge.cli.base import EXIT_REFUSED, Context, Parser
from caldav_bridge.config import load_settings
from caldav_bridge.db import Database
from caldav_bridge.domain.errors import BridgeError, ConfigurationError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="caldav-bridge", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--database",
        help="database URL (default: CALDAV_BRIDGE_DATABASE_URL, "
        "the configuration file, or SQLite in the user's data directory)",
    )
    parser.add_argument("--config", help="configuration file (default: CALDAV_BRIDGE_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (serve, mail, links, users, resources, interactions):
        module.add_commands(commands)
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

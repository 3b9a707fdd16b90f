"""What every command module shares: the parser that refuses in one line, the values options
read, and the context a command runs in (the settings, the database, the operator acting)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeAlias, TypeVar

from sqlalchemy.orm import Session

from caldav_bridge.config import Settings
from caldav_bridge.db import Database
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.typed_period import moment
from caldav_bridge.ical.mapping import zone

EXIT_REFUSED = 2
EXIT_TEMPFAIL = 75  # sysexits.h: a mail server piping a reply keeps it and tries again
T = TypeVar("T")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, not argparse's usage block: a person or a script reads the reason at once.
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {message}\n")


# argparse's class is generic only to type checkers: the alias is a string at run time.
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"


class Context:
    """A command's settings and database; it administers as ``OPERATOR``, the person at the
    console, and acts on an interaction for its owner (or for the answering user)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database

    def service(self, session: Session) -> InteractionService:
        return InteractionService(session, self.settings.public_url)

    def administration(self, session: Session) -> Administration:
        return Administration(session, OPERATOR)


Handler = Callable[[Context, argparse.Namespace], None]


def command(
    parent: Commands, name: str, handler: Handler, text: str, needs_schema: bool = True
) -> Parser:
    """A subcommand running ``handler``; by default it refuses a database not migrated."""
    sub = parent.add_parser(name, help=text, description=text)
    sub.set_defaults(handler=handler, needs_schema=needs_schema)
    return sub


def group(parent: Commands, name: str, text: str) -> Commands:
    """A command of subcommands, e.g. ``user add``."""
    return parent.add_parser(name, help=text).add_subparsers(
        dest="action", required=True, parser_class=Parser
    )


# ---------------------------------------------------------------------------- parsing values


def typed(read: Callable[[str], T], what: str) -> Callable[[str], T]:
    """An argparse type from a reader that raises InvalidInput: a bad value is argparse's
    one-line error with exit code 2 before anything runs, never a traceback."""

    def parse(text: str) -> T:
        try:
            return read(text)
        except (InvalidInput, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parse.__name__ = what
    return parse


def whole(low: int, high: int) -> Callable[[str], int]:
    """Whole numbers from ``low`` to ``high``: ids and numbers the database stores in 32 bits."""

    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise InvalidInput(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise InvalidInput(f"{value} is not between {low} and {high}")
        return value

    return typed(read, "number")


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


ID = whole(1, 2**31 - 1)
PORT = whole(0, 65535)
MOMENT = typed(moment, "time")
ZONE = typed(_zone_name, "time zone")
SECONDS = typed(_seconds, "seconds")

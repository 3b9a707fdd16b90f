"""Every option the command reads as a date, a time, a number, a choice or a login: a bad value
is one line ``caldav-bridge…: error: …`` with exit code 2, never a traceback, and changes
nothing."""

from __future__ import annotations

import io
import sys

import pytest
from sqlalchemy import func, select

from caldav_bridge.cli.commands import main
from caldav_bridge.db import Database
from caldav_bridge.domain.models import Interaction, InteractionLink, OutboxMessage, Resource, User

CREATE = ["interaction", "create", "--owner", "alice", "--subject", "x"]
ROOM = ["resource", "add", "r2", "--name", "R", "--email", "r2@example.com"]

BAD = [
    # agenda: the first day and the number of days
    ["agenda", "alice", "--from", "2030-13-01"],
    ["agenda", "alice", "--from", "30/01/2030"],
    ["agenda", "alice", "--from", "2030-01-07T10:00"],
    ["agenda", "alice", "--from", "9999-12-31"],
    ["agenda", "alice", "--days", "0"],
    ["agenda", "alice", "--days", "-3"],
    ["agenda", "alice", "--days", "many"],
    ["agenda", "alice", "--days", "100000000000"],
    ["agenda", "nobody"],
    # create and edit: times, zones, ids
    [*CREATE, "--start", "2030-13-01"],
    [*CREATE, "--start", "30/01/2030 10:00"],
    [*CREATE, "--start", "9999-12-31"],
    [*CREATE, "--start", "2030-01-07", "--end", "2030-01-07T10:00"],
    [*CREATE, "--start", "2030-01-07T10:00", "--end", "tomorrow"],
    [*CREATE, "--start", "2030-01-07T10:00", "--timezone", "Mars/Olympus"],
    [*CREATE, "--start", "2030-01-07T10:00", "--repeat", "FREQ=SOMETIMES"],
    ["interaction", "create", "--owner", "nobody", "--subject", "x", "--start", "2030-01-07"],
    ["interaction", "edit", "1", "--start", "2030-02-30T10:00"],
    ["interaction", "edit", "1", "--end", "later"],
    ["interaction", "edit", "1", "--timezone", "Nowhere/Town"],
    ["interaction", "edit", "one", "--subject", "y"],
    ["interaction", "edit", "99999999999", "--subject", "y"],
    ["interaction", "cancel", "-1"],
    ["interaction", "done", "x"],
    ["interaction", "show", "0"],
    ["interaction", "show", "99999999999"],
    # linked users and rooms
    ["link", "x", "bob"],
    ["link", "99999999999", "bob"],
    ["link", "1", "bob", "--status", "declined"],
    ["link", "1", "nobody"],
    ["unlink", "x", "bob", "--yes"],
    ["answer", "1", "bob", "maybe"],
    ["answer", "x", "bob", "accept"],
    ["book", "x", "everest"],
    ["book", "1", "nowhere"],
    ["release", "99999999999", "everest"],
    # administration
    ["user", "add", "eve", "--name", "Eve", "--timezone", "Mars/Olympus", "--no-password"],
    ["user", "activate", "nobody"],
    ["user", "admin", "nobody", "on"],
    ["user", "admin", "alice", "maybe"],
    ["user", "passwd", "alice", "--password-stdin"],  # an empty line: too short
    ["user", "add", "eve", "--name", "Eve", "--password-stdin"],
    ["resource", "deactivate", "nowhere"],
    [*ROOM, "--capacity", "0"],
    [*ROOM, "--capacity", "-2"],
    [*ROOM, "--capacity", "twelve"],
    [*ROOM, "--capacity", "99999999999"],
    [*ROOM, "--kind", "spaceship"],
    ["multi-user", "maybe"],
    ["feed", "frobnicate", "alice"],
    ["feed", "show", "nobody"],
    ["messages", "nobody"],
    ["rsvp-revoke", "nobody"],
    # servers: numbers checked before anything starts
    ["worker", "--interval", "0"],
    ["worker", "--interval", "nan"],
    ["worker", "--interval", "inf"],
    ["worker", "--interval", "soon"],
    ["imip-listen", "--port", "70000"],
    ["imip-listen", "--port", "x"],
    ["serve", "--port", "-1"],
    ["serve", "--log-level", "loud"],
]


@pytest.fixture
def prepared(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Database:
    """alice (owner of interaction #1), bob linked to it, the everest room."""
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", database_url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    for argv in (
        ["migrate"],
        ["user", "add", "alice", "--name", "Alice", "--email", "a@example.com", "--no-password"],
        ["user", "add", "bob", "--name", "Bob", "--email", "b@example.com", "--no-password"],
        ["resource", "add", "everest", "--name", "Everest", "--email", "e@example.com"],
        ["multi-user", "on"],
        [*CREATE, "--start", "2030-01-07T10:00"],
        ["link", "1", "bob"],
    ):
        assert main(argv) == 0, argv
    return Database(database_url)


def _counts(database: Database) -> list[int]:
    with database.session() as session:
        return [
            int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (User, Resource, Interaction, InteractionLink, OutboxMessage)
        ]


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    """Why ``argv`` was not refused as it should be, or None."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's refusals
        code = int(exit_.code or 0)
    except Exception as exc:  # what the test looks for: a traceback
        return f"raised {exc!r}"
    err = capsys.readouterr().err
    if code != 2 or not err.startswith("caldav-bridge") or ": error: " not in err:
        return f"exit {code}: {err!r}"
    return None if err.count("\n") == 1 else f"more than one line: {err!r}"


def test_every_bad_value_is_one_line_exit_2_and_changes_nothing(
    prepared: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _counts(prepared)
    wrong = {" ".join(argv): _refusal(argv, capsys) for argv in BAD}
    assert {argv: why for argv, why in wrong.items() if why} == {}
    assert _counts(prepared) == before
    prepared.dispose()


def test_the_agenda_takes_a_day_and_a_number_of_days(
    prepared: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["agenda", "alice", "--from", "2030-01-06", "--days", "2"]) == 0
    assert "x" in capsys.readouterr().out
    prepared.dispose()

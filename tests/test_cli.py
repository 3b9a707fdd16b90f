"""The ``caldav-bridge`` command, run as a real process against SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from caldav_bridge.db import Database
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.models import Interaction, OutboxMessage
from caldav_bridge.domain.passwords import verify_password
from tests.cli_run import Run, ok, refused, runner


@pytest.fixture
def cli(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """The CLI's ``main`` in this process (fast); ``test_the_installed_command…`` runs it for
    real as a separate process."""
    return runner(database_url, capsys, monkeypatch)


def _set_up(cli: Callable[..., Run]) -> None:
    ok(cli("migrate"))
    ok(
        cli(
            "user",
            "add",
            "alice",
            "--name",
            "Alice Martin",
            "--email",
            "alice@example.com",
            "--timezone",
            "Europe/Paris",
            "--password-stdin",
            stdin="s3cret-phrase\n",
        )
    )
    ok(
        cli(
            "user",
            "add",
            "bob",
            "--name",
            "Bob Dupont",
            "--email",
            "bob@example.com",
            "--timezone",
            "Europe/Paris",
            "--no-password",
        )
    )
    ok(
        cli(
            "resource",
            "add",
            "everest",
            "--name",
            "Everest room",
            "--email",
            "everest@example.com",
            "--capacity",
            "10",
        )
    )


def test_the_cli_runs_an_interaction_from_creation_to_answer(
    cli: Callable[..., Run], database_url: str
) -> None:
    _set_up(cli)
    assert "multi-user interactions are on" in ok(cli("multi-user", "on"))
    created = ok(
        cli(
            "interaction",
            "create",
            "--owner",
            "alice",
            "--subject",
            "Planning",
            "--start",
            "2030-01-07T10:00",
            "--end",
            "2030-01-07T11:00",
        )
    )
    assert "interaction #1 created" in created
    assert "bob linked as invited" in ok(cli("link", "1", "bob"))
    assert "everest booked" in ok(cli("book", "1", "everest"))
    assert "bob accepted" in ok(cli("answer", "1", "bob", "accept"))
    assert "SEQUENCE 2" in ok(cli("interaction", "edit", "1", "--start", "2030-01-07T14:00"))
    agenda = ok(cli("agenda", "bob", "--from", "2030-01-06", "--days", "3"))
    assert "Planning" in agenda
    assert "Confirmed" in agenda
    assert "14:00–15:00" in agenda
    assert "alice: owner" in agenda
    ics = ok(cli("interaction", "show", "1", "--ics")).replace("\r\n ", "")
    assert "PARTSTAT=ACCEPTED" in ics
    assert "CUTYPE=ROOM" in ics
    assert "SEQUENCE:2" in ics
    assert "removed" in ok(cli("unlink", "1", "bob", "--yes"))
    assert "cancelled" in ok(cli("interaction", "cancel", "1"))
    database = Database(database_url)
    with database.session() as session:
        alice = Directory(session).user("alice")
        assert verify_password(alice.password_hash, "s3cret-phrase")
        assert not verify_password(alice.password_hash, "wrong")
        assert not verify_password(Directory(session).user("bob").password_hash, "")
    database.dispose()


def test_refusals_print_one_line_exit_2_and_change_nothing(
    cli: Callable[..., Run], database_url: str
) -> None:
    _set_up(cli)
    ok(
        cli(
            "interaction",
            "create",
            "--owner",
            "alice",
            "--subject",
            "Board",
            "--start",
            "2030-01-07T10:00",
        )
    )
    refused(cli("link", "1", "bob"), "multi-user interactions are switched off")
    ok(cli("multi-user", "on"))
    ok(cli("book", "1", "everest"))
    ok(
        cli(
            "interaction",
            "create",
            "--owner",
            "bob",
            "--subject",
            "Clash",
            "--start",
            "2030-01-07T10:30",
        )
    )
    database = Database(database_url)
    with database.session() as session:
        before = session.scalar(select(func.count(OutboxMessage.id)))
    refused(cli("book", "2", "everest"), "already booked by interaction #1 'Board'")
    refused(cli("link", "1", "alice"), "cannot also be a linked user")
    refused(cli("link", "1", "nobody"), "no user 'nobody'")
    refused(cli("link", "1", "bob", "--status", "declined"), "invalid choice")
    refused(cli("answer", "1", "bob", "accept"), "not linked")
    refused(cli("interaction", "show", "99"), "no interaction #99")
    refused(
        cli("interaction", "create", "--owner", "bob", "--subject", "x", "--start", "2030-02-30"),
        "is not a date",
    )
    refused(
        cli(
            "interaction",
            "create",
            "--owner",
            "bob",
            "--subject",
            "x",
            "--start",
            "2030-01-07T10:00",
            "--timezone",
            "Mars/Olympus",
        ),
        "unknown time zone",
    )
    refused(cli("user", "add", "alice", "--name", "Again", "--no-password"), "already exists")
    refused(cli("user", "add", "Bad Login", "--name", "x", "--no-password"), "is not valid")
    refused(
        cli("user", "add", "eve", "--name", "Eve", "--email", "not-an-address", "--no-password"),
        "is not an email address",
    )
    refused(cli("unlink", "1", "bob"), "add --yes")
    refused(cli("--database", "mysql://x/y", "agenda", "bob"), "unsupported database")
    refused(cli("no-such-command"), "invalid choice")
    with database.session() as session:
        assert session.scalar(select(func.count(OutboxMessage.id))) == before
        assert session.scalar(select(func.count(Interaction.id))) == 2
        assert Directory(session).find_user("eve") is None
    database.dispose()


def _installed(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    command = os.path.join(os.path.dirname(sys.executable), "caldav-bridge")
    env = {**os.environ, "CALDAV_BRIDGE_DATABASE_URL": url}
    return subprocess.run(
        [command, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_the_installed_command_reports_an_unmigrated_database_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _installed("user", "list", url=f"sqlite:///{tmp_path}/new.sqlite3")
    assert done.returncode == 2
    assert done.stderr == (
        "caldav-bridge: error: the database is not initialised or is out of date: "
        "run 'caldav-bridge migrate'\n"
    )


def test_the_installed_command_refuses_bad_input_without_a_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    assert _installed("migrate", url=url).returncode == 0
    done = _installed(
        "interaction",
        "create",
        "--owner",
        "nobody",
        "--subject",
        "x",
        "--start",
        "2030-01-07",
        url=url,
    )
    assert (done.returncode, done.stderr) == (2, "caldav-bridge: error: no user 'nobody'\n")
    done = _installed("agenda", url=url)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_demo_loads_once_and_shows_alices_desk(cli: Callable[..., Run]) -> None:
    first = cli("demo")
    desk = ok(first)
    assert "demonstrations only" in first.err
    assert "Desk of Alice Martin (alice)" in desk
    assert "Invitations waiting for an answer" in desk
    for words in (
        "Owner, done",
        "Cancelled",
        "Confirmed",
        "Declined",
        "Invited (tentative)",
        "Everest meeting room",
    ):
        assert words in desk
    second = cli("demo")
    assert "already loaded" in second.err
    assert ok(second) == desk
    bob = ok(cli("agenda", "bob"))
    assert "Quarterly planning" in bob


def test_demo_refuses_a_database_that_holds_real_users(cli: Callable[..., Run]) -> None:
    ok(cli("migrate"))
    ok(cli("user", "add", "zoe", "--name", "Zoe", "--no-password"))
    refused(cli("demo"), "already holds users")


def test_book_is_refused_when_a_series_started_years_ago_holds_the_room(
    cli: Callable[..., Run],
) -> None:
    _set_up(cli)
    ok(cli("multi-user", "on"))
    series = ("--subject", "Weekly", "--start", "2027-01-05T10:00", "--repeat", "FREQ=WEEKLY")
    ok(cli("interaction", "create", "--owner", "alice", *series))
    ok(cli("book", "1", "everest"))
    later = ("--subject", "Clash", "--start", "2030-01-08T10:30")  # a Tuesday, three years on
    ok(cli("interaction", "create", "--owner", "bob", *later))
    refused(cli("book", "2", "everest"), "already booked by interaction #1 'Weekly'")

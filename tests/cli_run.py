"""The CLI's ``main`` run in this process, as tests of the command drive it."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from caldav_bridge.cli.commands import main


@dataclass
class Run:
    code: int
    out: str
    err: str


def runner(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """``run(*args, stdin="")``: the command on ``database_url``, its exit code and output."""
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", database_url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)

    def run(*args: str, stdin: str = "") -> Run:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse refusals
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def ok(result: Run) -> str:
    assert result.code == 0, result.err
    return result.out


def refused(result: Run, reason: str) -> None:
    """Exit code 2 and one line saying ``reason``, without a traceback."""
    assert result.code == 2, result.out
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    assert reason in result.err, result.err

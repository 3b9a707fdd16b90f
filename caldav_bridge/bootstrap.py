"""Set-up and entry points for a fresh machine, on the bare system Python (stdlib only).

    python3 -m caldav_bridge.bootstrap run     # the CalDAV server with demo data, embedded SQLite
    python3 -m caldav_bridge.bootstrap test    # the test suite (arguments go to pytest)
    python3 -m caldav_bridge.bootstrap check   # ruff and mypy
    python3 -m caldav_bridge.bootstrap bench   # the benchmark against Radicale and Xandikos
    python3 -m caldav_bridge.bootstrap interop # third-party test suites against the server

Each creates ``.venv`` when missing and installs the project into it; a stamp of
``pyproject.toml`` skips the install when nothing changed, so later runs start at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CALDAV_BRIDGE_VENV", ROOT / ".venv"))
BIN = VENV / "bin"
CHROMIUM = os.environ.get("CALDAV_BRIDGE_CHROMIUM", "/usr/bin/chromium")


def _say(message: str) -> None:
    print(f"[bootstrap] {message}", file=sys.stderr, flush=True)


def ensure_environment(extras: str = "") -> None:
    """Create the virtual environment and install the project (with ``extras``) if needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this module runs on any system Python
        sys.exit("caldav-bridge needs Python 3.11 or newer")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{extras}|{sys.version}|{ROOT}".encode())
    stamp = VENV / f".caldav-bridge-installed-{extras or 'base'}"
    if (BIN / "python").exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    if not (BIN / "python").exists():
        _say(f"creating the virtual environment {VENV}")
        venv.create(VENV, with_pip=True)
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    _say(f"installing caldav-bridge{f' with {extras} tools' if extras else ''} (first run only)")
    subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-e",
            target,
        ],
        check=True,
    )
    stamp.write_text(digest.hexdigest())


def ensure_chromium() -> None:
    """The browser tests drive Debian's Chromium: install it when missing and we may."""
    if Path(CHROMIUM).exists():
        return
    if not shutil.which("apt-get") or os.geteuid() != 0:
        _say(f"no Chromium at {CHROMIUM}: install Debian's chromium package for the browser tests")
        return
    _say("installing Debian's chromium for the browser tests (first run only)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["update", "-qq"], ["install", "-y", "-qq", "chromium"]):
        subprocess.run(["apt-get", *step], check=True, env=env, stdout=subprocess.DEVNULL)


def _exec(*argv: str) -> None:
    os.chdir(ROOT)
    os.execv(argv[0], list(argv))


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"run", "test", "check", "bench", "interop"}:
        sys.exit(
            "usage: python3 -m caldav_bridge.bootstrap run|test|check|bench|interop [arguments]"
        )
    command, rest = argv[0], argv[1:]
    if command == "run":
        ensure_environment()
        _exec(str(BIN / "caldav-bridge"), "serve", "--demo", *rest)
    if command == "bench":
        ensure_environment("test,bench")
        _exec(str(BIN / "python"), "-m", "bench.run", *rest)
    if command == "interop":  # the suites get an environment of their own (cli/interop.py)
        ensure_environment()
        _exec(str(BIN / "python"), "-m", "caldav_bridge.cli.interop", *rest)
    ensure_environment("test")
    if command == "test":
        ensure_chromium()
        _exec(str(BIN / "python"), "-m", "pytest", *rest)
    os.chdir(ROOT)
    for step in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]):
        _say(" ".join(step))
        if subprocess.run([str(BIN / step[0]), *step[1:]], check=False).returncode:
            sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Third-party test suites against the bridge: python-caldav's functional and async suites,
vdirsyncer's CalDAV and CardDAV storage tests, and caldav-server-tester, each the newest
release on the package index.

    python3 -m caldav_bridge.bootstrap interop [--only NAME]

Their tests come from their source distributions (unpacked under ``.venv-interop/work``); the
packages and the tests' own requirements are installed into ``.venv-interop``. The bridge is
started on a loopback port over a fresh SQLite database holding the three users the scheduling
tests need, each suite is pointed at it through its own configuration mechanism, and one line
per suite is printed; the exit status is 1 when a suite failed. Full logs, JUnit files and the
list of failed tests are kept in ``.venv-interop/work``. Not run by CI: it is slow and needs the
package index.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-interop"
WORK = VENV / "work"
PYTHON = VENV / "bin" / "python"
BRIDGE = Path(sys.executable).parent / "caldav-bridge"

SOURCES = ("caldav", "vdirsyncer")  # whose tests run from their source distributions
PACKAGES = ("caldav-server-tester",)
REQUIREMENTS = (
    # python-caldav's tests
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "proxy.py",
    "tzlocal",
    "vobject",
    "pyfakefs",
    "httpx",
    # vdirsyncer's tests
    "hypothesis",
    "pytest-httpserver",
    "trustme",
    "aioresponses",
)
USERS = ("alice", "bob", "carol")
TEST_TIMEOUT = 300  # seconds per test: a test waiting for what never comes fails, not the run


def _say(message: str) -> None:
    print(f"[interop] {message}", flush=True)


# ---------------------------------------------------------------------------- results


@dataclass
class Outcome:
    """What one suite found: counts and, for what failed, the test and the first line why."""

    suite: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    crashed: bool = False  # the suite itself stopped, whatever it counted

    @property
    def ok(self) -> bool:
        return not self.failed and not self.crashed

    def line(self) -> str:
        counts = f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
        return f"{self.suite}: {counts}" + "".join(f"; {note}" for note in self.notes)


def _first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def junit_outcome(suite: str, xml_text: str) -> Outcome:
    """Counts of a pytest JUnit report; errors (in set-up or tear-down) count as failures."""
    outcome = Outcome(suite)
    for case in ElementTree.fromstring(xml_text).iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            outcome.failed += 1
            outcome.failures.append(f"{name}: {_first_line(problem.get('message'))}")
        elif case.find("skipped") is not None:
            outcome.skipped += 1
        else:
            outcome.passed += 1
    return outcome


# Support levels of caldav-server-tester that say the server answers wrongly, not merely that
# it lacks an optional feature (unsupported, quirk, fragile, unknown are listed, not failed).
_WRONG = {"broken", "ungraceful"}


def server_tester_outcome(suite: str, report: str) -> Outcome:
    """caldav-server-tester's JSON report: each feature checked counts as passed when its
    support is "full"; the others are listed with their level, as failed when it is wrong."""
    outcome = Outcome(suite)
    features = json.loads(report[report.index("{") :])["features"]
    lacking = []
    for name, info in sorted(features.items()):
        support = info.get("support") if isinstance(info, dict) else None
        if support is None:
            continue  # a value the tester observed (such as a default calendar), no level
        if support == "full":
            outcome.passed += 1
            continue
        lacking.append(f"{name} ({support})")
        outcome.failures.append(f"{name}: {support} {info.get('behaviour', '')}".rstrip())
        if support in _WRONG:
            outcome.failed += 1
        else:
            outcome.skipped += 1
    if lacking:
        outcome.notes.append("not full: " + ", ".join(lacking))
    return outcome


# ---------------------------------------------------------------------------- installing


class IndexUnreachable(RuntimeError):
    """The package index could not be reached (or refused what was asked)."""


def _pip(*args: str, log: Path) -> None:
    with log.open("a") as out:
        done = subprocess.run(
            [str(PYTHON), "-m", "pip", "--disable-pip-version-check", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode:
        said = [line for line in log.read_text().splitlines() if line.startswith("ERROR:")]
        why = f": {said[-1].removeprefix('ERROR:').strip()}" if said else ""
        raise IndexUnreachable(f"pip {args[0]} failed{why} (see {log})")


def prepare() -> dict[str, Path]:
    """The interop environment, with the newest releases and their unpacked sources."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not PYTHON.exists():
        _say(f"creating {VENV}")
        venv.create(VENV, with_pip=True)
    downloads = WORK / "downloads"
    shutil.rmtree(downloads, ignore_errors=True)
    _say(f"downloading the newest sources of {', '.join(SOURCES)}")
    index_log = logs / "pip.log"
    index_log.write_text("")
    # One try, a short wait: a machine without the index should hear so in seconds.
    _pip(
        "download",
        *("--no-binary", ":all:", "--no-deps", "--retries", "1", "--timeout", "20"),
        *("-d", str(downloads), *SOURCES),
        log=index_log,
    )
    sources: dict[str, Path] = {}
    pins = []
    for archive in sorted(downloads.glob("*.tar.gz")):
        name, _, version = archive.name.removesuffix(".tar.gz").rpartition("-")
        project = name.replace("_", "-").lower()
        target = WORK / "src" / f"{project}-{version}"
        if not target.exists():
            with tarfile.open(archive) as packed:
                packed.extractall(target.parent, filter="data")
        sources[project] = target
        pins.append(f"{project}=={version}")
    _say(f"installing {', '.join([*pins, *PACKAGES])} and their tests' requirements")
    _pip("install", "-q", "--upgrade", *pins, *PACKAGES, *REQUIREMENTS, log=index_log)
    return sources


def installed_version(project: str) -> str:
    done = subprocess.run(
        [str(PYTHON), "-c", f"import importlib.metadata as m; print(m.version({project!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


# ---------------------------------------------------------------------------- the bridge


@dataclass(frozen=True)
class Bridge:
    url: str
    passwords: dict[str, str]
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fresh_database(path: Path) -> tuple[str, dict[str, str]]:
    from caldav_bridge.db import Database
    from caldav_bridge.domain.administration import OPERATOR, Administration
    from caldav_bridge.domain.directory import Directory

    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    database = Database(url)
    database.migrate()
    passwords = {login: f"{login}-interop-secret" for login in USERS}
    with database.session(write=True) as session:
        directory = Directory(session)
        for login in USERS:
            name = f"{login.title()} Interop"
            directory.add_user(login, name, [f"{login}@example.com"], passwords[login])
        Administration(session, OPERATOR).set_multi_user(True)
    database.dispose()
    return url, passwords


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bridge stopped at start-up (see {WORK / 'logs'})")
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="OPTIONS"), timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the bridge did not answer at {url}")


@contextmanager
def running_bridge(suite: str) -> Iterator[Bridge]:
    """``caldav-bridge serve`` on a free loopback port over a fresh SQLite database."""
    database, passwords = _fresh_database(WORK / "bridge.sqlite3")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    path = WORK / "logs" / f"bridge-{suite}.log"
    log = path.open("w")
    command = [str(BRIDGE), "--database", database, "serve", "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning"], stdout=log, stderr=log)
    try:
        _wait_until_serving(url, process)
        _say(f"the bridge serves {url} (users {', '.join(USERS)}, a fresh database)")
        yield Bridge(url, passwords, path)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


# ---------------------------------------------------------------------------- the suites

_PROGRESS = re.compile(r"\[\s*\d+%\]\s*$")


def _environment(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CALDAV_", "PYTHON"))}
    return {**environ, **extra}


def _pytest(suite: str, cwd: Path, args: Sequence[str], environ: dict[str, str]) -> Outcome:
    """Run pytest in the interop environment, its progress lines shown, and read its JUnit
    report."""
    junit = WORK / "logs" / f"{suite}.xml"
    junit.unlink(missing_ok=True)
    log = WORK / "logs" / f"{suite}.log"
    command = [str(PYTHON), "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"]
    command += [f"--junitxml={junit}", f"--timeout={TEST_TIMEOUT}", "-o", "junit_family=xunit1"]
    _say(f"{suite}: running (log: {log})")
    with (
        log.open("w") as out,
        subprocess.Popen(
            command,
            cwd=cwd,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            if _PROGRESS.search(line):
                _say(f"{suite}: {line.strip()}")
    if not junit.exists():
        note = f"pytest exited {process.returncode} without a report"
        return Outcome(suite, notes=[note], crashed=True)
    return junit_outcome(suite, junit.read_text())


def _servers_config(bridge: Bridge) -> dict[str, object]:
    """python-caldav's test-server configuration: the bridge as an external server, with its
    three users for the scheduling tests. No compatibility hint but the one the scheduling
    tests need to run at all (they skip without any): every feature is expected."""
    users = [
        {"url": bridge.url, "username": login, "password": bridge.passwords[login]}
        for login in USERS
    ]
    entry = {"type": "external", "enabled": True, **users[0], "scheduling_users": users}
    entry["features"] = {"scheduling": {"support": "full"}}
    return {"test-servers": {"bridge": entry}}


def _caldav_suite(suite: str, test_file: str) -> Callable[[Bridge, dict[str, Path]], Outcome]:
    def run(bridge: Bridge, sources: dict[str, Path]) -> Outcome:
        tree = sources["caldav"]
        config = tree / "tests" / "caldav_test_servers.json"
        config.write_text(json.dumps(_servers_config(bridge), indent=2))
        environ = _environment(PYTHON_CALDAV_TEST_EMBEDDED="0", PYTHON_CALDAV_TEST_DOCKER="0")
        # testCheckCompatibility runs caldav-server-tester, which runs as a suite of its own.
        # The suite's configuration turns warnings into errors: pytest-asyncio warns without
        # a loop scope, and testPrincipals calls the deprecated principals().
        args = [f"tests/{test_file}", "-k", "not testCheckCompatibility"]
        args += ["-o", "asyncio_default_fixture_loop_scope=function"]
        args += ["-W", "ignore:principals() is deprecated:DeprecationWarning"]
        return _pytest(suite, tree, args, environ)

    return run


# vdirsyncer's DAV tests import tests/storage/servers/<DAV_SERVER>/ for a ServerMixin giving
# each test the storage's arguments (as its Radicale one does, with the bridge's address).
VDIRSYNCER_SERVER = '''"""The bridge that caldav_bridge.cli.interop started."""

import os

import pytest


class ServerMixin:
    @pytest.fixture
    def get_storage_args(self, slow_create_collection, aio_connector):
        async def inner(collection="test"):
            args = {
                "url": os.environ["CALDAV_BRIDGE_INTEROP_URL"],
                "username": os.environ["CALDAV_BRIDGE_INTEROP_USER"],
                "password": os.environ["CALDAV_BRIDGE_INTEROP_PASSWORD"],
                "connector": aio_connector,
            }
            if collection is not None:
                args = await slow_create_collection(self.storage_class, args, collection)
            return args

        return inner
'''


def _vdirsyncer_suite(suite: str, test_file: str) -> Callable[[Bridge, dict[str, Path]], Outcome]:
    def run(bridge: Bridge, sources: dict[str, Path]) -> Outcome:
        tree = sources["vdirsyncer"]
        shim = tree / "tests" / "storage" / "servers" / "caldav_bridge" / "__init__.py"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(VDIRSYNCER_SERVER)
        environ = _environment(
            DAV_SERVER="caldav_bridge",
            CALDAV_BRIDGE_INTEROP_URL=bridge.url,
            CALDAV_BRIDGE_INTEROP_USER=USERS[0],
            CALDAV_BRIDGE_INTEROP_PASSWORD=bridge.passwords[USERS[0]],
        )
        # Its configuration adds coverage options (pytest-cov): replaced by its --tb alone.
        args = [f"tests/storage/dav/{test_file}", "-o", "addopts=--tb=short"]
        return _pytest(suite, tree, args, environ)

    return run


def _tester(bridge: Bridge, sources: dict[str, Path]) -> Outcome:
    """caldav-server-tester with the three users (the first checks, the others are invited),
    read from a caldav configuration file of its own."""
    config = WORK / "calendar.conf"
    sections = {
        login: {
            "caldav_url": bridge.url,
            "caldav_username": login,
            "caldav_password": bridge.passwords[login],
        }
        for login in USERS
    }
    config.write_text(json.dumps(sections, indent=2))
    log = WORK / "logs" / "caldav-server-tester.log"
    command = [str(VENV / "bin" / "caldav-server-tester"), "--format", "json"]
    for login in USERS:
        command += ["--config-section", login]
    _say(f"caldav-server-tester: running (log: {log})")
    with log.open("w") as errors:
        done = subprocess.run(
            command,
            cwd=WORK,
            env=_environment(CALDAV_CONFIG_FILE=str(config)),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            check=False,
        )
    (WORK / "logs" / "caldav-server-tester.json").write_text(done.stdout)
    if "{" not in done.stdout:
        note = f"exited {done.returncode} without a report"
        return Outcome("caldav-server-tester", notes=[note], crashed=True)
    outcome = server_tester_outcome("caldav-server-tester", done.stdout)
    if done.returncode:  # a check raised: the report holds what was found before
        outcome.notes.insert(0, f"exited {done.returncode}")
        outcome.crashed = True
    return outcome


Suite = Callable[[Bridge, dict[str, Path]], Outcome]

SUITES: dict[str, Suite] = {
    "caldav": _caldav_suite("caldav", "test_caldav.py"),
    "caldav-async": _caldav_suite("caldav-async", "test_async_integration.py"),
    "vdirsyncer-caldav": _vdirsyncer_suite("vdirsyncer-caldav", "test_caldav.py"),
    "vdirsyncer-carddav": _vdirsyncer_suite("vdirsyncer-carddav", "test_carddav.py"),
    "caldav-server-tester": _tester,
}


def server_errors(log_text: str) -> list[str]:
    """The lines of the bridge's log that say it failed (a 5xx, a traceback)."""
    marks = ("[ERROR]", "[CRITICAL]", "Traceback")
    return [line for line in log_text.splitlines() if any(m in line for m in marks)]


def _report(outcomes: list[Outcome], versions: str) -> Path:
    """The failed tests of each suite, one per line with the first line of the reason."""
    lines = [f"# interop run {time.strftime('%Y-%m-%d %H:%M')} ({versions})", ""]
    for outcome in outcomes:
        lines += [f"## {outcome.line()}", "", *(f"- {f}" for f in outcome.failures), ""]
    path = WORK / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m caldav_bridge.bootstrap interop")
    parser.add_argument("--only", choices=sorted(SUITES), help="run this suite alone")
    args = parser.parse_args(argv)
    try:
        sources = prepare()
    except IndexUnreachable as exc:
        _say(f"the package index cannot be reached or refused the download: {exc}")
        _say("the interop run installs the suites from the package index; nothing was run")
        return 2
    versions = ", ".join(f"{p} {installed_version(p)}" for p in (*SOURCES, *PACKAGES))
    versions += f", caldav-bridge {importlib.metadata.version('caldav-bridge')}"
    _say(versions)
    chosen = [args.only] if args.only else list(SUITES)
    outcomes = []
    errors: list[str] = []
    for name in chosen:  # each on a fresh database: one suite's leftovers are not another's
        with running_bridge(name) as bridge:
            outcomes.append(SUITES[name](bridge, sources))
        errors += server_errors(bridge.log.read_text(errors="replace"))
        _say(outcomes[-1].line())
    report = _report(outcomes, versions)
    print()
    for outcome in outcomes:
        print(outcome.line())
    print(f"the bridge logged {len(errors)} errors ({WORK / 'logs'}/bridge-*.log)")
    print(f"(failed tests and their reasons: {report})")
    return 0 if all(o.ok for o in outcomes) and not errors else 1


if __name__ == "__main__":
    sys.exit(main())

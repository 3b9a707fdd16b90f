"""Starting the servers under test as processes on loopback ports, loaded with the same events."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.datasets import BENCH_PASSWORD, BENCH_USER, Sample
from caldav_bridge.domain.passwords import hash_password

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    name: str
    command: list[str]
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: see {self.log}")
            try:
                httpx.request("OPTIONS", f"{self.base}/", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer on port {self.port}")

    def peak_memory_mib(self) -> float:
        assert self.popen is not None
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _write_events(folder: Path, samples: list[Sample]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for sample in samples:
        (folder / sample.href).write_text(sample.ical(), encoding="utf-8", newline="")


def radicale(work: Path, calendars: dict[str, list[Sample]]) -> Process:
    """Plain Radicale with each calendar's events written as its files."""
    root = work / "radicale"
    shutil.rmtree(root, ignore_errors=True)
    for name, samples in calendars.items():
        folder = root / "collection-root" / BENCH_USER / name
        _write_events(folder, samples)
        (folder / ".Radicale.props").write_text(json.dumps({"tag": "VCALENDAR"}))
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"{BENCH_USER}:{hash_password(BENCH_PASSWORD)}\n")
    port = free_port()
    return Process(
        "Radicale",
        [str(BIN / "python"), "-m", "bench.radicale_peer", str(root), str(port), str(htpasswd)],
        port,
        dict(os.environ),
        work / "radicale.log",
    )


XANDIKOS_CALENDAR = "/user/calendars/calendar/"


def xandikos(work: Path, samples: list[Sample]) -> Process:
    """Xandikos (no authentication: it offers it only over HTTPS) with the events committed
    into its calendar's git repository."""
    root = work / "xandikos"
    shutil.rmtree(root, ignore_errors=True)
    (root / "user" / "calendars").mkdir(parents=True)
    subprocess.run(
        [
            str(BIN / "xandikos"),
            "create-collection",
            "-d",
            str(root),
            "--type",
            "calendar",
            "--name",
            "user/calendars/calendar",
        ],
        check=True,
        capture_output=True,
    )
    calendar = root / "user" / "calendars" / "calendar"
    _write_events(calendar, samples)
    git = ["git", "-C", str(calendar), "-c", "user.name=bench", "-c", "user.email=b@b.invalid"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bulk import"], check=True)
    port = free_port()
    return Process(
        "Xandikos",
        [
            str(BIN / "xandikos"),
            "serve",
            "-d",
            str(root),
            "-p",
            str(port),
            "-l",
            "127.0.0.1",
            "--defaults",
            "--no-detect-systemd",
            "--state-dir",
            str(work / "xandikos-state"),
        ],
        port,
        dict(os.environ),
        work / "xandikos.log",
    )


def bridge(work: Path, database_url: str, name: str = "bridge") -> Process:
    port = free_port()
    env = {**os.environ, "CALDAV_BRIDGE_DATABASE_URL": database_url}
    env.pop("CALDAV_BRIDGE_CONFIG", None)
    return Process(
        name,
        # The same log level as the Radicale peer's: logging every request costs milliseconds.
        [str(BIN / "caldav-bridge"), "serve", "--port", str(port), "--log-level", "warning"],
        port,
        env,
        work / f"{name}.log",
    )

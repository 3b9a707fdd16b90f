"""The longevity soak: ``python -m bench.longevity --requests 100000``.

Starts the server that ``caldav-bridge serve`` runs (SQLite in a temporary folder, one user),
warms it up with 200 requests, then sends the given number from four clients (PROPFINDs over
keep-alive connections, a new connection every tenth request, one request in fifty dropped
half-sent) and reads the server
process's open descriptors and resident memory (VmRSS) at the start, after 10,000 and 50,000
requests and at the end. Exit code 0 when descriptors stayed flat and nothing answered 5xx.
Not run by CI: it takes minutes by design.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench import servers
from bench.run import say
from caldav_bridge.db import Database
from caldav_bridge.domain.directory import Directory

CLIENTS = 4
CHECKPOINTS = (10_000, 50_000)
BASIC = "Basic " + base64.b64encode(b"soak:soak").decode()
PROPFIND = b'<propfind xmlns="DAV:"><prop><getetag/><resourcetype/></prop></propfind>'
# Descriptors the server may gain over the run (a database connection opened late, a log).
SLACK = 8


def _measure(pid: int) -> tuple[int, int]:
    """(open descriptors, VmRSS in KiB) of the process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return len(os.listdir(f"/proc/{pid}/fd")), rss


class Load:
    """Requests shared out to the clients, and what they were answered."""

    def __init__(self, port: int, total: int) -> None:
        self.port, self.total = port, total
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self.sent >= self.total:
                return None
            self.sent += 1
            return self.sent

    def client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while (n := self.take()) is not None:
            if n % 50 == 0:
                self._dropped()
                continue
            if n % 10 == 0:
                connection.close()
            path, depth = ("/soak/", "0") if n % 3 else ("/soak/interactions/", "1")
            connection.request(
                "PROPFIND",
                path,
                body=PROPFIND,
                headers={"Authorization": BASIC, "Depth": depth, "Content-Type": "application/xml"},
            )
            answer = connection.getresponse()
            answer.read()
            with self._lock:
                self.statuses[answer.status] += 1
        connection.close()

    def _dropped(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as raw:
            raw.sendall(
                b"PROPFIND /soak/ HTTP/1.1\r\nHost: soak\r\nContent-Length: 90\r\n\r\n<prop"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.longevity")
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="caldav-bridge-longevity-"))
    url = f"sqlite:///{work / 'bridge.sqlite3'}"
    database = Database(url)
    database.migrate()
    with database.session(write=True) as session:
        Directory(session).add_user("soak", "Soak", ["soak@example.com"], "soak", "UTC")
    database.dispose()
    server = servers.bridge(work, url)
    server.start()
    assert server.popen is not None
    pid = server.popen.pid
    Load(server.port, 200).client()  # warmed up: caches and the connection pool filled
    load = Load(server.port, args.requests)
    rows = [("start", 0, *_measure(pid))]
    began = time.monotonic()
    threads = [threading.Thread(target=load.client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    marks = [m for m in CHECKPOINTS if m < args.requests]
    while any(t.is_alive() for t in threads):
        if marks and load.sent >= marks[0]:
            rows.append((f"{marks[0]:,}", load.sent, *_measure(pid)))
            marks.pop(0)
        time.sleep(0.05)
    elapsed = time.monotonic() - began
    time.sleep(1)  # the last connections closed
    rows.append((f"{args.requests:,}", load.sent, *_measure(pid)))
    server.stop()
    print("| after | requests sent | open descriptors | VmRSS |")
    print("|---|---|---|---|")
    for label, sent, fds, rss in rows:
        print(f"| {label} | {sent:,} | {fds} | {rss / 1024:.1f} MiB |")
    rate = args.requests / elapsed
    print(f"{rate:.0f} requests/s over {elapsed:.0f} s; answers {dict(load.statuses)}")
    grew = rows[-1][2] - rows[0][2]
    failed = sum(n for status, n in load.statuses.items() if status >= 500)
    say(f"descriptors {rows[0][2]} -> {rows[-1][2]}; 5xx answers: {failed}")
    sys.exit(0 if grew <= SLACK and not failed else 1)


if __name__ == "__main__":
    main()

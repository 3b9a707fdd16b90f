"""The server that ``caldav-bridge serve`` runs can be left running: thousands of requests under
a low descriptor limit (``ulimit -n 128``), over new connections, keep-alive connections and
connections the client drops in the middle of a request, leave its open descriptors where they
were, and it still answers. Clients that send their headers byte by byte (slowloris) or sit idle
on keep-alive connections are closed after the server's timeout: they cannot hold it for good.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import select
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from caldav_bridge.caldav.server import Server, radicale_configuration
from caldav_bridge.config import Settings
from caldav_bridge.domain.passwords import hash_password
from tests.conftest import World
from tests.helpers import free_port, serve_command, wait_for_http

DESCRIPTOR_LIMIT = 128
ROUNDS = 10  # each round: new connections, a keep-alive stream, dropped requests
ANSWERING_THREADS = 8  # `serve`'s waitress threads ([server] max_connections)
BASIC = "Basic " + base64.b64encode(b"alice:alice").decode()
PROPFIND = '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'


def _descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def served(world: World) -> Iterator[tuple[int, int]]:
    """(pid, port) of a ``caldav-bridge serve`` process under ``ulimit -n 128``."""
    with world.database.session(write=True) as session:
        world.users(session)["alice"].password_hash = hash_password("alice")
    port = free_port()
    process = subprocess.Popen(  # the shell sets the limit, then becomes the server
        [
            "sh",
            "-c",
            f'ulimit -n {DESCRIPTOR_LIMIT} && exec "$0" "$@"',
            *serve_command(world.database.url, port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/")
        yield process.pid, port
    finally:
        process.kill()
        process.wait(timeout=30)


def _ask(connection: http.client.HTTPConnection, method: str = "PROPFIND") -> int:
    headers = {"Authorization": BASIC, "Depth": "0", "Content-Type": "application/xml"}
    connection.request(
        method, "/alice/", body=PROPFIND if method == "PROPFIND" else None, headers=headers
    )
    answer = connection.getresponse()
    answer.read()
    return answer.status


def _new_connections(port: int, count: int) -> list[int]:
    statuses = []
    for n in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        statuses.append(_ask(connection, "OPTIONS" if n % 2 else "PROPFIND"))
        connection.close()
    return statuses


def _keep_alive(port: int, count: int) -> list[int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return [_ask(connection) for _ in range(count)]
    finally:
        connection.close()


def _dropped(port: int, count: int) -> None:
    """Requests the client gives up on: in the headers, in the body, and reset (RST)."""
    for n in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            if n % 3 == 0:
                raw.sendall(b"PROPFIND /alice/ HTTP/1.1\r\nHost: x\r\nDep")
            elif n % 3 == 1:
                raw.sendall(
                    f"PUT /alice/personal/x.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {BASIC}\r\n"
                    "Content-Length: 5000\r\n\r\nBEGIN:VCAL".encode()
                )
            else:
                raw.sendall(
                    f"PROPFIND /alice/ HTTP/1.1\r\nHost: x\r\nAuthorization: {BASIC}\r\n"
                    "Depth: 0\r\n\r\n".encode()
                )
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _settled(pid: int, at_most: int) -> int:
    """The process's descriptor count once the connections just closed are reaped."""
    count = _descriptors(pid)
    for _ in range(100):
        if count <= at_most:
            return count
        time.sleep(0.1)
        count = _descriptors(pid)
    return count


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_thousands_of_requests_under_ulimit_128_leave_the_descriptors_flat_and_it_answers(
    served: tuple[int, int],
) -> None:
    pid, port = served
    _keep_alive(port, 5)
    _new_connections(port, 20)
    _dropped(port, 30)
    before = _settled(pid, 0)
    statuses: list[int] = []
    for _ in range(ROUNDS):
        statuses += _new_connections(port, 150)
        statuses += _keep_alive(port, 150)
        _dropped(port, 30)
    assert len(statuses) == ROUNDS * 300
    assert set(statuses) <= {200, 207}, sorted(set(statuses))
    # Dropped requests still being answered overlap the next ones, so the database pool may
    # open a connection more per answering thread than it had (a bounded number, where a leak
    # of one per connection would show hundreds): seen 7 more on a loaded machine.
    allowed = before + ANSWERING_THREADS
    after = _settled(pid, allowed)
    assert after <= allowed, f"{before} descriptors open before, {after} after"
    assert _new_connections(port, 1) == [207]


@pytest.fixture
def quick_server(world: World) -> Iterator[Server]:
    """The server in this process with a 2-second timeout and two answering threads."""
    with world.database.session(write=True) as session:
        world.users(session)["alice"].password_hash = hash_password("alice")
    configuration = radicale_configuration(
        Settings(world.database.url, "http://127.0.0.1"),
        extra={"server": {"timeout": "2", "max_connections": "2", "delay_on_error": "0"}},
    )
    server = Server(configuration, "127.0.0.1", 0)
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop()


def _closed_by_server(connection: socket.socket) -> bool:
    poller = select.poll()  # not select(): the test process may hold over 1,024 descriptors
    poller.register(connection, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:  # reset
        return True


SLOW_CLIENTS = 12


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_clients_sending_headers_byte_by_byte_hold_no_thread_and_are_cut_off(
    quick_server: Server,
) -> None:
    head = (
        f"PROPFIND /alice/ HTTP/1.1\r\nHost: x\r\nAuthorization: {BASIC}\r\n"
        f"X-Padding: {'p' * 200}\r\nDepth: 0\r\n\r\n"
    ).encode()
    slow = [socket.create_connection(("127.0.0.1", quick_server.port)) for _ in range(SLOW_CLIENTS)]
    answered_meanwhile = []
    sent = 0
    while sent < len(head) and not all(_closed_by_server(c) for c in slow):
        for connection in slow:
            with contextlib.suppress(OSError):  # closed by the server already
                connection.send(head[sent : sent + 1])
        sent += 1
        time.sleep(0.05)
        if sent % 20 == 0:
            answered_meanwhile += _keep_alive(quick_server.port, 1)
    assert sent < len(head), "the slow clients sent their whole request"
    assert all(_closed_by_server(c) for c in slow)
    assert answered_meanwhile, "no request was answered during the attack"
    assert set(answered_meanwhile) == {207}, answered_meanwhile
    for connection in slow:
        connection.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_idle_keep_alive_connections_are_closed_after_the_timeout(quick_server: Server) -> None:
    idle = []
    for _ in range(SLOW_CLIENTS):
        connection = http.client.HTTPConnection("127.0.0.1", quick_server.port, timeout=30)
        assert _ask(connection) == 207
        idle.append(connection)
    assert not any(_closed_by_server(c.sock) for c in idle)
    for _ in range(100):
        if all(_closed_by_server(c.sock) for c in idle):
            break
        time.sleep(0.1)
    assert all(_closed_by_server(c.sock) for c in idle)
    assert _keep_alive(quick_server.port, 1) == [207]

"""The web app is mounted at /.bridge/ beside CalDAV: its requests are answered by it alone,
never by Radicale, yet checked at the door as CalDAV's are; gzip follows the client's
Accept-Encoding; and gunicorn's entry (``caldav_bridge.wsgi:application``) serves both."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from caldav_bridge.caldav.server import Server, radicale_configuration
from caldav_bridge.config import Settings
from caldav_bridge.domain.passwords import hash_password
from tests.conftest import RunningServer, World
from tests.helpers import free_port, wait_for_http

RADICALE_HEADER = "X-Answered-By-Radicale"  # Radicale adds its [headers] to every answer it makes
PROPFIND = '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'


def _with_passwords(world: World) -> None:
    with world.database.session(write=True) as session:
        for user in world.users(session).values():
            user.password_hash = hash_password(user.login)


@pytest.fixture
def radicale_storage(world: World, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The server, with Radicale's own file storage in a folder of its own in place of the
    bridge's (whatever Radicale opens there leaves files), and a header Radicale adds to
    every answer it makes."""
    _with_passwords(world)
    folder = tmp_path / "radicale-storage"
    extra = {
        "storage": {"type": "multifilesystem", "filesystem_folder": str(folder)},
        "headers": {RADICALE_HEADER: "yes"},
    }
    settings = Settings(world.database.url, "http://127.0.0.1")
    running = Server(radicale_configuration(settings, extra=extra), "127.0.0.1", 0)
    running.start_in_thread()
    try:
        yield running.url, folder
    finally:
        running.stop()


def test_the_web_app_loads_without_radicale() -> None:
    """Its own WSGI types: importing the web layer loads neither Radicale nor CalDAV's layer."""
    probe = (
        "import sys, caldav_bridge.web.app, caldav_bridge.web.pages;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'radicale', 'plugins'}),"
        "[m for m in sys.modules if m.startswith('caldav_bridge.caldav')])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.split() == ["[]", "[]"]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_bridge_request_is_answered_by_the_web_app_and_never_reaches_radicale(
    radicale_storage: tuple[str, Path],
) -> None:
    url, folder = radicale_storage
    before = _files(folder)
    alice = ("alice", "alice")
    answers = [
        httpx.get(f"{url}.bridge/crm/login"),
        httpx.get(f"{url}.bridge/messages", auth=alice),
        httpx.post(f"{url}.bridge/messages/read", auth=alice, json={"all": True}),
        httpx.get(f"{url}.bridge/feeds/u1-nothing.ics"),
        httpx.request("PROPFIND", f"{url}.bridge/crm/", auth=alice, content=PROPFIND),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 405]
    assert all(RADICALE_HEADER not in a.headers for a in answers)
    assert answers[0].headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert answers[4].headers["Allow"] == "GET, HEAD, POST"
    assert _files(folder) == before  # Radicale's storage was not opened
    caldav = httpx.request("OPTIONS", f"{url}alice/", auth=alice)
    assert caldav.headers[RADICALE_HEADER] == "yes"
    assert _files(folder) != before  # a CalDAV request does open it (its lock, alice's folder)


def _raw(url: str, method: str, target: str, headers: dict[str, str]) -> tuple[int, str, str]:
    """(status, Content-Type, body) of a request sent with exactly these header values."""
    parts = httpx.URL(url)
    connection = http.client.HTTPConnection(parts.host, parts.port, timeout=30)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("target", "headers", "reason"),
    [
        ("/.bridge/crm/login", {"Content-Length": "abc"}, "Content-Length"),
        ("/.bridge/crm/login", {"Depth": "2"}, "Depth"),
        ("/.bridge/messages", {"Authorization": "Basic ***"}, "base64"),
        ("/.bridge/crm/login", {"Content-Type": "text/plain; charset=nope"}, "charset"),
        ("/.bridge/crm/login?next=%00", {}, "NUL characters are not accepted (QUERY_STRING)"),
        ("/.bridge/crm/%2e%2e/login", {}, "dot-segment"),
        ("/.bridge/feeds/a%2Fb.ics", {}, "%2F"),
    ],
)
def test_malformed_headers_under_bridge_are_refused_at_the_door(
    server: RunningServer, target: str, headers: dict[str, str], reason: str
) -> None:
    status, content_type, body = _raw(server.url, "GET", target, headers)
    assert status in (400, 415), body
    assert content_type.startswith("text/plain")
    assert reason in body


def test_pages_are_gzipped_only_for_clients_that_take_gzip(server: RunningServer) -> None:
    login = f"{server.url}.bridge/crm/login"
    with httpx.Client(headers={"Accept-Encoding": "gzip"}) as client:
        zipped = client.get(login)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "<form" in zipped.text  # httpx decompresses it
    for refused in ("gzip;q=0", "*;q=1, gzip;q=0", "identity", "br"):
        with httpx.Client(headers={"Accept-Encoding": refused}) as client:
            plain = client.get(login)
        assert "Content-Encoding" not in plain.headers, refused
        assert int(plain.headers["Content-Length"]) == len(plain.content)
    head = httpx.head(login, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["Content-Length"]) == len(plain.content)


@pytest.fixture
def gunicorn(world: World) -> Iterator[str]:
    """gunicorn serving ``caldav_bridge.wsgi:application`` over ``world``'s database."""
    _with_passwords(world)
    port = free_port()
    env = {**os.environ, "CALDAV_BRIDGE_DATABASE_URL": world.database.url}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "caldav_bridge.wsgi:application",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_gunicorns_entry_serves_caldav_and_the_pages(gunicorn: str) -> None:
    alice = ("alice", "alice")
    caldav = httpx.request(
        "PROPFIND", f"{gunicorn}alice/", auth=alice, headers={"Depth": "0"}, content=PROPFIND
    )
    assert caldav.status_code == 207
    page = httpx.get(f"{gunicorn}.bridge/crm/login")
    assert page.status_code == 200
    assert 'name="check"' in page.text
    assert httpx.get(f"{gunicorn}.bridge/messages", auth=alice).json() == []
    assert httpx.get(f"{gunicorn}.bridge/messages").status_code == 401

"""Malformed headers of every kind the server reads get a 4xx with the reason, never a 5xx, on
both databases: Authorization, Content-Length, Depth, Destination, Overwrite, If-Match,
If-None-Match, If-Schedule-Tag-Match, Prefer, Accept-Encoding, Content-Type's charset, Host,
and NUL characters in the path, the query, a header or the login. Requests are written byte by
byte on a socket (HTTP libraries refuse to send most of these)."""

from __future__ import annotations

import base64
import http.client
import socket
from urllib.parse import urlsplit

import pytest

from tests.conftest import RunningServer

ALICE = base64.b64encode(b"alice:alice").decode()
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:h@t\r\n"
    "DTSTAMP:20300101T000000Z\r\nDTSTART:20300107T100000Z\r\nDTEND:20300107T110000Z\r\n"
    "SUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
PROPFIND = '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'


def _basic(raw: bytes) -> str:
    return f"Basic {base64.b64encode(raw).decode()}"


def _send(
    url: str, method: str, target: str, headers: dict[str, str], body: str = ""
) -> tuple[int, str]:
    """The server's (status, body) for a request written exactly as given."""
    parts = urlsplit(url)
    raw = body.encode()
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    named = {k.lower() for k in headers}
    if "authorization" not in named:
        lines.append(f"Authorization: Basic {ALICE}")
    if "content-length" not in named:
        lines.append(f"Content-Length: {len(raw)}")
    lines += [f"{name}: {value}" for name, value in headers.items() if name != "Host"]
    if "Host" in headers:
        lines[1] = f"Host: {headers['Host']}"
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + raw
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(request)
        answer = http.client.HTTPResponse(connection, method=method)
        answer.begin()
        return answer.status, answer.read().decode("utf-8", "replace")


ITEM = "/alice/personal/h.ics"
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "caldav_bridge_login=c"}
CASES = [
    # Authorization
    ("PROPFIND", "/alice/", {"Authorization": "Basic ***"}, PROPFIND),
    ("PROPFIND", "/alice/", {"Authorization": _basic(b"no-colon")}, PROPFIND),
    ("PROPFIND", "/alice/", {"Authorization": _basic(b"\xff\xfe:x")}, PROPFIND),
    ("PROPFIND", "/alice/", {"Authorization": _basic(b"alice\x00:alice")}, PROPFIND),
    ("PROPFIND", "/alice/", {"Authorization": _basic(b"alice:ali\x00ce")}, PROPFIND),
    ("PROPFIND", "/alice/", {"Authorization": "Basic"}, PROPFIND),
    ("PROPFIND", "/alice/", {"Authorization": "Basic " + "@" * 5000}, PROPFIND),
    ("PROPFIND", "/alice/", {"Authorization": "Bearer abc"}, PROPFIND),
    ("GET", "/.bridge/messages", {"Authorization": "Basic ***"}, ""),
    # Content-Length
    ("PUT", ITEM, {"Content-Length": "-5"}, ""),
    ("PUT", ITEM, {"Content-Length": "abc"}, ""),
    ("PUT", ITEM, {"Content-Length": "1e3"}, ""),
    ("PUT", ITEM, {"Content-Length": "5, 5"}, ""),
    ("PROPFIND", "/alice/", {"Content-Length": "99999999999999999999999"}, ""),
    # Depth
    ("PROPFIND", "/alice/", {"Depth": "2"}, PROPFIND),
    ("PROPFIND", "/alice/", {"Depth": "foo"}, PROPFIND),
    ("PROPFIND", "/alice/", {"Depth": "-1"}, PROPFIND),
    ("REPORT", "/alice/interactions/", {"Depth": "x"}, "<sync-collection xmlns='DAV:'/>"),
    # Destination and Overwrite (MOVE)
    ("MOVE", ITEM, {"Destination": "::::"}, ""),
    ("MOVE", ITEM, {"Destination": "http://[::1"}, ""),
    ("MOVE", ITEM, {"Destination": ""}, ""),
    ("MOVE", ITEM, {}, ""),
    ("MOVE", ITEM, {"Destination": "/alice/personal/g.ics", "Overwrite": "maybe"}, ""),
    # Preconditions
    ("PUT", ITEM, {"If-Match": "garbage"}, EVENT),
    ("PUT", ITEM, {"If-Match": '"unterminated'}, EVENT),
    ("PUT", ITEM, {"If-None-Match": "W/"}, EVENT),
    ("DELETE", ITEM, {"If-Match": ",,,"}, ""),
    ("GET", ITEM, {"If-None-Match": "\x01"}, ""),
    ("PUT", ITEM, {"If-Schedule-Tag-Match": "garbage"}, EVENT),
    ("DELETE", ITEM, {"If-Schedule-Tag-Match": '"'}, ""),
    # Prefer, Accept-Encoding, Content-Type
    ("PUT", ITEM, {"Prefer": "return="}, EVENT),
    ("PUT", ITEM, {"Prefer": "return=representation; =;;"}, EVENT),
    ("PROPFIND", "/alice/", {"Accept-Encoding": "gzip;q=abc"}, PROPFIND),
    ("PROPFIND", "/alice/", {"Accept-Encoding": "," * 2000}, PROPFIND),
    ("PUT", ITEM, {"Content-Type": "text/calendar; charset=nope"}, EVENT),
    ("PROPFIND", "/alice/", {"Content-Type": "application/xml; charset=nope"}, PROPFIND),
    ("PROPPATCH", "/alice/personal/", {"Content-Type": "text/xml; charset=nope"}, PROPFIND),
    # Host and the forwarding headers that make addresses
    ("PROPFIND", "/alice/", {"Host": "[::1"}, PROPFIND),
    ("PROPFIND", "/alice/", {"X-Forwarded-Host": "[::1", "X-Forwarded-Port": "x"}, PROPFIND),
    ("PROPFIND", "/alice/", {"X-Script-Name": "nope"}, PROPFIND),
    # NUL characters
    ("PROPFIND", "/alice%00/", {}, PROPFIND),
    ("GET", "/alice/personal/%00.ics", {}, ""),
    ("GET", "/.bridge/crm/login?next=%00", {}, ""),
    ("GET", "/.bridge/interactions/1?token=%00", {}, ""),
    ("GET", "/.bridge/feeds/u1-%00.ics", {}, ""),
    ("PROPFIND", "/alice/", {"X-Anything": "a\x00b"}, PROPFIND),
    ("GET", "/.bridge/crm/", {"Cookie": "caldav_bridge_session=\x00"}, ""),
    ("POST", "/.bridge/crm/login", FORM, "check=c&login=al%00ice&password=alice"),
    ("POST", "/.bridge/crm/login", FORM, "check=c&login=alice&password=al%00ice"),
    ("POST", "/.bridge/interactions/1", FORM, "token=%00&answer=accept"),
]


@pytest.fixture
def stored(server: RunningServer) -> RunningServer:
    """alice's personal calendar with one event in it."""
    import httpx

    client = httpx.Client(auth=("alice", "alice"), timeout=30)
    client.request("MKCALENDAR", f"{server.url}alice/personal/")
    assert client.put(f"{server.url}alice/personal/h.ics", content=EVENT).status_code == 201
    return server


def test_malformed_headers_get_a_4xx_with_their_reason_never_a_5xx(stored: RunningServer) -> None:
    wrong = []
    for method, target, headers, body in CASES:
        status, text = _send(stored.url, method, target, headers, body)
        if status >= 500 or (status >= 400 and status != 404 and not text.strip()):
            wrong.append(f"{method} {target} {headers}: {status} {text[:200]!r}")
    assert not wrong, "\n".join(wrong)
    assert _send(stored.url, "PROPFIND", "/alice/", {"Depth": "0"}, PROPFIND)[0] == 207

"""An item's name (href) and UID may hold any character a client can send: a line feed, spaces,
'+', ':', ',', quotes, a literal '%0A', unicode (emoji joined by a zero-width joiner
included). Every calendar stores them and serves them back unchanged, through GET, PROPFIND,
calendar-multiget, sync-collection and DELETE; a UID with a line feed is served escaped as
TEXT (RFC 5545 3.3.11). What is unsafe in a name ('/', a dot-segment, NUL, bytes that are not
UTF-8, more than the 255 characters kept) or in a UID (a control character) is refused with a
400 that says why, and changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote, unquote
from xml.etree import ElementTree

import httpx
import pytest
from icalendar import Calendar, Event, Todo

from caldav_bridge.domain.interactions import InteractionService
from tests.conftest import RunningServer

# (UID, the href a client makes of it: the UID percent-encoded, as vdirsyncer does)
NAMES = [
    # vdirsyncer's test_newline_in_uid: a ':' and a literal "%0A" (three characters)
    "UID:20210609T084907Z-@synaps-web-54fddfdf7-7kcfm%0A.ics",
    "line\nbreak",
    "tab\tand spaces + plus",
    "ünïcødé град 👨\u200d👩\u200d👧",
    "a:b,c;d'e\"f*g?h~",
    "percent %2F %25 %00 literal",
    "trailing space ",
]

PROPS = "<getetag/><getcontenttype/>"
CALDAV = 'xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'


def _object(kind: str, uid: str) -> str:
    calendar = Calendar()
    calendar.add("prodid", "-//caldav-bridge tests//EN")
    calendar.add("version", "2.0")
    component = Event() if kind == "VEVENT" else Todo()
    component.add("uid", uid)
    component.add("dtstamp", datetime(2030, 1, 1, tzinfo=UTC))
    component.add("summary", "Named oddly")
    if kind == "VEVENT":
        component.add("dtstart", datetime(2030, 1, 8, 12, tzinfo=UTC))
        component.add("dtend", datetime(2030, 1, 8, 13, tzinfo=UTC))
    else:
        component.add("due", datetime(2030, 1, 8, 12, tzinfo=UTC))
    calendar.add_component(component)
    return calendar.to_ical().decode()


def _href(uid: str) -> str:
    return quote(f"{uid}.ics", safe="")


def _client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30)


def _responses(answer: httpx.Response) -> dict[str, str]:
    """{href decoded: status or ETag} of a multistatus."""
    assert answer.status_code == 207, answer.text
    found = {}
    for entry in ElementTree.fromstring(answer.content).iter("{DAV:}response"):
        href = unquote(entry.findtext("{DAV:}href") or "")
        found[href] = entry.findtext(".//{DAV:}getetag") or entry.findtext("{DAV:}status") or ""
    return found


def _sync(client: httpx.Client, calendar: str, token: str) -> tuple[str, dict[str, str]]:
    body = (
        f'<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>{token}</sync-token>'
        f"<sync-level>1</sync-level><prop>{PROPS}</prop></sync-collection>"
    )
    answer = client.request("REPORT", calendar, content=body)
    found = _responses(answer)
    match = re.search(r"<sync-token>([^<]+)</sync-token>", answer.text)
    assert match is not None
    return match[1], found


def _listed(client: httpx.Client, calendar: str, extra: str = "") -> dict[str, str]:
    body = f'<?xml version="1.0"?><propfind xmlns="DAV:"><prop>{PROPS}{extra}</prop></propfind>'
    found = _responses(client.request("PROPFIND", calendar, headers={"Depth": "1"}, content=body))
    found.pop(calendar)
    return found


def _stored_and_served(server: RunningServer, calendar: str, kind: str = "VEVENT") -> None:
    with _client(server) as client:
        token, _ = _sync(client, calendar, "")
        etags = {}
        for uid in NAMES:
            href = f"{calendar}{_href(uid)}"
            put = client.put(
                href, content=_object(kind, uid), headers={"Content-Type": "text/calendar"}
            )
            assert put.status_code == 201, f"{uid!r}: {put.text}"
            got = client.get(href)
            assert got.status_code == 200, f"{uid!r}: {got.text}"
            served = Calendar.from_ical(got.text).walk(kind)[0]
            assert str(served["UID"]) == uid
            etags[f"{calendar}{uid}.ics"] = got.headers["ETag"]
        # the fast listing, Radicale's own (one more property), a sync from nothing, a delta
        assert _listed(client, calendar) == etags
        assert _listed(client, calendar, "<displayname/>") == etags
        assert _sync(client, calendar, "")[1] == etags
        token, changed = _sync(client, calendar, token)
        assert changed == etags
        hrefs = "".join(f"<href>{quote(h)}</href>" for h in etags)
        multiget = (
            f'<?xml version="1.0"?><C:calendar-multiget {CALDAV}><prop><getetag/>'
            f"<C:calendar-data/></prop>{hrefs}</C:calendar-multiget>"
        )
        got = client.request("REPORT", calendar, headers={"Depth": "1"}, content=multiget)
        assert _responses(got) == etags
        for uid in NAMES:
            deleted = client.delete(f"{calendar}{_href(uid)}")
            assert deleted.status_code in (200, 204), f"{uid!r}: {deleted.text}"
        assert _listed(client, calendar) == {}
        _, gone = _sync(client, calendar, token)
        assert gone == dict.fromkeys(etags, "HTTP/1.1 404 Not Found")


@pytest.mark.parametrize("kind", ["VEVENT", "VTODO"])
def test_any_name_and_uid_is_stored_and_served_in_a_calendar_of_ones_own(
    server: RunningServer, kind: str
) -> None:
    with _client(server) as client:
        assert client.request("MKCALENDAR", "/alice/personal/").status_code == 201
    _stored_and_served(server, "/alice/personal/", kind)


def test_any_name_and_uid_is_stored_and_served_in_the_interactions_calendar(
    server: RunningServer,
) -> None:
    _stored_and_served(server, "/alice/interactions/")


def test_a_uid_with_a_line_feed_is_served_escaped_as_text(server: RunningServer) -> None:
    uid = "line\nbreak"
    with _client(server) as client:
        put = client.put(
            f"/alice/interactions/{_href(uid)}",
            content=_object("VEVENT", uid),
            headers={"Content-Type": "text/calendar"},
        )
        assert put.status_code == 201, put.text
        served = client.get(f"/alice/interactions/{_href(uid)}").text
    assert "UID:line\\nbreak\r\n" in served
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert interaction.href == f"{uid}.ics"


UNSAFE_NAMES = {
    "a%2Fb.ics": "cannot hold '/'",
    "%2E%2E": "dot-segment",
    "%2E": "dot-segment",
    "..%2Fbob%2Fcalendar%2Fx.ics": "cannot hold '/'",
    "%00.ics": "NUL",
    "%FF.ics": "not UTF-8",
    f"{'x' * 252}.ics": "longer than 255 characters",
}


@pytest.mark.parametrize("calendar", ["personal", "interactions"])
def test_unsafe_names_are_refused_with_the_reason(server: RunningServer, calendar: str) -> None:
    with _client(server) as client:
        client.request("MKCALENDAR", "/alice/personal/")
        for name, reason in UNSAFE_NAMES.items():
            path = f"/alice/{calendar}/{name}"
            for method in ("PUT", "GET", "DELETE"):
                answer = client.request(method, path, content=_object("VEVENT", name))
                assert answer.status_code == 400, f"{method} {name}: {answer.status_code}"
                assert reason in answer.text, f"{method} {name}: {answer.text}"
        moved = client.request(
            "MOVE", "/alice/personal/x.ics", headers={"Destination": "/alice/personal/%2E%2E"}
        )
        assert moved.status_code == 400
        assert "dot-segment" in moved.text
        assert _listed(client, f"/alice/{calendar}/") == {}
    longest = f"{'x' * 251}.ics"  # 255 characters: kept
    with _client(server) as client:
        put = client.put(f"/alice/{calendar}/{longest}", content=_object("VEVENT", "longest"))
        assert put.status_code == 201, put.text


@pytest.mark.parametrize("calendar", ["personal", "interactions"])
def test_uids_that_are_not_text_are_refused_with_the_reason(
    server: RunningServer, calendar: str
) -> None:
    refused = {
        "bell\x07": "control character",
        "y" * 256: "longer than 255 characters",
        " ": "must not be empty",
    }
    with _client(server) as client:
        client.request("MKCALENDAR", "/alice/personal/")
        for uid, reason in refused.items():
            answer = client.put(f"/alice/{calendar}/refused.ics", content=_object("VEVENT", uid))
            assert answer.status_code == 400, f"{uid!r}: {answer.text}"
            assert reason in answer.text
        assert _listed(client, f"/alice/{calendar}/") == {}

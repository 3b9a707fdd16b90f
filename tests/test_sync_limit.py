"""sync-collection with DAV:limit (RFC 6578 sections 3.6 and 3.7): at most that many changes
per answer, a 507 for the collection while more follow, and a token that goes on exactly where
the page ended, writes between pages included, in every kind of calendar."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from radicale.item import get_etag
from sqlalchemy import insert, select

from caldav_bridge.domain import changelog
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus, StoredCollection, StoredItem
from tests.conftest import RunningServer
from tests.helpers import at, create, event_text

D = "{DAV:}"
XML = {"Content-Type": "application/xml; charset=utf-8"}
CALENDAR = "/alice/big/"
DATA = '<C:calendar-data xmlns:C="urn:ietf:params:xml:ns:caldav"/>'


@dataclass
class Page:
    token: str
    members: dict[str, str]  # item name -> "200" (changed, with its ETag) or "404" (removed)
    truncated: bool  # a 507 for the collection itself


def _report(
    client: httpx.Client, path: str, token: str, limit: str | None, props: str = ""
) -> httpx.Response:
    limit_element = f"<limit><nresults>{limit}</nresults></limit>" if limit is not None else ""
    body = (
        f'<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>{token}</sync-token>'
        f"<sync-level>1</sync-level>{limit_element}<prop><getetag/>{props}</prop>"
        "</sync-collection>"
    )
    return client.request("REPORT", path, content=body, headers={"Depth": "0", **XML})


def sync(client: httpx.Client, path: str, token: str, limit: int | None, props: str = "") -> Page:
    answer = _report(client, path, token, None if limit is None else str(limit), props)
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)
    members: dict[str, str] = {}
    truncated = False
    for response in root.iter(f"{D}response"):
        href = response.findtext(f"{D}href") or ""
        status = response.findtext(f"{D}status") or response.findtext(f".//{D}status") or ""
        if href.rstrip("/") == path.rstrip("/"):
            assert " 507 " in status
            assert response.find(f"{D}error/{D}number-of-matches-within-limits") is not None
            truncated = True
            continue
        name = href.rsplit("/", 1)[-1].removesuffix(".ics")
        assert name not in members, f"{name} twice in one answer"
        members[name] = status.split()[1]
        if props and members[name] == "200":
            assert "BEGIN:VCALENDAR" in (response.findtext(".//{*}calendar-data") or "")
    return Page(root.findtext(f"{D}sync-token") or "", members, truncated)


def pages(client: httpx.Client, path: str, token: str, limit: int, props: str = "") -> list[Page]:
    """Follow the tokens of a limited sync until an answer is complete."""
    found: list[Page] = []
    for _ in range(50):
        found.append(sync(client, path, token, limit, props))
        token = found[-1].token
        if not found[-1].truncated:
            return found
    raise AssertionError("still truncated after 50 pages")


def apply(state: dict[str, bool], page: Page) -> None:
    """What a client holds after an answer: each name it knows of."""
    for name, status in page.members.items():
        if status == "200":
            state[name] = True
        else:
            state.pop(name, None)


def listing(client: httpx.Client, path: str) -> set[str]:
    answer = client.request(
        "PROPFIND",
        path,
        content='<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
        headers={"Depth": "1", **XML},
    )
    hrefs = [e.text or "" for e in ET.fromstring(answer.content).iter(f"{D}href")]
    return {href.rsplit("/", 1)[-1].removesuffix(".ics") for href in hrefs if href[-1] != "/"}


def put(client: httpx.Client, name: str, summary: str = "Meeting") -> None:
    answer = client.put(
        f"{CALENDAR}{name}.ics",
        content=event_text(name, summary=summary),
        headers={"Content-Type": "text/calendar"},
    )
    assert answer.status_code in (201, 204), answer.text


def _calendar(*uids: str) -> str:
    """A whole calendar, one event per UID, as a client PUTs it on a collection."""
    events = [
        event_text(uid).split("BEGIN:VEVENT", 1)[1].rsplit("END:VEVENT", 1)[0] for uid in uids
    ]
    head, tail = event_text("x").split("BEGIN:VEVENT", 1)[0], "END:VCALENDAR\r\n"
    return head + "".join(f"BEGIN:VEVENT{event}END:VEVENT\r\n" for event in events) + tail


@pytest.fixture
def alice(server: RunningServer) -> Iterator[httpx.Client]:
    """Alice's client, with her own calendar of 25 events ("e00" to "e24"), and three more
    that were removed before any sync."""
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as client:
        uids = [f"e{number:02}" for number in range(25)] + [f"gone{n}" for n in range(3)]
        answer = client.put(
            CALENDAR, content=_calendar(*uids), headers={"Content-Type": "text/calendar"}
        )
        assert answer.status_code == 201, answer.text
        for number in range(3):
            assert client.delete(f"{CALENDAR}gone{number}.ics").status_code in (200, 204)
        yield client


def test_an_initial_sync_with_limit_10_of_25_items_comes_as_10_10_and_5(
    alice: httpx.Client,
) -> None:
    found = pages(alice, CALENDAR, "", 10)
    assert [len(p.members) for p in found] == [10, 10, 5]
    assert [p.truncated for p in found] == [True, True, False]
    names = [name for p in found for name in p.members]
    assert sorted(names) == [f"e{n:02}" for n in range(25)]  # each once, no removal reported
    assert {s for p in found for s in p.members.values()} == {"200"}
    assert sync(alice, CALENDAR, found[-1].token, 10).members == {}


def test_writes_and_removals_between_pages_reach_the_client_exactly(
    alice: httpx.Client,
) -> None:
    first = sync(alice, CALENDAR, "", 10)
    state: dict[str, bool] = {}
    apply(state, first)
    listed = sorted(first.members)
    unlisted = sorted(set(listing(alice, CALENDAR)) - set(listed))
    assert alice.delete(f"{CALENDAR}{listed[0]}.ics").status_code in (200, 204)
    put(alice, listed[1], summary="Moved")
    assert alice.delete(f"{CALENDAR}{unlisted[0]}.ics").status_code in (200, 204)
    put(alice, "new")
    rest = pages(alice, CALENDAR, first.token, 10)
    for page in rest:
        apply(state, page)
    assert set(state) == listing(alice, CALENDAR)
    reported = [name for p in rest for name, status in p.members.items() if status == "200"]
    assert sorted(reported) == sorted({*unlisted[1:], listed[1], "new"})  # each once
    assert {name for p in rest for name, s in p.members.items() if s == "404"} >= {listed[0]}


def test_a_delta_sync_with_limit_comes_in_pages_and_names_each_change_once(
    alice: httpx.Client,
) -> None:
    token = sync(alice, CALENDAR, "", None).token
    for number in range(8):
        put(alice, f"n{number}")
    put(alice, "e00", summary="Changed")
    put(alice, "e01", summary="Changed")
    put(alice, "e00", summary="Changed twice")  # one change to report, not two
    for name in ("e02", "e03"):
        assert alice.delete(f"{CALENDAR}{name}.ics").status_code in (200, 204)
    found = pages(alice, CALENDAR, token, 5)
    assert [len(p.members) for p in found] == [5, 5, 2]
    assert [p.truncated for p in found] == [True, True, False]
    changes = {name: status for p in found for name, status in p.members.items()}
    assert sum(len(p.members) for p in found) == len(changes) == 12
    assert changes == {
        **{f"n{n}": "200" for n in range(8)},
        "e00": "200",
        "e01": "200",
        "e02": "404",
        "e03": "404",
    }


def test_a_limited_sync_asking_for_calendar_data_pages_too(alice: httpx.Client) -> None:
    found = pages(alice, CALENDAR, "", 10, props=DATA)
    assert [len(p.members) for p in found] == [10, 10, 5]
    assert [p.truncated for p in found] == [True, True, False]
    assert sorted(n for p in found for n in p.members) == [f"e{n:02}" for n in range(25)]


def test_a_limit_above_the_number_of_changes_truncates_nothing(alice: httpx.Client) -> None:
    whole = sync(alice, CALENDAR, "", None)
    limited = sync(alice, CALENDAR, "", 1000)
    assert not limited.truncated
    assert limited.members == whole.members
    assert limited.token == whole.token


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "", "1.5", "²"])
def test_a_limit_that_is_not_a_positive_integer_is_refused_with_the_reason(
    alice: httpx.Client, limit: str
) -> None:
    for props in ("", DATA):
        answer = _report(alice, CALENDAR, "", limit, props)
        assert answer.status_code == 400, answer.text
        assert "positive integer" in answer.text


def test_a_limit_without_nresults_is_refused_with_the_reason(alice: httpx.Client) -> None:
    body = (
        '<sync-collection xmlns="DAV:"><sync-token/><sync-level>1</sync-level><limit/>'
        "<prop><getetag/></prop></sync-collection>"
    )
    answer = alice.request("REPORT", CALENDAR, content=body, headers=XML)
    assert answer.status_code == 400
    assert "nresults" in answer.text


def test_a_token_from_another_calendar_is_refused_with_valid_sync_token(
    alice: httpx.Client,
) -> None:
    token = sync(alice, CALENDAR, "", 10).token
    answer = _report(alice, "/alice/interactions/", token, "10")
    assert answer.status_code == 403
    assert "valid-sync-token" in answer.text


def test_interactions_bookings_and_inbox_calendars_page_alike(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        room = server.world.rooms(session)["everest"]
        for day in range(7, 12):
            meeting = create(service, users["alice"], f"Meeting {day}", at(day, 10), at(day, 11))
            service.link(users["alice"], meeting, users["bob"], LinkStatus.INVITED)
            service.book(users["alice"], meeting, room)
    for login, path in (
        ("alice", "/alice/interactions/"),
        ("bob", "/bob/interactions/"),
        ("bob", "/everest/bookings/"),
        ("bob", "/bob/inbox/"),
    ):
        with httpx.Client(base_url=server.url, auth=(login, login), timeout=30) as client:
            whole = sync(client, path, "", None)
            found = pages(client, path, "", 3)
        assert len(whole.members) >= 5, path
        sizes = [len(p.members) for p in found]
        assert sum(sizes) == len(whole.members), path
        assert set(sizes[:-1]) == {3}, path
        assert 0 < sizes[-1] <= 3, path
        assert [p.truncated for p in found] == [True] * (len(found) - 1) + [False], path
        assert {n for p in found for n in p.members} == set(whole.members), path


def _grown(server: RunningServer, client: httpx.Client, count: int) -> list[str]:
    """Fill a calendar of alice's with ``count`` events written straight into the database,
    each change logged as the storage logs it (a client PUTting this many takes minutes)."""
    assert client.request("MKCALENDAR", CALENDAR).status_code == 201
    uids = [f"big{number:05}" for number in range(count)]
    with server.world.database.session(write=True) as session:
        collection = session.scalar(
            select(StoredCollection.id).where(StoredCollection.path == CALENDAR.strip("/"))
        )
        assert collection is not None
        texts = {uid: event_text(uid) for uid in uids}
        rows = [
            {
                "collection_id": collection,
                "href": f"{uid}.ics",
                "uid": uid,
                "etag": get_etag(texts[uid]),
                "name": "VCALENDAR",
                "component": "VEVENT",
                "text": texts[uid],
                "starts_ts": 1894104000,
                "ends_ts": 1894107600,
            }
            for uid in uids
        ]
        session.execute(insert(StoredItem), rows)
        key = changelog.stored_calendar(collection)
        changelog.record_items(session, [(key, f"{uid}.ics") for uid in uids])
    return uids


def test_pages_larger_than_one_lookup_by_name_hold_every_item(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=60) as client:
        uids = _grown(server, client, 1200)
        found = pages(client, CALENDAR, "", 1100)
        with_data = sync(client, CALENDAR, "", 1100, props=DATA)
    assert [len(p.members) for p in found] == [1100, 100]
    assert sorted(n for p in found for n in p.members) == uids
    assert len(with_data.members) == 1100
    assert with_data.truncated


def test_a_limited_sync_asking_for_schedule_tags_pages_too(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        for day in range(7, 10):
            create(service, users["alice"], f"Meeting {day}", at(day, 10), at(day, 11))
    tag = '<C:schedule-tag xmlns:C="urn:ietf:params:xml:ns:caldav"/>'
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as client:
        found = pages(client, "/alice/interactions/", "", 2, props=tag + DATA)
    assert [len(p.members) for p in found] == [2, 1]
    assert [p.truncated for p in found] == [True, False]

"""The headers the server reads are read by one reader each (``caldav.headers``), on the real
server, both databases:

- Accept-Encoding with its q-values (RFC 9110 12.5.3): ``gzip;q=0`` gets no gzip whatever
  ``*`` says; ``*;q=0.5`` gets it;
- If-Match and If-None-Match (RFC 9110 13.1.1, 13.1.2): lists of entity tags, ``*``; If-Match
  compares strongly (a ``W/`` tag matches nothing), If-None-Match weakly, for items of the
  interactions calendar and of one's own, and for a whole calendar;
- Prefer (RFC 7240): several preferences, parameters, the first of a name counting.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree import ElementTree

import httpx
import pytest

from caldav_bridge.caldav import headers
from tests.conftest import RunningServer
from tests.helpers import event_text

PROPFIND = '<propfind xmlns="DAV:"><prop><getetag/><getcontenttype/></prop></propfind>'


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=60) as client:
        yield client


@pytest.fixture
def alice(client: httpx.Client) -> httpx.Client:
    """alice's client, her calendar "personal" holding 12 events."""
    assert client.request("MKCALENDAR", "/alice/personal/").status_code == 201
    for number in range(12):  # a listing long enough to be compressed
        text = event_text(f"item-{number}@example.com")
        put = client.put(f"/alice/personal/item-{number}.ics", content=text)
        assert put.status_code == 201, put.text
    return client


def _listing(client: httpx.Client, accept_encoding: str) -> httpx.Response:
    answer = client.request(
        "PROPFIND",
        "/alice/personal/",
        content=PROPFIND,
        headers={"Depth": "1", "Accept-Encoding": accept_encoding},
    )
    assert answer.status_code == 207, answer.text
    return answer


@pytest.mark.parametrize(
    ("accepted", "gzipped"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.001", True),
        ("*;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, *;q=0.5", False),
        ("*;q=0.5, gzip;q=0", False),
        ("*;q=1, gzip;q=0", False),
        ("x-gzip", True),
        ("identity", False),
        ("deflate, br", False),
        ("", False),
        ("xgzip, gzipx", False),
    ],
)
def test_accept_encoding_is_read_with_its_q_values(
    alice: httpx.Client, accepted: str, gzipped: bool
) -> None:
    answer = _listing(alice, accepted)
    assert (answer.headers.get("Content-Encoding") == "gzip") is gzipped, accepted
    assert len(ElementTree.fromstring(answer.content).findall("{DAV:}response")) == 13


def test_accept_encoding_reader_takes_wildcards_and_refusals() -> None:
    """The reader itself, for the values a server test cannot tell apart."""
    assert headers.accepts_gzip({"HTTP_ACCEPT_ENCODING": "gzip;q=1.0"})
    assert headers.accepts_gzip({"HTTP_ACCEPT_ENCODING": "identity;q=1, *;q=0.1"})
    assert not headers.accepts_gzip({"HTTP_ACCEPT_ENCODING": "*;q=0"})
    assert not headers.accepts_gzip({})


def _etag(client: httpx.Client, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.headers["ETag"]


def test_if_match_takes_a_list_of_etags(alice: httpx.Client) -> None:
    path = "/alice/personal/item-0.ics"
    etag = _etag(alice, path)
    text = event_text("item-0@example.com", summary="Changed")
    answer = alice.put(path, content=text, headers={"If-Match": f'"stale", {etag}'})
    assert answer.status_code == 204, answer.text
    refused = alice.put(path, content=text, headers={"If-Match": f'"stale", {etag}'})
    assert refused.status_code == 412, refused.text  # the ETag changed with the PUT
    assert "If-Match" in refused.text


def test_if_match_compares_strongly_a_weak_etag_matches_nothing(alice: httpx.Client) -> None:
    path = "/alice/personal/item-1.ics"
    etag = _etag(alice, path)
    text = event_text("item-1@example.com", summary="Changed")
    put = alice.put(path, content=text, headers={"If-Match": f"W/{etag}"})
    assert put.status_code == 412, put.text
    deleted = alice.delete(path, headers={"If-Match": f"W/{etag}"})
    assert deleted.status_code == 412, deleted.text
    assert alice.get(path).status_code == 200
    assert alice.delete(path, headers={"If-Match": f'"other", {etag}'}).status_code == 200


def test_if_none_match_compares_weakly_and_takes_a_list(alice: httpx.Client) -> None:
    path = "/alice/personal/item-2.ics"
    etag = _etag(alice, path)
    text = event_text("item-2@example.com", summary="Changed")
    for condition in (f"W/{etag}", f'"other", {etag}', "*"):
        refused = alice.put(path, content=text, headers={"If-None-Match": condition})
        assert refused.status_code == 412, (condition, refused.text)
    replaced = alice.put(path, content=text, headers={"If-None-Match": '"other", W/"more"'})
    assert replaced.status_code == 204, replaced.text
    new = event_text("new@example.com")
    made = alice.put("/alice/personal/new.ics", content=new, headers={"If-None-Match": "*"})
    assert made.status_code == 201, made.text


def test_if_match_on_an_item_that_does_not_exist_fails(alice: httpx.Client) -> None:
    text = event_text("absent@example.com")
    for condition in ("*", '"x", "y"'):
        answer = alice.put(
            "/alice/personal/absent.ics", content=text, headers={"If-Match": condition}
        )
        assert answer.status_code == 412, (condition, answer.text)


def test_conditions_hold_for_a_meeting_in_the_interactions_calendar(
    client: httpx.Client,
) -> None:
    alice = client
    path = "/alice/interactions/meeting.ics"
    text = event_text("meeting@example.com", "ORGANIZER:mailto:alice@example.com")
    assert alice.put(path, content=text).status_code == 201
    etag = _etag(alice, path)
    changed = event_text("meeting@example.com", "ORGANIZER:mailto:alice@example.com", summary="B")
    assert alice.put(path, content=changed, headers={"If-Match": f"W/{etag}"}).status_code == 412
    answer = alice.put(path, content=changed, headers={"If-Match": f'"stale", {etag}'})
    assert answer.status_code == 204, answer.text
    assert alice.put(path, content=changed, headers={"If-None-Match": "*"}).status_code == 412


def test_deleting_a_whole_calendar_holds_to_its_if_match(alice: httpx.Client) -> None:
    refused = alice.delete("/alice/personal/", headers={"If-Match": '"not-its-etag"'})
    assert refused.status_code == 412, refused.text
    assert alice.get("/alice/personal/item-3.ics").status_code == 200
    assert alice.delete("/alice/personal/", headers={"If-Match": "*"}).status_code == 200


MEETING = event_text(
    "prefer@example.com",
    "ORGANIZER:mailto:alice@example.com",
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
)


@pytest.mark.parametrize(
    ("prefer", "representation"),
    [
        ("return=representation", True),
        ("return = representation", True),
        ('return="representation"', True),
        ("respond-async, return=representation; x=y, wait=10", True),
        ("wait=5; a=b, RETURN=Representation", True),
        ("return=minimal", False),
        ("return=minimal, return=representation", False),  # the first counts (RFC 7240 2)
        ("respond-async", False),
        ("", False),
    ],
)
def test_prefer_is_read_preference_by_preference(
    client: httpx.Client, prefer: str, representation: bool
) -> None:
    answer = client.put(
        "/alice/interactions/prefer.ics", content=MEETING, headers={"Prefer": prefer}
    )
    assert answer.status_code == 201, answer.text
    if representation:
        assert answer.headers["Preference-Applied"] == "return=representation"
        assert "BEGIN:VCALENDAR" in answer.text
        assert "ETag" in answer.headers
    else:
        assert "Preference-Applied" not in answer.headers
        assert answer.content == b""


def test_prefer_reader_keeps_the_first_of_each_name() -> None:
    found = headers.preferences({"HTTP_PREFER": 'Return=minimal; x="a,b", wait=10, return=x'})
    assert found == {"return": "minimal", "wait": "10"}

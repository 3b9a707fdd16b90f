"""Every value the fast listings splice into their XML is quoted or escaped (``multistatus``):
items (and a calendar) named with ``&<>"'``, non-ASCII and ``%`` are PUT on the real server,
and the answers of the fast paths (a Depth 1 PROPFIND for ETags, a sync-collection REPORT, a
delta sync with a removal) parse with an XML parser and say what Radicale's own answers say
where the fast path is bypassed. When Radicale's answer for the calendar is not the one the
fast path expects, Radicale's own Depth 1 answer is served, never a Depth 0 one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote, unquote
from xml.etree import ElementTree

import httpx
import pytest

from caldav_bridge.caldav import multistatus
from tests.conftest import RunningServer
from tests.helpers import event_text

CALENDAR = "caf&<é> \"q'%25"  # the calendar's own name, spliced as the hrefs' prefix
NAMES = [
    "a&b.ics",
    "<tag>.ics",
    "quote\"s'.ics",
    "ünï 😀.ics",
    "100%.ics",
    "%41%2541.ics",
    "plain.ics",
]
FAST = "<getetag/><getcontenttype/>"
SLOW = "<getetag/><getcontenttype/><displayname/>"  # not a listing: Radicale answers


def _url(name: str = "") -> str:
    return f"/alice/{quote(CALENDAR)}/{quote(name)}"


@pytest.fixture
def alice(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=60) as client:
        assert client.request("MKCALENDAR", _url()).status_code == 201
        for number, name in enumerate(NAMES):
            put = client.put(_url(name), content=event_text(f"uid-{number}@example.com"))
            assert put.status_code == 201, (name, put.text)
        yield client


def _responses(answer: httpx.Response) -> dict[str, dict[str, str]]:
    """Each response's href (as sent) with its properties' texts and status."""
    assert answer.status_code == 207, answer.text
    found: dict[str, dict[str, str]] = {}
    for response in ElementTree.fromstring(answer.content).findall("{DAV:}response"):
        values = {
            element.tag: element.text or ""
            for element in response.iter()
            if element.tag in ("{DAV:}getetag", "{DAV:}getcontenttype")
        }
        status = response.findtext("{DAV:}status") or response.findtext(
            "{DAV:}propstat/{DAV:}status"
        )
        values["status"] = status or ""
        found[response.findtext("{DAV:}href") or ""] = values
    return found


def _propfind(client: httpx.Client, props: str) -> dict[str, dict[str, str]]:
    body = f'<propfind xmlns="DAV:"><prop>{props}</prop></propfind>'
    return _responses(client.request("PROPFIND", _url(), content=body, headers={"Depth": "1"}))


def _items(found: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {href: values for href, values in found.items() if not href.endswith("/")}


def test_a_listing_quotes_every_name_as_radicale_does(alice: httpx.Client) -> None:
    fast, slow = _propfind(alice, FAST), _propfind(alice, SLOW)
    assert sorted(unquote(href).rsplit("/", 1)[1] for href in _items(fast)) == sorted(NAMES)
    assert set(fast) == set(slow)  # the same hrefs, quoted the same way, the calendar's too
    for href, values in _items(fast).items():
        assert values["{DAV:}getetag"] == slow[href]["{DAV:}getetag"]
        assert values["{DAV:}getcontenttype"] == slow[href]["{DAV:}getcontenttype"]
        assert alice.get(href).headers["ETag"] == values["{DAV:}getetag"]


def _sync(client: httpx.Client, props: str, token: str = "") -> httpx.Response:
    body = (
        f'<sync-collection xmlns="DAV:"><sync-token>{token}</sync-token>'
        f"<sync-level>1</sync-level><prop>{props}</prop></sync-collection>"
    )
    return client.request("REPORT", _url(), content=body)


def _token(answer: httpx.Response) -> str:
    return ElementTree.fromstring(answer.content).findtext("{DAV:}sync-token") or ""


def test_a_sync_quotes_names_and_escapes_its_token_as_radicale_does(alice: httpx.Client) -> None:
    fast, slow = _sync(alice, FAST), _sync(alice, SLOW)
    assert _items(_responses(fast)) == _items(_responses(slow))
    assert _token(fast) == _token(slow)
    assert alice.delete(_url("a&b.ics")).status_code == 200
    changed = alice.put(_url("<tag>.ics"), content=event_text("uid-1@example.com", summary="B"))
    assert changed.status_code == 204, changed.text
    fast_delta = _responses(_sync(alice, FAST, _token(fast)))
    slow_delta = _responses(_sync(alice, SLOW, _token(fast)))
    assert fast_delta == slow_delta
    gone = [href for href, values in fast_delta.items() if "404" in values["status"]]
    assert [unquote(href).rsplit("/", 1)[1] for href in gone] == ["a&b.ics"]


def test_a_limited_sync_page_says_more_follow_in_well_formed_xml(alice: httpx.Client) -> None:
    body = (
        '<sync-collection xmlns="DAV:"><sync-token/><sync-level>1</sync-level>'
        f"<prop>{FAST}</prop><limit><nresults>2</nresults></limit></sync-collection>"
    )
    found = _responses(alice.request("REPORT", _url(), content=body))
    assert "507" in found[_url()]["status"]
    assert len(_items(found)) == 2


def test_a_listing_radicale_answers_unexpectedly_is_radicales_own_depth_1_answer(
    alice: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multistatus, "listing", lambda *_: None)
    found = _propfind(alice, FAST)
    assert len(_items(found)) == len(NAMES)
    assert _url() in found


ENTRY_TIME = datetime(2030, 1, 1, tzinfo=UTC)


def test_spliced_etags_content_types_and_names_are_escaped() -> None:
    entries = [
        ("x&<y>\"'.ics", '"a&b<c>"', "VCALENDAR", "X-<&>", ENTRY_TIME),
        ("ü%41.ics", '"plain"', "VCARD", "", None),
    ]
    names = sorted(multistatus.LISTING_PROPS)
    items = multistatus.item_responses("/p%26/", entries, names)
    body = multistatus.sync_answer('tok&<"en>', "/p%26/", items, ["gone&<>.ics"], more=True)
    root = ElementTree.fromstring(body)
    assert root.findtext("{DAV:}sync-token") == 'tok&<"en>'
    hrefs = [unquote(h.text or "") for h in root.iter("{DAV:}href")]
    assert hrefs == ["/p&/x&<y>\"'.ics", "/p&/ü%41.ics", "/p&/gone&<>.ics", "/p&/"]
    etags = [e.text for e in root.iter("{DAV:}getetag")]
    assert etags == ['"a&b<c>"', '"plain"']
    types = [t.text or "" for t in root.iter("{DAV:}getcontenttype")]
    assert "component=X-<&>" in types[0].replace(" ", "")


@pytest.mark.parametrize(
    "collection",
    [
        b"not xml",
        b"<?xml version='1.0'?><multistatus xmlns='DAV:'/>",
        b"<multistatus xmlns='DAV:'><response><href>/a/b/</href></response>"
        b"<response><href>/a/c/</href></response></multistatus>",
        b"<multistatus xmlns='DAV:'><response><href>/a/other/</href></response></multistatus>",
        b"<multistatus><response><href>/a/b/</href></response></multistatus>",
        b"<error xmlns='DAV:'><response><href>/a/b/</href></response></error>",
    ],
)
def test_an_unexpected_answer_for_the_calendar_is_not_spliced(collection: bytes) -> None:
    assert multistatus.listing(collection, "/a/b/", ["<response/>"]) is None


def test_the_answer_for_the_calendar_is_spliced_as_parsed() -> None:
    collection = (
        b"<?xml version='1.0' encoding='utf-8'?>\n<D:multistatus xmlns:D='DAV:'><D:response>"
        b"<D:href>/a/b%26/</D:href></D:response></D:multistatus>"
    )
    body = multistatus.listing(
        collection, "/a/b&/", ["<response><href>/a/b%26/x</href></response>"]
    )
    assert body is not None
    hrefs = [h.text for h in ElementTree.fromstring(body).iter("{DAV:}href")]
    assert hrefs == ["/a/b%26/", "/a/b%26/x"]

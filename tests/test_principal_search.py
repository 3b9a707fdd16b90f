"""Finding colleagues and rooms as calendar clients search for them: python-caldav's
search_principals (and the malformed query it sends), Apple Calendar's searches, Thunderbird's
look-up of its own principal; bounded answers, active principals only, never a 500."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest
from caldav import Principal

from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.models import ResourceKind
from tests.conftest import RunningServer

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
NS = (
    'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    'xmlns:CS="http://calendarserver.org/ns/"'
)
XML = {"Content-Type": "application/xml; charset=utf-8", "Depth": "0"}
ANSWER = (
    "<D:prop><D:displayname/><C:calendar-user-address-set/><C:calendar-user-type/>"
    "<CS:email-address-set/><D:principal-URL/><C:calendar-home-set/></D:prop>"
)


@pytest.fixture
def alice(server: RunningServer) -> Iterator[httpx.Client]:
    """Alice's client; dave has left (deactivated), and so has the Kilimanjaro room."""
    with server.world.database.session(write=True) as session:
        directory = Directory(session)
        Administration(session, OPERATOR).set_active("dave", False)
        Administration(session, OPERATOR).set_resource_active("kilimanjaro", False)
        directory.add_resource(
            "projector", "Projector", "projector@example.com", ResourceKind.EQUIPMENT
        )
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as client:
        yield client


def _search(client: httpx.Client, *searches: str, answer: str = ANSWER, **attrs: str) -> ET.Element:
    options = "".join(f' {name}="{value}"' for name, value in attrs.items())
    body = (
        f"<D:principal-property-search {NS}{options}>{''.join(searches)}{answer}"
        "</D:principal-property-search>"
    )
    response = client.request("REPORT", "/", content=body, headers=XML)
    assert response.status_code == 207, response.text
    return ET.fromstring(response.content)


def _by(prop: str, text: str, match_type: str = "") -> str:
    kind = f' match-type="{match_type}"' if match_type else ""
    return (
        f"<D:property-search><D:prop><{prop}/></D:prop><D:match{kind}>{text}</D:match>"
        "</D:property-search>"
    )


def _found(root: ET.Element) -> list[str]:
    """The principals answered (their hrefs), the request-URI's 507 left out."""
    return [
        r.findtext(f"{D}href") or ""
        for r in root.iter(f"{D}response")
        if r.find(f"{D}propstat") is not None
    ]


def _truncated(root: ET.Element) -> bool:
    return any(
        " 507 " in (r.findtext(f"{D}status") or "")
        and r.find(f"{D}error/{D}number-of-matches-within-limits") is not None
        for r in root.iter(f"{D}response")
    )


def test_the_caldav_library_finds_a_user_by_name_and_lists_every_active_one(
    server: RunningServer, alice: httpx.Client
) -> None:
    client = server.client("alice")
    (bob,) = client.search_principals(name="Bob Dupont")
    assert isinstance(bob, Principal)
    assert str(bob.url).endswith("/bob/")
    everybody = {str(p.url).rstrip("/").rsplit("/", 1)[-1] for p in client.search_principals()}
    assert everybody == {"alice", "bob", "carol", "everest", "projector"}


def test_a_search_by_name_is_a_case_insensitive_substring(alice: httpx.Client) -> None:
    root = _search(alice, _by("D:displayname", "DUPON"))
    assert _found(root) == ["/bob/"]
    (response,) = root.iter(f"{D}response")
    assert response.findtext(f".//{D}displayname") == "Bob Dupont"
    assert response.findtext(f".//{C}calendar-user-type") == "INDIVIDUAL"
    addresses = [e.text for e in response.iter(f"{D}href")]
    assert "mailto:bob@example.com" in addresses
    assert response.findtext(f".//{CS}email-address") == "bob@example.com"
    assert response.findtext(f".//{D}principal-URL/{D}href") == "/bob/"
    assert response.findtext(f".//{C}calendar-home-set/{D}href") == "/bob/"


def test_a_search_by_address_finds_users_and_rooms(alice: httpx.Client) -> None:
    assert _found(_search(alice, _by("C:calendar-user-address-set", "mailto:Carol@"))) == [
        "/carol/"
    ]
    assert _found(_search(alice, _by("CS:email-address-set", "EVEREST@example"))) == ["/everest/"]
    assert _found(_search(alice, _by("D:displayname", "carol@example.com"))) == []


def test_rooms_are_found_with_calendar_user_type_room(alice: httpx.Client) -> None:
    root = _search(alice, _by("D:displayname", "room"))
    assert _found(root) == ["/everest/"]
    assert root.findtext(f".//{C}calendar-user-type") == "ROOM"


def test_deactivated_users_and_rooms_are_not_found(alice: httpx.Client) -> None:
    for searches in ([_by("D:displayname", "dave")], [_by("D:displayname", "kilimanjaro")], []):
        found = _found(_search(alice, *searches))
        assert "/dave/" not in found
        assert "/kilimanjaro/" not in found


def test_apple_calendars_any_of_search_by_the_start_of_a_name_or_address(
    alice: httpx.Client,
) -> None:
    searches = [
        _by(prop, "nguy", "starts-with")
        for prop in ("D:displayname", "CS:email-address-set", "CS:first-name", "CS:last-name")
    ]
    assert _found(_search(alice, *searches, test="anyof")) == ["/carol/"]
    assert _found(_search(alice, *searches)) == []  # all of them: not carol's address
    assert _found(_search(alice, _by("D:displayname", "arol", "starts-with"))) == []
    assert _found(_search(alice, _by("D:displayname", "bob dupont", "equals"))) == ["/bob/"]


def test_the_macos_location_search_finds_rooms_only(alice: httpx.Client) -> None:
    def search(context: str, token: str) -> list[str]:
        body = (
            f'<CS:calendarserver-principal-search {NS} context="{context}">'
            f"<CS:search-token>{token}</CS:search-token>{ANSWER}"
            "</CS:calendarserver-principal-search>"
        )
        answer = alice.request("REPORT", "/alice/", content=body, headers=XML)
        assert answer.status_code == 207, answer.text
        return _found(ET.fromstring(answer.content))

    assert search("location", "e") == ["/everest/"]
    assert search("resource", "e") == ["/projector/"]
    everybody = ["/alice/", "/bob/", "/carol/", "/everest/", "/projector/"]
    assert search("attendee", "example") == everybody
    assert search("attendee", "alice") == ["/alice/"]  # the login too


def test_thunderbird_finds_its_principal_by_calendar_home_set(alice: httpx.Client) -> None:
    answer = (
        "<D:prop><C:calendar-home-set/><C:calendar-user-address-set/>"
        "<C:schedule-inbox-URL/><C:schedule-outbox-URL/></D:prop>"
    )
    root = _search(alice, _by("C:calendar-home-set", "/alice/"), answer=answer)
    assert _found(root) == ["/alice/"]
    assert root.findtext(f".//{C}schedule-inbox-URL/{D}href") == "/alice/inbox/"
    assert root.findtext(f".//{C}schedule-outbox-URL/{D}href") == "/alice/outbox/"


def test_a_search_answers_at_most_its_limit_and_says_more_matched(
    alice: httpx.Client,
) -> None:
    limit = "<D:limit><D:nresults>2</D:nresults></D:limit>"
    root = _search(alice, limit)
    assert _found(root) == ["/alice/", "/bob/"]
    assert _truncated(root)
    assert not _truncated(_search(alice, "<D:limit><D:nresults>5</D:nresults></D:limit>"))
    body = (
        f"<CS:calendarserver-principal-search {NS}><CS:search-token>o</CS:search-token>"
        f"<CS:limit><CS:nresults>1</CS:nresults></CS:limit>{ANSWER}"
        "</CS:calendarserver-principal-search>"
    )
    answer = alice.request("REPORT", "/", content=body, headers=XML)
    assert _found(ET.fromstring(answer.content)) == ["/alice/"]
    assert _truncated(ET.fromstring(answer.content))


@pytest.mark.parametrize(
    "body",
    [
        f"<D:principal-property-search {NS}/>",
        f"<D:principal-property-search {NS}><D:property-search/></D:principal-property-search>",
        f"<D:principal-property-search {NS}><D:property-search><D:match>bob</D:match>"
        "</D:property-search></D:principal-property-search>",
        f"<D:principal-property-search {NS}><D:property-search><D:prop><D:displayname/>"
        "</D:prop></D:property-search><D:prop><D:displayname/></D:prop>"
        "</D:principal-property-search>",
        f"<D:principal-property-search {NS} test='nonsense'>{_by('D:getetag', 'x')}"
        "<D:limit><D:nresults>many</D:nresults></D:limit></D:principal-property-search>",
        f"<D:principal-property-search {NS}>{_by('D:displayname', 'x' * 5000)}"
        "<D:limit><D:nresults>99999999999999999999</D:nresults></D:limit>"
        "</D:principal-property-search>",
        f"<CS:calendarserver-principal-search {NS} context='nowhere'><CS:search-token/>"
        "<CS:limit><CS:nresults>-3</CS:nresults></CS:limit></CS:calendarserver-principal-search>",
        f"<D:principal-property-search {NS}><D:prop><D:prop><D:displayname/></D:prop></D:prop>"
        "</D:principal-property-search>",
    ],
)
def test_malformed_searches_are_answered_never_with_a_500(alice: httpx.Client, body: str) -> None:
    answer = alice.request("REPORT", "/", content=body, headers=XML)
    assert answer.status_code in (207, 400), answer.text
    assert "/dave/" not in answer.text


def test_the_searchable_properties_are_listed(alice: httpx.Client) -> None:
    answer = alice.request(
        "REPORT", "/", content='<D:principal-search-property-set xmlns:D="DAV:"/>', headers=XML
    )
    assert answer.status_code == 200, answer.text
    root = ET.fromstring(answer.content)
    assert root.tag == f"{D}principal-search-property-set"
    searchable = [p[0].tag for p in root.iter(f"{D}prop")]
    assert searchable == [
        f"{D}displayname",
        f"{C}calendar-user-address-set",
        f"{CS}email-address-set",
    ]
    assert all(e.text for e in root.iter(f"{D}description"))


def test_the_server_says_it_answers_apples_principal_search(alice: httpx.Client) -> None:
    dav = alice.options("/alice/").headers["DAV"]
    assert "calendarserver-principal-search" in [part.strip() for part in dav.split(",")]

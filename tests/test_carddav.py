"""CardDAV (RFC 6352) as in Radicale: address books a user makes (extended MKCOL, or a PUT of a
whole address book) are stored in SQL, their vCards (3.0 and 4.0) served as text/vcard and found
by addressbook-query, addressbook-multiget and sync-collection; every user also reads an address
book of colleagues and rooms made from the CRM's directory, which changes as the directory does
and which nobody writes into."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import httpx
import pytest

from caldav_bridge.caldav.server import radicale_configuration
from caldav_bridge.config import Settings
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.models import ResourceKind, UserEmail
from caldav_bridge.domain.passwords import hash_password
from caldav_bridge.ical.vcards import DISPLAY_NAME
from plugins.radicale_bridge_storage import Storage
from tests.conftest import RunningServer
from tests.helpers import event_text, freebusy_request

D, CR, CS = "DAV:", "urn:ietf:params:xml:ns:carddav", "http://calendarserver.org/ns/"
VCARD = "text/vcard;charset=utf-8"
_MKCOL = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>'
    "<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"
    "<D:displayname>Clients</D:displayname></D:prop></D:set></D:mkcol>"
)
_LISTING = '<propfind xmlns="DAV:"><prop><getetag/><getcontenttype/></prop></propfind>'
_TAGS = (
    '<propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><prop><CS:getctag/>'
    "<sync-token/></prop></propfind>"
)


def _card(uid: str, version: str = "3.0", name: str = "Zoé Client", *lines: str) -> str:
    family, _, given = name.partition(" ")
    return "\r\n".join(
        [
            "BEGIN:VCARD",
            f"VERSION:{version}",
            f"UID:{uid}",
            f"FN:{name}",
            f"N:{given};{family};;;",
            *lines,
            "END:VCARD",
            "",
        ]
    )


def _client(server: RunningServer, login: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(login, login), timeout=30)


def _book(client: httpx.Client, path: str) -> None:
    made = client.request("MKCOL", path, content=_MKCOL)
    assert made.status_code == 201, made.text


def _put(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.put(path, content=text, headers={"Content-Type": "text/vcard"})


def _responses(answer: httpx.Response) -> dict[str, ET.Element]:
    assert answer.status_code == 207, answer.text
    return {
        str(r.findtext(f"{{{D}}}href")): r
        for r in ET.fromstring(answer.content).iter(f"{{{D}}}response")
    }


def _report(client: httpx.Client, path: str, body: str) -> dict[str, ET.Element]:
    return _responses(client.request("REPORT", path, content=body))


def _sync(client: httpx.Client, path: str, token: str = "") -> tuple[str, dict[str, ET.Element]]:
    body = (
        f'<sync-collection xmlns="DAV:"><sync-token>{token}</sync-token>'
        "<sync-level>1</sync-level><prop><getetag/><getcontenttype/></prop></sync-collection>"
    )
    answer = client.request("REPORT", path, content=body)
    found = _responses(answer)
    return str(ET.fromstring(answer.content).findtext(f"{{{D}}}sync-token")), found


def _tags(client: httpx.Client, path: str) -> tuple[str, str]:
    """(CTag, sync token) of a collection."""
    answer = client.request("PROPFIND", path, headers={"Depth": "0"}, content=_TAGS)
    (response,) = _responses(answer).values()
    return (
        str(response.findtext(f".//{{{CS}}}getctag")),
        str(response.findtext(f".//{{{D}}}sync-token")),
    )


def _present(found: dict[str, ET.Element]) -> set[str]:
    """The hrefs answered 200 (not 404) in a multistatus, the collection itself left out."""
    return {
        href
        for href, response in found.items()
        if not href.endswith("/") and response.find(f"{{{D}}}propstat") is not None
    }


def _gone(found: dict[str, ET.Element]) -> set[str]:
    return {h for h, r in found.items() if "404" in (r.findtext(f"{{{D}}}status") or "")}


def _content_type(response: ET.Element) -> str | None:
    return response.findtext(f".//{{{D}}}getcontenttype")


def _address_data(found: dict[str, ET.Element]) -> dict[str, str]:
    return {href: r.findtext(f".//{{{CR}}}address-data") or "" for href, r in found.items()}


# ---------------------------------------------------------------------------- address books


def test_an_address_book_made_by_extended_mkcol_is_an_address_book_of_the_home(
    server: RunningServer,
) -> None:
    with _client(server, "bob") as bob:
        _book(bob, "/bob/clients/")
        home = _responses(
            bob.request(
                "PROPFIND",
                "/bob/",
                headers={"Depth": "1"},
                content='<propfind xmlns="DAV:"><prop><resourcetype/><displayname/>'
                "<supported-report-set/></prop></propfind>",
            )
        )
        principal = bob.request(
            "PROPFIND",
            "/bob/",
            headers={"Depth": "0"},
            content='<propfind xmlns="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
            "<prop><CR:addressbook-home-set/></prop></propfind>",
        )
        options = bob.options("/bob/")
    book = home["/bob/clients/"]
    assert book.find(f".//{{{D}}}resourcetype/{{{CR}}}addressbook") is not None
    assert book.findtext(f".//{{{D}}}displayname") == "Clients"
    reports = {r.tag for r in book.iter() if r.tag.startswith(f"{{{CR}}}")}
    assert {f"{{{CR}}}addressbook-multiget", f"{{{CR}}}addressbook-query"} <= reports
    assert ET.fromstring(principal.content).findtext(
        f".//{{{CR}}}addressbook-home-set/{{{D}}}href"
    ) == ("/bob/")
    assert "addressbook" in options.headers["DAV"].split(", ")


def test_mkcol_on_a_name_already_taken_is_405_with_the_reason(server: RunningServer) -> None:
    """What vdirsyncer's CardDAV tests met: its CalDAV tests had left a calendar "test"."""
    with _client(server, "bob") as bob:
        assert bob.request("MKCALENDAR", "/bob/test/").status_code == 201
        taken = bob.request("MKCOL", "/bob/test/", content=_MKCOL)
        assert taken.status_code == 405
        assert "exists already" in taken.text
        _book(bob, f"/bob/test-{uuid.uuid4()}/")


@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_a_vcard_is_stored_and_served_as_text_vcard(server: RunningServer, version: str) -> None:
    """Radicale's test_add_contact, test_add_contact_v3 (and _v4)."""
    with _client(server, "bob") as bob:
        _book(bob, "/bob/contacts/")
        assert _put(bob, "/bob/contacts/contact.vcf", _card("contact1", version)).status_code == 201
        got = bob.get("/bob/contacts/contact.vcf")
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "text/vcard; charset=utf-8"
    assert "ETag" in got.headers
    assert "BEGIN:VCARD" in got.text
    assert "UID:contact1" in got.text
    assert f"VERSION:{version}" in got.text
    assert "FN:Zoé Client" in got.text


def test_listings_and_reports_give_vcards_the_text_vcard_content_type(
    server: RunningServer,
) -> None:
    """Radicale's test_addressbook_getcontenttype, and the listings sync clients make."""
    with _client(server, "bob") as bob:
        _book(bob, "/bob/contacts/")
        _put(bob, "/bob/contacts/test.vcf", _card("contact1"))
        query = _report(
            bob,
            "/bob/contacts/",
            '<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
            '<D:prop xmlns:D="DAV:"><D:getcontenttype/></D:prop></C:calendar-query>',
        )
        listing = _responses(
            bob.request("PROPFIND", "/bob/contacts/", headers={"Depth": "1"}, content=_LISTING)
        )
        one = _responses(
            bob.request(
                "PROPFIND", "/bob/contacts/test.vcf", headers={"Depth": "0"}, content=_LISTING
            )
        )
        _, synced = _sync(bob, "/bob/contacts/")
    for found in (query, listing, one, synced):
        assert _content_type(found["/bob/contacts/test.vcf"]) == VCARD


def test_addressbook_query_finds_cards_by_their_properties(server: RunningServer) -> None:
    with _client(server, "bob") as bob:
        _book(bob, "/bob/contacts/")
        _put(
            bob,
            "/bob/contacts/zoe.vcf",
            _card("zoe", "3.0", "Zoé Client", "EMAIL:zoe@client.example"),
        )
        _put(bob, "/bob/contacts/yann.vcf", _card("yann", "4.0", "Yann Other"))
        found = _report(
            bob,
            "/bob/contacts/",
            '<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
            "<D:prop><D:getetag/><CR:address-data/></D:prop><CR:filter>"
            '<CR:prop-filter name="EMAIL"><CR:text-match collation="i;unicode-casemap" '
            'match-type="contains">client.example</CR:text-match></CR:prop-filter>'
            "</CR:filter></CR:addressbook-query>",
        )
    assert set(found) == {"/bob/contacts/zoe.vcf"}
    assert "UID:zoe" in _address_data(found)["/bob/contacts/zoe.vcf"]


def test_addressbook_multiget_answers_each_card_asked_and_404_for_the_missing(
    server: RunningServer,
) -> None:
    with _client(server, "bob") as bob:
        _book(bob, "/bob/contacts/")
        _put(bob, "/bob/contacts/zoe.vcf", _card("zoe"))
        _put(bob, "/bob/contacts/yann.vcf", _card("yann", "4.0", "Yann Other"))
        found = _report(
            bob,
            "/bob/contacts/",
            '<CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
            "<D:prop><D:getetag/><CR:address-data/></D:prop>"
            "<D:href>/bob/contacts/yann.vcf</D:href><D:href>/bob/contacts/nobody.vcf</D:href>"
            "</CR:addressbook-multiget>",
        )
    assert _present(found) == {"/bob/contacts/yann.vcf"}
    assert _gone(found) == {"/bob/contacts/nobody.vcf"}
    assert "VERSION:4.0" in _address_data(found)["/bob/contacts/yann.vcf"]


def test_sync_collection_and_the_ctag_follow_cards_added_changed_and_deleted(
    server: RunningServer,
) -> None:
    with _client(server, "bob") as bob:
        _book(bob, "/bob/contacts/")
        _put(bob, "/bob/contacts/zoe.vcf", _card("zoe"))
        _put(bob, "/bob/contacts/yann.vcf", _card("yann"))
        token, first = _sync(bob, "/bob/contacts/")
        ctag, _ = _tags(bob, "/bob/contacts/")
        assert _present(first) == {"/bob/contacts/zoe.vcf", "/bob/contacts/yann.vcf"}
        _, unchanged = _sync(bob, "/bob/contacts/", token)
        assert unchanged == {}
        _put(bob, "/bob/contacts/xavier.vcf", _card("xavier"))
        _put(bob, "/bob/contacts/zoe.vcf", _card("zoe", "3.0", "Zoé Renamed"))
        assert bob.delete("/bob/contacts/yann.vcf").status_code == 200
        later, delta = _sync(bob, "/bob/contacts/", token)
        new_ctag, _ = _tags(bob, "/bob/contacts/")
    assert _present(delta) == {"/bob/contacts/xavier.vcf", "/bob/contacts/zoe.vcf"}
    assert _gone(delta) == {"/bob/contacts/yann.vcf"}
    assert later != token
    assert new_ctag != ctag


def test_an_address_book_put_whole_is_stored_card_by_card(server: RunningServer) -> None:
    with _client(server, "bob") as bob:
        made = _put(bob, "/bob/imported/", _card("zoe") + _card("yann", "4.0", "Yann Other"))
        assert made.status_code == 201, made.text
        listing = _responses(
            bob.request("PROPFIND", "/bob/imported/", headers={"Depth": "1"}, content=_LISTING)
        )
        whole = bob.get("/bob/imported/")
    assert _content_type(listing["/bob/imported/zoe.vcf"]) == VCARD
    assert _present(listing) == {"/bob/imported/zoe.vcf", "/bob/imported/yann.vcf"}
    assert whole.headers["Content-Type"].startswith("text/vcard")
    assert whole.text.count("BEGIN:VCARD") == 2


def test_refused_objects_get_400_with_the_reason_and_change_nothing(server: RunningServer) -> None:
    with _client(server, "bob") as bob:
        _book(bob, "/bob/contacts/")
        assert bob.request("MKCALENDAR", "/bob/agenda/").status_code == 201
        refused = {
            "UID": _put(bob, "/bob/contacts/a.vcf", _card("x").replace("UID:x\r\n", "")),
            "never closed": _put(bob, "/bob/contacts/b.vcf", _card("y").replace("END:VCARD", "")),
            "2 components": _put(bob, "/bob/contacts/c.vcf", _card("y") + _card("z")),
            "not supported in 'VCALENDAR'": _put(bob, "/bob/agenda/d.vcf", _card("w")),
            "not supported in 'VADDRESSBOOK'": bob.put(
                "/bob/contacts/e.ics",
                content=event_text(f"{uuid.uuid4()}@example.com"),
                headers={"Content-Type": "text/calendar"},
            ),
        }
        _, contacts = _sync(bob, "/bob/contacts/")
        _, agenda = _sync(bob, "/bob/agenda/")
    for reason, answer in refused.items():
        assert answer.status_code == 400
        assert reason in answer.text
    assert _present(contacts) == _present(agenda) == set()


def test_another_users_address_books_are_not_theirs_to_read_or_write(
    server: RunningServer,
) -> None:
    with _client(server, "bob") as bob:
        _book(bob, "/bob/private/")
        _put(bob, "/bob/private/zoe.vcf", _card("zoe", "3.0", "Secret Person"))
    with _client(server, "carol") as carol:
        answers = [
            carol.get("/bob/private/zoe.vcf"),
            carol.request("PROPFIND", "/bob/private/", headers={"Depth": "1"}),
            carol.request(
                "REPORT",
                "/bob/private/",
                content='<CR:addressbook-query xmlns:D="DAV:" '
                'xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><CR:address-data/>'
                "</D:prop></CR:addressbook-query>",
            ),
            carol.request(
                "REPORT",
                "/bob/private/",
                content='<sync-collection xmlns="DAV:"><sync-token/><sync-level>1</sync-level>'
                "<prop><getetag/></prop></sync-collection>",
            ),
            _put(carol, "/bob/private/evil.vcf", _card("evil")),
        ]
    for answer in answers:
        assert answer.status_code == 403
        assert "Secret" not in answer.text


def test_free_busy_reads_the_calendars_a_user_made_not_their_address_books(
    server: RunningServer,
) -> None:
    with _client(server, "bob") as bob:
        _book(bob, "/bob/contacts/")
        _put(bob, "/bob/contacts/zoe.vcf", _card("zoe"))
        assert bob.request("MKCALENDAR", "/bob/agenda/").status_code == 201
    with _client(server, "alice") as alice:
        answer = alice.post(
            "/alice/outbox/",
            content=freebusy_request("bob@example.com"),
            headers={"Content-Type": "text/calendar"},
        )
    assert answer.status_code == 200, answer.text
    assert "2.0;Success" in answer.text
    settings = Settings(server.world.database.url, "http://127.0.0.1")
    storage = Storage(radicale_configuration(settings))
    assert [c.path for c in storage.own_calendars("bob")] == ["bob/agenda"]


# ---------------------------------------------------------------------------- the directory


def _directory(client: httpx.Client, login: str) -> dict[str, str]:
    """The cards of ``login``'s address book of colleagues and rooms, by name."""
    found = _report(
        client,
        f"/{login}/directory/",
        '<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
        "<D:prop><D:getetag/><CR:address-data/></D:prop></CR:addressbook-query>",
    )
    prefix = f"/{login}/directory/"
    return {href.removeprefix(prefix): text for href, text in _address_data(found).items()}


def _lines(card: str) -> set[str]:
    return set(card.replace("\r\n ", "").splitlines())


def test_every_user_reads_colleagues_and_rooms_in_a_read_only_address_book(
    server: RunningServer,
) -> None:
    with _client(server, "carol") as carol:
        home = _responses(
            carol.request(
                "PROPFIND",
                "/carol/",
                headers={"Depth": "1"},
                content='<propfind xmlns="DAV:"><prop><resourcetype/><displayname/>'
                "<current-user-privilege-set/></prop></propfind>",
            )
        )
        cards = _directory(carol, "carol")
        listing = _responses(
            carol.request("PROPFIND", "/carol/directory/", headers={"Depth": "1"}, content=_LISTING)
        )
    book = home["/carol/directory/"]
    assert book.find(f".//{{{D}}}resourcetype/{{{CR}}}addressbook") is not None
    assert book.findtext(f".//{{{D}}}displayname") == DISPLAY_NAME
    privileges = {p.tag for p in book.iterfind(f".//{{{D}}}privilege/*")}
    assert privileges == {f"{{{D}}}read"}  # clients show it read-only
    assert set(cards) == {
        f"{n}.vcf" for n in ("alice", "bob", "carol", "dave", "everest", "kilimanjaro")
    }
    assert {
        "VERSION:3.0",
        "FN:Carol Nguyễn",
        "N:Nguyễn;Carol;;;",
        "KIND:individual",
        "EMAIL;TYPE=INTERNET,PREF:carol@example.com",
    } <= _lines(cards["carol.vcf"])
    assert {
        "FN:Everest room",
        "N:Everest room;;;;",
        "KIND:location",
        "EMAIL;TYPE=INTERNET,PREF:everest@example.com",
        "X-CAPACITY:12",
        "NOTE:Capacity: 12",
    } <= _lines(cards["everest.vcf"])
    assert "X-CAPACITY" not in cards["kilimanjaro.vcf"]  # no capacity known
    assert {_content_type(listing[f"/carol/directory/{name}"]) for name in cards} == {VCARD}


def test_directory_cards_show_names_addresses_and_capacity_only(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        Directory(session).add_resource(
            "van", "Delivery van", "van@example.com", ResourceKind.VEHICLE, capacity=3
        )
    with _client(server, "dave") as dave:
        cards = _directory(dave, "dave")
        again = _directory(dave, "dave")
    shown = {line.split(":")[0].split(";")[0] for card in cards.values() for line in _lines(card)}
    assert shown == {
        "BEGIN",
        "VERSION",
        "UID",
        "FN",
        "N",
        "KIND",
        "EMAIL",
        "X-CAPACITY",
        "NOTE",
        "END",
    }
    assert "KIND:device" in _lines(cards["van.vcf"])
    uids = {line for card in cards.values() for line in _lines(card) if line.startswith("UID:")}
    assert len(uids) == len(cards)
    assert again == cards  # the same text, asked twice


def test_nobody_writes_into_the_directory_and_each_refusal_says_why(
    server: RunningServer,
) -> None:
    with _client(server, "bob") as bob:
        before = _tags(bob, "/bob/directory/")
        answers = [
            _put(bob, "/bob/directory/zoe.vcf", _card("zoe")),
            _put(bob, "/bob/directory/alice.vcf", _card("alice")),
            bob.delete("/bob/directory/alice.vcf"),
            bob.delete("/bob/directory/"),
            bob.request(
                "PROPPATCH",
                "/bob/directory/",
                content='<propertyupdate xmlns="DAV:"><set><prop><displayname>Mine</displayname>'
                "</prop></set></propertyupdate>",
            ),
            bob.request("MKCOL", "/bob/directory/", content=_MKCOL),
        ]
        after = _tags(bob, "/bob/directory/")
        cards = _directory(bob, "bob")
    for answer in answers:
        assert answer.status_code == 403
        assert "read-only" in answer.text
    assert after == before
    assert "zoe.vcf" not in cards
    assert "FN:Alice Martin" in cards["alice.vcf"]


def test_the_directory_changes_as_users_and_rooms_are_added_renamed_and_deactivated(
    server: RunningServer,
) -> None:
    world = server.world
    with _client(server, "alice") as alice:
        token, _ = _sync(alice, "/alice/directory/")
        ctag, _ = _tags(alice, "/alice/directory/")
        with world.database.session(write=True) as session:
            directory = Directory(session)
            directory.add_user("erin", "Erin Schmidt", ["erin@example.com"], "erin")
            directory.add_resource("k2", "K2 room", "k2@example.com", capacity=4)
        added_token, added = _sync(alice, "/alice/directory/", token)
        added_ctag, _ = _tags(alice, "/alice/directory/")
        etag = _responses(
            alice.request(
                "PROPFIND", "/alice/directory/bob.vcf", headers={"Depth": "0"}, content=_LISTING
            )
        )["/alice/directory/bob.vcf"].findtext(f".//{{{D}}}getetag")
        with world.database.session(write=True) as session:
            world.users(session)["bob"].display_name = "Robert Dupont"
        renamed_token, renamed = _sync(alice, "/alice/directory/", added_token)
        with world.database.session(write=True) as session:
            bob = world.users(session)["bob"]
            bob.emails.append(UserEmail(address="robert@example.com", position=1))
        readdressed_token, readdressed = _sync(alice, "/alice/directory/", renamed_token)
        with world.database.session(write=True) as session:
            Administration(session, OPERATOR).set_active("carol", False)
            Administration(session, OPERATOR).set_resource_active("kilimanjaro", False)
        left_token, left = _sync(alice, "/alice/directory/", readdressed_token)
        new_etag = _responses(
            alice.request(
                "PROPFIND", "/alice/directory/bob.vcf", headers={"Depth": "0"}, content=_LISTING
            )
        )["/alice/directory/bob.vcf"].findtext(f".//{{{D}}}getetag")
        cards = _directory(alice, "alice")
    assert _present(added) == {"/alice/directory/erin.vcf", "/alice/directory/k2.vcf"}
    assert added_ctag != ctag
    assert _present(renamed) == _present(readdressed) == {"/alice/directory/bob.vcf"}
    assert _present(left) == set()
    assert _gone(left) == {"/alice/directory/carol.vcf", "/alice/directory/kilimanjaro.vcf"}
    assert new_etag != etag
    bob_card = _lines(cards["bob.vcf"])
    assert {"FN:Robert Dupont", "EMAIL;TYPE=INTERNET:robert@example.com"} <= bob_card
    assert "carol.vcf" not in cards
    assert "kilimanjaro.vcf" not in cards
    assert "erin.vcf" in cards
    assert len({token, added_token, renamed_token, readdressed_token, left_token}) == 5


def test_what_cards_do_not_show_leaves_the_directory_as_it_was(server: RunningServer) -> None:
    """A new password, a time zone, a feed: no card changes, so neither does the CTag."""
    world = server.world
    with _client(server, "alice") as alice:
        before = _tags(alice, "/alice/directory/")
        with world.database.session(write=True) as session:
            bob = world.users(session)["bob"]
            bob.password_hash, bob.timezone = hash_password("another"), "Asia/Tokyo"
            world.rooms(session)["everest"].feed_nonce = "abc"
        after = _tags(alice, "/alice/directory/")
    assert after == before


def test_only_active_users_read_the_directory(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        Administration(session, OPERATOR).set_active("dave", False)
    with _client(server, "dave") as dave:
        assert dave.get("/dave/directory/alice.vcf").status_code == 401
    with _client(server, "alice") as alice:
        assert alice.get("/dave/directory/alice.vcf").status_code == 403
        assert alice.get("/everest/directory/").status_code == 404
    assert httpx.get(f"{server.url}alice/directory/alice.vcf").status_code == 401

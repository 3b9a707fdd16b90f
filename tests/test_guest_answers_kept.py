"""A guest's emailed answer is never lost to the organizer's save of a stale copy
(``rules.guest_partstat``). The answer does not change the Schedule-Tag (RFC 6638 3.2.10: only
the organizer's changes do), so a PUT with the tag of before is taken and the server merges:
the guest's PARTSTAT stays, on CalDAV, in the feed and on the CRM page, through a reschedule
too, as a linked user's answer does. A PUT with the ETag of before is refused (412)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from icalendar import Calendar

from caldav_bridge.domain import rules, tokens
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Guest, LinkStatus
from caldav_bridge.ical.mapping import normalize_address
from tests.conftest import RunningServer
from tests.helpers import crm_pages
from tests.test_scheduling import _attendee as attendee
from tests.test_scheduling import _event as scheduling_event
from tests.test_stale_answers import NOW, _mailed, listening

ZOE = "zoe@partner.example"


@pytest.fixture
def lmtp(server: RunningServer) -> Iterator[int]:
    with listening(server.world) as port:
        yield port


def _event(uid: str) -> str:
    """alice's meeting as her client writes it: bob and zoe (a guest) invited."""
    return scheduling_event(uid, attendee("bob@example.com"), attendee(ZOE, CN="Zoe"))


def _partstats(text: str) -> dict[str, str]:
    event = Calendar.from_ical(text).events[0]
    return {normalize_address(a): str(a.params["PARTSTAT"]) for a in event["ATTENDEE"]}


def _answered_meeting(server: RunningServer, lmtp: int) -> tuple[str, httpx.Response]:
    """alice's meeting saved from her client, answered by zoe by email and by bob in his
    client after alice read it: (uid, alice's stale read of it)."""
    uid = f"{uuid.uuid4()}"
    path = f"/alice/interactions/{uid}.ics"
    with httpx.Client(base_url=server.url, auth=("alice", "alice")) as alice:
        assert alice.put(path, content=_event(uid)).status_code == 201
        stale = alice.get(path)
    assert _mailed(lmtp, uid, ZOE, "ACCEPTED", 0, NOW).startswith("250 2.0.0 "), "zoe's answer"
    with httpx.Client(base_url=server.url, auth=("bob", "bob")) as bob:
        mine = Calendar.from_ical(bob.get(f"/bob/interactions/{uid}.ics").text)
        for attendee in mine.events[0]["ATTENDEE"]:
            if normalize_address(attendee) == "bob@example.com":
                attendee.params["PARTSTAT"] = "ACCEPTED"
        answer = bob.put(f"/bob/interactions/{uid}.ics", content=mine.to_ical())
        assert answer.status_code == 204, answer.text
    return uid, stale


def _everywhere(server: RunningServer, uid: str) -> dict[str, str]:
    """zoe's PARTSTAT as alice's and bob's CalDAV copies, alice's feed and her CRM page say."""
    seen: dict[str, str] = {}
    for login in ("alice", "bob"):
        got = httpx.get(f"{server.url}{login}/interactions/{uid}.ics", auth=(login, login))
        seen[f"caldav {login}"] = _partstats(got.text)[ZOE]
    with server.world.database.session(write=True) as session:
        alice = Directory(session).user("alice")
        tokens.rotate_feed(alice)
        token = tokens.feed_token(session, alice)
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        interaction_id = interaction.id
    feed = Calendar.from_ical(httpx.get(f"{server.url}.bridge/feeds/{token}.ics").content)
    (event,) = [e for e in feed.events if str(e["UID"]) == uid]
    seen["feed"] = next(
        str(a.params["PARTSTAT"]) for a in event["ATTENDEE"] if normalize_address(a) == ZOE
    )
    pages, _ = crm_pages(server.url, "alice")
    page = pages.get(f"interactions/{interaction_id}").text
    label = re.search(r"Zoe <span[^>]*>\(guest\)</span></td><td>([^<]*)<", page)
    assert label is not None, page
    seen["crm page"] = label.group(1)
    return seen


KEPT = {
    "caldav alice": "ACCEPTED",
    "caldav bob": "ACCEPTED",
    "feed": "ACCEPTED",
    "crm page": "Confirmed",
}


def test_an_answer_does_not_change_the_organizers_schedule_tag(
    server: RunningServer, lmtp: int
) -> None:
    uid, stale = _answered_meeting(server, lmtp)
    now = httpx.get(f"{server.url}alice/interactions/{uid}.ics", auth=("alice", "alice"))
    assert now.headers["Schedule-Tag"] == stale.headers["Schedule-Tag"]
    assert now.headers["ETag"] != stale.headers["ETag"]


@pytest.mark.parametrize("moved", [False, True], ids=["notes edited", "rescheduled"])
def test_the_organizers_stale_copy_keeps_the_guests_answer(
    server: RunningServer, lmtp: int, moved: bool
) -> None:
    uid, stale = _answered_meeting(server, lmtp)
    text = stale.text.replace("SUMMARY:", "DESCRIPTION:Agenda\r\nSUMMARY:")
    if moved:
        text = text.replace("T120000Z", "T150000Z").replace("T130000Z", "T160000Z")
    assert _partstats(text)[ZOE] == "NEEDS-ACTION"  # what alice's copy still says
    answer = httpx.put(
        f"{server.url}alice/interactions/{uid}.ics",
        content=text,
        auth=("alice", "alice"),
        headers={"If-Schedule-Tag-Match": stale.headers["Schedule-Tag"]},
    )
    assert answer.status_code == 204, answer.text
    assert _everywhere(server, uid) == KEPT
    with server.world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert interaction.notes == "Agenda"
        assert interaction.sequence == (1 if moved else 0)
        assert [k.status for k in interaction.links] == [LinkStatus.CONFIRMED]  # bob's too


def test_the_organizers_copy_with_the_etag_of_before_is_refused(
    server: RunningServer, lmtp: int
) -> None:
    uid, stale = _answered_meeting(server, lmtp)
    answer = httpx.put(
        f"{server.url}alice/interactions/{uid}.ics",
        content=stale.text,
        auth=("alice", "alice"),
        headers={"If-Match": stale.headers["ETag"]},
    )
    assert answer.status_code == 412
    assert _everywhere(server, uid) == KEPT


def test_the_organizer_sets_the_partstat_of_a_guest_who_has_not_answered() -> None:
    """As before: a new guest, one without an answer of their own, and one the organizer's
    client schedules itself (its answers go to that client) take the organizer's value."""
    answered = Guest(address=ZOE, partstat="ACCEPTED", answer_sequence=0)
    silent = Guest(address=ZOE, partstat="NEEDS-ACTION")
    assert rules.guest_partstat(answered, "NEEDS-ACTION", client_scheduled=False) == "ACCEPTED"
    assert rules.guest_partstat(answered, "DECLINED", client_scheduled=True) == "DECLINED"
    assert rules.guest_partstat(silent, "ACCEPTED", client_scheduled=False) == "ACCEPTED"
    assert rules.guest_partstat(None, "TENTATIVE", client_scheduled=False) == "TENTATIVE"


def test_a_guest_asked_again_after_a_restore_takes_the_organizers_value_until_they_answer(
    server: RunningServer, lmtp: int
) -> None:
    """Bringing a cancelled meeting back asks everyone again: a guest's answer from before no
    longer holds off the organizer's PARTSTAT for them."""
    uid = f"{uuid.uuid4()}"
    path = f"/alice/interactions/{uid}.ics"
    with httpx.Client(base_url=server.url, auth=("alice", "alice")) as alice:
        assert alice.put(path, content=_event(uid)).status_code == 201
        assert _mailed(lmtp, uid, ZOE, "DECLINED", 0, NOW).startswith("250 2.0.0 ")
        assert alice.delete(path).status_code in (200, 204)
        assert alice.put(path, content=_event(uid)).status_code in (201, 204)
        assert _partstats(alice.get(path).text)[ZOE] == "NEEDS-ACTION"
        accepted = scheduling_event(
            uid, attendee("bob@example.com"), attendee(ZOE, CN="Zoe", PARTSTAT="ACCEPTED")
        )
        assert alice.put(path, content=accepted).status_code == 204
        assert _partstats(alice.get(path).text)[ZOE] == "ACCEPTED"

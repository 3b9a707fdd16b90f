"""A free-busy request is bounded in every dimension (attendees, range, work), each address
counts once, and going past a bound is refused with the limit named."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from caldav_bridge.caldav import post as outbox
from caldav_bridge.caldav.server import shared_database
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.domain.periods import Draft
from tests.conftest import RunningServer
from tests.helpers import at, freebusy_request

C = "urn:ietf:params:xml:ns:caldav"


def _post(server: RunningServer, text: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=120) as alice:
        return alice.post("/alice/outbox/", content=text, headers={"Content-Type": "text/calendar"})


@contextmanager
def _statements(server: RunningServer) -> Iterator[list[str]]:
    """The SQL statements the server runs meanwhile."""
    engine = shared_database(server.world.database.url).engine
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _weekly_for_bob(server: RunningServer) -> None:
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        draft = Draft("Weekly", at(7, 10), at(7, 11), rrule="FREQ=WEEKLY;COUNT=30")
        interaction = service.create(users["alice"], draft)
        service.link(users["alice"], interaction, users["bob"], LinkStatus.CONFIRMED)


def test_an_attendee_named_many_times_is_answered_once_for_the_work_of_once(
    server: RunningServer,
) -> None:
    _weekly_for_bob(server)
    with _statements(server) as once:
        single = _post(server, freebusy_request("bob@example.com"))
    with _statements(server) as repeated:
        many = _post(server, freebusy_request(*(["bob@example.com", "BOB@example.com"] * 1500)))
    assert single.status_code == many.status_code == 200, many.text
    responses = list(ET.fromstring(many.content).iter(f"{{{C}}}response"))
    assert len(responses) == 1
    assert many.text.count("FREEBUSY;FBTYPE=BUSY") == single.text.count("FREEBUSY;FBTYPE=BUSY")
    assert len(repeated) == len(once)


def test_more_attendees_than_the_limit_are_refused_with_it(server: RunningServer) -> None:
    addresses = [f"person{n}@elsewhere.example" for n in range(outbox.MAX_ATTENDEES + 1)]
    refused = _post(server, freebusy_request(*addresses))
    assert refused.status_code == 400
    assert f"at most {outbox.MAX_ATTENDEES} attendees" in refused.text
    allowed = _post(server, freebusy_request(*addresses[:-1]))
    assert allowed.status_code == 200


def test_a_range_longer_than_the_limit_is_refused_by_the_outbox_and_the_report(
    server: RunningServer,
) -> None:
    days = outbox.LONGEST_RANGE.days
    long = _post(server, freebusy_request("bob@example.com", end="20320101T000000Z"))
    assert long.status_code == 400
    assert f"at most {days} days" in long.text
    report = (
        f'<C:free-busy-query xmlns:C="{C}">'
        '<C:time-range start="20300101T000000Z" end="20400101T000000Z"/></C:free-busy-query>'
    )
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        answer = alice.request("REPORT", "/alice/interactions/", content=report)
        open_ended = alice.request(
            "REPORT",
            "/alice/interactions/",
            content=report.replace(' end="20400101T000000Z"', ""),
        )
        assert alice.request("MKCALENDAR", "/alice/personal/").status_code == 201
        own = alice.request("REPORT", "/alice/personal/", content=report)
        short = alice.request(
            "REPORT", "/alice/personal/", content=report.replace("20400101", "20300201")
        )
    assert answer.status_code == open_ended.status_code == own.status_code == 400
    assert f"at most {days} days" in answer.text
    assert f"at most {days} days" in own.text
    assert short.status_code == 200  # Radicale's own answer, within the bound


def test_a_request_past_its_work_budget_is_refused_with_the_limit(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _weekly_for_bob(server)  # 4 or 5 busy periods a month
    monkeypatch.setattr(outbox, "MAX_WORK", 3)
    refused = _post(server, freebusy_request("bob@example.com"))
    assert refused.status_code == 400
    assert "more than 3 busy periods" in refused.text
    monkeypatch.setattr(outbox, "MAX_WORK", 10)
    assert _post(server, freebusy_request("bob@example.com")).status_code == 200

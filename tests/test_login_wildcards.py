"""Logins are matched as plain text: a ``_`` in one (a LIKE wildcard in SQL) never reaches
another user's calendars, over any request."""

from __future__ import annotations

import uuid

import httpx
import pytest

from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.passwords import hash_password
from tests.conftest import RunningServer
from tests.helpers import event_text, freebusy_request

MARKER = "Secret-of-rtxx-1f3c"


@pytest.fixture
def lookalikes(server: RunningServer) -> RunningServer:
    """``rt_x`` and ``rtxx``: the first's login, read as a LIKE pattern, matches the second."""
    with server.world.database.session(write=True) as session:
        directory = Directory(session)
        for login in ("rt_x", "rtxx"):
            user = directory.add_user(login, login, [f"{login}@example.com"], None, "UTC")
            user.password_hash = hash_password(login)
    with httpx.Client(base_url=server.url, auth=("rtxx", "rtxx"), timeout=30) as rtxx:
        assert rtxx.request("MKCALENDAR", "/rtxx/private/").status_code == 201
        put = rtxx.put(
            "/rtxx/private/secret.ics",
            content=event_text(f"{uuid.uuid4()}", summary=MARKER),
            headers={"Content-Type": "text/calendar"},
        )
        assert put.status_code == 201, put.text
    return server


def test_a_login_with_an_underscore_lists_only_its_own_calendars(
    lookalikes: RunningServer,
) -> None:
    with httpx.Client(base_url=lookalikes.url, auth=("rt_x", "rt_x"), timeout=30) as rt_x:
        listing = rt_x.request("PROPFIND", "/rt_x/", headers={"Depth": "1"})
        assert listing.status_code == 207
        assert "rtxx" not in listing.text
        assert "private" not in listing.text


def test_a_login_with_an_underscore_shows_only_its_own_free_busy(
    lookalikes: RunningServer,
) -> None:
    with httpx.Client(base_url=lookalikes.url, auth=("alice", "alice"), timeout=30) as alice:
        answer = alice.post(
            "/alice/outbox/",
            content=freebusy_request("rt_x@example.com", end="20300109T000000Z"),
            headers={"Content-Type": "text/calendar"},
        )
    assert answer.status_code == 200, answer.text
    assert "2.0;Success" in answer.text
    assert "FREEBUSY" not in answer.text.replace("VFREEBUSY", "")  # rtxx's event is not rt_x's


def test_a_principal_search_takes_underscore_and_percent_literally(
    lookalikes: RunningServer,
) -> None:
    body = (
        '<D:principal-property-search xmlns:D="DAV:">'
        "<D:property-search><D:prop><D:displayname/></D:prop>"
        "<D:match>{}</D:match></D:property-search><D:prop><D:displayname/></D:prop>"
        "</D:principal-property-search>"
    )
    with httpx.Client(base_url=lookalikes.url, auth=("alice", "alice"), timeout=30) as alice:
        found = alice.request("REPORT", "/", content=body.format("rt_"))
        percent = alice.request("REPORT", "/", content=body.format("rt%x"))
    assert found.status_code == percent.status_code == 207
    assert "rt_x" in found.text
    assert "rtxx" not in found.text
    assert "rt_x" not in percent.text
    assert "rtxx" not in percent.text

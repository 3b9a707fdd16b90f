"""State-changing requests under /.bridge/ from another site are refused and change nothing,
over HTTP: the messenger's mark-read (which also needs a JSON body: a form or text/plain from
another site's page is 415), the RSVP page's answer and the CRM pages' forms. The site is told
by Origin, else Sec-Fetch-Site, else the Referer; the same requests from the server's own pages
(and from clients that send none of them) work."""

from __future__ import annotations

import re

import httpx
import pytest

from caldav_bridge.domain.models import LinkStatus
from tests.conftest import RunningServer
from tests.helpers import link_status
from tests.test_messenger import _invite as _notify
from tests.test_rsvp_page import _invite, _link, _token

EVIL = "https://evil.example"
FOREIGN = [
    {"Origin": EVIL},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Referer": f"{EVIL}/page"},
]


def _unread(server: RunningServer, login: str) -> int:
    answer = httpx.get(f"{server.url}.bridge/messages?unread=1", auth=(login, login))
    return len(answer.json())


def test_marking_read_needs_a_json_body(server: RunningServer) -> None:
    _notify(server, "bob")
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer = httpx.post(
            f"{server.url}.bridge/messages/read",
            content=b'{"all": true}',
            headers={"Content-Type": content_type},
            auth=("bob", "bob"),
        )
        assert answer.status_code == 415, content_type
        assert "application/json" in answer.json()["error"]
    assert _unread(server, "bob") == 1


@pytest.mark.parametrize("foreign", FOREIGN)
def test_marking_read_from_another_site_is_refused(
    server: RunningServer, foreign: dict[str, str]
) -> None:
    _notify(server, "bob")
    answer = httpx.post(
        f"{server.url}.bridge/messages/read",
        json={"all": True},
        headers=foreign,
        auth=("bob", "bob"),
    )
    assert answer.status_code == 403
    assert "another site" in answer.json()["error"]
    assert _unread(server, "bob") == 1
    own = httpx.post(
        f"{server.url}.bridge/messages/read",
        json={"all": True},
        headers={"Origin": server.url.rstrip("/")},
        auth=("bob", "bob"),
    )
    assert own.json() == {"marked": 1}


@pytest.mark.parametrize("foreign", FOREIGN)
def test_an_rsvp_answer_from_another_site_is_refused(
    server: RunningServer, foreign: dict[str, str]
) -> None:
    interaction = _invite(server.world, "bob", room=False)
    url = _link(server, "bob", interaction)
    form = {"token": _token(url), "answer": "accept"}
    refused = httpx.post(url.split("?")[0], data=form, headers=foreign)
    assert refused.status_code == 403
    assert link_status(server.world, interaction, "bob") == LinkStatus.INVITED
    # The page itself posts with Origin: null (no-referrer) and Sec-Fetch-Site: same-origin.
    same = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    answered = httpx.post(url.split("?")[0], data=form, headers=same)
    assert answered.status_code == 303
    assert link_status(server.world, interaction, "bob") == LinkStatus.CONFIRMED


@pytest.mark.parametrize("foreign", FOREIGN)
def test_a_crm_form_from_another_site_is_refused(
    server: RunningServer, foreign: dict[str, str]
) -> None:
    pages = f"{server.url}.bridge/crm/"
    with httpx.Client(base_url=pages, timeout=30) as browser:
        page = browser.get("login")
        check = re.search(r'name="check" value="([^"]+)"', page.text)
        assert check is not None
        form = {"login": "bob", "password": "bob", "check": check[1]}
        refused = browser.post("login", data=form, headers=foreign)
        assert refused.status_code == 403
        assert "caldav_bridge_session" not in refused.headers.get("set-cookie", "")
        own = browser.post("login", data=form, headers={"Origin": server.url.rstrip("/")})
        assert own.status_code == 303

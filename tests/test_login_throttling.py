"""Guessing passwords is throttled, over HTTP, for Basic authentication (CalDAV's and the
messenger endpoints', one count of failures) and the CRM's login form alike: past a few
failures for a login (or from an address) tries get 429 with Retry-After, unheard; the user
still gets in from the address they logged in from before, and from anywhere once the
Retry-After has passed; a client repeating one stale password is no attack; failed web logins
are logged with the login name. Clients come from several loopback addresses (127.0.0.x) so
the server sees several addresses."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import RunningServer

ATTEMPTS = 30
PROPFIND = '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'


def _from(address: str, **options: object) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30, **options)


def _dav(server: RunningServer, address: str, login: str, password: str) -> httpx.Response:
    with _from(address) as client:
        return client.request(
            "PROPFIND",
            f"{server.url}{login}/",
            content=PROPFIND,
            headers={"Depth": "0"},
            auth=(login, password),
        )


def _throttled_after_a_few(answers: list[httpx.Response]) -> None:
    """Wrong passwords got 401 a few times, then 429 with Retry-After and the reason."""
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {401, 429}, statuses
    throttled = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["Retry-After"]) >= 1 for a in throttled)
    assert "too many failed logins" in throttled[-1].text
    assert statuses.count(401) < 10, statuses  # the rest were refused unheard


def _again_after(answer: httpx.Response, again: Callable[[], httpx.Response]) -> httpx.Response:
    """``answer``, or when it is a 429, the answer to ``again`` once its Retry-After passed."""
    if answer.status_code != 429:
        return answer
    time.sleep(int(answer.headers["Retry-After"]))
    return again()


def test_wrong_basic_passwords_get_429_with_retry_after_and_the_user_still_gets_in(
    server: RunningServer,
) -> None:
    assert _dav(server, "127.0.0.2", "alice", "alice").status_code == 207  # her own device
    _throttled_after_a_few(
        [_dav(server, "127.0.0.1", "alice", f"guess-{n}") for n in range(ATTEMPTS)]
    )
    assert _dav(server, "127.0.0.2", "alice", "alice").status_code == 207

    def elsewhere() -> httpx.Response:
        return _dav(server, "127.0.0.3", "alice", "alice")

    assert _again_after(elsewhere(), elsewhere).status_code == 207


def test_logins_sprayed_from_one_address_get_429_and_others_still_get_in(
    server: RunningServer,
) -> None:
    statuses = [
        _dav(server, "127.0.0.4", f"nobody{n}", "password").status_code for n in range(ATTEMPTS)
    ]
    assert 429 in statuses, statuses
    assert _dav(server, "127.0.0.4", "bob", "bob").status_code == 429
    assert _dav(server, "127.0.0.5", "bob", "bob").status_code == 207


def test_a_client_repeating_one_stale_password_is_not_throttled(server: RunningServer) -> None:
    statuses = {_dav(server, "127.0.0.6", "carol", "old").status_code for _ in range(ATTEMPTS)}
    assert statuses == {401}
    assert _dav(server, "127.0.0.6", "carol", "carol").status_code == 207


def _messages(server: RunningServer, address: str, login: str, password: str) -> httpx.Response:
    with _from(address) as client:
        return client.get(f"{server.url}.bridge/messages", auth=(login, password))


def test_wrong_basic_passwords_to_the_messenger_count_with_caldavs_and_get_429(
    server: RunningServer,
) -> None:
    assert _messages(server, "127.0.0.2", "dave", "dave").status_code == 200  # his own device
    answers = [_messages(server, "127.0.0.1", "dave", f"guess-{n}") for n in range(ATTEMPTS)]
    assert answers[0].headers["WWW-Authenticate"].startswith("Basic")
    _throttled_after_a_few(answers)
    # One count of failures per process: CalDAV refuses the guesser too, the right password
    # included, and the messenger lets dave in from his own device.
    assert _dav(server, "127.0.0.1", "dave", "dave").status_code == 429
    assert _messages(server, "127.0.0.2", "dave", "dave").status_code == 200
    assert _dav(server, "127.0.0.2", "dave", "dave").status_code == 207


def _web_login(client: httpx.Client, login: str, password: str) -> httpx.Response:
    page = client.get("login")
    found = re.search(r'name="check" value="([^"]+)"', page.text)
    assert found is not None
    return client.post("login", data={"login": login, "password": password, "check": found[1]})


def test_wrong_web_logins_get_429_are_logged_by_login_and_the_user_still_gets_in(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    pages = f"{server.url}.bridge/crm/"
    with _from("127.0.0.2", base_url=pages) as own:
        assert _web_login(own, "bob", "bob").status_code == 303
    caplog.set_level(logging.WARNING, logger="caldav_bridge")
    with _from("127.0.0.1", base_url=pages) as attacker:
        answers = [_web_login(attacker, "Bob", f"guess-{n}") for n in range(ATTEMPTS)]
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {401, 429}, statuses
    throttled = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["Retry-After"]) >= 1 for a in throttled)
    assert "Too many failed logins" in throttled[-1].text
    failed = [r.getMessage() for r in caplog.records if "failed web login" in r.getMessage()]
    assert failed, "no failed web login was logged"
    assert all("'bob'" in line and "127.0.0.1" in line for line in failed), failed
    with _from("127.0.0.2", base_url=pages) as own:
        assert _web_login(own, "bob", "bob").status_code == 303
    with _from("127.0.0.3", base_url=pages) as other:

        def elsewhere() -> httpx.Response:
            return _web_login(other, "bob", "bob")

        assert _again_after(elsewhere(), elsewhere).status_code == 303

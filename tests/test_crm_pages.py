"""The CRM's web pages over HTTP: the login, the session cookie, CSRF, and who may do what."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import func, select

from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, LinkStatus
from caldav_bridge.web.session import COOKIE, parse
from tests.conftest import RunningServer, World
from tests.helpers import at, create, link_status


def _pages(server: RunningServer) -> str:
    return f"{server.url}.bridge/crm/"


def _log_in(client: httpx.Client, form: dict[str, str]) -> httpx.Response:
    """The login form as a browser sends it: opened first, its check value sent back."""
    page = client.get("login")
    found = re.search(r'name="check" value="([^"]+)"', page.text)
    assert found is not None
    return client.post("login", data={**form, "check": found.group(1)})


def _signed_in(server: RunningServer, login: str) -> httpx.Client:
    client = httpx.Client(base_url=_pages(server), timeout=30)
    answer = _log_in(client, {"login": login, "password": login})
    assert answer.status_code == 303, answer.text
    return client


def _csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def _meeting(world: World, *invited: str) -> int:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"], "Pricing", at(7, 10), at(7, 11))
        for login in invited:
            service.link(users["alice"], interaction, users[login], LinkStatus.INVITED)
        return interaction.id


def test_pages_need_a_login_and_come_back_after_it(server: RunningServer) -> None:
    anonymous = httpx.get(f"{_pages(server)}agenda")
    assert anonymous.status_code == 303
    assert anonymous.headers["Location"].endswith("/crm/login?next=/.bridge/crm/agenda")
    client = httpx.Client(base_url=_pages(server))
    answer = _log_in(client, {"login": "bob", "password": "bob", "next": "/.bridge/crm/agenda"})
    assert answer.headers["Location"] == "/.bridge/crm/agenda"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("HttpOnly", "SameSite=Lax", "Path=/.bridge/crm/"):
        assert flag in cookie
    assert "Secure" not in cookie  # plain http here; see the https test below
    assert client.get("agenda").status_code == 200


def test_the_cookie_is_secure_behind_https() -> None:
    request = parse("GET", "", "", b"", "", "https://crm.example")
    assert request.secure


@pytest.mark.parametrize(
    "form",
    [
        {"login": "bob", "password": "wrong"},
        {"login": "nobody", "password": "nobody"},
        {"login": "", "password": ""},
    ],
)
def test_a_wrong_login_is_refused_without_a_cookie(
    server: RunningServer, form: dict[str, str]
) -> None:
    answer = _log_in(httpx.Client(base_url=_pages(server)), form)
    assert answer.status_code == 401
    assert "Wrong login or password" in answer.text
    assert f"{COOKIE}=" not in answer.headers.get("Set-Cookie", "")  # no session


def test_an_inactive_user_cannot_log_in_and_their_session_ends(server: RunningServer) -> None:
    bob = _signed_in(server, "bob")
    with server.world.database.session(write=True) as session:
        Administration(session, OPERATOR).set_active("bob", False)
    assert bob.get("").status_code == 303  # back to the login
    answer = _log_in(httpx.Client(base_url=_pages(server)), {"login": "bob", "password": "bob"})
    assert answer.status_code == 401


def test_a_new_password_ends_the_sessions(server: RunningServer) -> None:
    bob = _signed_in(server, "bob")
    with server.world.database.session(write=True) as session:
        Administration(session, OPERATOR).set_password("bob", "a new password")
    assert bob.get("").status_code == 303


def test_a_forged_cookie_is_not_a_session(server: RunningServer) -> None:
    bob = _signed_in(server, "bob")
    value = bob.cookies[COOKIE]
    user_id, expires, mac = value.split(".")
    forged = f"{int(user_id) - 1}.{expires}.{mac}"  # alice's id with bob's signature
    answer = httpx.get(_pages(server), cookies={COOKIE: forged})
    assert answer.status_code == 303


def test_a_post_without_the_forms_csrf_token_changes_nothing(server: RunningServer) -> None:
    interaction_id = _meeting(server.world, "bob")
    bob = _signed_in(server, "bob")
    for form in ({"answer": "accept"}, {"answer": "accept", "csrf": "guess"}):
        answer = bob.post(f"interactions/{interaction_id}/answer", data=form)
        assert answer.status_code == 403
        assert "out of date" in answer.text
    carol = _signed_in(server, "carol")  # another session's token does not fit either
    token = _csrf(carol, "")
    answer = bob.post(
        f"interactions/{interaction_id}/answer", data={"answer": "accept", "csrf": token}
    )
    assert answer.status_code == 403
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.INVITED
    token = _csrf(bob, "")
    answer = bob.post(
        f"interactions/{interaction_id}/answer", data={"answer": "accept", "csrf": token}
    )
    assert answer.status_code == 303
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.CONFIRMED


def test_only_the_owner_changes_links_and_rooms(server: RunningServer) -> None:
    interaction_id = _meeting(server.world, "bob")
    bob = _signed_in(server, "bob")
    token = _csrf(bob, f"interactions/{interaction_id}")
    for action, form in (
        ("link", {"login": "carol", "status": "confirmed"}),
        ("unlink", {"login": "bob", "confirm": "yes"}),
        ("book", {"room": "everest"}),
    ):
        answer = bob.post(f"interactions/{interaction_id}/{action}", data={**form, "csrf": token})
        assert answer.status_code == 403, action
    with server.world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        assert [k.user.login for k in interaction.links] == ["bob"]
        assert not interaction.bookings


def test_an_unrelated_user_does_not_see_the_interaction(server: RunningServer) -> None:
    interaction_id = _meeting(server.world, "bob")
    carol = _signed_in(server, "carol")
    answer = carol.get(f"interactions/{interaction_id}")
    assert answer.status_code == 403
    assert "Pricing" not in answer.text


def test_administration_is_for_administrators(server: RunningServer) -> None:
    bob = _signed_in(server, "bob")
    assert bob.get("admin").status_code == 403
    token = _csrf(bob, "")
    answer = bob.post("admin/multi-user", data={"state": "off", "csrf": token})
    assert answer.status_code == 403
    with server.world.database.session() as session:
        assert InteractionService(session).multi_user_enabled()


def test_the_login_never_sends_anyone_to_another_site(server: RunningServer) -> None:
    for target in (
        "https://evil.example/",
        "//evil.example/",
        "/.bridge/crm//evil.example",
        "/.bridge/crm/\r\nSet-Cookie: caldav_bridge_session=fixed",
        "/.bridge/crm/%0d%0aX-Evil: 1",
    ):
        client = httpx.Client(base_url=_pages(server))
        answer = _log_in(client, {"login": "bob", "password": "bob", "next": target})
        assert answer.headers["Location"] == "/.bridge/crm/", target
        assert "X-Evil" not in answer.headers
        assert answer.headers["Set-Cookie"].count("caldav_bridge_session=") == 1


def test_bad_input_gets_a_reason_and_changes_nothing(server: RunningServer) -> None:
    interaction_id = _meeting(server.world)
    alice = _signed_in(server, "alice")
    answer = alice.get("interactions", params={"from": "2030-02-30"})
    assert answer.status_code == 400
    assert "is not a date" in answer.text
    token = _csrf(alice, f"interactions/{interaction_id}")
    answer = alice.post(
        f"interactions/{interaction_id}/link", data={"login": "nobody", "csrf": token}
    )
    assert answer.status_code == 404
    answer = alice.post(
        "admin/add-user", data={"login": "x y", "name": "X", "password": "short", "csrf": token}
    )
    assert answer.status_code == 400
    with server.world.database.session() as session:
        assert not InteractionService(session).get(interaction_id).links
        assert Directory(session).find_user("x y") is None


def test_logging_out_ends_the_session_even_for_a_copied_cookie(server: RunningServer) -> None:
    bob = _signed_in(server, "bob")
    copied = bob.cookies[COOKIE]
    answer = bob.post("logout", data={"csrf": _csrf(bob, "")})
    assert answer.status_code == 303
    assert "Max-Age=0" in answer.headers["Set-Cookie"]
    assert bob.get("").status_code == 303
    assert httpx.get(_pages(server), cookies={COOKIE: copied}).status_code == 303


def test_a_login_posted_from_another_site_is_refused(server: RunningServer) -> None:
    """Login CSRF: without the check value of a login form opened in this browser."""
    answer = httpx.post(f"{_pages(server)}login", data={"login": "bob", "password": "bob"})
    assert answer.status_code == 403
    assert f"{COOKIE}=" not in answer.headers.get("Set-Cookie", "")


def test_bad_values_in_the_address_or_the_form_get_a_4xx(server: RunningServer) -> None:
    interaction_id = _meeting(server.world)
    alice = _signed_in(server, "alice")
    assert alice.get("interactions/99999999999999999999999").status_code == 404
    token = _csrf(alice, f"interactions/{interaction_id}")
    answer = alice.post(
        f"interactions/{interaction_id}/link",
        data={"login": "bob", "status": "maybe", "csrf": token},
    )
    assert answer.status_code == 400


def test_a_new_interaction_with_bad_times_is_refused_and_nothing_is_made(
    server: RunningServer,
) -> None:
    alice = _signed_in(server, "alice")
    token = _csrf(alice, "interactions/new")
    for form, reason in (
        ({"subject": "X", "start": "soon"}, "is not a date"),
        ({"subject": "X", "start": "2030-01-07T10:00", "end": "2030-01-07"}, "must be a time"),
        ({"subject": "X", "start": "2030-01-07T10:00", "end": "2030-01-07T09:00"}, "end"),
        ({"subject": "", "start": "2030-01-07T10:00"}, "subject"),
    ):
        answer = alice.post("interactions/new", data={**form, "csrf": token})
        assert answer.status_code == 400, form
        assert reason in answer.text.lower(), (form, answer.text[-500:])
        assert 'id="editor"' in answer.text  # the form again, with what was typed
    with server.world.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Interaction)) == 0


def test_only_the_owner_changes_or_cancels_an_interaction(server: RunningServer) -> None:
    interaction_id = _meeting(server.world, "bob")
    bob = _signed_in(server, "bob")
    assert bob.get(f"interactions/{interaction_id}/edit").status_code == 403
    token = _csrf(bob, "")
    form = {"subject": "Hijacked", "start": "2030-01-07T10:00", "csrf": token}
    assert bob.post(f"interactions/{interaction_id}/edit", data=form).status_code == 403
    answer = bob.post(
        f"interactions/{interaction_id}/cancel", data={"confirm": "yes", "csrf": token}
    )
    assert answer.status_code == 403
    with server.world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        assert (interaction.subject, interaction.cancelled) == ("Pricing", False)

"""The administration rules (``domain.administration``), driven through every channel that
reaches them: the command (the operator at the console), the CRM's administration page over
HTTP as the logged-in user, and CalDAV's login where a rule changes who gets in. Each test
asks the domain for its decision first, then sees every channel give it: the same outcome, the
same message, the HTTP status ``status_of`` gives, exit code 2 and one line for the command.

Not every rule has every channel: the operator is no user, so "yourself" never applies to the
command; the administration page has no control for the administrator flag, and an
administrator acting there is one, so the last active administrator can only be taken away
from the console (where it is refused)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from caldav_bridge.domain.administration import OPERATOR, Administration, Operator
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import BridgeError, LastAdministrator, status_of
from caldav_bridge.domain.passwords import check_new_password
from tests.cli_run import Run, ok, refused, runner
from tests.conftest import RunningServer, World
from tests.helpers import crm_pages
from tests.test_crm_pages import _log_in

PROPFIND = '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'


@pytest.fixture
def cli(
    server: RunningServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """The command on the running server's database."""
    return runner(server.world.database.url, capsys, monkeypatch)


def _decision(action: Callable[[], object]) -> BridgeError:
    """The domain's refusal of ``action``."""
    with pytest.raises(BridgeError) as refusal:
        action()
    return refusal.value


def _as(
    server: RunningServer, actor: str | Operator, action: Callable[[Administration], object]
) -> BridgeError:
    """The domain's refusal of ``action`` asked by ``actor``, in a transaction rolled back."""
    with server.world.database.session() as session:
        who = actor if isinstance(actor, Operator) else Directory(session).user(actor)
        return _decision(lambda: action(Administration(session, who)))


def _page_refuses(answer: httpx.Response, refusal: BridgeError) -> None:
    assert answer.status_code == status_of(refusal), answer.text[-500:]
    assert str(refusal) in answer.text


def _caldav(server: RunningServer, login: str, password: str | None = None) -> int:
    """The status of a PROPFIND on ``login``'s home with their password (default: the login)."""
    return httpx.request(
        "PROPFIND",
        f"{server.url}{login}/",
        content=PROPFIND,
        headers={"Depth": "0"},
        auth=(login, password or login),
        timeout=30,
    ).status_code


def _user(server: RunningServer, login: str) -> tuple[bool, bool] | None:
    """(active, administrator) of ``login``, or None when there is no such user."""
    with server.world.database.session() as session:
        user = Directory(session).find_user(login)
        return None if user is None else (user.active, user.is_admin)


# ------------------------------------------------------------------ who administers


ADMIN_FORMS = {
    "multi-user": {"state": "off"},
    "add-user": {"login": "eve", "name": "Eve", "password": "long enough"},
    "active": {"login": "carol", "active": "no"},
    "add-room": {"slug": "annapurna", "name": "Annapurna", "email": "annapurna@example.com"},
    "feed": {"login": "carol", "do": "rotate"},
}


def test_only_administrators_administer_and_the_operator_does(
    server: RunningServer, cli: Callable[..., Run]
) -> None:
    refusal = _as(server, "bob", lambda a: a.set_multi_user(False))
    for action in (
        lambda a: a.add_user("eve", "Eve", [], "long enough"),
        lambda a: a.set_active("carol", False),
        lambda a: a.set_password("carol", "long enough"),
        lambda a: a.add_resource("annapurna", "Annapurna", "annapurna@example.com"),
        lambda a: a.set_resource_active("everest", False),
        lambda a: a.set_administrator("bob", True),
    ):
        assert str(_as(server, "bob", action)) == str(refusal)
    bob, token = crm_pages(server.url, "bob")
    _page_refuses(bob.get("admin"), refusal)
    for name, form in ADMIN_FORMS.items():
        _page_refuses(bob.post(f"admin/{name}", data={**form, "csrf": token}), refusal)
    assert _user(server, "eve") is None
    assert _user(server, "carol") == (True, False)
    assert "multi-user interactions are on" in ok(cli("multi-user", "status"))
    # The operator administers (alice does too, on the page: the tests below).
    assert "off" in ok(cli("multi-user", "off"))
    ok(cli("resource", "add", "annapurna", "--name", "Annapurna", "--email", "a@example.com"))
    assert "annapurna deactivated" in ok(cli("resource", "deactivate", "annapurna"))


def test_a_user_sets_their_own_password_and_only_an_administrator_anothers(
    server: RunningServer,
) -> None:
    """No page offers users their own password yet: the domain decides it for when one does."""
    refusal = _as(server, "bob", lambda a: a.set_password("carol", "long enough"))
    assert (str(refusal), status_of(refusal)) == ("administration is for administrators", 403)
    with server.world.database.session(write=True) as session:
        bob = Directory(session).user("bob")
        Administration(session, bob).set_password("bob", "bob's own!")
    assert _caldav(server, "bob", "bob's own!") == 207
    assert _caldav(server, "carol") == 207


def test_the_multi_user_switch_is_the_same_switch_on_the_page_and_the_command(
    server: RunningServer, cli: Callable[..., Run]
) -> None:
    alice, token = crm_pages(server.url, "alice")
    assert "multi-user interactions are off" in ok(cli("multi-user", "off"))
    assert "<strong>off</strong>" in alice.get("admin").text
    answer = alice.post("admin/multi-user", data={"state": "on", "csrf": token})
    assert answer.status_code == 303
    assert "multi-user interactions are on" in ok(cli("multi-user", "status"))


# ------------------------------------------------------------------ passwords


@pytest.mark.parametrize("password", ["", "short", "7 chars"])
def test_one_password_rule_for_the_command_and_the_pages(
    server: RunningServer, cli: Callable[..., Run], password: str
) -> None:
    refusal = _decision(lambda: check_new_password(password))
    assert str(refusal) == "a password has at least 8 characters"
    assert str(_as(server, OPERATOR, lambda a: a.set_password("bob", password))) == str(refusal)
    stdin = f"{password}\n"
    refused(
        cli("user", "add", "eve", "--name", "Eve", "--password-stdin", stdin=stdin), str(refusal)
    )
    refused(cli("user", "passwd", "bob", "--password-stdin", stdin=stdin), str(refusal))
    alice, token = crm_pages(server.url, "alice")
    form = {"login": "eve", "name": "Eve", "password": password, "csrf": token}
    _page_refuses(alice.post("admin/add-user", data=form), refusal)
    assert _user(server, "eve") is None
    assert _caldav(server, "bob") == 207  # his password is what it was


def test_a_password_of_eight_characters_is_taken_everywhere(
    server: RunningServer, cli: Callable[..., Run]
) -> None:
    assert check_new_password("8 chars!") == "8 chars!"
    ok(cli("user", "add", "eve", "--name", "Eve", "--password-stdin", stdin="8 chars!\n"))
    ok(cli("user", "passwd", "bob", "--password-stdin", stdin="bob's new\n"))
    alice, token = crm_pages(server.url, "alice")
    form = {"login": "frank", "name": "Frank", "password": "frank's!", "csrf": token}
    assert alice.post("admin/add-user", data=form).status_code == 303
    for login, password in (("eve", "8 chars!"), ("bob", "bob's new"), ("frank", "frank's!")):
        assert _caldav(server, login, password) == 207, login
        page = _log_in(
            httpx.Client(base_url=f"{server.url}.bridge/crm/"),
            {"login": login, "password": password},
        )
        assert page.status_code == 303, login
    assert _caldav(server, "bob", "bob") == 401  # the old one no longer


# ------------------------------------------------------------------ (de)activation


def test_nobody_deactivates_themselves(server: RunningServer) -> None:
    refusal = _as(server, "alice", lambda a: a.set_active("alice", False))
    assert str(refusal) == "you cannot deactivate yourself"
    alice, token = crm_pages(server.url, "alice")
    for login in ("alice", "ALICE", " alice"):  # the user, however the form spells the login
        form = {"login": login, "active": "no", "csrf": token}
        _page_refuses(alice.post("admin/active", data=form), refusal)
    assert _user(server, "alice") == (True, True)
    assert _caldav(server, "alice") == 207
    assert alice.get("admin").status_code == 200


def test_a_deactivated_user_is_refused_on_every_channel_until_activated_again(
    server: RunningServer, cli: Callable[..., Run]
) -> None:
    assert _caldav(server, "dave") == 207
    assert "user dave deactivated" in ok(cli("user", "deactivate", "dave"))
    assert _caldav(server, "dave") == 401
    alice, token = crm_pages(server.url, "alice")
    page = httpx.Client(base_url=f"{server.url}.bridge/crm/")
    assert _log_in(page, {"login": "dave", "password": "dave"}).status_code == 401
    form = {"login": "dave", "active": "yes", "csrf": token}
    assert alice.post("admin/active", data=form).status_code == 303
    assert _caldav(server, "dave") == 207
    # And the other way round: the page deactivates, the command activates.
    form = {"login": "carol", "active": "no", "csrf": token}
    assert alice.post("admin/active", data=form).status_code == 303
    assert _caldav(server, "carol") == 401
    assert "user carol activated" in ok(cli("user", "activate", "carol"))
    assert _caldav(server, "carol") == 207


# ------------------------------------------------------------------ the administrators


def test_the_last_active_administrator_stays_one(
    server: RunningServer, cli: Callable[..., Run]
) -> None:
    deactivate = _as(server, OPERATOR, lambda a: a.set_active("alice", False))
    demote = _as(server, OPERATOR, lambda a: a.set_administrator("alice", False))
    message = "alice is the last active administrator: make another user an administrator first"
    assert str(deactivate) == str(demote) == message
    refused(cli("user", "deactivate", "alice"), message)
    refused(cli("user", "admin", "alice", "off"), message)
    assert _user(server, "alice") == (True, True)
    assert _caldav(server, "alice") == 207
    # With a second administrator, either may go; the one left is the last again.
    assert "bob is an administrator" in ok(cli("user", "admin", "bob", "on"))
    bob, token = crm_pages(server.url, "bob")
    assert bob.get("admin").status_code == 200
    form = {"login": "alice", "active": "no", "csrf": token}
    assert bob.post("admin/active", data=form).status_code == 303
    assert _caldav(server, "alice") == 401
    refused(cli("user", "deactivate", "bob"), "bob is the last active administrator")
    refused(cli("user", "admin", "bob", "off"), "bob is the last active administrator")
    # An inactive administrator is no administrator: alice is taken away without a refusal.
    assert "alice is no longer" in ok(cli("user", "admin", "alice", "off"))


def test_two_administrators_taken_away_at_once_leave_one(world: World) -> None:
    """The second change waits for the first (the administrators' rows are locked; SQLite's
    write lock), then sees it: it is refused, not both carried out."""
    with world.database.session(write=True) as session:
        Administration(session, OPERATOR).set_administrator("bob", True)
    first_checked, outcome = threading.Event(), []

    def take_bob_away() -> None:
        first_checked.wait(30)
        try:
            with world.database.session(write=True) as session:
                Administration(session, OPERATOR).set_active("bob", False)
            outcome.append("bob deactivated")
        except LastAdministrator as refusal:
            outcome.append(str(refusal))

    second = threading.Thread(target=take_bob_away)
    second.start()
    with world.database.session(write=True) as session:
        Administration(session, OPERATOR).set_active("alice", False)
        first_checked.set()
        time.sleep(0.5)  # the second change starts meanwhile, and waits
    second.join(60)
    assert outcome == [
        "bob is the last active administrator: make another user an administrator first"
    ]


def test_nobody_removes_their_own_administrator_flag(server: RunningServer) -> None:
    """The page has no control for the flag yet; the domain decides it for when it has."""
    with server.world.database.session(write=True) as session:
        Administration(session, OPERATOR).set_administrator("bob", True)
    refusal = _as(server, "alice", lambda a: a.set_administrator("alice", False))
    assert str(refusal) == "you cannot remove your own administrator rights"
    assert status_of(refusal) == 403
    with server.world.database.session(write=True) as session:
        alice = Directory(session).user("alice")
        Administration(session, alice).set_administrator("bob", False)  # another: yes
    assert _user(server, "bob") == (True, False)

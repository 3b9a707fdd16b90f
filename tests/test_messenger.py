"""The in-CRM messenger: each user's notices over HTTP (JSON) and the CLI, marked read."""

from __future__ import annotations

import httpx
import pytest

from caldav_bridge.cli.commands import main
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from tests.conftest import RunningServer
from tests.helpers import create


def _invite(server: RunningServer, *logins: str) -> int:
    with server.world.database.session(write=True) as session:
        service, users = (
            InteractionService(session, "https://crm.example"),
            server.world.users(session),
        )
        interaction = create(service, users["alice"], "Quarterly planning")
        for login in logins:
            service.link(users["alice"], interaction, users[login], LinkStatus.INVITED)
        return interaction.id


def test_a_user_lists_their_notices_with_the_link_and_marks_them_read(
    server: RunningServer,
) -> None:
    interaction_id = _invite(server, "bob", "carol")
    messages = f"{server.url}.bridge/messages"
    listed = httpx.get(messages, auth=("bob", "bob"))
    assert listed.status_code == 200
    (notice,) = listed.json()
    assert notice["subject"] == "Invitation: Quarterly planning"
    assert notice["link"].startswith(
        f"https://crm.example/.bridge/interactions/{interaction_id}?token="
    )
    assert notice["read"] is False
    carol_id = httpx.get(messages, auth=("carol", "carol")).json()[0]["id"]
    marked = httpx.post(
        f"{messages}/read", json={"ids": [notice["id"], carol_id]}, auth=("bob", "bob")
    )
    assert marked.json() == {"marked": 1}  # carol's notice is not bob's to mark
    assert httpx.get(f"{messages}?unread=1", auth=("bob", "bob")).json() == []
    assert httpx.get(f"{messages}?unread=1", auth=("carol", "carol")).json() != []


@pytest.mark.parametrize("body", [b"not json", b'{"ids": "x"}', b"[1, 2]"])
def test_bad_requests_to_the_messenger_are_refused_with_a_reason(
    server: RunningServer, body: bytes
) -> None:
    answer = httpx.post(
        f"{server.url}.bridge/messages/read",
        content=body,
        headers={"Content-Type": "application/json"},
        auth=("bob", "bob"),
    )
    assert answer.status_code == 400
    assert answer.json()["error"]


def test_the_messenger_needs_a_login(server: RunningServer) -> None:
    answer = httpx.get(f"{server.url}.bridge/messages")
    assert answer.status_code == 401
    assert "WWW-Authenticate" in answer.headers


def test_the_cli_lists_and_marks_a_users_notices(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _invite(server, "bob")
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", server.world.database.url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)
    assert main(["messages", "bob", "--unread", "--mark-read"]) == 0
    out = capsys.readouterr().out
    assert "Invitation: Quarterly planning" in out
    assert "1 marked read" in out
    assert main(["messages", "bob", "--unread"]) == 0
    assert "(none)" in capsys.readouterr().out
    assert main(["messages", "nobody"]) == 2

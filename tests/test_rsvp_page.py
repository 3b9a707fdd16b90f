"""The RSVP page: the notice's link opens the interaction; Accept and Decline answer by POST."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from caldav_bridge.cli.commands import main
from caldav_bridge.domain import tokens
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Channel, LinkStatus, NotificationKind, OutboxMessage
from tests.conftest import RunningServer, World
from tests.helpers import create, link_status


def _invite(world: World, *logins: str, room: bool = True) -> int:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"], "Budget review <2027>")
        for login in logins:
            service.link(users["alice"], interaction, users[login], LinkStatus.INVITED)
        if room:
            service.book(users["alice"], interaction, world.rooms(session)["everest"])
        return interaction.id


def _link(server: RunningServer, login: str, interaction_id: int) -> str:
    """The page's address as the user's messenger notice gives it, on the test server."""
    with server.world.database.session() as session:
        user = server.world.users(session)[login]
        link = session.scalars(
            select(OutboxMessage.link).where(
                OutboxMessage.channel == Channel.MESSENGER,
                OutboxMessage.recipient_user_id == user.id,
                OutboxMessage.interaction_id == interaction_id,
            )
        ).first()
    assert link is not None
    parts = urlsplit(link)
    return f"{server.url.rstrip('/')}{parts.path}?{parts.query}"


def _outbox_size(world: World) -> int:
    with world.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def _token(url: str) -> str:
    return urlsplit(url).query.removeprefix("token=")


def test_opening_the_link_shows_the_interaction_and_changes_nothing(
    server: RunningServer,
) -> None:
    interaction_id = _invite(server.world, "bob", "carol")
    before = _outbox_size(server.world)
    page = httpx.get(_link(server, "bob", interaction_id))
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    html = page.text
    assert "Budget review &lt;2027&gt;" in html  # escaped
    assert "Alice Martin" in html
    assert "Bob Dupont (you)" in html
    assert "Carol Nguyễn" in html
    assert "Everest room" in html
    assert "(Europe/Paris)" in html  # bob's time zone
    assert 'value="accept"' in html
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.INVITED
    assert _outbox_size(server.world) == before


def test_accepting_confirms_and_tells_the_owner_once(server: RunningServer) -> None:
    interaction_id = _invite(server.world, "bob")
    url = _link(server, "bob", interaction_id)
    form = {"token": _token(url), "answer": "accept"}
    answered = httpx.post(url.split("?")[0], data=form)
    assert answered.status_code == 303
    assert "answered=1" in answered.headers["Location"]
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.CONFIRMED
    with server.world.database.session() as session:
        alice = server.world.users(session)["alice"]
        told = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.recipient_user_id == alice.id,
                OutboxMessage.kind == NotificationKind.REPLY,
            )
        ).all()
    assert {row.channel for row in told} == {Channel.MESSENGER, Channel.EMAIL}
    before = _outbox_size(server.world)
    again = httpx.post(url.split("?")[0], data=form)  # a second click: harmless
    assert again.status_code == 303
    assert _outbox_size(server.world) == before
    page = httpx.get(f"{server.url.rstrip('/')}{answered.headers['Location']}")
    assert "Your answer is recorded: Confirmed" in page.text


def test_declining_from_the_page_declines(server: RunningServer) -> None:
    interaction_id = _invite(server.world, "bob")
    url = _link(server, "bob", interaction_id)
    httpx.post(url.split("?")[0], data={"token": _token(url), "answer": "decline"})
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.DECLINED


@pytest.mark.parametrize(
    "token",
    ["", "2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "garbage", "99999.x", "٣.abc"],
)
def test_a_missing_or_forged_token_is_refused_and_changes_nothing(
    server: RunningServer, token: str
) -> None:
    interaction_id = _invite(server.world, "bob")
    base = f"{server.url.rstrip('/')}/.bridge/interactions/{interaction_id}"
    assert httpx.get(base, params={"token": token}).status_code == 403
    refused = httpx.post(base, data={"token": token, "answer": "accept"})
    assert refused.status_code == 403
    assert "does not work" in refused.text
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.INVITED


def test_a_token_answers_only_for_its_user_and_its_interaction(server: RunningServer) -> None:
    first = _invite(server.world, "bob", "carol")
    second = _invite(server.world, "bob", room=False)
    bobs = _token(_link(server, "bob", first))
    base = f"{server.url.rstrip('/')}/.bridge/interactions"
    # bob's token of the first interaction does not open the second one
    other = httpx.post(f"{base}/{second}", data={"token": bobs, "answer": "accept"})
    assert other.status_code == 403
    assert link_status(server.world, second, "bob") is LinkStatus.INVITED
    # carol's user id with bob's signature: refused
    with server.world.database.session() as session:
        carol_id = server.world.users(session)["carol"].id
    forged = f"{carol_id}.{bobs.split('.', 1)[1]}"
    assert (
        httpx.post(f"{base}/{first}", data={"token": forged, "answer": "accept"}).status_code == 403
    )
    assert link_status(server.world, first, "carol") is LinkStatus.INVITED


def test_revoked_links_stop_working(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    interaction_id = _invite(server.world, "bob")
    url = _link(server, "bob", interaction_id)
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", server.world.database.url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)
    assert main(["rsvp-revoke", "bob"]) == 0
    assert httpx.get(url).status_code == 403
    refused = httpx.post(url.split("?")[0], data={"token": _token(url), "answer": "accept"})
    assert refused.status_code == 403
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.INVITED
    with server.world.database.session() as session:  # a new link works again
        bob = server.world.users(session)["bob"]
        fresh = tokens.rsvp_token(session, bob, interaction_id)
    assert httpx.get(url.split("?")[0], params={"token": fresh}).status_code == 200


def test_a_cancelled_interaction_cannot_be_answered(server: RunningServer) -> None:
    interaction_id = _invite(server.world, "bob")
    url = _link(server, "bob", interaction_id)
    with server.world.database.session(write=True) as session:
        service = InteractionService(session)
        interaction = service.get(interaction_id)
        service.cancel(interaction.owner, interaction)
    page = httpx.get(url)
    assert "This interaction was cancelled" in page.text
    assert 'value="accept"' not in page.text
    refused = httpx.post(url.split("?")[0], data={"token": _token(url), "answer": "accept"})
    assert refused.status_code == 409
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.INVITED


def test_a_removed_user_can_no_longer_answer(server: RunningServer) -> None:
    interaction_id = _invite(server.world, "bob")
    url = _link(server, "bob", interaction_id)
    with server.world.database.session(write=True) as session:
        service, users = InteractionService(session), server.world.users(session)
        service.unlink(users["alice"], service.get(interaction_id), users["bob"])
    refused = httpx.post(url.split("?")[0], data={"token": _token(url), "answer": "accept"})
    assert refused.status_code == 403
    assert "not among" in refused.text
    shown = httpx.get(url)  # nor does the old link show the interaction any more
    assert shown.status_code == 403
    assert "Budget review" not in shown.text


def test_bad_requests_get_a_reason(server: RunningServer) -> None:
    interaction_id = _invite(server.world, "bob")
    url = _link(server, "bob", interaction_id)
    page = url.split("?")[0]
    assert httpx.post(page, data={"token": _token(url), "answer": "maybe"}).status_code == 400
    huge = httpx.post(page, data={"token": _token(url), "answer": "accept", "x": "y" * 20_000})
    assert huge.status_code == 413
    put = httpx.put(page, content=b"x")  # not a page's method (nor CalDAV's, under /.bridge/)
    assert put.status_code == 405
    assert put.headers["Allow"] == "GET, HEAD, POST"
    assert "PUT" in put.json()["error"]
    base = f"{server.url.rstrip('/')}/.bridge/interactions"
    assert httpx.get(f"{base}/999999", params={"token": _token(url)}).status_code == 404
    assert httpx.get(f"{base}/not-a-number").status_code == 404
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.INVITED

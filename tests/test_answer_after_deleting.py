"""A user who declined by deleting the event and then accepts (or answers tentatively) on any
channel finds it back in their calendar, and their client's sync says so."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from caldav_bridge.cli.commands import main
from caldav_bridge.config import ImipSettings
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Channel, LinkStatus, OutboxMessage
from caldav_bridge.mail import replies
from tests.conftest import RunningServer
from tests.helpers import RELAY, crm_pages, event_text, link_status, reply_mail

D = "DAV:"


def _meeting(client: httpx.Client) -> str:
    uid = f"{uuid.uuid4()}"
    text = event_text(
        uid,
        "ORGANIZER:mailto:alice@example.com",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        summary="Budget",
    )
    put = client.put(
        f"/alice/interactions/{uid}.ics", content=text, headers={"Content-Type": "text/calendar"}
    )
    assert put.status_code == 201, put.text
    return uid


def _sync(client: httpx.Client, token: str) -> tuple[str, list[str]]:
    body = (
        '<sync-collection xmlns="DAV:"><sync-token>' + token + "</sync-token>"
        "<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"
    )
    answer = client.request("REPORT", "/bob/interactions/", content=body)
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)
    present = [
        r.findtext(f"{{{D}}}href") or ""
        for r in root.iter(f"{{{D}}}response")
        if r.find(f"{{{D}}}propstat") is not None
    ]
    return root.findtext(f"{{{D}}}sync-token") or "", present


def _interaction_id(server: RunningServer, uid: str) -> int:
    with server.world.database.session() as session:
        found = InteractionService(session).find_by_uid(uid)
        assert found is not None
        return found.id


def _by_rsvp(server: RunningServer, uid: str, bob: httpx.Client) -> None:
    interaction_id = _interaction_id(server, uid)
    with server.world.database.session() as session:
        bob_id = server.world.users(session)["bob"].id
        link = session.scalars(
            select(OutboxMessage.link).where(
                OutboxMessage.channel == Channel.MESSENGER,
                OutboxMessage.recipient_user_id == bob_id,
                OutboxMessage.interaction_id == interaction_id,
            )
        ).first()
    assert link is not None
    parts = urlsplit(link)
    url = f"{server.url.rstrip('/')}{parts.path}"
    token = parts.query.removeprefix("token=")
    assert httpx.get(f"{url}?{parts.query}").status_code == 200  # the page still opens
    assert httpx.post(url, data={"token": token, "answer": "accept"}).status_code == 303


def _by_cli(server: RunningServer, uid: str, bob: httpx.Client) -> None:
    interaction_id = _interaction_id(server, uid)
    answer = ["answer", str(interaction_id), "bob", "tentative"]
    assert main(["--database", server.world.database.url, *answer]) == 0


def _by_crm_page(server: RunningServer, uid: str, bob: httpx.Client) -> None:
    pages, csrf = crm_pages(server.url, "bob")
    answered = pages.post(
        f"interactions/{_interaction_id(server, uid)}/answer",
        data={"answer": "accept", "csrf": csrf},
    )
    assert answered.status_code == 303, answered.text


def _by_caldav(server: RunningServer, uid: str, bob: httpx.Client) -> None:
    with httpx.Client(base_url=server.url, auth=("alice", "alice")) as alice:
        text = alice.get(f"/alice/interactions/{uid}.ics").text
    accepted = text.replace("PARTSTAT=DECLINED", "PARTSTAT=ACCEPTED")
    put = bob.put(
        f"/bob/interactions/{uid}.ics", content=accepted, headers={"Content-Type": "text/calendar"}
    )
    assert put.status_code in (201, 204), put.text


def _by_email(server: RunningServer, uid: str, bob: httpx.Client) -> None:
    """Bob's mail client answering the emailed invitation (an iTIP REPLY, iMIP in)."""
    raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
    with server.world.database.session(write=True) as session:
        trusting = ImipSettings(trusted_authserv_ids=frozenset({RELAY}))
        outcome = replies.receive(InteractionService(session), raw, trusting)
    assert "bob" in outcome.reason, outcome.reason


@pytest.mark.parametrize("channel", [_by_rsvp, _by_cli, _by_crm_page, _by_caldav, _by_email])
def test_accepting_after_deleting_brings_the_event_back(
    server: RunningServer, channel: Callable[[RunningServer, str, httpx.Client], None]
) -> None:
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        uid = _meeting(alice)
    with httpx.Client(base_url=server.url, auth=("bob", "bob"), timeout=30) as bob:
        path = f"/bob/interactions/{uid}.ics"
        token, _ = _sync(bob, "")
        assert bob.delete(path).status_code in (200, 204)
        assert bob.get(path).status_code == 404
        token, _ = _sync(bob, token)
        channel(server, uid, bob)
        assert bob.get(path).status_code == 200
        _, changed = _sync(bob, token)
        assert any(href.endswith(f"/{uid}.ics") for href in changed)
    status = link_status(server.world, _interaction_id(server, uid), "bob")
    assert status is (LinkStatus.INVITED if channel is _by_cli else LinkStatus.CONFIRMED)


def test_deleting_a_meeting_that_took_place_takes_it_out_and_keeps_the_answer(
    server: RunningServer,
) -> None:
    with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=30) as alice:
        uid = _meeting(alice)
    interaction_id = _interaction_id(server, uid)
    url = server.world.database.url
    assert main(["--database", url, "answer", str(interaction_id), "bob", "accept"]) == 0
    assert main(["--database", url, "interaction", "done", str(interaction_id)]) == 0
    with httpx.Client(base_url=server.url, auth=("bob", "bob"), timeout=30) as bob:
        path = f"/bob/interactions/{uid}.ics"
        token, _ = _sync(bob, "")
        deleted = bob.delete(path)
        assert deleted.status_code in (200, 204), deleted.text
        assert bob.get(path).status_code == 404
        answer = bob.request(
            "REPORT",
            "/bob/interactions/",
            content=(
                '<sync-collection xmlns="DAV:"><sync-token>' + token + "</sync-token>"
                "<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"
            ),
        )
        gone = [
            r.findtext(f"{{{D}}}href") or ""
            for r in ET.fromstring(answer.content).iter(f"{{{D}}}response")
            if r.findtext(f"{{{D}}}status", "").endswith("404 Not Found")
        ]
        assert any(href.endswith(f"/{uid}.ics") for href in gone), answer.text
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.CONFIRMED

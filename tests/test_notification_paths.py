"""Every way an invitation travels, end to end, with the server as a user runs it
(``caldav-bridge serve --deliver`` in its own process, a real SMTP server, a real browser):
linking a user sends a messenger notice and an email invitation; Accept on the RSVP page and an
emailed reply both confirm and tell the owner; the feed shows what CalDAV shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from caldav_bridge.config import SmtpSettings
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.domain.passwords import hash_password
from tests.conftest import SCREENSHOTS, Inbox, World
from tests.helpers import RELAY, create, free_port, link_status, reply_mail, wait_for_http

BIN = Path(sys.executable).parent


class Bridge:
    """The server process and the CLI, sharing ``world``'s database and one configuration."""

    def __init__(self, world: World, tmp_path: Path, smtp: SmtpSettings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "bridge.conf"
        config.write_text(
            f"[server]\npublic_url = {self.url}\n"
            f"[smtp]\nhost = 127.0.0.1\nport = {smtp.port}\nsender = crm@example.com\n"
            f"[imip]\ntrusted_authserv_ids = {RELAY}\n"
        )
        self.env = {
            **os.environ,
            "CALDAV_BRIDGE_DATABASE_URL": world.database.url,
            "CALDAV_BRIDGE_CONFIG": str(config),
        }

    def cli(self, *argv: str, stdin: bytes = b"") -> str:
        done = subprocess.run(
            [str(BIN / "caldav-bridge"), *argv],
            env=self.env,
            input=stdin,
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()


@pytest.fixture
def bridge(world: World, tmp_path: Path, smtp: tuple[SmtpSettings, Inbox]) -> Iterator[Bridge]:
    with world.database.session(write=True) as session:
        for user in world.users(session).values():
            user.password_hash = hash_password(user.login)
    running = Bridge(world, tmp_path, smtp[0])
    command = ["serve", "--deliver", "--port", str(running.port), "--log-level", "warning"]
    process = subprocess.Popen(
        [str(BIN / "caldav-bridge"), *command],
        env=running.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"{running.url}/")
        yield running
    finally:
        process.terminate()
        process.wait(timeout=30)


def _mail_to(inbox: Inbox, address: str, subject: str) -> Message:
    """The email the delivery thread of the server sends, once it came."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for message in inbox.messages:
            if message["To"] == address and message["Subject"].startswith(subject):
                return message
        time.sleep(0.1)
    raise AssertionError(f"no email {subject!r} to {address}: {[m['To'] for m in inbox.messages]}")


def _text_and_itip(message: Message) -> tuple[str, Calendar]:
    parts = {part.get_content_type(): part for part in message.walk()}
    text = parts["text/plain"].get_content()  # type: ignore[attr-defined]
    return text, Calendar.from_ical(parts["text/calendar"].get_content())  # type: ignore[attr-defined]


def test_an_invitation_reaches_everyone_and_every_answer_path_confirms(
    world: World,
    bridge: Bridge,
    smtp: tuple[SmtpSettings, Inbox],
    browser: Any,
    database_url: str,
) -> None:
    inbox = smtp[1]
    with world.database.session(write=True) as session:
        users = world.users(session)
        meeting = create(InteractionService(session), users["alice"], "Kick-off")
        interaction_id, uid = meeting.id, meeting.uid
    bridge.cli("link", str(interaction_id), "bob")
    bridge.cli("link", str(interaction_id), "carol")

    # the messenger: bob's notice, through the JSON endpoint with bob's login
    notices = httpx.get(f"{bridge.url}/.bridge/messages", auth=("bob", "bob")).json()
    assert [n["subject"] for n in notices] == ["Invitation: Kick-off"]

    # the email invitation: iMIP with the link to the RSVP page
    invitation = _mail_to(inbox, "bob@example.com", "Invitation: Kick-off")
    text, itip = _text_and_itip(invitation)
    assert str(itip["METHOD"]) == "REQUEST"
    link = re.search(r"https?://\S+", text)
    assert link is not None
    assert link.group(0) == notices[0]["link"]

    # bob clicks Accept in his browser
    page = browser.new_page()
    try:
        page.goto(link.group(0))
        page.get_by_role("button", name="Accept").click()
        page.wait_for_url("**answered=1")
        assert page.locator("#your-status").inner_text() == "Confirmed"
        backend = database_url.split(":", maxsplit=1)[0].split("+", maxsplit=1)[0]
        page.screenshot(path=SCREENSHOTS / f"rsvp-from-email-{backend}.png", full_page=True)
    finally:
        page.close()
    assert link_status(world, interaction_id, "bob") is LinkStatus.CONFIRMED

    # carol answers from her mail program: its REPLY comes back through the mail server
    _mail_to(inbox, "carol@example.com", "Invitation: Kick-off")
    reply = reply_mail(uid, "carol@example.com", "carol@example.com", "ACCEPTED")
    assert "applied" in bridge.cli("imip-receive", stdin=reply)
    assert link_status(world, interaction_id, "carol") is LinkStatus.CONFIRMED

    # the owner is told both ways: messenger and an iTIP REPLY by email
    told = httpx.get(f"{bridge.url}/.bridge/messages", auth=("alice", "alice")).json()
    assert {n["subject"] for n in told} == {
        "Bob Dupont accepted: Kick-off",
        "Carol Nguyễn accepted: Kick-off",
    }
    answer = _mail_to(inbox, "alice@example.com", "Bob Dupont accepted")
    assert str(_text_and_itip(answer)[1]["METHOD"]) == "REPLY"

    # bob's feed, for a client without CalDAV, shows what his CalDAV calendar shows
    feed_url = bridge.cli("feed", "create", "bob").splitlines()[2].strip()
    feed = Calendar.from_ical(httpx.get(feed_url).content)
    assert [str(e["UID"]) for e in feed.events] == [uid]
    attendees = {str(a).lower(): a.params["PARTSTAT"] for a in feed.events[0]["ATTENDEE"]}
    assert attendees["mailto:bob@example.com"] == "ACCEPTED"
    assert attendees["mailto:carol@example.com"] == "ACCEPTED"

"""Delivering the outbox through a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar
from sqlalchemy import select

from caldav_bridge.cli.commands import main
from caldav_bridge.config import SmtpSettings
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Channel, LinkStatus, OutboxMessage, OutboxState, utcnow
from caldav_bridge.ical.mapping import Answer
from caldav_bridge.mail import delivery
from tests.conftest import Inbox, World
from tests.helpers import create


def _invite_bob(world: World) -> int:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session, "https://crm.example"), world.users(session)
        interaction = create(service, users["alice"], "Quarterly planning")
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        return interaction.id


def _rows(world: World) -> list[OutboxMessage]:
    with world.database.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_an_invitation_is_sent_as_imip_with_its_message_id(
    world: World, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    settings, inbox = smtp
    _invite_bob(world)
    done = delivery.deliver_due(world.database, settings)
    assert (done.sent, done.retrying, done.failed) == (2, 0, 0)  # messenger and email
    (message,) = inbox.messages
    row = next(r for r in _rows(world) if r.channel is Channel.EMAIL)
    assert message["Message-ID"] == row.message_id
    assert message["To"] == "bob@example.com"
    assert message["From"] == "crm@example.com"
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html", "text/calendar"]
    calendar_part = list(message.iter_parts())[2]
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_content_disposition() is None  # inline, not an attachment
    itip = Calendar.from_ical(calendar_part.get_content())
    assert str(itip["METHOD"]) == "REQUEST"
    event = itip.events[0]
    assert "ORGANIZER" in event
    assert "ATTENDEE" in event
    assert all(r.state is OutboxState.SENT for r in _rows(world))


def test_a_refused_delivery_is_retried_later_with_the_same_message_id(
    world: World, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    settings, inbox = smtp
    _invite_bob(world)
    inbox.refuse = 1
    first = delivery.deliver_due(world.database, settings)
    assert first.retrying == 1
    email_row = next(r for r in _rows(world) if r.channel is Channel.EMAIL)
    assert email_row.state is OutboxState.PENDING
    assert email_row.attempts == 1
    assert email_row.next_attempt_at > utcnow()
    assert delivery.deliver_due(world.database, settings).sent == 0  # not due yet
    later = delivery.deliver_due(
        world.database, settings, now=lambda: utcnow() + timedelta(minutes=2)
    )
    assert later.sent == 1
    (message,) = inbox.messages
    assert message["Message-ID"] == email_row.message_id


def test_a_crash_before_marking_sends_again_and_never_loses(
    world: World, smtp: tuple[SmtpSettings, Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, inbox = smtp
    _invite_bob(world)
    email_id = next(r.id for r in _rows(world) if r.channel is Channel.EMAIL)
    record = delivery._record

    def crash(database: Any, row_id: int, *rest: Any) -> None:
        if row_id == email_id:  # the worker dies after the server accepted the email
            raise KeyboardInterrupt
        record(database, row_id, *rest)

    monkeypatch.setattr(delivery, "_record", crash)
    with pytest.raises(KeyboardInterrupt):
        delivery.deliver_due(world.database, settings)
    monkeypatch.undo()
    assert next(r for r in _rows(world) if r.id == email_id).state is OutboxState.PENDING
    delivery.deliver_due(world.database, settings)
    ids = [m["Message-ID"] for m in inbox.messages]
    assert len(ids) == 2
    assert len(set(ids)) == 1  # the same message, once more


def test_cr_and_lf_in_a_subject_cannot_inject_headers(
    world: World, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    settings, inbox = smtp
    _invite_bob(world)
    with world.database.session(write=True) as session:
        for row in session.scalars(select(OutboxMessage)):
            row.subject = "Hello\r\nBcc: victim@example.com"
    delivery.deliver_due(world.database, settings)
    (message,) = inbox.messages
    assert message["Bcc"] is None
    assert message["Subject"] == "Hello Bcc: victim@example.com"


def test_cr_and_lf_in_an_attendee_name_cannot_inject_headers(
    world: World, smtp: tuple[SmtpSettings, Inbox]
) -> None:
    """A name, as the CRM stores it, reaches the owner's email subject when its user answers."""
    settings, inbox = smtp
    with world.database.session(write=True) as session:
        service, users = InteractionService(session, "https://crm.example"), world.users(session)
        users["bob"].display_name = "Bob\r\nBcc: victim@example.com\r\n"
        interaction = create(service, users["alice"], "Demo")
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        service.answer(users["bob"], interaction, Answer.ACCEPT)
    delivery.deliver_due(world.database, settings)
    (reply,) = [m for m in inbox.messages if m["To"] == "alice@example.com"]
    assert reply["Subject"] == "Bob Bcc: victim@example.com accepted: Demo"
    assert all(m["Bcc"] is None for m in inbox.messages)


def test_an_unreachable_server_leaves_everything_to_retry(world: World) -> None:
    _invite_bob(world)
    nowhere = SmtpSettings(host="127.0.0.1", port=1, timeout=2)
    done = delivery.deliver_due(world.database, nowhere)
    assert done.retrying == 1
    email_row = next(r for r in _rows(world) if r.channel is Channel.EMAIL)
    assert email_row.last_error


def test_the_worker_command_delivers_through_the_configured_server(
    world: World,
    smtp: tuple[SmtpSettings, Inbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, inbox = smtp
    _invite_bob(world)
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", world.database.url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)
    assert main(["worker", "--once"]) == 2
    assert "no mail server is configured" in capsys.readouterr().err
    config = tmp_path / "bridge.conf"
    config.write_text(
        f"[smtp]\nhost = 127.0.0.1\nport = {settings.port}\nsender = crm@example.com\n"
    )
    assert main(["--config", str(config), "worker", "--once"]) == 0
    assert "sent 2" in capsys.readouterr().out
    assert [m["To"] for m in inbox.messages] == ["bob@example.com"]

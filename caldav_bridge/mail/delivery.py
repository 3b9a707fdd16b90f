"""Delivering the outbox, at least once: messenger notices and iMIP email.

A row is marked sent only after the mail server accepted it; a crash in between means the
message is sent again, with the same Message-ID, never lost. A refused or failed delivery is
retried later (growing delays), and given up after the last try. One worker per database sends
each message once; more workers may send one twice (same Message-ID).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from caldav_bridge.config import SmtpSettings
from caldav_bridge.db import Database
from caldav_bridge.domain.models import Channel, OutboxMessage, OutboxState, utcnow
from caldav_bridge.mail.imip import email_for

logger = logging.getLogger("caldav_bridge.mail.delivery")

# The waits before each new try; after the last one the message is given up (failed).
RETRY_AFTER = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)


@dataclass
class Round:
    """What one pass over the due messages did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"sent {self.sent}, to retry {self.retrying}, given up {self.failed}"


def connect(smtp: SmtpSettings) -> smtplib.SMTP:
    """A logged-in connection to the configured mail server."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        if smtp.security == "starttls":
            client.starttls(context=context)
    if smtp.username:
        client.login(smtp.username, smtp.password)
    return client


def deliver_due(
    database: Database,
    smtp: SmtpSettings,
    limit: int = 100,
    now: Callable[[], datetime] = utcnow,
) -> Round:
    """Deliver the messages that are due, oldest first."""
    done = Round()
    with database.session() as session:
        due = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.next_attempt_at <= now(),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
        session.expunge_all()
    client: smtplib.SMTP | None = None
    try:
        for row in due:
            error = None
            if row.channel is Channel.EMAIL:
                try:
                    client = client or connect(smtp)
                    client.send_message(email_for(row, smtp.sender))
                except (smtplib.SMTPException, OSError, ValueError) as exc:
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    _closed(client)
                    client = None
            _record(database, row.id, error, now(), done)
    finally:
        _closed(client)
    return done


def run(
    database: Database,
    smtp: SmtpSettings,
    interval: float,
    stop: threading.Event,
    report: Callable[[Round], None],
) -> None:
    """Deliver what is due every ``interval`` seconds until ``stop`` is set. A pass that
    fails (the database unreachable) is logged and tried again at the next one."""
    while True:
        try:
            done = deliver_due(database, smtp)
        except OperationalError as exc:
            logger.warning("outbox delivery paused, the database is unavailable: %s", exc.orig)
        except Exception:  # the thread lives on: the next pass tries again
            logger.exception("outbox delivery failed; trying again in %g s", interval)
        else:
            if done.sent or done.retrying or done.failed:
                report(done)
        if stop.wait(interval):
            return


def _record(
    database: Database, row_id: int, error: str | None, moment: datetime, done: Round
) -> None:
    with database.session(write=True) as session:
        row = session.get(OutboxMessage, row_id)
        if row is None or row.state is not OutboxState.PENDING:
            return
        row.attempts += 1
        if error is None:
            row.state, row.sent_at, row.last_error = OutboxState.SENT, moment, None
            done.sent += 1
        elif row.attempts > len(RETRY_AFTER):
            row.state, row.last_error = OutboxState.FAILED, error
            done.failed += 1
        else:
            row.next_attempt_at = moment + RETRY_AFTER[row.attempts - 1]
            row.last_error = error
            done.retrying += 1


def _closed(client: smtplib.SMTP | None) -> None:
    if client is not None:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

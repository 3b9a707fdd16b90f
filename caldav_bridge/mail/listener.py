"""iMIP in over the network: an LMTP (or SMTP) listener, by aiosmtpd, in front of
``replies.receive``, for a mail server that hands replies on (Postfix's ``lmtp:`` transport,
or any MTA relaying to it).

What the mail server is told decides whether it retries: an applied or ignored reply is
accepted (250); a spoofed, unauthenticated or malformed one is refused for good (5xx, the
reason in one line); a database that cannot be reached, or a DKIM key that cannot be looked up
now, is a temporary failure (451), so the MTA keeps the message and tries again: no reply is
lost. With ``verify_dkim`` the listener checks DKIM signatures itself (``mail_auth``).
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope
from sqlalchemy.exc import OperationalError

from caldav_bridge.config import ImipSettings
from caldav_bridge.db import Database
from caldav_bridge.domain.errors import BridgeError, status_of
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.mail import replies
from caldav_bridge.mail.authentication import DnsFunction, TemporaryFailure

logger = logging.getLogger("caldav_bridge.mail.listener")

MAX_MESSAGE = 10_000_000


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:400]


class ReplyHandler:
    """aiosmtpd handler: each message received is one emailed iTIP REPLY to apply."""

    def __init__(
        self,
        database: Database,
        public_url: str,
        lmtp: bool,
        imip: ImipSettings,
        dnsfunc: DnsFunction | None = None,
    ) -> None:
        imip.require_proof_source()
        self.database, self.public_url, self.lmtp = database, public_url, lmtp
        self.imip, self.dnsfunc = imip, dnsfunc

    def apply(self, raw: bytes) -> str:
        """The SMTP status for one message, after applying it."""
        try:
            with self.database.session(write=True) as session:
                service = InteractionService(session, self.public_url)
                outcome = replies.receive(service, raw, self.imip, self.dnsfunc)
        except BridgeError as exc:  # spoofed, malformed, or answering a cancelled interaction
            logger.info("refused a message: %s", exc)
            if status_of(exc) == HTTPStatus.FORBIDDEN:  # the sender may not: a policy refusal
                return f"550 5.7.1 {_one_line(str(exc))}"
            return f"554 5.6.0 {_one_line(str(exc))}"
        except TemporaryFailure as exc:
            logger.warning("%s; the sender will retry", exc)
            return f"451 4.4.3 {_one_line(str(exc))}; try again later"
        except OperationalError as exc:
            logger.warning("database unavailable, the sender will retry: %s", exc.orig)
            return "451 4.3.0 the calendar database is unavailable; try again later"
        except Exception:  # a fault of ours: the mail server keeps the reply and retries
            logger.exception("could not apply a reply; the sender will retry")
            return "451 4.3.0 the reply could not be applied now; try again later"
        logger.info("reply received: %s", outcome.reason)
        return f"250 2.0.0 {_one_line(outcome.reason)}"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        status = await asyncio.to_thread(self.apply, raw)
        # LMTP answers DATA once per recipient (RFC 2033 4.2); the message is the same for each.
        count = len(envelope.rcpt_tos) if self.lmtp else 1
        return "\r\n".join([status] * max(count, 1))


class Listener(Controller):
    """The listener on one address, in a thread of its own (``start``/``stop``)."""

    def __init__(
        self,
        database: Database,
        public_url: str,
        host: str,
        port: int,
        lmtp: bool,
        imip: ImipSettings,
        dnsfunc: DnsFunction | None = None,
    ) -> None:
        super().__init__(
            ReplyHandler(database, public_url, lmtp, imip, dnsfunc),
            hostname=host,
            port=port,
            data_size_limit=MAX_MESSAGE,
        )
        self.lmtp = lmtp

    def factory(self) -> SMTP:
        server_class = LMTP if self.lmtp else SMTP
        return server_class(self.handler, **self.SMTP_kwargs)

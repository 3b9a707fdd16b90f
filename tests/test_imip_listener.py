"""Emailed replies handed over by a mail server, by LMTP or SMTP (``caldav-bridge imip-listen``),
authenticated by the relay's Authentication-Results or by DKIM signatures checked here."""

from __future__ import annotations

import base64
import re
import smtplib
from collections.abc import Iterator
from dataclasses import replace

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from caldav_bridge.config import ImipSettings
from caldav_bridge.domain.errors import ConfigurationError
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.mail.listener import Listener, ReplyHandler
from tests.conftest import World
from tests.helpers import RELAY, free_port, relay_says, reply_mail
from tests.test_replies import (
    FORGED_FROM,
    SAMPLES,
    _carol,
    _guest,
    _interaction_for_sample,
    _planning,
    _statuses,
    _with_from,
)

IMIP = ImipSettings(trusted_authserv_ids=frozenset({RELAY}))


@pytest.fixture(params=["lmtp", "smtp"])
def listener(world: World, request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    port = free_port()
    lmtp = request.param == "lmtp"
    running = Listener(world.database, "https://crm.example", "127.0.0.1", port, lmtp, IMIP)
    running.start()
    try:
        yield request.param, port
    finally:
        running.stop()


def _client(listener: tuple[str, int]) -> smtplib.SMTP:
    protocol, port = listener
    return (
        smtplib.LMTP("127.0.0.1", port) if protocol == "lmtp" else smtplib.SMTP("127.0.0.1", port)
    )


def _send(listener: tuple[str, int], sender: str, raw: bytes) -> str:
    """Hand one message over, with CRLF line ends as a mail server does; the server's answer."""
    with _client(listener) as client:
        try:
            client.sendmail(sender, ["crm@example.com"], re.sub(rb"\r?\n", b"\r\n", raw))
        except smtplib.SMTPDataError as refused:
            return f"{refused.smtp_code} {refused.smtp_error.decode()}"
    return "250"


def test_a_reply_handed_over_changes_the_crm_status(
    world: World, listener: tuple[str, int]
) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
    assert _send(listener, "bob@example.com", raw) == "250"
    raw = reply_mail(uid, "zoe@partner.example", "zoe@partner.example", "TENTATIVE")
    assert _send(listener, "zoe@partner.example", raw) == "250"
    assert _statuses(world, uid) == (LinkStatus.CONFIRMED, "TENTATIVE")


def test_lmtp_answers_once_per_recipient(world: World) -> None:
    """RFC 2033 4.2: after the data, one answer per accepted recipient."""
    uid = _planning(world)
    port = free_port()
    running = Listener(world.database, "https://crm.example", "127.0.0.1", port, True, IMIP)
    running.start()
    try:
        with smtplib.LMTP("127.0.0.1", port) as client:
            client.ehlo()  # LMTP's LHLO
            client.mail("bob@example.com")
            client.rcpt("crm@example.com")
            client.rcpt("calendar@example.com")
            raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
            first = client.data(raw)
            second = client.getreply()
    finally:
        running.stop()
    assert first[0] == second[0] == 250
    assert _statuses(world, uid)[0] is LinkStatus.CONFIRMED


def test_a_spoofed_reply_is_refused_for_good(world: World, listener: tuple[str, int]) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "mallory@evil.example", "bob@example.com", "DECLINED")
    answer = _send(listener, "mallory@evil.example", raw)
    assert answer.startswith("550 5.7.1")
    assert "not the attendee" in answer
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")


def test_a_malformed_message_is_refused_and_changes_nothing(
    world: World, listener: tuple[str, int]
) -> None:
    uid = _planning(world)
    raw = b"From: bob@example.com\r\nSubject: hi\r\n\r\nno calendar here\r\n"
    answer = _send(listener, "bob@example.com", raw)
    assert answer.startswith("554 ")
    assert "no text/calendar part" in answer
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")


def test_an_unreachable_database_asks_the_mail_server_to_retry(world: World) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
    broken = type(world.database)("postgresql+psycopg://nobody@127.0.0.1:1/none")
    status = ReplyHandler(broken, "https://crm.example", True, IMIP).apply(raw)
    assert status.startswith("451 ")
    assert ReplyHandler(world.database, "https://crm.example", True, IMIP).apply(raw)[:4] == "250 "
    assert _statuses(world, uid)[0] is LinkStatus.CONFIRMED


def test_an_unauthenticated_or_forged_reply_is_refused_for_good(
    world: World, listener: tuple[str, int]
) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "carol@example.com", "carol@example.com", "DECLINED", authenticated=False)
    failing = relay_says("spf=fail smtp.mailfrom=example.com; dmarc=fail header.from=example.com")
    answer = _send(listener, "carol@example.com", failing + raw)
    assert answer.startswith("550 5.7.1")
    assert "not authenticated" in answer
    forged = reply_mail(uid, "mallory@evil.example", "carol@example.com", "DECLINED").replace(
        b"From: Someone <mallory@evil.example>", b"From: carol@example.com <mallory@evil.example>"
    )
    answer = _send(listener, "mallory@evil.example", forged)
    assert answer.startswith("550 5.7.1")
    assert "From" in answer
    assert _carol(world, uid) is LinkStatus.INVITED


# SMTP carries no bare CR: smtplib (and any MTA) turns it into a line break on the way.
OVER_SMTP = {k: v for k, v in FORGED_FROM.items() if b"\r" not in v}


@pytest.mark.parametrize("forged", OVER_SMTP.values(), ids=OVER_SMTP.keys())
def test_each_forged_from_handed_over_is_refused_for_good(
    world: World, listener: tuple[str, int], forged: bytes
) -> None:
    uid = _planning(world)
    raw = _with_from(reply_mail(uid, "carol@example.com", "carol@example.com", "DECLINED"), forged)
    answer = _send(listener, "carol@example.com", raw)
    assert answer.startswith("550 5.7.1"), answer
    assert _carol(world, uid) is LinkStatus.INVITED


def test_apple_mails_reply_handed_over_is_applied(world: World, listener: tuple[str, int]) -> None:
    uid = _interaction_for_sample(world)
    raw = (SAMPLES / "apple-mail-ical3-reply-accepted-qp.eml").read_bytes()
    assert _send(listener, "xyzzy@example.com", raw).startswith("550 5.7.1")
    vouched = relay_says("dkim=pass header.d=example.com; dmarc=none") + raw
    assert _send(listener, "xyzzy@example.com", vouched) == "250"
    assert _guest(world, uid) == "ACCEPTED"


def test_the_listener_needs_something_to_vouch_for_replies(world: World) -> None:
    with pytest.raises(ConfigurationError, match="trusted_authserv_ids"):
        Listener(
            world.database, "https://crm.example", "127.0.0.1", free_port(), True, ImipSettings()
        )


# ---------------------------------------------------------------------------- DKIM checked here


SELECTOR = b"bridge-test"


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, bytes]:
    """A fresh RSA key pair: (private key PEM, the TXT record publishing its public half)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def _signed(raw: bytes, private: bytes, domain: bytes = b"example.com") -> bytes:
    raw = raw.replace(b"\n", b"\r\n")
    signature = dkim.sign(
        raw, SELECTOR, domain, private, include_headers=[b"from", b"to", b"subject"]
    )
    return signature + raw


@pytest.fixture
def dkim_listener(
    world: World, signing_key: tuple[bytes, bytes]
) -> Iterator[tuple[str, int, list[bytes]]]:
    """An SMTP listener checking DKIM itself, no relay trusted; DNS answered here, each
    name asked for remembered."""
    asked: list[bytes] = []

    def dns(name: bytes, timeout: float = 5) -> bytes | None:
        asked.append(name)
        known = {b"bridge-test._domainkey.example.com.", b"bridge-test._domainkey.evil.example."}
        return signing_key[1] if name in known else None

    port = free_port()
    imip = replace(ImipSettings(), verify_dkim=True)
    running = Listener(world.database, "https://crm.example", "127.0.0.1", port, False, imip, dns)
    running.start()
    try:
        yield "smtp", port, asked
    finally:
        running.stop()


def test_a_reply_with_a_valid_dkim_signature_is_applied(
    world: World, dkim_listener: tuple[str, int, list[bytes]], signing_key: tuple[bytes, bytes]
) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "carol@example.com", "carol@example.com", "DECLINED", authenticated=False)
    answer = _send(dkim_listener[:2], "carol@example.com", _signed(raw, signing_key[0]))
    assert answer == "250"
    assert dkim_listener[2] == [b"bridge-test._domainkey.example.com."]
    assert _carol(world, uid) is LinkStatus.DECLINED


def test_a_tampered_or_unaligned_dkim_signature_is_refused(
    world: World, dkim_listener: tuple[str, int, list[bytes]], signing_key: tuple[bytes, bytes]
) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "carol@example.com", "carol@example.com", "ACCEPTED", authenticated=False)
    tampered = _signed(raw, signing_key[0]).replace(b"PARTSTAT=ACCEPTED", b"PARTSTAT=DECLINED")
    answer = _send(dkim_listener[:2], "carol@example.com", tampered)
    assert answer.startswith("550 5.7.1")
    assert "not authenticated" in answer
    other = _signed(raw, signing_key[0], domain=b"evil.example")
    answer = _send(dkim_listener[:2], "carol@example.com", other)
    assert answer.startswith("550 5.7.1")
    assert "d=evil.example valid" in answer
    unsigned = _send(dkim_listener[:2], "carol@example.com", raw)
    assert "no DKIM signature" in unsigned
    assert _carol(world, uid) is LinkStatus.INVITED


def test_a_dkim_key_that_cannot_be_looked_up_now_asks_for_a_retry(
    world: World, signing_key: tuple[bytes, bytes]
) -> None:
    uid = _planning(world)

    def timing_out(name: bytes, timeout: float = 5) -> bytes | None:
        raise dkim.DnsTimeoutError("no answer")

    imip = replace(ImipSettings(), verify_dkim=True)
    handler = ReplyHandler(world.database, "https://crm.example", False, imip, timing_out)
    raw = reply_mail(uid, "carol@example.com", "carol@example.com", "DECLINED", authenticated=False)
    assert handler.apply(_signed(raw, signing_key[0])).startswith("451 ")
    assert _carol(world, uid) is LinkStatus.INVITED

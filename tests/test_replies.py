"""Emailed replies (iMIP in) applied through the service by ``caldav-bridge imip-receive``:
only from the attendee's own mailbox, read as mail servers read it, and only when the trusted
relay (its Authentication-Results) vouches for the sender's domain."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar, Event

from caldav_bridge.cli.commands import main
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.domain.participants import GuestEntry
from caldav_bridge.ical import freebusy
from caldav_bridge.ical.mapping import normalize_address
from tests.conftest import RunningServer, World
from tests.helpers import PARIS, RELAY, at, create, relay_says, reply_mail

Receive = Callable[..., tuple[int, str]]
TRUSTING = f"[imip]\ntrusted_authserv_ids = {RELAY}\n"
SAMPLES = Path(__file__).parent / "fixtures" / "samples"


@pytest.fixture
def receive(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Receive:
    """``caldav-bridge imip-receive`` with the message on stdin: (exit code, what it said).
    The configuration trusts the tests' relay unless told otherwise."""
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", world.database.url)

    def run(raw: bytes, config: str = TRUSTING) -> tuple[int, str]:
        path = tmp_path / "bridge.conf"
        path.write_text(config)
        monkeypatch.setenv("CALDAV_BRIDGE_CONFIG", str(path))
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
        code = main(["imip-receive"])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def _planning(world: World) -> str:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"], "Planning")
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        service.link(users["alice"], interaction, users["carol"], LinkStatus.INVITED)
        service.set_guests(users["alice"], interaction, [GuestEntry("zoe@partner.example")])
        return interaction.uid


def _statuses(world: World, uid: str) -> tuple[LinkStatus, str]:
    """bob's status and zoe's PARTSTAT."""
    with world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        return interaction.links[0].status, interaction.guests[0].partstat


def _carol(world: World, uid: str) -> LinkStatus:
    with world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        return next(k.status for k in interaction.links if k.user.login == "carol")


def test_an_emailed_reply_changes_the_crm_status(world: World, receive: Receive) -> None:
    uid = _planning(world)
    code, out = receive(reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED"))
    assert code == 0, out
    assert "applied" in out
    code, out = receive(reply_mail(uid, "zoe@partner.example", "zoe@partner.example", "DECLINED"))
    assert code == 0, out
    assert _statuses(world, uid) == (LinkStatus.CONFIRMED, "DECLINED")


def test_a_reply_from_someone_else_is_refused_and_changes_nothing(
    world: World, receive: Receive
) -> None:
    uid = _planning(world)
    code, out = receive(reply_mail(uid, "mallory@evil.example", "bob@example.com", "DECLINED"))
    assert code == 2
    assert "not the attendee" in out
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")


def test_unknown_uids_and_older_sequences_are_ignored(world: World, receive: Receive) -> None:
    uid = _planning(world)
    code, out = receive(reply_mail("nope", "bob@example.com", "bob@example.com", "ACCEPTED"))
    assert (code, "ignored" in out) == (0, True)
    with world.database.session(write=True) as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        interaction.sequence = 3
    code, out = receive(reply_mail(uid, "bob@example.com", "bob@example.com", "DECLINED", 1))
    assert (code, "SEQUENCE 1" in out) == (0, True)
    assert _statuses(world, uid)[0] is LinkStatus.INVITED


@pytest.mark.parametrize(
    "raw",
    [b"not an email at all", b"From: bob@example.com\r\n\r\nno calendar here\r\n"],
)
def test_a_malformed_message_is_refused_and_changes_nothing(
    world: World,
    receive: Receive,
    raw: bytes,
) -> None:
    uid = _planning(world)
    code, out = receive(raw)
    assert code == 2
    assert out.strip().count("\n") == 0  # one line
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")


# ---------------------------------------------------------------------------- forged senders


def _with_from(raw: bytes, lines: bytes) -> bytes:
    """The message with its From header replaced by ``lines`` (header lines, as sent)."""
    head, _, body = raw.partition(b"\n\n")
    kept = [line for line in head.split(b"\n") if not line.startswith(b"From:")]
    return b"\n".join([*kept, lines]) + b"\n\n" + body


# Each From (or From and Sender) a forger could send; the relay vouches for example.com (the
# worst case: a checker that read the header as we would have), carol is the ATTENDEE.
FORGED_FROM = {
    "display name is an address": b"From: carol@example.com <mallory@evil.example>",
    "address after an angle address": b"From: <carol@example.com>@evil.example",
    "folded": b"From: carol@example.com\n <mallory@evil.example>",
    "two From headers": b"From: carol@example.com\nFrom: mallory@evil.example",
    "two mailboxes": b"From: carol@example.com, mallory@evil.example",
    "Sender differs": b"From: carol@example.com\nSender: mallory@evil.example",
    "encoded display name": b"From: =?utf-8?q?carol=40example.com?= <mallory@evil.example>",
    "encoded address": b"From: carol@=?utf-8?q?example.com?=",
    "comment holding the address": b"From: mallory@evil.example (carol@example.com)",
    "comment": b"From: carol@example.com (mallory@evil.example)",
    "group": b"From: friends: carol@example.com;",
    "bare CR": b"From: carol@example.com\rX-Y: <mallory@evil.example>",
    "NUL": b"From: carol@example.com\x00<mallory@evil.example>",
    "quoted local part": b'From: "carol@example.com"@evil.example',
}


@pytest.mark.parametrize("forged", FORGED_FROM.values(), ids=FORGED_FROM.keys())
def test_a_forged_from_is_refused_and_changes_nothing(
    world: World, receive: Receive, forged: bytes
) -> None:
    uid = _planning(world)
    raw = _with_from(reply_mail(uid, "carol@example.com", "carol@example.com", "DECLINED"), forged)
    code, out = receive(raw)
    assert code == 2, out
    assert out.strip().count("\n") == 0, out
    assert any(w in out for w in ("From", "Sender", "header", "not the attendee")), out
    assert _carol(world, uid) is LinkStatus.INVITED


def test_a_plain_from_with_a_display_name_is_applied(world: World, receive: Receive) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "carol@example.com", "carol@example.com", "ACCEPTED")
    for sent in (
        b"From: =?utf-8?q?Carol_Nguy=E1=BB=85n?= <Carol@Example.COM>",
        b'From: "carol@example.com" <carol@example.com>',
        b"From: Carol\n <carol@example.com>\nSender: carol@example.com",
    ):
        code, out = receive(_with_from(raw, sent))
        assert code == 0, out
    assert _carol(world, uid) is LinkStatus.CONFIRMED


# ---------------------------------------------------------------------------- authentication


def _unauthenticated(uid: str, *headers: bytes) -> bytes:
    return b"".join(headers) + reply_mail(
        uid, "carol@example.com", "carol@example.com", "DECLINED", authenticated=False
    )


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param((), id="no Authentication-Results"),
        pytest.param(
            (
                relay_says(
                    "spf=fail smtp.mailfrom=example.com; dkim=none; "
                    "dmarc=fail header.from=example.com"
                ),
            ),
            id="spf and dmarc fail",
        ),
        pytest.param(
            (relay_says("dmarc=pass header.from=example.com", relay="mx.evil.example"),),
            id="from an untrusted authserv-id",
        ),
        pytest.param(
            (
                relay_says("dmarc=fail header.from=example.com"),
                relay_says("dmarc=pass header.from=example.com"),
            ),
            id="a pass lower down under the relay's fail",
        ),
        pytest.param(
            (relay_says("dkim=pass header.d=evil.example; dmarc=none"),),
            id="unaligned dkim pass",
        ),
        pytest.param(
            (relay_says("dmarc=pass header.from=evil.example"),),
            id="dmarc pass for another domain",
        ),
        pytest.param(
            (relay_says("dkim=pass header.d=example; dmarc=none"),),
            id="dkim pass by a top-level domain",
        ),
    ],
)
def test_an_unauthenticated_reply_is_refused_and_changes_nothing(
    world: World, receive: Receive, headers: tuple[bytes, ...]
) -> None:
    uid = _planning(world)
    code, out = receive(_unauthenticated(uid, *headers))
    assert code == 2, out
    assert "not authenticated for example.com" in out
    assert _carol(world, uid) is LinkStatus.INVITED


@pytest.mark.parametrize(
    "results",
    [
        "spf=fail smtp.mailfrom=example.com; dmarc=pass (p=reject) header.from=Example.com",
        "dkim=pass header.d=example.com header.i=@example.com; dmarc=none",
        "dkim=pass header.d=mail.example.com; dmarc=none",
        "dkim=pass header.i=carol@example.com",
    ],
    ids=["dmarc pass", "aligned dkim pass", "dkim pass by a subdomain", "dkim pass by header.i"],
)
def test_a_reply_the_trusted_relay_vouches_for_is_applied(
    world: World, receive: Receive, results: str
) -> None:
    uid = _planning(world)
    code, out = receive(_unauthenticated(uid, relay_says(results)))
    assert code == 0, out
    assert "applied" in out
    assert _carol(world, uid) is LinkStatus.DECLINED


def test_the_dkim_policy_wants_a_signature_not_dmarc(world: World, receive: Receive) -> None:
    uid = _planning(world)
    strict = TRUSTING + "policy = dkim\n"
    code, out = receive(
        _unauthenticated(uid, relay_says("dmarc=pass header.from=example.com")), strict
    )
    assert code == 2, out
    code, out = receive(_unauthenticated(uid, relay_says("dkim=pass header.d=example.com")), strict)
    assert code == 0, out
    assert _carol(world, uid) is LinkStatus.DECLINED


def test_without_a_trusted_relay_replies_are_refused_with_what_to_configure(
    world: World, receive: Receive
) -> None:
    uid = _planning(world)
    code, out = receive(reply_mail(uid, "carol@example.com", "carol@example.com", "DECLINED"), "")
    assert code == 2
    assert "trusted_authserv_ids" in out
    assert _carol(world, uid) is LinkStatus.INVITED
    code, out = receive(_unauthenticated(uid), "[imip]\npolicy = none\n")
    assert code == 0, out
    assert _carol(world, uid) is LinkStatus.DECLINED


def test_an_alias_answers_only_when_configured(world: World, receive: Receive) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "c.nguyen@mail.example.org", "carol@example.com", "ACCEPTED")
    code, out = receive(raw)
    assert code == 2
    assert "not the attendee" in out
    assert _carol(world, uid) is LinkStatus.INVITED
    aliases = (
        TRUSTING + "aliases =\n    carol@example.com: cn@example.com, c.nguyen@mail.example.org\n"
    )
    code, out = receive(raw, aliases)
    assert code == 0, out
    assert _carol(world, uid) is LinkStatus.CONFIRMED


# ---------------------------------------------------------------------------- real messages


def _interaction_for_sample(world: World) -> str:
    """The interaction Apple Mail's sample replies answer: xyzzy@example.com a guest."""
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"], "New Event")
        interaction.uid = "1E71F9C8-AEDA-48EB-98D0-76E898F6BB5C"
        service.set_guests(users["alice"], interaction, [GuestEntry("xyzzy@example.com")])
        return interaction.uid


def _guest(world: World, uid: str) -> str:
    with world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        return interaction.guests[0].partstat


def test_apple_mails_reply_is_applied_only_when_authenticated(
    world: World, receive: Receive
) -> None:
    uid = _interaction_for_sample(world)
    raw = (SAMPLES / "apple-mail-ical3-reply-accepted-qp.eml").read_bytes()
    code, out = receive(raw)
    assert code == 2
    assert "not authenticated" in out
    forged = raw.replace(
        b"From: plugh xyzzy <xyzzy@example.com>", b"From: xyzzy@example.com <m@evil.example>"
    )
    code, out = receive(relay_says("dmarc=pass header.from=example.com") + forged)
    assert code == 2
    assert _guest(world, uid) == "NEEDS-ACTION"
    code, out = receive(relay_says("dmarc=pass header.from=example.com") + raw)
    assert code == 0, out
    assert _guest(world, uid) == "ACCEPTED"


@pytest.mark.parametrize(
    "sample", ["apple-mail-ical3-reply-missing-organizer.eml", "dsn-failure-with-original-ics.eml"]
)
def test_sample_messages_that_answer_nobody_change_nothing(
    world: World, receive: Receive, sample: str
) -> None:
    uid = _interaction_for_sample(world)
    raw = relay_says("dmarc=pass header.from=example.com") + (SAMPLES / sample).read_bytes()
    code, out = receive(raw)
    assert code == 2
    assert out.strip().count("\n") == 0
    assert _guest(world, uid) == "NEEDS-ACTION"


# ---------------------------------------------------------------------------- one occurrence


SECOND = datetime(2030, 1, 15, 12, tzinfo=PARIS)


def _weekly_with_bob(world: World) -> str:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(
            service,
            users["alice"],
            "Weekly lunch",
            at(8, 12),
            at(8, 13),
            rrule="FREQ=WEEKLY;COUNT=4",
        )
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        service.set_guests(users["alice"], interaction, [GuestEntry("zoe@partner.example")])
        return interaction.uid


def _declining_the_second(uid: str, attendee: str) -> bytes:
    """A REPLY declining the second occurrence only, no answer to the series."""
    return reply_mail(
        uid, attendee, attendee, "", series=False, occurrences=((SECOND, "DECLINED"),)
    )


def _bob_in(event: Event) -> str:
    found = event["ATTENDEE"]
    for attendee in found if isinstance(found, list) else [found]:
        if normalize_address(attendee) == "bob@example.com":
            return str(attendee.params["PARTSTAT"])
    raise AssertionError("bob is not an attendee")


def _organizer_copy(server: RunningServer, uid: str) -> tuple[Event, list[Event]]:
    text = httpx.get(f"{server.url}alice/interactions/{uid}.ics", auth=("alice", "alice")).text
    events = Calendar.from_ical(text).events
    (series,) = [e for e in events if "RECURRENCE-ID" not in e]
    return series, [e for e in events if "RECURRENCE-ID" in e]


def _bob_busy_days(world: World) -> list[int]:
    with world.database.session() as session:
        busy = freebusy.busy_user(session, world.users(session)["bob"], at(7, 0), at(31, 0))
        return [b.start.astimezone(PARIS).day for b in busy]


def test_an_emailed_reply_declining_one_occurrence_changes_only_that_occurrence(
    server: RunningServer, receive: Receive
) -> None:
    world = server.world
    uid = _weekly_with_bob(world)
    code, out = receive(_declining_the_second(uid, "bob@example.com"))
    assert code == 0, out
    assert _statuses(world, uid)[0] is LinkStatus.INVITED  # the series' answer unchanged
    series, instances = _organizer_copy(server, uid)
    assert _bob_in(series) == "NEEDS-ACTION"
    assert [(i.decoded("RECURRENCE-ID"), _bob_in(i)) for i in instances] == [(SECOND, "DECLINED")]

    # the series accepted and the second occurrence declined, in one message
    both = reply_mail(
        uid, "bob@example.com", "bob@example.com", "ACCEPTED", occurrences=((SECOND, "DECLINED"),)
    )
    code, out = receive(both)
    assert code == 0, out
    assert _statuses(world, uid)[0] is LinkStatus.CONFIRMED
    series, instances = _organizer_copy(server, uid)
    assert _bob_in(series) == "ACCEPTED"
    assert [_bob_in(i) for i in instances] == ["DECLINED"]
    assert _bob_busy_days(world) == [8, 22, 29]  # not the 15th


def test_an_emailed_answer_to_no_occurrence_is_refused_and_changes_nothing(
    world: World, receive: Receive
) -> None:
    uid = _weekly_with_bob(world)
    for when in (SECOND + timedelta(days=1), SECOND + timedelta(weeks=4)):
        raw = reply_mail(
            uid, "bob@example.com", "bob@example.com", "ACCEPTED", occurrences=((when, "DECLINED"),)
        )
        code, out = receive(raw)
        assert code == 2
        assert "no occurrence" in out
    code, out = receive(_declining_the_second(uid, "zoe@partner.example"))
    assert code == 2
    assert "one occurrence" in out
    assert _statuses(world, uid) == (LinkStatus.INVITED, "NEEDS-ACTION")
    single = _planning(world)
    raw = reply_mail(
        single,
        "bob@example.com",
        "bob@example.com",
        "",
        series=False,
        occurrences=((at(7, 10), "DECLINED"),),
    )
    code, out = receive(raw)
    assert code == 2
    assert "does not repeat" in out
    assert _statuses(world, single) == (LinkStatus.INVITED, "NEEDS-ACTION")
    with world.database.session() as session:
        interaction = InteractionService(session).find_by_uid(uid)
        assert interaction is not None
        assert interaction.links[0].occurrence_answers == []


# ---------------------------------------------------------------------------- configuration


def test_the_local_part_is_compared_as_configured(world: World, receive: Receive) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "Carol@EXAMPLE.com", "carol@example.com", "DECLINED")
    code, out = receive(raw, TRUSTING + "case_sensitive_local_part = yes\n")
    assert code == 2
    assert "not the attendee" in out
    assert _carol(world, uid) is LinkStatus.INVITED
    code, out = receive(raw)
    assert code == 0, out
    assert _carol(world, uid) is LinkStatus.DECLINED


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ("policy = spf\n", "policy must be one of"),
        ("aliases = carol@example.com\n", "is not 'attendee: alias"),
        ("aliases = carol@example.com: not an address\n", "is not an address"),
        ("verify_dkim = perhaps\n", "[imip]"),
    ],
)
def test_a_wrong_imip_setting_is_refused_with_its_reason(
    world: World, receive: Receive, config: str, reason: str
) -> None:
    uid = _planning(world)
    raw = reply_mail(uid, "carol@example.com", "carol@example.com", "DECLINED")
    code, out = receive(raw, TRUSTING + config)
    assert code == 2
    assert reason in out
    assert out.strip().count("\n") == 0
    assert _carol(world, uid) is LinkStatus.INVITED


def test_imip_listen_without_anything_to_vouch_for_replies_does_not_start(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", world.database.url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)
    assert main(["imip-listen", "--port", "0"]) == 2
    assert "trusted_authserv_ids" in capsys.readouterr().err


# ------------------------------------------------------------------ the part the calendar is in


def _calendar_of(raw: bytes) -> bytes:
    message = message_from_bytes(raw, policy=default)
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    return bytes(part.get_content().encode())


def _attached(raw: bytes, *calendars: tuple[bytes, str, str | None]) -> bytes:
    """``raw`` (a ``reply_mail``) with its calendar parts replaced by ``calendars``: (text,
    content type, file name), in that order, as Gmail or a mailer that attaches a file sends."""
    original = message_from_bytes(raw, policy=default)
    message = EmailMessage()
    for name in ("From", "To", "Subject"):
        message[name] = original[name]
    message.set_content("Accepted")
    for calendar, kind, filename in calendars:
        maintype, subtype = kind.split("/")
        message.add_attachment(calendar, maintype=maintype, subtype=subtype, filename=filename)
    top = raw[: raw.index(b"From:")] if raw.startswith(b"Authentication-Results") else b""
    return top + bytes(message)


@pytest.mark.parametrize(
    ("kind", "filename"),
    [
        ("application/ics", "invite.ics"),
        ("application/ics", None),
        ("application/octet-stream", "reply.ics"),
    ],
)
def test_a_reply_in_an_application_ics_part_or_an_ics_file_is_applied(
    world: World, receive: Receive, kind: str, filename: str | None
) -> None:
    uid = _planning(world)
    reply = _calendar_of(reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED"))
    raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
    code, out = receive(_attached(raw, (reply, kind, filename)))
    assert code == 0, out
    assert _statuses(world, uid)[0] is LinkStatus.CONFIRMED


def test_a_calendar_sent_twice_as_gmail_does_is_read_once_from_its_text_calendar_part(
    world: World, receive: Receive
) -> None:
    """Gmail: inline text/calendar, then the same calendar as an application/ics attachment
    (here made to disagree, to show which one counts)."""
    uid = _planning(world)
    accepted = _calendar_of(reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED"))
    declined = _calendar_of(reply_mail(uid, "bob@example.com", "bob@example.com", "DECLINED"))
    raw = reply_mail(uid, "bob@example.com", "bob@example.com", "ACCEPTED")
    both = ((declined, "application/ics", "invite.ics"), (accepted, "text/calendar", None))
    code, out = receive(_attached(raw, *both))
    assert (code, out.count("applied")) == (0, 1), out
    assert _statuses(world, uid)[0] is LinkStatus.CONFIRMED

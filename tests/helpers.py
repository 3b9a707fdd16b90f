"""Small builders shared by the tests."""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import httpx
from icalendar import Calendar, Event, vCalAddress
from sqlalchemy import select
from sqlalchemy.orm import Session

from caldav_bridge.db import Database
from caldav_bridge.domain import changelog
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import (
    CalendarChange,
    Channel,
    Interaction,
    LinkStatus,
    OutboxMessage,
    User,
)
from caldav_bridge.domain.periods import Draft

if TYPE_CHECKING:
    from tests.conftest import World

PARIS = ZoneInfo("Europe/Paris")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in January 2030, Paris."""
    return datetime(2030, 1, day, hour, minute, tzinfo=PARIS)


def create(
    service: InteractionService,
    owner: User,
    subject: str = "Planning",
    start: datetime | date | None = None,
    end: datetime | date | None = None,
    **fields: str,
) -> Interaction:
    draft = Draft(subject, start or at(7, 10), end or at(7, 11), **fields)
    return service.create(owner, draft)


def outbox(session: Session, channel: Channel | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if channel is not None:
        query = query.where(OutboxMessage.channel == channel)
    return list(session.scalars(query))


def changes(session: Session) -> list[CalendarChange]:
    """The calendars' change log, without the directory's (which adding users writes)."""
    query = select(CalendarChange).where(CalendarChange.calendar != changelog.DIRECTORY_BOOK)
    return list(session.scalars(query.order_by(CalendarChange.id)))


def unfolded(ical: str) -> str:
    return ical.replace("\r\n ", "")


RELAY = "mx.example.com"  # the authserv-id the tests' mail server writes


def relay_says(results: str, relay: str = RELAY) -> bytes:
    """An Authentication-Results header line, as a relay adds it on top of a message."""
    return f"Authentication-Results: {relay}; {results}\n".encode()


def reply_mail(
    uid: str,
    sender: str,
    attendee: str,
    partstat: str,
    sequence: int = 0,
    *,
    authenticated: bool = True,
    series: bool = True,
    occurrences: tuple[tuple[datetime, str], ...] = (),
) -> bytes:
    """An emailed iTIP REPLY, as Outlook sends one, with (``authenticated``) the trusted
    relay's DMARC pass for the sender's domain on top: the answer to the series (unless not
    ``series``), then a VEVENT per occurrence answered apart (RECURRENCE-ID, PARTSTAT)."""
    calendar = Calendar()
    calendar.add("prodid", "-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "REPLY")
    answers: list[tuple[datetime | None, str]] = [(None, partstat)] if series else []
    for rid, answer in [*answers, *occurrences]:
        event = Event()
        event.add("uid", uid)
        event.add("sequence", sequence)
        event.add("dtstamp", datetime(2030, 1, 1, tzinfo=UTC))
        if rid is not None:
            event.add("recurrence-id", rid)
        event.add("organizer", "mailto:alice@example.com")
        who = vCalAddress(f"mailto:{attendee}")
        who.params["PARTSTAT"] = answer
        event.add("attendee", who)
        calendar.add_component(event)
    message = EmailMessage()
    message["From"] = f"Someone <{sender}>"
    message["To"] = "alice@example.com"
    message["Subject"] = "Accepted: Planning"
    message.set_content("Accepted")
    message.add_alternative(
        calendar.to_ical().decode(), subtype="calendar", params={"method": "REPLY"}
    )
    domain = sender.rpartition("@")[2]
    top = relay_says(f"spf=pass smtp.mailfrom={domain}; dmarc=pass header.from={domain}")
    return (top if authenticated else b"") + bytes(message)


def free_port() -> int:
    """A loopback port free now (for servers that must know their port before they start)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command(database_url: str, port: int) -> list[str]:
    """A ``caldav-bridge serve`` process's command line, logging only what goes wrong."""
    command = Path(sys.executable).parent / "caldav-bridge"
    return [
        str(command),
        "--database",
        database_url,
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def wait_for_http(url: str, seconds: float = 60) -> None:
    """Wait until a server started in another process answers at ``url``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.request("OPTIONS", url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def link_status(world: World, interaction_id: int, login: str) -> LinkStatus:
    """The CRM status of ``login`` on the interaction, read afresh."""
    with world.database.session() as session:
        interaction = InteractionService(session).get(interaction_id)
        return next(k.status for k in interaction.links if k.user.login == login)


class TcpProxy:
    """A loopback TCP relay to a real server, that a test can cut and restore: the database
    going away under a running server, and coming back."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Every connection dropped, new ones refused, until ``restore``."""
        self.up = False
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._open.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def fresh_postgres(url: str) -> Database:
    """The test run's PostgreSQL database, emptied, with alice, bob and the everest room."""
    from tests.conftest import _empty_postgres

    _empty_postgres(url)
    database = Database(url)
    with database.session(write=True) as session:
        directory = Directory(session)
        directory.add_user("alice", "Alice", ["alice@example.com"], "alice", "UTC")
        directory.add_user("bob", "Bob", ["bob@example.com"], "bob", "UTC")
        directory.add_resource("everest", "Everest room", "everest@example.com")
        Administration(session, OPERATOR).set_multi_user(True)
    return database


def crm_pages(url: str, login: str) -> tuple[httpx.Client, str]:
    """A browser-like client signed in to the CRM pages of the server at ``url`` as ``login``
    (password = login), and its CSRF token for forms."""
    pages = httpx.Client(base_url=f"{url}.bridge/crm/", timeout=30)
    check = re.search(r'name="check" value="([^"]+)"', pages.get("login").text)
    assert check is not None
    form = {"login": login, "password": login, "check": check.group(1)}
    assert pages.post("login", data=form).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', pages.get("").text)
    assert csrf is not None
    return pages, csrf.group(1)


def freebusy_request(
    *attendees: str, start: str = "20300101T000000Z", end: str = "20300201T000000Z"
) -> str:
    """A free-busy request from alice, as a client POSTs it to her outbox (RFC 6638 5)."""
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//test//test//EN",
            "METHOD:REQUEST",
            "BEGIN:VFREEBUSY",
            f"UID:{uuid.uuid4()}",
            "DTSTAMP:20300101T000000Z",
            f"DTSTART:{start}",
            f"DTEND:{end}",
            "ORGANIZER:mailto:alice@example.com",
            *(f"ATTENDEE:mailto:{a}" for a in attendees),
            "END:VFREEBUSY",
            "END:VCALENDAR",
            "",
        ]
    )


def event_text(
    uid: str,
    *lines: str,
    summary: str = "Meeting",
    start: str = "20300108T120000Z",
    end: str = "20300108T130000Z",
) -> str:
    """A calendar object with one VEVENT as a client PUTs it; ``lines`` add properties."""
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//test//test//EN",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20300101T000000Z",
            f"DTSTART:{start}",
            f"DTEND:{end}",
            f"SUMMARY:{summary}",
            *lines,
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def sync_changes(client: httpx.Client, path: str, token: str = "") -> tuple[str, dict[str, int]]:
    """A sync-collection of the calendar at ``path``: its new token, and the status of each
    item reported since ``token`` (200 present, 404 deleted)."""
    body = (
        f'<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>{token}</sync-token>'
        "<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"
    )
    answer = client.request("REPORT", path, content=body)
    assert answer.status_code == 207, answer.text
    root = ElementTree.fromstring(answer.content)
    found: dict[str, int] = {}
    for response in root.findall("{DAV:}response"):
        href = (response.findtext("{DAV:}href") or "").rsplit("/", 1)[1]
        status = response.findtext("{DAV:}status") or response.findtext(
            "{DAV:}propstat/{DAV:}status"
        )
        found[href] = int((status or "HTTP/1.1 200").split()[1])
    return root.findtext("{DAV:}sync-token") or "", found

"""The soak: ``python -m bench.soak --minutes 10 [--postgres URL --processes 2]``.

Real server processes (``caldav-bridge serve``) and a delivery worker sending to a real SMTP
server (aiosmtpd) take a mixed load for the given time: organizers' clients create events
with colleagues and rooms in a few contended slots, attendees' clients sync and answer, the
CRM books rooms through the interaction service. Then the database is checked:

- every link status is the last answer its attendee's client saw accepted;
- every interaction's calendar copy shows the statuses the CRM holds;
- no room is booked twice at once;
- the outbox is empty (everything delivered, nothing given up);
- no request got a 5xx.

Exit code 0 when all holds, 1 otherwise. Not run by CI: it takes minutes by design.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from icalendar import Calendar
from sqlalchemy import select

from bench import servers
from bench.run import _drop_postgres, _postgres_database, say
from caldav_bridge.config import SmtpSettings
from caldav_bridge.db import Database
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import BookingConflict
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import (
    Booking,
    Interaction,
    InteractionLink,
    LinkStatus,
    OutboxMessage,
    OutboxState,
)
from caldav_bridge.domain.periods import Draft
from caldav_bridge.ical.mapping import normalize_address
from caldav_bridge.mail import delivery

ORGANIZERS = [f"org{n}" for n in range(1, 4)]
ATTENDEES = [f"att{n}" for n in range(1, 7)]
ROOMS = ["room-a", "room-b"]
# A few slots only, so that rooms are contended.
SLOTS = [datetime(2031, 3, 3, 9, tzinfo=UTC) + timedelta(hours=h) for h in range(4)]
EVENTS_EACH = 8  # per organizer: few events, many answers to each
_PARTSTAT = {"ACCEPTED": LinkStatus.CONFIRMED, "DECLINED": LinkStatus.DECLINED}


@dataclass
class Tally:
    """What the load did, and what each attendee's client last saw accepted."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    last_answer: dict[tuple[str, str], str] = field(default_factory=dict)  # (uid, login)

    def saw(self, what: str, answer: httpx.Response) -> None:
        with self.lock:
            self.statuses[f"{what} {answer.status_code}"] += 1
            if answer.status_code >= 500:
                self.server_errors.append(f"{what}: {answer.status_code} {answer.text[:200]}")


class _Inbox:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def _event(uid: str, organizer: str, start: datetime, attendees: list[str], room: str) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//caldav-bridge soak//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20310101T000000Z",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{start + timedelta(minutes=45):%Y%m%dT%H%M%SZ}",
        f"SUMMARY:Soak {uid[:8]}",
        f"ORGANIZER:mailto:{organizer}@example.com",
        *[f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{login}@example.com" for login in attendees],
        f"ATTENDEE;CUTYPE=ROOM;PARTSTAT=NEEDS-ACTION:mailto:{room}@example.com",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def _organizer(url: str, login: str, deadline: float, tally: Tally) -> None:
    created = 0
    with httpx.Client(base_url=url, auth=(login, login), timeout=60) as client:
        while time.monotonic() < deadline:
            if created >= EVENTS_EACH:  # then only read: answers keep contending for few events
                listing = client.request(
                    "PROPFIND", f"/{login}/interactions/", headers={"Depth": "1"}
                )
                tally.saw("organizer PROPFIND", listing)
                time.sleep(random.uniform(0.2, 0.5))
                continue
            created += 1
            uid = uuid.uuid4().hex
            text = _event(
                uid,
                login,
                random.choice(SLOTS),
                random.sample(ATTENDEES, 3),
                random.choice(ROOMS),
            )
            answer = client.put(
                f"/{login}/interactions/{uid}.ics",
                content=text,
                headers={"Content-Type": "text/calendar"},
            )
            tally.saw("organizer PUT", answer)
            time.sleep(random.uniform(0.05, 0.3))


def _attendee(url: str, login: str, deadline: float, tally: Tally) -> None:
    token = ""
    with httpx.Client(base_url=url, auth=(login, login), timeout=60) as client:
        while time.monotonic() < deadline:
            report = client.request(
                "REPORT",
                f"/{login}/interactions/",
                content=(
                    '<?xml version="1.0"?><sync-collection xmlns="DAV:">'
                    f"<sync-token>{token}</sync-token><sync-level>1</sync-level>"
                    "<prop><getetag/></prop></sync-collection>"
                ),
                headers={"Content-Type": "application/xml"},
            )
            tally.saw("attendee sync", report)
            if report.status_code == 207:
                found = report.text.split("<sync-token>")
                token = found[1].split("<")[0] if len(found) > 1 else ""
            listing = client.request("PROPFIND", f"/{login}/interactions/", headers={"Depth": "1"})
            tally.saw("attendee PROPFIND", listing)
            hrefs = [
                h.split("</")[0]
                for h in listing.text.split("href>")[1::2]
                if h.split("</")[0].endswith(".ics")
            ]
            if hrefs:
                _answer(client, login, random.choice(hrefs), tally)
            time.sleep(random.uniform(0.05, 0.3))


def _answer(client: httpx.Client, login: str, href: str, tally: Tally) -> None:
    got = client.get(href)
    tally.saw("attendee GET", got)
    if got.status_code != 200:
        return
    calendar = Calendar.from_ical(got.text)
    event = calendar.events[0]
    if normalize_address(event.get("ORGANIZER", "")) == f"{login}@example.com":
        return
    partstat = random.choice(["ACCEPTED", "DECLINED"])
    for attendee in event.get("ATTENDEE", []):
        if normalize_address(attendee) == f"{login}@example.com":
            attendee.params["PARTSTAT"] = partstat
    answer = client.put(
        href,
        content=calendar.to_ical(),
        headers={"Content-Type": "text/calendar", "If-Match": got.headers.get("ETag", "*")},
    )
    tally.saw("attendee PUT", answer)
    if answer.status_code in (200, 201, 204):
        with tally.lock:
            tally.last_answer[(str(event["UID"]), login)] = partstat


def _crm(database_url: str, deadline: float, tally: Tally) -> None:
    """The CRM side: an owner books a room for an interaction made in the CRM."""
    database = Database(database_url)
    while time.monotonic() < deadline:
        try:
            with database.session(write=True) as session:
                service, directory = InteractionService(session), Directory(session)
                owner = directory.user(random.choice(ORGANIZERS))
                start = random.choice(SLOTS)
                interaction = service.create(
                    owner, Draft("Booked in the CRM", start, start + timedelta(minutes=30))
                )
                service.book(owner, interaction, directory.resource(random.choice(ROOMS)))
            outcome = "booked"
        except BookingConflict:
            outcome = "conflict"
        with tally.lock:
            tally.statuses[f"CRM booking {outcome}"] += 1
        time.sleep(random.uniform(0.2, 0.6))
    database.dispose()


def _prepare(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    with database.session(write=True) as session:
        directory = Directory(session)
        for login in ORGANIZERS + ATTENDEES:
            directory.add_user(login, login.title(), [f"{login}@example.com"], login, "UTC")
        for slug in ROOMS:
            directory.add_resource(slug, slug.title(), f"{slug}@example.com")
        Administration(session, OPERATOR).set_multi_user(True)
    database.dispose()


def check(database_url: str, tally: Tally) -> list[str]:
    """What does not hold after the load (empty: everything does)."""
    problems = list(tally.server_errors)
    database = Database(database_url)
    with database.session() as session:
        links = session.execute(
            select(Interaction.uid, InteractionLink.status, InteractionLink.user_id).join(
                InteractionLink, InteractionLink.interaction_id == Interaction.id
            )
        ).all()
        logins = {u.id: u.login for u in Directory(session).users()}
        held = {(uid, logins[user_id]): status for uid, status, user_id in links}
        for (uid, login), partstat in tally.last_answer.items():
            if held.get((uid, login)) is not _PARTSTAT[partstat]:
                problems.append(
                    f"{login} last answered {partstat} to {uid}: CRM has {held.get((uid, login))}"
                )
        service = InteractionService(session)
        for interaction in session.scalars(select(Interaction)):
            copy = {
                normalize_address(a): a.params.get("PARTSTAT")
                for a in Calendar.from_ical(interaction.ical).events[0].get("ATTENDEE", [])
            }
            for link in service.get(interaction.id).links:
                expected = {LinkStatus.CONFIRMED: "ACCEPTED", LinkStatus.DECLINED: "DECLINED"}
                wanted = expected.get(link.status, "NEEDS-ACTION")
                if copy.get(f"{link.user.login}@example.com") != wanted:
                    problems.append(f"{interaction.uid}: the copy shows {link.user.login} wrong")
        bookings = session.execute(
            select(Booking.resource_id, Interaction.starts_at, Interaction.ends_at)
            .join(Interaction, Interaction.id == Booking.interaction_id)
            .where(Booking.declined.is_(False), Interaction.status != "cancelled")
        ).all()
        for number, (room, start, end) in enumerate(bookings):
            for other_room, other_start, other_end in bookings[number + 1 :]:
                if room == other_room and start < other_end and other_start < end:
                    problems.append(f"room {room} booked twice at {start}")
        left = session.scalars(
            select(OutboxMessage.state).where(OutboxMessage.state != OutboxState.SENT)
        ).all()
        if left:
            problems.append(f"outbox not empty: {Counter(s.value for s in left)}")
    database.dispose()
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long (default 5)")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--processes", type=int, default=1, help="server processes (PostgreSQL)")
    args = parser.parse_args(argv)
    if args.processes > 1 and not args.postgres:
        parser.error("several server processes need --postgres")
    work = Path(tempfile.mkdtemp(prefix="caldav-bridge-soak-"))
    database_url = (
        _postgres_database(args.postgres) if args.postgres else f"sqlite:///{work / 'soak.sqlite3'}"
    )
    _prepare(database_url)
    inbox = _Inbox()
    smtp_port = servers.free_port()
    mail = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    mail.start()
    processes = [servers.bridge(work, database_url, f"bridge{n}") for n in range(args.processes)]
    stop_delivery = threading.Event()
    database = Database(database_url)
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, sender="crm@example.com")
    tally = Tally()
    try:
        for process in processes:
            process.start()
        urls = [f"http://127.0.0.1:{p.port}" for p in processes]
        worker = threading.Thread(
            target=delivery.run, args=(database, smtp, 1.0, stop_delivery, lambda _: None)
        )
        worker.start()
        deadline = time.monotonic() + args.minutes * 60
        backend = database_url.split(":")[0]
        say(f"soak for {args.minutes:g} min on {backend}, {len(urls)} process(es)")
        _load(urls, database_url, deadline, tally, inbox)
        say("load over; letting the worker empty the outbox")
        drain_until = time.monotonic() + 120
        while time.monotonic() < drain_until and delivery.deliver_due(database, smtp).sent:
            pass
        stop_delivery.set()
        worker.join()
        problems = check(database_url, tally)
    finally:
        stop_delivery.set()
        for process in processes:
            process.stop()
        mail.stop()
        database.dispose()
        if args.postgres:
            _drop_postgres(args.postgres, database_url)
    _report(tally, inbox, problems)


def _load(urls: list[str], database_url: str, deadline: float, tally: Tally, inbox: _Inbox) -> None:
    """Organizers, attendees and the CRM at once until ``deadline``, with progress output."""
    threads = (
        [
            threading.Thread(target=_organizer, args=(urls[n % len(urls)], login, deadline, tally))
            for n, login in enumerate(ORGANIZERS)
        ]
        + [
            threading.Thread(target=_attendee, args=(urls[n % len(urls)], login, deadline, tally))
            for n, login in enumerate(ATTENDEES)
        ]
        + [threading.Thread(target=_crm, args=(database_url, deadline, tally))]
    )
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        time.sleep(min(30.0, max(0.5, deadline - time.monotonic())))
        with tally.lock:
            say(f"{sum(tally.statuses.values()):,} operations so far, {inbox.count:,} emails")
    for thread in threads:
        thread.join()


def _report(tally: Tally, inbox: _Inbox, problems: list[str]) -> None:
    for what, count in sorted(tally.statuses.items()):
        print(f"  {what}: {count:,}")
    print(f"  answers checked: {len(tally.last_answer):,}; emails received: {inbox.count:,}")
    if problems:
        print(f"soak FAILED: {len(problems)} problem(s)")
        for problem in problems[:50]:
            print(f"  - {problem}")
        sys.exit(1)
    print("soak passed: every answer kept, copies consistent, no double booking, outbox empty")


if __name__ == "__main__":
    main()

"""Who may do what, where: every role against every kind of path and every method.

The expectations come from the rules, not from what the server happens to answer:

- a user reads and writes their own home, calendars, items, schedule inbox and outbox;
- other users' calendars answer free-busy only: no subject, no UID, no item, not even the
  names their owner gave them;
- a room's bookings calendar is read by every user and written by nobody (README);
- anonymous requests, wrong passwords and inactive users get 401 on every path;
- the feed and the RSVP page open with their token, never with a login alone;
- nobody reads or marks another user's messenger notices.

Alice's private meeting carries a marker in its subject; every answer is checked to show no
marker or UID its reader may not see ("zero leaks"). One server and one database per backend
serve the whole matrix; writes act on objects made afresh for their cell.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count

import httpx
import pytest
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from caldav_bridge.caldav.server import Server, radicale_configuration
from caldav_bridge.config import Settings
from caldav_bridge.db import Database
from caldav_bridge.domain import passwords, tokens
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import (
    Channel,
    Interaction,
    InteractionStatus,
    LinkStatus,
    OutboxMessage,
    ScheduleMessage,
    StoredCollection,
    StoredItem,
    User,
)
from caldav_bridge.ical.mapping import Answer
from plugins.radicale_bridge_auth import Auth
from tests.conftest import POSTGRES_ENV
from tests.helpers import at, create

RUN = uuid.uuid4().hex[:10]
MARKER = f"ALICE-PRIVATE-{RUN}"  # the subject of alice's private meeting
ROOM_MARKER = f"ROOM-MEETING-{RUN}"  # alice's meeting in the everest room
PERSONAL_MARKER = f"ALICE-PERSONAL-{RUN}"  # an event in a calendar alice made herself
CALENDAR_NAME_MARKER = f"ALICE-CALENDAR-NAME-{RUN}"  # the name alice gave that calendar
CAROL_MARKER = f"CAROL-OWN-{RUN}"
DAVE_MARKER = f"DAVE-OWN-{RUN}"
PERSONAL_UID = f"personal-{uuid.uuid4()}"

DAV_NS = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'

# ------------------------------------------------------------------------ the roles


@dataclass(frozen=True)
class Role:
    name: str
    login: str | None  # whose "own" paths the role uses; None: it has none
    auth: tuple[str, str] | None


ROLES = {
    "owner": Role("owner", "alice", ("alice", "alice")),
    "linked": Role("linked", "bob", ("bob", "bob")),  # Invited to alice's meeting
    "unrelated": Role("unrelated", "carol", ("carol", "carol")),
    "anonymous": Role("anonymous", None, None),
    "inactive": Role("inactive", "dave", ("dave", "dave")),  # deactivated after set-up
    "wrong_password": Role("wrong_password", "bob", ("bob", "not-bobs-password")),
}
ROLE_ORDER = list(ROLES)

# ------------------------------------------------------------------------ the world


@dataclass(frozen=True)
class Meeting:
    id: int
    uid: str
    href: str


@dataclass
class Matrix:
    """The running server over its own database, and what the set-up made."""

    url: str
    database: Database
    http: httpx.Client
    private: Meeting  # alice's, MARKER; bob Invited, dave Confirmed (his REPLY in her inbox)
    room: Meeting  # alice's, ROOM_MARKER, booking everest
    carols: Meeting  # carol's own, CAROL_MARKER
    daves: Meeting  # dave's own, DAVE_MARKER (dave deactivated afterwards)
    feed_token: str  # alice's feed
    forged_feed_token: str
    rsvp_token: str  # bob's answer to alice's private meeting
    forged_rsvp_token: str
    user_ids: dict[str, int]
    serial: Iterator[int] = field(default_factory=count)

    def secrets(self) -> dict[str, str]:
        """Everything private of the set-up, by name."""
        return {
            "alice's subject": MARKER,
            "alice's UID": self.private.uid,
            "room meeting subject": ROOM_MARKER,
            "room meeting UID": self.room.uid,
            "alice's personal event": PERSONAL_MARKER,
            "alice's personal UID": PERSONAL_UID,
            "alice's calendar name": CALENDAR_NAME_MARKER,
            "carol's subject": CAROL_MARKER,
            "carol's UID": self.carols.uid,
            "dave's subject": DAVE_MARKER,
            "dave's UID": self.daves.uid,
        }

    def request(
        self,
        method: str,
        path: str,
        auth: tuple[str, str] | None,
        body: str = "",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.http.request(
            method,
            f"{self.url.rstrip('/')}{path}",
            content=body.encode() if body else None,
            headers=headers or {},
            auth=auth,
        )

    def as_owner(self, login: str, method: str, path: str, body: str = "", **headers: str) -> int:
        """A set-up request made by the path's owner; its status."""
        return self.request(method, path, (login, login), body, headers).status_code

    def next(self) -> int:
        return next(self.serial)

    # ---------------------------------------------------------------- fresh objects

    def fresh_meeting(self, owner: str, *invited: str) -> tuple[Meeting, str]:
        """A new interaction of ``owner`` with ``invited`` linked as Invited; its marker."""
        marker = f"FRESH-{RUN}-{self.next()}"
        with self.database.session(write=True) as session:
            service, users = InteractionService(session), _users(session)
            day = 14 + self.next() % 10
            meeting = create(service, users[owner], f"Fresh {marker}", at(day, 9), at(day, 10))
            for login in invited:
                service.link(users[owner], meeting, users[login], LinkStatus.INVITED)
            return Meeting(meeting.id, meeting.uid, meeting.href), marker

    def fresh_stored_item(self, login: str, calendar: str) -> tuple[str, str, str]:
        """A new event in a calendar ``login`` made: (path, UID, marker)."""
        marker = f"STORED-{RUN}-{self.next()}"
        uid = f"stored-{uuid.uuid4()}"
        path = f"/{login}/{calendar}/{uid}.ics"
        status = self.as_owner(login, "PUT", path, _event(uid, marker, login))
        assert status == 201, status
        return path, uid, marker

    def fresh_calendar(self, login: str) -> str:
        path = f"/{login}/matrix-{RUN}-{self.next()}/"
        assert self.as_owner(login, "MKCALENDAR", path, _MKCALENDAR) == 201
        return path

    def fresh_inbox_message(self, login: str, actor: str | None) -> tuple[str, str]:
        """A new invitation in ``login``'s schedule inbox, from someone else than ``actor``:
        (its path, the meeting's UID)."""
        inviter = next(u for u in ("alice", "bob", "carol") if u not in (login, actor))
        meeting, _ = self.fresh_meeting(inviter, login)
        with self.database.session() as session:
            href = session.scalar(
                select(ScheduleMessage.href).where(
                    ScheduleMessage.user_id == self.user_ids[login],
                    ScheduleMessage.uid == meeting.uid,
                )
            )
        assert href is not None
        return f"/{login}/inbox/{href}", meeting.uid

    def fresh_notice(self, login: str) -> int:
        """A new unread messenger notice for ``login``: its id."""
        inviter = "carol" if login == "alice" else "alice"
        meeting, _ = self.fresh_meeting(inviter, login)
        with self.database.session() as session:
            notice = session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.channel == Channel.MESSENGER,
                    OutboxMessage.recipient_user_id == self.user_ids[login],
                    OutboxMessage.interaction_id == meeting.id,
                )
            )
        assert notice is not None
        return int(notice)

    # ---------------------------------------------------------------- reading the CRM

    def interaction(self, meeting_id: int) -> tuple[str, InteractionStatus, dict[str, LinkStatus]]:
        with self.database.session() as session:
            found = InteractionService(session).get(meeting_id)
            return found.subject, found.status, {k.user.login: k.status for k in found.links}

    def uid_exists(self, uid: str) -> bool:
        with self.database.session() as session:
            return (
                session.scalar(select(Interaction.id).where(Interaction.uid == uid)) is not None
                or session.scalar(select(StoredItem.id).where(StoredItem.uid == uid)) is not None
            )

    def stored_item_exists(self, path: str) -> bool:
        collection, _, href = path.strip("/").rpartition("/")
        with self.database.session() as session:
            return (
                session.scalar(
                    select(StoredItem.id)
                    .join(StoredCollection, StoredItem.collection_id == StoredCollection.id)
                    .where(StoredCollection.path == collection, StoredItem.href == href)
                )
                is not None
            )

    def collection_exists(self, path: str) -> bool:
        with self.database.session() as session:
            return (
                session.scalar(
                    select(StoredCollection.id).where(StoredCollection.path == path.strip("/"))
                )
                is not None
            )

    def props_mention(self, value: str) -> bool:
        with self.database.session() as session:
            return any(value in p for p in session.scalars(select(StoredCollection.props)))

    def inbox_has(self, login: str, path: str) -> bool:
        href = path.rstrip("/").rpartition("/")[2]
        with self.database.session() as session:
            return (
                session.scalar(
                    select(ScheduleMessage.id).where(
                        ScheduleMessage.user_id == self.user_ids[login],
                        ScheduleMessage.href == href,
                    )
                )
                is not None
            )

    def notices_of(self, login: str) -> dict[int, bool]:
        """``login``'s messenger notices: id -> read."""
        with self.database.session() as session:
            rows = session.execute(
                select(OutboxMessage.id, OutboxMessage.read_at).where(
                    OutboxMessage.channel == Channel.MESSENGER,
                    OutboxMessage.recipient_user_id == self.user_ids[login],
                )
            ).all()
        return {int(row.id): row.read_at is not None for row in rows}


def _users(session: Session) -> dict[str, User]:
    directory = Directory(session)
    return {login: directory.user(login) for login in ("alice", "bob", "carol", "dave")}


def _event(uid: str, summary: str, organizer: str) -> str:
    start, end = "20300121T090000Z", "20300121T100000Z"
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//matrix//EN",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20300101T000000Z",
            f"DTSTART:{start}",
            f"DTEND:{end}",
            f"SUMMARY:{summary}",
            f"ORGANIZER:mailto:{organizer}@example.com",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def _mkcalendar(name: str = "Matrix") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><C:mkcalendar {DAV_NS}><D:set><D:prop>'
        f"<D:displayname>{name}</D:displayname></D:prop></D:set></C:mkcalendar>"
    )


_MKCALENDAR = _mkcalendar()


def _new_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    name = f"caldav_bridge_matrix_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    """One server over one database of its own per backend, for the whole module."""
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('matrix') / 'bridge.sqlite3'}"
    else:
        admin_url = os.environ.get(POSTGRES_ENV)
        if not admin_url:
            if os.environ.get("CALDAV_BRIDGE_REQUIRE_POSTGRES"):
                pytest.fail(f"{POSTGRES_ENV} is not set but PostgreSQL tests are required")
            pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
        url, drop = _new_database(admin_url)
    database = Database(url)
    database.migrate()
    with database.session(write=True) as session:
        directory = Directory(session)
        for login, name, zone in (
            ("alice", "Alice Martin", "Europe/Paris"),
            ("bob", "Bob Dupont", "Europe/Paris"),
            ("carol", "Carol Nguyen", "America/New_York"),
            ("dave", "Dave Okafor", "UTC"),
        ):
            directory.add_user(login, name, [f"{login}@example.com"], login, zone, login == "alice")
        directory.add_resource("everest", "Everest room", "everest@example.com", capacity=12)
        directory.add_resource("kilimanjaro", "Kilimanjaro room", "kilimanjaro@example.com")
        Administration(session, OPERATOR).set_multi_user(True)
        service = InteractionService(session)
        users = _users(session)
        alice, bob, dave = users["alice"], users["bob"], users["dave"]
        private = create(service, alice, f"Private meeting {MARKER}", at(7, 10), at(7, 11))
        service.link(alice, private, bob, LinkStatus.INVITED)
        service.link(alice, private, dave, LinkStatus.INVITED)
        service.answer(dave, private, Answer.ACCEPT)  # a REPLY in alice's inbox
        room = create(service, alice, f"Room meeting {ROOM_MARKER}", at(8, 10), at(8, 11))
        service.book(alice, room, Directory(session).resource("everest"))
        carols = create(service, users["carol"], f"Carol's {CAROL_MARKER}", at(9, 10), at(9, 11))
        daves = create(service, dave, f"Dave's {DAVE_MARKER}", at(10, 10), at(10, 11))
        tokens.rotate_feed(alice)
        session.flush()
        feed_token = tokens.feed_token(session, alice)
        assert feed_token is not None
        rsvp_token = tokens.rsvp_token(session, bob, private.id)
        meetings = [Meeting(m.id, m.uid, m.href) for m in (private, room, carols, daves)]
        user_ids = {login: user.id for login, user in users.items()}
    settings = Settings(url, "http://127.0.0.1")
    configuration = radicale_configuration(settings, extra={"server": {"delay_on_error": "0"}})
    server = Server(configuration, "127.0.0.1", 0)
    server.start_in_thread()
    http = httpx.Client(timeout=30)
    world = Matrix(
        url=server.url,
        database=database,
        http=http,
        private=meetings[0],
        room=meetings[1],
        carols=meetings[2],
        daves=meetings[3],
        feed_token=feed_token,
        forged_feed_token=f"u{user_ids['alice']}-{'A' * 32}",
        rsvp_token=rsvp_token,
        forged_rsvp_token=f"{user_ids['bob']}.{'A' * 32}",
        user_ids=user_ids,
    )
    try:
        for login in ("alice", "bob", "carol", "dave"):
            path, name = f"/{login}/{_made_by(login)}/", f"{login}'s notes"
            if login == "alice":  # what alice named her calendar is hers too
                name = f"Alice's {CALENDAR_NAME_MARKER}"
            assert world.as_owner(login, "MKCALENDAR", path, _mkcalendar(name)) == 201
        personal = _event(PERSONAL_UID, f"Personal {PERSONAL_MARKER}", "alice")
        assert (
            world.as_owner("alice", "PUT", f"/alice/personal/{PERSONAL_UID}.ics", personal) == 201
        )
        with database.session(write=True) as session:
            Directory(session).user("dave").active = False
        yield world
    finally:
        http.close()
        server.stop()
        database.dispose()
        drop()


# ------------------------------------------------------------------------ probes


@dataclass
class Probe:
    """One request of one cell, and how to tell what it did."""

    method: str
    path: str
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    shows: tuple[str, ...] = ()  # what an allowed answer must contain
    may_show: tuple[str, ...] = ()  # private content the target rightly shows when allowed
    fresh: tuple[str, ...] = ()  # private content made for this cell (checked for leaks too)
    done: Callable[[], bool] | None = None  # whether the write it asks for took place
    notices_of: str | None = None  # a messenger listing: whose notices, exactly, it lists
    touches_others: Callable[[], bool] | None = None  # whether it changed another's things


Builder = Callable[[Matrix, Role], Probe]


def _who(role: Role) -> str:
    assert role.login is not None
    return role.login


def _own_content(m: Matrix, login: str) -> tuple[str, ...]:
    """The private content the user's own interactions calendar shows."""
    return {
        "alice": (MARKER, m.private.uid, ROOM_MARKER, m.room.uid),
        "bob": (MARKER, m.private.uid),
        "carol": (CAROL_MARKER, m.carols.uid),
        "dave": (DAVE_MARKER, m.daves.uid),
    }[login]


def _own_subject(m: Matrix, login: str) -> tuple[str, str]:
    """(subject marker, href) of an item in the user's interactions calendar."""
    return {
        "alice": (MARKER, m.private.href),
        "bob": (MARKER, m.private.href),
        "carol": (CAROL_MARKER, m.carols.href),
        "dave": (DAVE_MARKER, m.daves.href),
    }[login]


def _inbox_content(m: Matrix, login: str) -> tuple[str, ...]:
    return (MARKER, m.private.uid) if login in ("alice", "bob") else ()


_PROPFIND_ALL = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
_PROPFIND_ETAGS = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
    "<D:getcontenttype/><D:resourcetype/></D:prop></D:propfind>"
)
_CALENDAR_QUERY = (
    f'<?xml version="1.0"?><C:calendar-query {DAV_NS}><D:prop><D:getetag/>'
    '<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
    '<C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>'
)
_SYNC = (
    '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
)
_FREE_BUSY_QUERY = (
    '<?xml version="1.0"?><C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<C:time-range start="20300101T000000Z" end="20300201T000000Z"/></C:free-busy-query>'
)


def _multiget(*hrefs: str) -> str:
    named = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (
        f'<?xml version="1.0"?><C:calendar-multiget {DAV_NS}><D:prop><D:getetag/>'
        f"<C:calendar-data/></D:prop>{named}</C:calendar-multiget>"
    )


def _proppatch(value: str) -> str:
    return (
        f'<?xml version="1.0"?><D:propertyupdate {DAV_NS}><D:set><D:prop>'
        f"<C:calendar-description>{value}</C:calendar-description>"
        "</D:prop></D:set></D:propertyupdate>"
    )


def _freebusy_request(sender: str, about: str) -> str:
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//matrix//EN",
            "METHOD:REQUEST",
            "BEGIN:VFREEBUSY",
            f"UID:fb-{uuid.uuid4()}",
            "DTSTAMP:20300101T000000Z",
            "DTSTART:20300101T000000Z",
            "DTEND:20300201T000000Z",
            f"ORGANIZER:mailto:{sender}@example.com",
            f"ATTENDEE:mailto:{about}@example.com",
            "END:VFREEBUSY",
            "END:VCALENDAR",
            "",
        ]
    )


def _read(method: str, body: str = "", depth: str | None = None) -> Callable[..., Probe]:
    headers = {"Depth": depth} if depth is not None else {}
    if body:
        headers["Content-Type"] = "application/xml; charset=utf-8"

    def probe(path: str, shows: tuple[str, ...] = (), may_show: tuple[str, ...] = ()) -> Probe:
        return Probe(method, path, body, dict(headers), shows, may_show + shows)

    return probe


GET = _read("GET")
PROPFIND0 = _read("PROPFIND", _PROPFIND_ALL, "0")
PROPFIND1 = _read("PROPFIND", _PROPFIND_ALL, "1")
PROPFIND1_ETAGS = _read("PROPFIND", _PROPFIND_ETAGS, "1")
CALENDAR_QUERY = _read("REPORT", _CALENDAR_QUERY, "1")
SYNC = _read("REPORT", _SYNC, "1")
FREE_BUSY = _read("REPORT", _FREE_BUSY_QUERY, "1")

# ---------------------------------------------------------------- homes


def own_home(reader: Callable[..., Probe], child: bool = False) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        login = _who(role)
        shown = f"/{login}/interactions/" if child else f"/{login}/"
        return reader(f"/{login}/", (shown,), (CALENDAR_NAME_MARKER,) if login == "alice" else ())

    return build


def home_of(name: str, reader: Callable[..., Probe], shows: tuple[str, ...] = ()) -> Builder:
    return lambda m, role: reader(f"/{name}/", shows)


def proppatch(path_of: Callable[[Matrix, Role], str]) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        value = f"matrix-note-{RUN}-{m.next()}"
        headers = {"Content-Type": "application/xml; charset=utf-8"}
        return Probe(
            "PROPPATCH",
            path_of(m, role),
            _proppatch(value),
            headers,
            done=lambda: m.props_mention(value),
        )

    return build


def mkcalendar(home_of_role: Callable[[Role], str]) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        path = f"/{home_of_role(role)}/matrix-new-{RUN}-{m.next()}/"
        return Probe("MKCALENDAR", path, _MKCALENDAR, done=lambda: m.collection_exists(path))

    return build


# ---------------------------------------------------------------- interactions calendars


def own_calendar(reader: Callable[..., Probe], show: str) -> Builder:
    """``show``: "subject" (calendar data) or "href" (a listing) or "name" (properties)."""

    def build(m: Matrix, role: Role) -> Probe:
        login = _who(role)
        subject, href = _own_subject(m, login)
        shown = {"subject": (subject,), "href": (href,), "name": ("CRM interactions",)}[show]
        return reader(f"/{login}/interactions/", shown, _own_content(m, login))

    return build


def alices_calendar(reader: Callable[..., Probe], calendar: str = "interactions") -> Builder:
    return lambda m, role: reader(f"/alice/{calendar}/")


def put_new(calendar_of: Callable[[Role], str], organizer_of: Callable[[Role], str]) -> Builder:
    """A client creating an event in a calendar."""

    def build(m: Matrix, role: Role) -> Probe:
        marker = f"NEW-{RUN}-{m.next()}"
        uid = f"new-{uuid.uuid4()}"
        return Probe(
            "PUT",
            f"{calendar_of(role)}{uid}.ics",
            _event(uid, marker, organizer_of(role)),
            {"Content-Type": "text/calendar; charset=utf-8"},
            fresh=(marker, uid),
            may_show=(marker, uid),
            done=lambda: m.uid_exists(uid),
        )

    return build


def delete_calendar_interactions(m: Matrix, role: Role) -> Probe:
    login = _who(role)
    meeting = {"alice": m.private, "bob": m.private, "carol": m.carols, "dave": m.daves}[login]

    def gone() -> bool:
        _, status, links = m.interaction(meeting.id)
        return status is InteractionStatus.CANCELLED or links.get(login) is LinkStatus.DECLINED

    return Probe("DELETE", f"/{login}/interactions/", done=gone)


def delete_alices_interactions(m: Matrix, role: Role) -> Probe:
    def gone() -> bool:
        _, status, links = m.interaction(m.private.id)
        return status is InteractionStatus.CANCELLED or links["bob"] is not LinkStatus.INVITED

    return Probe("DELETE", "/alice/interactions/", done=gone)


def multiget_alices_item_from_own(m: Matrix, role: Role) -> Probe:
    """Naming alice's item in a REPORT on one's own calendar."""
    login = _who(role)
    body = _multiget(f"/alice/interactions/{m.private.href}", f"/alice/personal/{PERSONAL_UID}.ics")
    headers = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
    return Probe("REPORT", f"/{login}/interactions/", body, headers)


# ---------------------------------------------------------------- items


def own_item(reader: Callable[..., Probe], show: str) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        login = _who(role)
        subject, href = _own_subject(m, login)
        shown = (subject,) if show == "subject" else (href,)
        may = (subject, href.removesuffix(".ics"))
        return reader(f"/{login}/interactions/{href}", shown, may)

    return build


def alices_item(reader: Callable[..., Probe]) -> Builder:
    return lambda m, role: reader(f"/alice/interactions/{m.private.href}")


def _target_meeting(m: Matrix, role: Role, in_calendar_of: str) -> tuple[Meeting, str]:
    """A fresh meeting for a write on an item of ``in_calendar_of``'s interactions calendar:
    alice's (bob invited) unless it is carol's calendar; dave's own for dave."""
    if in_calendar_of == "dave":
        return m.daves, DAVE_MARKER
    if in_calendar_of == "carol":
        return m.fresh_meeting("carol")
    return m.fresh_meeting("alice", "bob")


def _modified(m: Matrix, meeting: Meeting, actor: str | None, new_subject: str) -> tuple[str, str]:
    """The stored event as ``actor`` would change it: an attendee answers (PARTSTAT
    ACCEPTED), anyone else changes the subject. Returns (text, what changed)."""
    with m.database.session() as session:
        ical = session.scalar(select(Interaction.ical).where(Interaction.id == meeting.id))
        assert ical is not None
    _, _, links = m.interaction(meeting.id)
    unfolded = ical.replace("\r\n ", "")
    if actor in links:
        lines = []
        for line in unfolded.split("\r\n"):
            mine = line.startswith("ATTENDEE") and line.lower().endswith(
                f"mailto:{actor}@example.com"
            )
            lines.append(
                line.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED") if mine else line
            )
        return "\r\n".join(lines), "answer"
    lines = [
        f"SUMMARY:{new_subject}" if line.startswith("SUMMARY") else line
        for line in unfolded.split("\r\n")
    ]
    return "\r\n".join(lines), "subject"


def put_item(in_calendar_of: Callable[[Role], str]) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        owner_path = in_calendar_of(role)
        meeting, marker = _target_meeting(m, role, owner_path)
        new_subject = f"CHANGED-{RUN}-{m.next()}"
        body, change = _modified(m, meeting, role.login, new_subject)

        def done() -> bool:
            subject, _, links = m.interaction(meeting.id)
            if change == "answer":
                return links[str(role.login)] is LinkStatus.CONFIRMED
            return subject == new_subject

        return Probe(
            "PUT",
            f"/{owner_path}/interactions/{meeting.href}",
            body,
            {"Content-Type": "text/calendar; charset=utf-8"},
            fresh=(marker, meeting.uid, new_subject),
            may_show=(marker, meeting.uid, new_subject),
            done=done,
        )

    return build


def delete_item(in_calendar_of: Callable[[Role], str]) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        owner_path = in_calendar_of(role)
        meeting, marker = _target_meeting(m, role, owner_path)

        def done() -> bool:
            _, status, links = m.interaction(meeting.id)
            return status is InteractionStatus.CANCELLED or any(
                s is LinkStatus.DECLINED for s in links.values()
            )

        return Probe(
            "DELETE",
            f"/{owner_path}/interactions/{meeting.href}",
            fresh=(marker, meeting.uid),
            may_show=(marker, meeting.uid),
            done=done,
        )

    return build


def move_alices_item(calendar: str) -> Builder:
    """MOVE one of alice's items into a calendar of one's own."""

    def build(m: Matrix, role: Role) -> Probe:
        if calendar == "interactions":
            meeting, marker = m.fresh_meeting("alice", "bob")
            source, fresh = f"/alice/interactions/{meeting.href}", (marker, meeting.uid)

            def still_there() -> bool:
                _, status, links = m.interaction(meeting.id)
                return status is InteractionStatus.PLANNED and links["bob"] is LinkStatus.INVITED

        else:
            source, uid, marker = m.fresh_stored_item("alice", "personal")
            fresh = (marker, uid)

            def still_there() -> bool:
                return m.stored_item_exists(source)

        into = role.login if role.login not in (None, "alice") else "bob"
        destination = f"/{into}/notes/moved-{RUN}-{m.next()}.ics"
        return Probe(
            "MOVE",
            source,
            headers={"Destination": f"{m.url.rstrip('/')}{destination}"},
            fresh=fresh,
            done=lambda: not still_there() or m.stored_item_exists(destination),
        )

    return build


def _made_by(login: str) -> str:
    """The calendar the set-up had ``login`` make."""
    return "personal" if login == "alice" else "notes"


def move_own_item(into: Callable[[Role], str]) -> Builder:
    """MOVE an event of a calendar one made, into ``into``'s calendar."""

    def build(m: Matrix, role: Role) -> Probe:
        login = _who(role)
        fresh: tuple[str, ...] = ()
        if login == "dave":  # inactive: nothing can be made; the request names a path
            source = f"/dave/notes/nothing-{RUN}.ics"
        else:
            source, uid, marker = m.fresh_stored_item(login, _made_by(login))
            fresh = (marker, uid)
        target = into(role)
        destination = f"/{target}/{_made_by(target)}/moved-{RUN}-{m.next()}.ics"
        return Probe(
            "MOVE",
            source,
            headers={"Destination": f"{m.url.rstrip('/')}{destination}"},
            fresh=fresh,
            may_show=fresh,
            done=lambda: m.stored_item_exists(destination),
        )

    return build


# ---------------------------------------------------------------- alice's personal calendar


def alices_personal_item(reader: Callable[..., Probe]) -> Builder:
    return lambda m, role: reader(f"/alice/personal/{PERSONAL_UID}.ics")


def delete_alices_personal_item(m: Matrix, role: Role) -> Probe:
    path, uid, marker = m.fresh_stored_item("alice", "personal")
    return Probe("DELETE", path, fresh=(marker, uid), done=lambda: not m.stored_item_exists(path))


def delete_alices_calendar(m: Matrix, role: Role) -> Probe:
    path = m.fresh_calendar("alice")
    return Probe("DELETE", path, done=lambda: not m.collection_exists(path))


def delete_own_calendar(m: Matrix, role: Role) -> Probe:
    login = _who(role)
    path = "/dave/notes/" if login == "dave" else m.fresh_calendar(login)
    return Probe("DELETE", path, done=lambda: not m.collection_exists(path))


# ---------------------------------------------------------------- the room


def room_item(reader: Callable[..., Probe]) -> Builder:
    return lambda m, role: reader(
        f"/everest/bookings/{m.room.href}", (ROOM_MARKER,), (ROOM_MARKER, m.room.uid)
    )


def room_calendar(reader: Callable[..., Probe], show: str) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        shown = (ROOM_MARKER,) if show == "subject" else (m.room.href,)
        return reader("/everest/bookings/", shown, (ROOM_MARKER, m.room.uid))

    return build


def delete_room_item(m: Matrix, role: Role) -> Probe:
    def released() -> bool:
        with m.database.session() as session:
            found = InteractionService(session).get(m.room.id)
            return not found.bookings

    return Probe("DELETE", f"/everest/bookings/{m.room.href}", done=released)


# ---------------------------------------------------------------- schedule inbox and outbox


def own_inbox(reader: Callable[..., Probe]) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        login = _who(role)
        content = _inbox_content(m, login)
        shown: tuple[str, ...] = ()
        if content and reader is PROPFIND1:  # a listing: the message's name
            with m.database.session() as session:
                href = session.scalar(
                    select(ScheduleMessage.href).where(
                        ScheduleMessage.user_id == m.user_ids[login],
                        ScheduleMessage.uid == m.private.uid,
                    )
                )
            shown = (f"/{login}/inbox/{href}",)
        elif content:  # calendar data
            shown = (m.private.uid,)
        return reader(f"/{login}/inbox/", shown, content)

    return build


def put_into_inbox(owner_of: Callable[[Role], str]) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        marker, uid = f"INBOX-{RUN}-{m.next()}", f"inbox-{uuid.uuid4()}"
        path = f"/{owner_of(role)}/inbox/{uid}.ics"
        return Probe(
            "PUT",
            path,
            _event(uid, marker, "carol"),
            {"Content-Type": "text/calendar; charset=utf-8"},
            done=lambda: m.inbox_has(owner_of(role), path),
        )

    return build


def delete_inbox_item(owner_of: Callable[[Role], str]) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        login = owner_of(role)
        if login == "dave":
            path, uid = f"/dave/inbox/nothing-{RUN}.ics", ""
        else:
            path, uid = m.fresh_inbox_message(login, role.login)
        return Probe(
            "DELETE",
            path,
            fresh=(uid,) if uid else (),
            done=lambda: bool(uid) and not m.inbox_has(login, path),
        )

    return build


def post_outbox(owner_of: Callable[[Role], str]) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        sender = owner_of(role)
        return Probe(
            "POST",
            f"/{sender}/outbox/",
            _freebusy_request(sender, "alice"),
            {"Content-Type": "text/calendar; charset=utf-8"},
        )

    return build


# ---------------------------------------------------------------- token paths and messenger


def feed(valid: bool) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        token = m.feed_token if valid else m.forged_feed_token
        content = _own_content(m, "alice") if valid else ()
        return Probe("GET", f"/.bridge/feeds/{token}.ics", shows=content[:1], may_show=content)

    return build


def put_feed(m: Matrix, role: Role) -> Probe:
    return Probe("PUT", f"/.bridge/feeds/{m.feed_token}.ics", _event("feed-x", "X", "alice"))


def rsvp_page(token: str) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        chosen = {"bob's": m.rsvp_token, "forged": m.forged_rsvp_token, "none": ""}[token]
        query = f"?token={chosen}" if chosen else ""
        shown = (MARKER,) if token == "bob's" else ()
        return Probe("GET", f"/.bridge/interactions/{m.private.id}{query}", shows=shown)

    return build


def rsvp_answer(with_token: bool) -> Builder:
    """Accept, for bob, a fresh meeting of alice's that bob is invited to."""

    def build(m: Matrix, role: Role) -> Probe:
        meeting, marker = m.fresh_meeting("alice", "bob")
        form = "answer=accept"
        if with_token:
            with m.database.session() as session:
                bob = session.get(User, m.user_ids["bob"])
                assert bob is not None
                form += f"&token={tokens.rsvp_token(session, bob, meeting.id)}"
        return Probe(
            "POST",
            f"/.bridge/interactions/{meeting.id}",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
            fresh=(marker, meeting.uid),
            done=lambda: m.interaction(meeting.id)[2]["bob"] is LinkStatus.CONFIRMED,
        )

    return build


def read_messages(query: str) -> Builder:
    def build(m: Matrix, role: Role) -> Probe:
        login = role.login or ""
        entitled = (MARKER,) if login in ("alice", "bob") else ()
        probe = Probe("GET", f"/.bridge/messages{query}", shows=entitled, may_show=entitled)
        probe.notices_of = login
        return probe

    return build


def mark_read(which: str) -> Builder:
    """Mark notices read: ``"all"`` one's own, or ``"bob's"`` by id."""

    def build(m: Matrix, role: Role) -> Probe:
        bobs = m.fresh_notice("bob")
        mine: int | None = None  # the caller's own notice this request should mark
        if role.login == "bob":
            mine = bobs
        elif role.login in ("alice", "carol") and which == "all":
            mine = m.fresh_notice(role.login)
        body = json.dumps({"all": True} if which == "all" else {"ids": [bobs]})
        return Probe(
            "POST",
            "/.bridge/messages/read",
            body,
            {"Content-Type": "application/json"},
            done=lambda: mine is not None and m.notices_of(str(role.login))[mine],
            touches_others=lambda: role.login != "bob" and m.notices_of("bob")[bobs],
        )

    return build


# ------------------------------------------------------------------------ the matrix

# Codes, one per role in ROLE_ORDER (owner, linked, unrelated, anonymous, inactive,
# wrong_password):
#   A  allowed: 2xx (303 for a form), what it must show is shown, the write is done
#   F  free-busy only: 2xx with busy time, no subject, no UID
#   V  visible without details: 2xx, no subject, no UID (principals, for scheduling)
#   I  ignored: 2xx, nothing of another user's touched or shown
#   D  denied: 401, 403, 404 or 405 (or a 207 that shows none of it); nothing written
#   D|F  refused, or answered with free-busy time only
#   U  401 with the Basic challenge; nothing written
#   -  not applicable (anonymous has no home of its own; alice's paths are the owner's own)

OWN = _who


def _alice(role: Role) -> str:
    return "alice"


ROWS: list[tuple[str, Builder, str]] = [
    # -- one's own home
    ("PROPFIND depth 0 own home", own_home(PROPFIND0), "A A A - U U"),
    ("PROPFIND depth 1 own home", own_home(PROPFIND1, child=True), "A A A - U U"),
    ("PROPPATCH own home", proppatch(lambda m, r: f"/{_who(r)}/"), "A A A - U U"),
    ("MKCALENDAR in own home", mkcalendar(OWN), "A A A - U U"),
    # -- another user's home
    ("PROPFIND depth 0 alice's home", home_of("alice", PROPFIND0), "- V V U U U"),
    ("PROPFIND depth 1 alice's home", home_of("alice", PROPFIND1), "- V V U U U"),
    ("PROPPATCH alice's home", proppatch(lambda m, r: "/alice/"), "- D D U U U"),
    ("MKCALENDAR in alice's home", mkcalendar(_alice), "- D D U U U"),
    # -- one's own interactions calendar
    ("GET own interactions calendar", own_calendar(GET, "subject"), "A A A - U U"),
    ("PROPFIND depth 0 own interactions calendar", own_calendar(PROPFIND0, "name"), "A A A - U U"),
    ("PROPFIND depth 1 own interactions calendar", own_calendar(PROPFIND1, "href"), "A A A - U U"),
    (
        "PROPFIND depth 1 etags own interactions calendar",
        own_calendar(PROPFIND1_ETAGS, "href"),
        "A A A - U U",
    ),
    (
        "REPORT calendar-query own interactions calendar",
        own_calendar(CALENDAR_QUERY, "subject"),
        "A A A - U U",
    ),
    ("REPORT sync-collection own interactions calendar", own_calendar(SYNC, "href"), "A A A - U U"),
    (
        "REPORT free-busy-query own interactions calendar",
        lambda m, r: FREE_BUSY(f"/{_who(r)}/interactions/"),
        "F F F - U U",
    ),
    (
        "PUT new event in own interactions calendar",
        put_new(lambda r: f"/{_who(r)}/interactions/", OWN),
        "A A A - U U",
    ),
    (
        "PROPPATCH own interactions calendar",
        proppatch(lambda m, r: f"/{_who(r)}/interactions/"),
        "A A A - U U",
    ),
    ("DELETE own interactions calendar", delete_calendar_interactions, "D D D - U U"),
    # -- alice's interactions calendar, seen by others
    ("GET alice's interactions calendar", alices_calendar(GET), "- D D U U U"),
    (
        "GET alice's interactions calendar view=freebusy",
        lambda m, r: GET("/alice/interactions/?view=freebusy"),
        "- D|F D|F U U U",
    ),
    ("PROPFIND depth 0 alice's interactions calendar", alices_calendar(PROPFIND0), "- D D U U U"),
    ("PROPFIND depth 1 alice's interactions calendar", alices_calendar(PROPFIND1), "- D D U U U"),
    (
        "PROPFIND depth 1 etags alice's interactions calendar",
        alices_calendar(PROPFIND1_ETAGS),
        "- D D U U U",
    ),
    (
        "REPORT calendar-query alice's interactions calendar",
        alices_calendar(CALENDAR_QUERY),
        "- D D U U U",
    ),
    ("REPORT sync-collection alice's interactions calendar", alices_calendar(SYNC), "- D D U U U"),
    (
        "REPORT free-busy-query alice's interactions calendar",
        alices_calendar(FREE_BUSY),
        "- F F U U U",
    ),
    (
        "REPORT calendar-multiget on own calendar naming alice's items",
        multiget_alices_item_from_own,
        "- D D - U U",
    ),
    (
        "PUT new event in alice's interactions calendar",
        put_new(lambda r: "/alice/interactions/", _alice),
        "- D D U U U",
    ),
    (
        "PROPPATCH alice's interactions calendar",
        proppatch(lambda m, r: "/alice/interactions/"),
        "- D D U U U",
    ),
    ("DELETE alice's interactions calendar", delete_alices_interactions, "- D D U U U"),
    # -- an item of one's own interactions calendar
    ("GET own interactions item", own_item(GET, "subject"), "A A A - U U"),
    ("PROPFIND depth 0 own interactions item", own_item(PROPFIND0, "href"), "A A A - U U"),
    ("PUT own interactions item", put_item(OWN), "A A A - U U"),
    ("DELETE own interactions item", delete_item(OWN), "A A A - U U"),
    # -- an item of alice's interactions calendar
    ("GET alice's interactions item", alices_item(GET), "- D D U U U"),
    ("PROPFIND depth 0 alice's interactions item", alices_item(PROPFIND0), "- D D U U U"),
    ("PUT alice's interactions item", put_item(_alice), "- D D U U U"),
    ("DELETE alice's interactions item", delete_item(_alice), "- D D U U U"),
    (
        "MOVE alice's interactions item into own calendar",
        move_alices_item("interactions"),
        "- D D U U U",
    ),
    # -- a calendar alice made herself, and its event
    ("GET alice's personal calendar", alices_calendar(GET, "personal"), "- D D U U U"),
    (
        "PROPFIND depth 0 alice's personal calendar",
        alices_calendar(PROPFIND0, "personal"),
        "- D D U U U",
    ),
    (
        "PROPFIND depth 1 alice's personal calendar",
        alices_calendar(PROPFIND1, "personal"),
        "- D D U U U",
    ),
    (
        "REPORT calendar-query alice's personal calendar",
        alices_calendar(CALENDAR_QUERY, "personal"),
        "- D D U U U",
    ),
    (
        "REPORT free-busy-query alice's personal calendar",
        alices_calendar(FREE_BUSY, "personal"),
        "- F F U U U",
    ),
    ("GET alice's personal event", alices_personal_item(GET), "- D D U U U"),
    (
        "PUT new event in alice's personal calendar",
        put_new(lambda r: "/alice/personal/", _alice),
        "- D D U U U",
    ),
    ("DELETE alice's personal event", delete_alices_personal_item, "- D D U U U"),
    ("DELETE alice's personal calendar", delete_alices_calendar, "- D D U U U"),
    ("MOVE alice's personal event into own calendar", move_alices_item("personal"), "- D D U U U"),
    ("MOVE own event into alice's personal calendar", move_own_item(_alice), "- D D - U U"),
    ("MOVE own event within own calendar", move_own_item(OWN), "A A A - U U"),
    ("DELETE own calendar", delete_own_calendar, "A A A - U U"),
    # -- a room
    ("PROPFIND depth 0 room home", home_of("everest", PROPFIND0), "V V V U U U"),
    (
        "PROPFIND depth 1 room home",
        home_of("everest", PROPFIND1, ("/everest/bookings/",)),
        "A A A U U U",
    ),
    ("PROPPATCH room home", proppatch(lambda m, r: "/everest/"), "D D D U U U"),
    ("MKCALENDAR in room home", mkcalendar(lambda r: "everest"), "D D D U U U"),
    ("GET room bookings calendar", room_calendar(GET, "subject"), "A A A U U U"),
    ("PROPFIND depth 1 room bookings calendar", room_calendar(PROPFIND1, "href"), "A A A U U U"),
    (
        "REPORT calendar-query room bookings calendar",
        room_calendar(CALENDAR_QUERY, "subject"),
        "A A A U U U",
    ),
    (
        "REPORT free-busy-query room bookings calendar",
        lambda m, r: FREE_BUSY("/everest/bookings/"),
        "F F F U U U",
    ),
    ("GET room booking", room_item(GET), "A A A U U U"),
    (
        "PUT new event in room bookings calendar",
        put_new(lambda r: "/everest/bookings/", lambda r: r.login or "alice"),
        "D D D U U U",
    ),
    (
        "PROPPATCH room bookings calendar",
        proppatch(lambda m, r: "/everest/bookings/"),
        "D D D U U U",
    ),
    ("DELETE room booking", delete_room_item, "D D D U U U"),
    # -- schedule inbox and outbox
    ("GET own schedule inbox", own_inbox(GET), "A A A - U U"),
    ("PROPFIND depth 1 own schedule inbox", own_inbox(PROPFIND1), "A A A - U U"),
    ("REPORT calendar-query own schedule inbox", own_inbox(CALENDAR_QUERY), "A A A - U U"),
    ("PUT into own schedule inbox", put_into_inbox(OWN), "D D D - U U"),
    ("DELETE own schedule inbox message", delete_inbox_item(OWN), "A A A - U U"),
    ("GET alice's schedule inbox", alices_calendar(GET, "inbox"), "- D D U U U"),
    ("PROPFIND depth 1 alice's schedule inbox", alices_calendar(PROPFIND1, "inbox"), "- D D U U U"),
    (
        "REPORT calendar-query alice's schedule inbox",
        alices_calendar(CALENDAR_QUERY, "inbox"),
        "- D D U U U",
    ),
    ("PUT into alice's schedule inbox", put_into_inbox(_alice), "- D D U U U"),
    ("DELETE alice's schedule inbox message", delete_inbox_item(_alice), "- D D U U U"),
    (
        "PROPFIND depth 0 own schedule outbox",
        lambda m, r: PROPFIND0(f"/{_who(r)}/outbox/", (f"/{_who(r)}/outbox/",)),
        "A A A - U U",
    ),
    ("POST free-busy request to own schedule outbox", post_outbox(OWN), "F F F - U U"),
    (
        "PROPFIND depth 0 alice's schedule outbox",
        alices_calendar(PROPFIND0, "outbox"),
        "- D D U U U",
    ),
    ("POST free-busy request to alice's schedule outbox", post_outbox(_alice), "- D D U U U"),
    # -- the feed: its token, no login
    ("GET feed with its token", feed(valid=True), "A A A A U U"),
    ("GET feed with a forged token", feed(valid=False), "D D D D U U"),
    ("PUT feed", put_feed, "D D D D U U"),
    # -- the RSVP page: bob's token, no login
    ("GET RSVP page with bob's token", rsvp_page("bob's"), "A A A A U U"),
    ("GET RSVP page without a token", rsvp_page("none"), "D D D D U U"),
    ("GET RSVP page with a forged token", rsvp_page("forged"), "D D D D U U"),
    ("POST RSVP accept with bob's token", rsvp_answer(with_token=True), "A A A A U U"),
    ("POST RSVP accept without a token", rsvp_answer(with_token=False), "D D D D U U"),
    # -- the messenger: one's own notices only
    ("GET messages", read_messages(""), "A A A U U U"),
    ("GET messages naming bob", read_messages("?user=bob&login=bob&recipient=bob"), "A A A U U U"),
    ("POST messages read all", mark_read("all"), "A A A U U U"),
    ("POST messages read bob's notice", mark_read("bob's"), "I A I U U U"),
]

CELLS = [
    pytest.param(name, build, role, code, id=f"{name}-{role}".replace(" ", "_"))
    for name, build, codes in ROWS
    for role, code in zip(ROLE_ORDER, codes.split(), strict=True)
    if code != "-"
]

DENIED = {401, 403, 404, 405}


def _around(body: str, secret: str, width: int = 200) -> str:
    at_ = body.index(secret)
    return "…" + body[max(0, at_ - width) : at_ + len(secret) + 40] + "…"


def _shown_ids(response: httpx.Response) -> set[int]:
    return {int(notice["id"]) for notice in response.json()}


@pytest.mark.parametrize(("row", "build", "role_name", "code"), CELLS)
def test_each_role_reads_and_writes_only_what_it_may_and_nothing_leaks(
    matrix: Matrix, row: str, build: Builder, role_name: str, code: str
) -> None:
    role = ROLES[role_name]
    probe = build(matrix, role)
    response = matrix.request(probe.method, probe.path, role.auth, probe.body, probe.headers)
    status, body = response.status_code, response.text
    cell = f"{probe.method} {probe.path} as {role_name}: expected {code}, got {status}"
    snippet = f"{cell}\n{body[:600]}"

    # zero leaks: no private content the reader may not see, whatever the answer
    private = {**matrix.secrets(), **{f"fresh {i}": s for i, s in enumerate(probe.fresh)}}
    rightful = set(probe.may_show) | set(probe.shows) if code == "A" else set()
    asked = " ".join([probe.path, probe.body, *probe.headers.values()])  # echoed, not leaked
    rightful |= {secret for secret in private.values() if secret in asked}
    leaked = sorted(
        name for name, secret in private.items() if secret in body and secret not in rightful
    )
    around = [_around(body, private[name]) for name in leaked]
    assert not leaked, f"LEAK of {leaked}: {cell}\n" + "\n".join(around)

    if probe.touches_others is not None:
        assert not probe.touches_others(), f"another user's things changed: {snippet}"
    if probe.notices_of is not None and code == "A":
        assert status == 200, snippet
        own = set(matrix.notices_of(probe.notices_of))
        assert _shown_ids(response) == own, f"not exactly one's own notices: {snippet}"
    written = probe.done() if probe.done is not None else None

    if code == "A":
        assert 200 <= status < 300 or (status == 303 and probe.method == "POST"), snippet
        missing = [s for s in probe.shows if s not in body]
        assert not missing, f"allowed but {missing} not shown: {snippet}"
        assert written is not False, f"allowed but not done: {snippet}"
    elif code == "F" or (code == "D|F" and 200 <= status < 300):
        assert 200 <= status < 300, snippet
        assert "FREEBUSY" in body, snippet
        assert not written, f"free-busy only, yet written: {snippet}"
    elif code in ("V", "I"):
        assert 200 <= status < 300, snippet
    elif code in ("D", "D|F"):
        refused = status in DENIED or (status == 207 and probe.method in ("PROPFIND", "REPORT"))
        assert refused, snippet
        assert not written, f"refused, yet written: {snippet}"
    else:
        assert code == "U", code
        assert status == 401, snippet
        assert response.headers.get("WWW-Authenticate", "").startswith("Basic"), snippet
        assert not written, f"401, yet written: {snippet}"


# ------------------------------------------------------------------------ the login check


class _CountingHasher:
    """argon2's PasswordHasher, counting its verifications."""

    def __init__(self, real: PasswordHasher) -> None:
        self.real, self.verifications = real, 0

    def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        return self.real.verify(password_hash, password)

    def hash(self, password: str) -> str:
        return self.real.hash(password)


def test_wrong_password_inactive_and_unknown_logins_get_401_after_one_argon2_check_each(
    matrix: Matrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    for refused in (("alice", "wrong"), ("dave", "dave"), ("nobody", "nobody"), ("ALICE", "x")):
        response = matrix.request("PROPFIND", "/alice/", refused, _PROPFIND_ALL, {"Depth": "0"})
        assert response.status_code == 401, refused
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert MARKER not in response.text

    # argon2's verify compares in constant time; the refusals must each pay one, the same
    # price: a missing or inactive login checks against a dummy hash of the same parameters.
    assert isinstance(passwords._hasher, PasswordHasher)
    real = passwords.hash_password("x")
    assert extract_parameters(passwords._dummy_hash()) == extract_parameters(real)
    settings = Settings(matrix.database.url, "http://127.0.0.1")
    auth = Auth(radicale_configuration(settings))
    counting = _CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", counting)
    for login, password in (
        ("alice", "wrong"),  # a user, the wrong password
        ("dave", "dave"),  # an inactive user, their right password
        ("nobody", "nobody"),  # no such user
        ("", ""),
    ):
        before = counting.verifications
        assert auth._login(login, password) == ""
        assert counting.verifications - before == 1, (login, "spent no or several hash checks")
    assert auth._login("alice", "alice") == "alice"

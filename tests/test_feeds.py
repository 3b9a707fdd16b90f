"""ICS feeds: read-only subscriptions at a secret address, made and rotated by the CLI."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from icalendar import Calendar

from caldav_bridge.cli.commands import main
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import LinkStatus
from caldav_bridge.domain.periods import Changes
from caldav_bridge.ical.mapping import Answer
from tests.conftest import RunningServer, World
from tests.helpers import at, create

Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", world.database.url)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)

    def run(*argv: str) -> tuple[int, str]:
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's refusals
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def _feed_url(server: RunningServer, output: str) -> str:
    """The http(s) address the CLI printed, on the test server."""
    webcal, address = (line.strip() for line in output.splitlines()[1:3])
    assert webcal.startswith("webcal://")
    assert webcal.split("://", 1)[1] == address.split("://", 1)[1]
    return f"{server.url.rstrip('/')}{urlsplit(address).path}"


def _week(world: World) -> dict[str, int]:
    """alice's meeting with bob and the everest room; one bob declined (still in his calendar);
    carol's cancelled one (in no calendar)."""
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        rooms = world.rooms(session)
        meeting = create(service, users["alice"], "Planning", at(7, 10), at(7, 11))
        service.link(users["alice"], meeting, users["bob"], LinkStatus.INVITED)
        service.book(users["alice"], meeting, rooms["everest"])
        declined = create(service, users["alice"], "Offsite", at(8, 10), at(8, 11))
        service.link(users["alice"], declined, users["bob"], LinkStatus.INVITED)
        service.answer(users["bob"], declined, Answer.DECLINE)
        cancelled = create(service, users["carol"], "Dropped", at(9, 10), at(9, 11))
        service.link(users["carol"], cancelled, users["bob"], LinkStatus.INVITED)
        service.cancel(users["carol"], cancelled)
        return {"meeting": meeting.id, "declined": declined.id, "cancelled": cancelled.id}


def _uids(body: bytes) -> set[str]:
    return {str(e["UID"]) for e in Calendar.from_ical(body).events}


def test_a_user_feed_shows_what_their_caldav_calendar_shows(
    server: RunningServer, cli: Cli
) -> None:
    _week(server.world)
    code, output = cli("feed", "create", "bob")
    assert code == 0
    url = _feed_url(server, output)
    answer = httpx.get(url)  # no login
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/calendar")
    feed = Calendar.from_ical(answer.content)
    assert str(feed["REFRESH-INTERVAL"].to_ical(), "ascii") == "PT15M"
    assert feed["REFRESH-INTERVAL"].params["VALUE"] == "DURATION"
    assert "X-PUBLISHED-TTL:PT15M" in answer.text
    assert "METHOD" not in feed
    calendar = server.client("bob").principal().calendar(name="CRM interactions")
    caldav_uids = {str(Calendar.from_ical(e.data).events[0]["UID"]) for e in calendar.events()}
    assert _uids(answer.content) == caldav_uids
    assert len(caldav_uids) == 2  # the cancelled one is in neither


def test_the_same_feed_is_answered_304_until_it_changes(server: RunningServer, cli: Cli) -> None:
    ids = _week(server.world)
    url = _feed_url(server, cli("feed", "create", "bob")[1])
    first = httpx.get(url)
    etag = first.headers["ETag"]
    again = httpx.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert httpx.head(url).headers["ETag"] == etag
    with server.world.database.session(write=True) as session:
        service = InteractionService(session)
        meeting = service.get(ids["meeting"])
        service.edit(
            meeting.owner,
            meeting,
            Changes(start=at(7, 12), end=at(7, 13)),
        )
    changed = httpx.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_a_room_feed_shows_its_bookings(server: RunningServer, cli: Cli) -> None:
    ids = _week(server.world)
    code, output = cli("feed", "create", "--room", "everest")
    assert code == 0
    assert "Everest room bookings" in output
    body = httpx.get(_feed_url(server, output)).content
    with server.world.database.session() as session:
        meeting = InteractionService(session).get(ids["meeting"])
        assert _uids(body) == {meeting.uid}


def test_rotating_or_revoking_ends_the_old_address(server: RunningServer, cli: Cli) -> None:
    _week(server.world)
    old = _feed_url(server, cli("feed", "create", "bob")[1])
    assert _feed_url(server, cli("feed", "create", "bob")[1]) == old  # create twice: same
    assert _feed_url(server, cli("feed", "show", "bob")[1]) == old
    code, output = cli("feed", "rotate", "bob")
    assert code == 0
    new = _feed_url(server, output)
    assert new != old
    assert httpx.get(old).status_code == 404
    assert httpx.get(new).status_code == 200
    assert cli("feed", "revoke", "bob")[0] == 0
    assert httpx.get(new).status_code == 404
    code, output = cli("feed", "show", "bob")
    assert code == 2
    assert "has no feed" in output
    recreated = _feed_url(server, cli("feed", "create", "bob")[1])
    assert recreated not in (old, new)  # a revoked address never comes back
    assert httpx.get(old).status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("u1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.ics", 404),
        ("x1-abc.ics", 404),
        ("u-.ics", 404),
        ("u1.ics", 404),
        ("..%2f.ics", 400),  # a '/' in a name is refused at the door
    ],
)
def test_a_forged_feed_address_finds_nothing(
    server: RunningServer, cli: Cli, path: str, status: int
) -> None:
    cli("feed", "create", "alice")
    assert httpx.get(f"{server.url.rstrip('/')}/.bridge/feeds/{path}").status_code == status


def test_a_feed_is_read_only(server: RunningServer, cli: Cli) -> None:
    url = _feed_url(server, cli("feed", "create", "alice")[1])
    assert httpx.post(url, content=b"BEGIN:VCALENDAR").status_code == 405
    assert httpx.get(url).status_code == 200


def test_the_feed_command_refuses_bad_input_in_one_line(cli: Cli) -> None:
    for argv, reason in (
        (("feed", "create"), "name a user"),
        (("feed", "create", "alice", "--room", "everest"), "name a user"),
        (("feed", "create", "nobody"), "nobody"),
        (("feed", "create", "--room", "nowhere"), "nowhere"),
        (("feed", "explode", "alice"), "invalid choice"),
    ):
        code, output = cli(*argv)
        assert code == 2
        assert reason in output
        assert len(output.strip().splitlines()) == 1

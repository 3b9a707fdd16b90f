"""The CRM's web pages in a real browser (headless Chromium): the owner links a colleague, the
colleague accepts from their desk, the owner's page and CalDAV show it. Screenshots of every
page land in tests/screenshots/ for a reviewer."""

from __future__ import annotations

from typing import Any

from icalendar import Calendar
from sqlalchemy import select

from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Channel, LinkStatus, NotificationKind, OutboxMessage
from tests.conftest import SCREENSHOTS, RunningServer
from tests.helpers import at, create, link_status

PHONE = {"width": 390, "height": 844}


def _log_in(browser: Any, server: RunningServer, login: str, viewport: Any = None) -> Any:
    context = browser.new_context(viewport=viewport or {"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}.bridge/crm/")
    page.wait_for_url("**/crm/login**")
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(login)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/.bridge/crm/")
    return page


def _shot(page: Any, name: str, backend: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"crm-{name}-{backend}.png", full_page=True)


def test_link_accept_and_see_it_everywhere(
    server: RunningServer, browser: Any, database_url: str
) -> None:
    backend = database_url.split(":", maxsplit=1)[0].split("+", maxsplit=1)[0]
    world = server.world
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        other = create(service, users["carol"], "Carol's workshop", at(7, 10), at(7, 11))
        service.book(users["carol"], other, world.rooms(session)["everest"])

    alice = _log_in(browser, server, "alice")
    _shot(alice, "desk-alice", backend)
    alice.get_by_role("link", name="New interaction").click()
    editor = alice.locator("#editor")
    editor.get_by_label("Subject").fill("Customer review")
    editor.get_by_label("Start").fill("2030-01-07T10:00")
    editor.get_by_label("End").fill("2030-01-07T11:00")
    editor.get_by_label("Where").fill("Room 4")
    _shot(alice, "new-interaction", backend)
    editor.get_by_role("button", name="Save").click()
    alice.wait_for_url("**done=saved")
    meeting_id = int(alice.url.split("/interactions/")[1].split("?")[0])
    assert "Mon 07 Jan 2030 10:00–11:00 (Europe/Paris)" in alice.locator("main").inner_text()
    alice.locator("#link-form select[name=login]").select_option("bob")
    alice.locator("#link-form select[name=status]").select_option("invited")
    alice.locator("#link-form").get_by_role("button", name="Add").click()
    alice.wait_for_url("**done=linked")
    assert alice.locator('#linked tr[data-login="bob"] .status').inner_text() == "Invited"

    # the room is taken: the conflict in words, and nothing booked
    alice.locator("#book-form select[name=room]").select_option("everest")
    alice.locator("#book-form").get_by_role("button", name="Book").click()
    assert "already booked" in alice.get_by_role("alert").inner_text()
    _shot(alice, "interaction-conflict", backend)

    with world.database.session() as session:
        bob = world.users(session)["bob"]
        notices = session.scalars(
            select(OutboxMessage.kind).where(
                OutboxMessage.recipient_user_id == bob.id,
                OutboxMessage.channel == Channel.MESSENGER,
            )
        ).all()
    assert notices == [NotificationKind.INVITATION]

    bob_page = _log_in(browser, server, "bob", PHONE)
    assert "Invitation: Customer review" in bob_page.locator("#notices").inner_text()
    pending = bob_page.locator("#pending")
    assert "Customer review" in pending.inner_text()
    _shot(bob_page, "desk-bob-phone", backend)
    pending.get_by_role("button", name="Accept").click()
    bob_page.wait_for_url("**done=answered")
    assert "Customer review" not in bob_page.locator("#pending").inner_text()
    assert link_status(world, meeting_id, "bob") is LinkStatus.CONFIRMED

    alice.goto(f"{server.url}.bridge/crm/interactions/{meeting_id}")
    assert alice.locator('#linked tr[data-login="bob"] .status').inner_text() == "Confirmed"
    _shot(alice, "interaction-confirmed", backend)
    event = server.client("alice").principal().calendar(name="CRM interactions").events()[0]
    attendees = Calendar.from_ical(event.data).events[0]["ATTENDEE"]
    attendees = attendees if isinstance(attendees, list) else [attendees]
    assert {str(a).lower(): a.params["PARTSTAT"] for a in attendees}["mailto:bob@example.com"] == (
        "ACCEPTED"
    )

    # removing asks first: Cancel keeps bob, OK removes him
    alice.locator('#linked tr[data-login="bob"]').get_by_role("button", name="Remove").click()
    assert "Remove bob" in alice.locator("#confirm-removal").inner_text()
    _shot(alice, "interaction-confirm-removal", backend)
    alice.locator("#confirm-removal").get_by_role("link", name="Cancel").click()
    assert link_status(world, meeting_id, "bob") is LinkStatus.CONFIRMED
    alice.locator('#linked tr[data-login="bob"]').get_by_role("button", name="Remove").click()
    alice.locator("#confirm-removal").get_by_role("button", name="OK").click()
    alice.wait_for_url("**done=unlinked")
    assert alice.locator('#linked tr[data-login="bob"]').count() == 0

    alice.goto(f"{server.url}.bridge/crm/interactions?from=2030-01-01&to=2030-01-31")
    assert "Customer review" in alice.locator("#listing").inner_text()
    _shot(alice, "list", backend)
    alice.goto(f"{server.url}.bridge/crm/agenda?week=2030-01-07")
    assert "Customer review" in alice.locator(".week").inner_text()
    _shot(alice, "agenda", backend)

    # the owner changes, then cancels it (after a confirmation)
    alice.goto(f"{server.url}.bridge/crm/interactions/{meeting_id}")
    alice.get_by_role("link", name="Change").click()
    alice.locator("#editor").get_by_label("Start").fill("2030-01-07T14:00")
    alice.locator("#editor").get_by_label("End").fill("2030-01-07T15:30")
    alice.locator("#editor").get_by_role("button", name="Save").click()
    alice.wait_for_url("**done=saved")
    assert "14:00–15:30" in alice.locator("main").inner_text()
    alice.get_by_role("button", name="Cancel the interaction").click()
    alice.locator("#confirm-cancel").get_by_role("button", name="OK").click()
    alice.wait_for_url("**done=saved")
    assert "Cancelled" in alice.locator("main").inner_text()

    # administration: the switch and a feed link
    alice.goto(f"{server.url}.bridge/crm/admin")
    alice.locator("#multi-user").get_by_role("button").click()
    alice.wait_for_url("**done=saved")
    assert "Now off" in alice.locator("#multi-user").inner_text()
    alice.locator('#users tr[data-login="bob"]').get_by_role("button", name="Make a link").click()
    assert alice.locator('#users tr[data-login="bob"] .feed').inner_text().startswith("webcal://")
    _shot(alice, "admin", backend)
    with world.database.session() as session:
        assert not InteractionService(session).multi_user_enabled()

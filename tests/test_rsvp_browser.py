"""The RSVP page in a real browser (headless Chromium): a click on Accept confirms, the owner is
told, and the organizer's calendar shows it through CalDAV."""

from __future__ import annotations

from typing import Any

from icalendar import Calendar
from sqlalchemy import select

from caldav_bridge.domain.models import Channel, LinkStatus, NotificationKind, OutboxMessage
from tests.conftest import SCREENSHOTS, RunningServer
from tests.helpers import link_status
from tests.test_rsvp_page import _invite, _link

PHONE = {"width": 390, "height": 844}


def test_a_click_on_accept_confirms_and_the_organizer_sees_it(
    server: RunningServer, browser: Any, database_url: str
) -> None:
    interaction_id = _invite(server.world, "bob", "carol")
    page = browser.new_page(viewport=PHONE)
    try:
        page.goto(_link(server, "bob", interaction_id))
        assert page.locator("#your-status").inner_text() == "Invited"
        assert "Budget review <2027>" in page.locator("h1").inner_text()
        backend = database_url.split(":", maxsplit=1)[0].split("+", maxsplit=1)[0]
        page.screenshot(path=SCREENSHOTS / f"rsvp-invited-{backend}.png", full_page=True)
        page.get_by_role("button", name="Accept").click()
        page.wait_for_url("**answered=1")
        assert page.locator("#your-status").inner_text() == "Confirmed"
        assert "Your answer is recorded" in page.get_by_role("status").inner_text()
        page.screenshot(path=SCREENSHOTS / f"rsvp-accepted-{backend}.png", full_page=True)
    finally:
        page.close()
    assert link_status(server.world, interaction_id, "bob") is LinkStatus.CONFIRMED
    with server.world.database.session() as session:
        alice = server.world.users(session)["alice"]
        told = session.scalars(
            select(OutboxMessage.subject).where(
                OutboxMessage.recipient_user_id == alice.id,
                OutboxMessage.kind == NotificationKind.REPLY,
                OutboxMessage.channel == Channel.MESSENGER,
            )
        ).all()
    assert told == ["Bob Dupont accepted: Budget review <2027>"]
    calendar = server.client("alice").principal().calendar(name="CRM interactions")
    (event,) = calendar.events()
    attendees = Calendar.from_ical(event.data).events[0].get("ATTENDEE")
    partstats = {str(a).lower(): a.params["PARTSTAT"] for a in attendees}
    assert partstats["mailto:bob@example.com"] == "ACCEPTED"
    assert partstats["mailto:carol@example.com"] == "NEEDS-ACTION"

"""Every rule of DESIGN.md section 1, proved on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from caldav_bridge.db import Database
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.errors import (
    BookingConflict,
    InteractionCancelled,
    InvalidInput,
    InvalidTransition,
    MultiUserDisabled,
    NotAllowed,
    NotFound,
)
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Channel, Interaction, LinkStatus, NotificationKind
from caldav_bridge.domain.participants import GuestEntry
from caldav_bridge.domain.periods import Changes
from caldav_bridge.domain.rules import link_label
from caldav_bridge.ical.mapping import Answer
from tests.conftest import World
from tests.helpers import at, changes, create, outbox, unfolded


def _partstat(ical: str, login: str) -> str:
    event = Calendar.from_ical(ical).events[0]
    for attendee in event.attendees:
        if attendee.startswith(f"mailto:{login}@"):
            return str(attendee.params["PARTSTAT"])
    raise AssertionError(f"{login} is not an attendee")


# ------------------------------------------------------------------ the multi-user switch


def test_linking_is_refused_while_multi_user_interactions_are_off(world: World) -> None:
    with world.database.session(write=True) as session:
        Administration(session, OPERATOR).set_multi_user(False)
        service = InteractionService(session)
        users = world.users(session)
        interaction = create(service, users["alice"])
        with pytest.raises(MultiUserDisabled, match="switched off"):
            service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        # The owner still works as always.
        assert service.edit(users["alice"], interaction, Changes(start=at(8, 9)))
        service.book(users["alice"], interaction, world.rooms(session)["everest"])
        assert interaction.links == []


def test_multi_user_interactions_are_off_until_an_administrator_switches_them_on(
    database: Database,
) -> None:
    with database.session(write=True) as session:
        service = InteractionService(session)
        assert service.multi_user_enabled() is False
        Administration(session, OPERATOR).set_multi_user(True)
    with database.session() as session:
        assert InteractionService(session).multi_user_enabled() is True


# ------------------------------------------------------------------ linking


def test_the_owner_cannot_also_be_a_linked_user(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        with pytest.raises(InvalidTransition, match="owns interaction"):
            service.link(users["alice"], interaction, users["alice"], LinkStatus.CONFIRMED)


def test_the_owner_cannot_link_anyone_as_declined(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        with pytest.raises(InvalidTransition, match="only the invited user can decline"):
            service.link(users["alice"], interaction, users["bob"], LinkStatus.DECLINED)
        assert interaction.links == []


def test_linking_as_invited_sends_a_messenger_notice_and_an_imip_request(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session, "https://crm.example"), world.users(session)
        interaction = create(service, users["alice"], "Quarterly planning")
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        messenger, email = outbox(session)
        assert messenger.channel is Channel.MESSENGER
        assert messenger.recipient_user_id == users["bob"].id
        assert messenger.kind is NotificationKind.INVITATION
        assert messenger.link.startswith(
            f"https://crm.example/.bridge/interactions/{interaction.id}?token="
        )
        assert "Accept or decline" in messenger.body
        assert email.channel is Channel.EMAIL
        assert email.recipient_address == "bob@example.com"
        assert email.itip_method == "REQUEST"
        assert email.calendar is not None
        assert "METHOD:REQUEST" in email.calendar
        assert _partstat(email.calendar, "bob") == "NEEDS-ACTION"
        assert "RSVP=TRUE" in unfolded(email.calendar)
        assert email.message_id != messenger.message_id


def test_linking_as_confirmed_sends_a_notice_with_the_link(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["carol"], LinkStatus.CONFIRMED)
        messenger, email = outbox(session)
        assert messenger.kind is NotificationKind.CONFIRMATION
        assert f"/.bridge/interactions/{interaction.id}" in messenger.body
        assert email.calendar is not None
        assert _partstat(email.calendar, "carol") == "ACCEPTED"


def test_a_user_without_email_is_told_by_messenger_only(world: World) -> None:
    from caldav_bridge.domain.directory import Directory

    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        erin = Directory(session).add_user("erin", "Erin", [], None, "UTC")
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, erin, LinkStatus.INVITED)
        assert [m.channel for m in outbox(session)] == [Channel.MESSENGER]


def test_inactive_users_cannot_be_linked(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        users["dave"].active = False
        interaction = create(service, users["alice"])
        with pytest.raises(NotAllowed, match="inactive"):
            service.link(users["alice"], interaction, users["dave"], LinkStatus.INVITED)


def test_only_the_owner_changes_links_rooms_and_details(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["bob"], LinkStatus.CONFIRMED)
        bob = users["bob"]
        with pytest.raises(NotAllowed, match=r"only the owner \(alice\)"):
            service.link(bob, interaction, users["carol"], LinkStatus.INVITED)
        with pytest.raises(NotAllowed):
            service.edit(bob, interaction, Changes(subject="Mine now"))
        with pytest.raises(NotAllowed):
            service.book(bob, interaction, world.rooms(session)["everest"])
        with pytest.raises(NotAllowed):
            service.cancel(bob, interaction)
        with pytest.raises(NotAllowed):
            service.unlink(bob, interaction, bob)


# ------------------------------------------------------------------ answers


@pytest.mark.parametrize(
    ("answer", "status", "tentative", "label"),
    [
        (Answer.ACCEPT, LinkStatus.CONFIRMED, False, "Confirmed"),
        (Answer.DECLINE, LinkStatus.DECLINED, False, "Declined"),
        (Answer.TENTATIVE, LinkStatus.INVITED, True, "Invited (tentative)"),
    ],
)
def test_an_answer_sets_the_crm_status(
    world: World, answer: Answer, status: LinkStatus, tentative: bool, label: str
) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        assert service.answer(users["bob"], interaction, answer)
        (link,) = interaction.links
        assert (link.status, link.tentative, link_label(link)) == (status, tentative, label)
        assert link.answered_at is not None


def test_answers_never_bump_sequence_and_tell_the_owner_with_a_reply(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        before = len(outbox(session))
        for answer in (Answer.TENTATIVE, Answer.ACCEPT, Answer.DECLINE):
            service.answer(users["bob"], interaction, answer)
        assert interaction.sequence == 0
        replies = outbox(session)[before:]
        assert {m.recipient_user_id for m in replies} == {users["alice"].id}
        assert {m.kind for m in replies} == {NotificationKind.REPLY}
        email = [m for m in replies if m.channel is Channel.EMAIL][-1]
        assert email.calendar is not None
        assert "METHOD:REPLY" in email.calendar
        assert _partstat(email.calendar, "bob") == "DECLINED"
        assert "carol" not in unfolded(email.calendar)


def test_answering_twice_the_same_way_changes_nothing(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        assert service.answer(users["bob"], interaction, Answer.ACCEPT)
        count = len(outbox(session))
        assert not service.answer(users["bob"], interaction, Answer.ACCEPT)
        assert len(outbox(session)) == count


def test_only_a_linked_user_can_answer(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        with pytest.raises(NotAllowed, match="not linked"):
            service.answer(users["carol"], interaction, Answer.ACCEPT)


def test_a_decline_is_not_overridden_by_the_owner_but_may_be_invited_again(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice, bob = users["alice"], users["bob"]
        interaction = create(service, alice)
        service.link(alice, interaction, bob, LinkStatus.INVITED)
        service.answer(bob, interaction, Answer.DECLINE)
        with pytest.raises(InvalidTransition, match="declined"):
            service.link(alice, interaction, bob, LinkStatus.CONFIRMED)
        assert service.link(alice, interaction, bob, LinkStatus.INVITED)
        assert interaction.links[0].status is LinkStatus.INVITED


def test_the_owner_may_confirm_an_invited_user_directly(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        assert service.link(users["alice"], interaction, users["bob"], LinkStatus.CONFIRMED)
        assert interaction.links[0].status is LinkStatus.CONFIRMED
        assert not service.link(users["alice"], interaction, users["bob"], LinkStatus.CONFIRMED)


# ------------------------------------------------------------------ removing a linked user


def test_removing_a_linked_user_tells_them_and_leaves_their_calendar(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["bob"], LinkStatus.CONFIRMED)
        service.link(users["alice"], interaction, users["carol"], LinkStatus.CONFIRMED)
        before = len(outbox(session))
        service.unlink(users["alice"], interaction, users["bob"])
        assert [k.user.login for k in interaction.links] == ["carol"]
        messages = outbox(session)[before:]
        assert {m.recipient_user_id for m in messages} == {users["bob"].id}
        assert {m.kind for m in messages} == {NotificationKind.REMOVAL}
        email = next(m for m in messages if m.channel is Channel.EMAIL)
        assert email.calendar is not None
        assert "METHOD:CANCEL" in email.calendar
        assert "bob@example.com" in unfolded(email.calendar)
        assert "carol@example.com" not in unfolded(email.calendar)
        assert "STATUS" not in email.calendar
        deletions = [c for c in changes(session) if c.deleted]
        assert [(c.calendar, c.item_href) for c in deletions] == [
            (f"user/{users['bob'].id}/interactions", interaction.href)
        ]
        with pytest.raises(NotFound, match="not linked"):
            service.unlink(users["alice"], interaction, users["bob"])


# ------------------------------------------------------------------ edits and SEQUENCE


def test_time_and_place_changes_bump_sequence_and_tell_attendees(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice = users["alice"]
        interaction = create(service, alice)
        service.link(alice, interaction, users["bob"], LinkStatus.CONFIRMED)
        service.link(alice, interaction, users["carol"], LinkStatus.INVITED)
        service.answer(users["carol"], interaction, Answer.DECLINE)
        before = len(outbox(session))
        assert service.edit(alice, interaction, Changes(start=at(8, 14)))
        assert interaction.sequence == 1
        assert interaction.ends_at == at(8, 15)  # the duration is kept
        assert service.edit(alice, interaction, Changes(location="Lyon office"))
        assert interaction.sequence == 2
        updates = outbox(session)[before:]
        # Bob is told twice (messenger and email each time); so is Carol, who declined.
        assert {m.recipient_user_id for m in updates} == {users["bob"].id, users["carol"].id}
        assert [m.kind for m in updates] == [NotificationKind.UPDATE] * 8
        assert all(m.sequence in {1, 2} for m in updates)


def test_one_change_of_several_steps_bumps_sequence_once_and_tells_each_person_once(
    world: World,
) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice, room = users["alice"], world.rooms(session)["everest"]
        interaction = create(service, alice)
        service.link(alice, interaction, users["bob"], LinkStatus.CONFIRMED)
        before = len(outbox(session))
        with service.one_change():  # what a client's PUT that moves and books does
            service.edit(alice, interaction, Changes(start=at(8, 14)))
            service.book(alice, interaction, room)
            service.link(alice, interaction, users["carol"], LinkStatus.INVITED)
        assert interaction.sequence == 1
        told = [(m.recipient_user_id, m.kind, m.channel) for m in outbox(session)[before:]]
        assert sorted(told) == sorted(
            (user, kind, channel)
            for user, kind in (
                (users["bob"].id, NotificationKind.UPDATE),
                (users["carol"].id, NotificationKind.INVITATION),
            )
            for channel in (Channel.MESSENGER, Channel.EMAIL)
        )
        invitation = next(m for m in outbox(session)[before:] if m.itip_method == "REQUEST")
        assert invitation.calendar is not None
        assert "Everest" in unfolded(invitation.calendar)  # the end result, room included


def test_a_new_interaction_with_rooms_and_attendees_starts_at_sequence_zero(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice = users["alice"]
        with service.one_change():
            interaction = create(service, alice)
            service.book(alice, interaction, world.rooms(session)["everest"])
            service.link(alice, interaction, users["bob"], LinkStatus.INVITED)
        assert interaction.sequence == 0
        assert [m.kind for m in outbox(session)] == [NotificationKind.INVITATION] * 2
        # Rendered once, at the end: one change per calendar showing it (and Bob's inbox).
        assert sorted(c.calendar for c in changes(session)) == sorted(
            [
                f"user/{alice.id}/interactions",
                f"user/{users['bob'].id}/interactions",
                f"user/{users['bob'].id}/inbox",
                f"resource/{world.rooms(session)['everest'].id}/bookings",
            ]
        )


def test_a_failed_change_leaves_nothing_pending(world: World) -> None:
    with world.database.session(write=True) as session:
        interaction = create(InteractionService(session), world.users(session)["alice"])
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = service.get(interaction.id)

        def link_bob_then_fail() -> None:
            with service.one_change():
                service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
                service.answer(users["carol"], interaction, Answer.ACCEPT)  # carol isn't linked

        savepoint = session.begin_nested()
        with pytest.raises(NotAllowed):
            link_bob_then_fail()
        savepoint.rollback()
        service.link(users["alice"], interaction, users["dave"], LinkStatus.INVITED)
        assert {m.recipient_user_id for m in outbox(session)} == {users["dave"].id}


def test_subject_and_notes_changes_do_not_bump_sequence(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        assert service.edit(
            users["alice"], interaction, Changes(subject="New", notes="Bring slides")
        )
        assert interaction.sequence == 0
        assert not service.edit(users["alice"], interaction, Changes(subject="New"))
        assert not service.edit(users["alice"], interaction, Changes(start=at(7, 10)))


def test_sequence_only_grows(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        seen = [interaction.sequence]
        for day in (8, 9, 8):
            service.edit(users["alice"], interaction, Changes(start=at(day, 9)))
            seen.append(interaction.sequence)
        service.cancel(users["alice"], interaction)
        seen.append(interaction.sequence)
        assert seen == sorted(seen)
        assert len(set(seen)) == len(seen)


def test_an_interaction_cannot_end_before_it_starts(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        with pytest.raises(InvalidInput, match="ends before it starts"):
            create(service, users["alice"], start=at(7, 11), end=at(7, 10))
        with pytest.raises(InvalidInput, match="both be dates"):
            create(service, users["alice"], start=date(2030, 1, 7), end=at(7, 10))


# ------------------------------------------------------------------ cancellation


def test_cancelling_bumps_sequence_and_sends_a_cancel_to_each_linked_user(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice = users["alice"]
        interaction = create(service, alice)
        service.link(alice, interaction, users["bob"], LinkStatus.INVITED)
        service.link(alice, interaction, users["carol"], LinkStatus.CONFIRMED)
        before = len(outbox(session))
        assert service.cancel(alice, interaction)
        assert interaction.sequence == 1
        cancels = [m for m in outbox(session)[before:] if m.channel is Channel.EMAIL]
        assert sorted(m.recipient_address or "" for m in cancels) == [
            "bob@example.com",
            "carol@example.com",
        ]
        for message in cancels:
            assert message.calendar is not None
            assert "METHOD:CANCEL" in message.calendar
            assert "STATUS:CANCELLED" in message.calendar
        assert not service.cancel(alice, interaction)
        assert interaction.sequence == 1


def test_a_cancelled_interaction_refuses_edits_links_and_answers(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice = users["alice"]
        interaction = create(service, alice)
        service.link(alice, interaction, users["bob"], LinkStatus.INVITED)
        service.cancel(alice, interaction)
        with pytest.raises(InteractionCancelled):
            service.edit(alice, interaction, Changes(subject="Back on"))
        with pytest.raises(InteractionCancelled):
            service.link(alice, interaction, users["carol"], LinkStatus.INVITED)
        with pytest.raises(InteractionCancelled):
            service.answer(users["bob"], interaction, Answer.ACCEPT)
        with pytest.raises(InteractionCancelled):
            service.book(alice, interaction, world.rooms(session)["everest"])


# ------------------------------------------------------------------ resources


def test_an_overlapping_booking_is_refused_naming_the_other_interaction(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        everest = world.rooms(session)["everest"]
        first = create(service, users["alice"], "Board meeting", at(7, 10), at(7, 11))
        service.book(users["alice"], first, everest)
        second = create(service, users["bob"], "Team lunch", at(7, 10, 30), at(7, 12))
        with pytest.raises(BookingConflict) as refused:
            service.book(users["bob"], second, everest)
        assert f"#{first.id} 'Board meeting'" in str(refused.value)
        assert "Everest room is already booked" in str(refused.value)
        assert refused.value.other_interaction_id == first.id
        assert second.bookings == []


def test_back_to_back_bookings_and_other_rooms_do_not_conflict(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        rooms = world.rooms(session)
        first = create(service, users["alice"], "First", at(7, 10), at(7, 11))
        service.book(users["alice"], first, rooms["everest"])
        second = create(service, users["bob"], "Second", at(7, 11), at(7, 12))
        service.book(users["bob"], second, rooms["everest"])
        third = create(service, users["carol"], "Third", at(7, 10), at(7, 11))
        service.book(users["carol"], third, rooms["kilimanjaro"])


def test_an_all_day_booking_blocks_the_room_for_that_day_in_its_time_zone(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        everest = world.rooms(session)["everest"]
        offsite = create(service, users["alice"], "Offsite", date(2030, 1, 7), date(2030, 1, 8))
        service.book(users["alice"], offsite, everest)
        late = create(service, users["bob"], "Late call", at(7, 23, 30), at(7, 23, 45))
        with pytest.raises(BookingConflict):
            service.book(users["bob"], late, everest)
        next_day = create(service, users["bob"], "Next morning", at(8, 0), at(8, 1))
        service.book(users["bob"], next_day, everest)


def test_cancelling_or_releasing_frees_the_room(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        rooms = world.rooms(session)
        first = create(service, users["alice"], "First")
        service.book(users["alice"], first, rooms["everest"])
        service.book(users["alice"], first, rooms["kilimanjaro"])
        service.cancel(users["alice"], first)
        again = create(service, users["bob"], "Again")
        service.book(users["bob"], again, rooms["everest"])
        service.release(users["bob"], again, rooms["everest"])
        third = create(service, users["carol"], "Third")
        service.book(users["carol"], third, rooms["everest"])
        with pytest.raises(NotFound, match="not booked"):
            service.release(users["bob"], again, rooms["everest"])


def test_an_inactive_resource_cannot_be_booked(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        everest = world.rooms(session)["everest"]
        everest.active = False
        interaction = create(service, users["alice"])
        with pytest.raises(NotAllowed, match="inactive"):
            service.book(users["alice"], interaction, everest)


def test_moving_onto_a_booked_room_is_refused_and_changes_nothing(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        everest = world.rooms(session)["everest"]
        busy = create(service, users["alice"], "Busy", at(8, 10), at(8, 11))
        service.book(users["alice"], busy, everest)
        moving = create(service, users["bob"], "Moving", at(7, 10), at(7, 11))
        service.link(users["bob"], moving, users["carol"], LinkStatus.INVITED)
        service.book(users["bob"], moving, everest)
        moving_id, count = moving.id, len(outbox(session))

    def move() -> None:
        with world.database.session(write=True) as session:
            service, users = InteractionService(session), world.users(session)
            moving = service.get(moving_id)
            service.edit(users["bob"], moving, Changes(start=at(8, 10, 30)))

    with pytest.raises(BookingConflict):
        move()
    with world.database.session() as session:
        moving = InteractionService(session).get(moving_id)
        assert moving.starts_at == at(7, 10)
        assert moving.sequence == 1  # from the booking only
        assert len(outbox(session)) == count


# ------------------------------------------------------------------ one transaction


def test_notifications_and_changes_are_written_with_the_change_or_not_at_all(
    world: World,
) -> None:
    with world.database.session(write=True) as session:
        users = world.users(session)
        service = InteractionService(session)
        busy = create(service, users["alice"], "Busy")
        service.book(users["alice"], busy, world.rooms(session)["everest"])
        counts = (len(outbox(session)), len(changes(session)))

    def doomed() -> None:
        with world.database.session(write=True) as session:
            users = world.users(session)
            service = InteractionService(session)
            interaction = create(service, users["bob"], "Doomed")
            service.link(users["bob"], interaction, users["carol"], LinkStatus.INVITED)
            service.book(users["bob"], interaction, world.rooms(session)["everest"])

    with pytest.raises(BookingConflict):
        doomed()
    with world.database.session() as session:
        assert (len(outbox(session)), len(changes(session))) == counts
        assert session.scalar(select(func.count(Interaction.id))) == 1


def test_every_calendar_showing_an_interaction_records_its_change(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        everest = world.rooms(session)["everest"]
        interaction = create(service, users["alice"])
        service.link(users["alice"], interaction, users["bob"], LinkStatus.INVITED)
        service.book(users["alice"], interaction, everest)
        start = len(changes(session))
        service.answer(users["bob"], interaction, Answer.ACCEPT)
        recorded = {c.calendar for c in changes(session)[start:]}
        assert recorded == {
            f"user/{users['alice'].id}/interactions",
            f"user/{users['bob'].id}/interactions",
            f"resource/{everest.id}/bookings",
            f"user/{users['alice'].id}/inbox",  # Bob's REPLY
        }


# ------------------------------------------------------------------ agenda


def test_the_agenda_lists_owned_and_linked_interactions_in_the_range(world: World) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        alice, bob = users["alice"], users["bob"]
        owned = create(service, bob, "Owned", at(7, 9), at(7, 10))
        linked = create(service, alice, "Linked", at(8, 9), at(8, 10))
        service.link(alice, linked, bob, LinkStatus.INVITED)
        create(service, alice, "Not Bob's", at(8, 11), at(8, 12))
        create(service, bob, "Later", at(20, 9), at(20, 10))
        all_day = create(service, alice, "Offsite", date(2030, 1, 9), date(2030, 1, 10))
        service.link(alice, all_day, bob, LinkStatus.CONFIRMED)
        entries = service.agenda(bob, at(7, 0), at(10, 0))
        assert [(e.interaction.subject, e.role) for e in entries] == [
            ("Owned", "owner"),
            ("Linked", "linked"),
            ("Offsite", "linked"),
        ]
        assert entries[1].link is not None
        assert entries[1].link.status is LinkStatus.INVITED
        assert [e.interaction.id for e in service.agenda(bob, at(7, 10), at(8, 9))] == []
        assert owned.id not in [
            e.interaction.id for e in service.agenda(alice, at(1, 0), at(30, 0))
        ]


@pytest.mark.parametrize("address", ["o'brien@example.com", "ops@intranet", "x@[192.0.2.1]"])
def test_unusual_but_real_guest_addresses_are_invited(world: World, address: str) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        service.set_guests(users["alice"], interaction, [GuestEntry(address)])
        assert [g.address for g in interaction.guests] == [address]


@pytest.mark.parametrize(
    "address", ["guest@example.com,evil@attacker.example", "a b@example.com", "no-at-sign"]
)
def test_a_guest_address_naming_more_than_one_mailbox_is_refused(
    world: World, address: str
) -> None:
    with world.database.session(write=True) as session:
        service, users = InteractionService(session), world.users(session)
        interaction = create(service, users["alice"])
        with pytest.raises(InvalidInput):
            service.set_guests(users["alice"], interaction, [GuestEntry(address)])

"""MOVE of an item between the calendars of one home."""

from __future__ import annotations

from radicale import item as radicale_item
from radicale import storage
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from caldav_bridge.caldav import paths
from caldav_bridge.db import Database
from caldav_bridge.domain import changelog
from caldav_bridge.domain import queries as calendar_contents
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import NotAllowed
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import StoredItem
from plugins.radicale_bridge_storage.projections import InteractionsCalendar
from plugins.radicale_bridge_storage.stored import StoredCalendar

Kept = InteractionsCalendar | StoredCalendar


def move(
    database: Database,
    public_url: str,
    item: radicale_item.Item,
    to_collection: storage.BaseCollection,
    to_href: str,
) -> None:
    """An item of a user's own calendars to another of them. A meeting the CRM holds
    (in the interactions calendar or one of the user's) moves for that user only, under
    its name, which every attendee's calendar shares."""
    source = item.collection
    kept = (InteractionsCalendar, StoredCalendar)
    if not isinstance(source, kept) or not isinstance(to_collection, kept):
        raise NotAllowed("only items of your own calendars can be moved")
    if paths.Place.of(source.path).home != paths.Place.of(to_collection.path).home:
        raise NotAllowed("an item moves between calendars of one home")
    with database.session(write=True) as session:
        held = source.held(session, str(item.href))
        if held is not None:
            _move_interaction(session, public_url, held.id, source, to_collection, to_href)
        elif isinstance(source, StoredCalendar) and isinstance(to_collection, StoredCalendar):
            _move_stored(session, item, source, to_collection, to_href)
        else:
            raise NotAllowed(
                "the interactions calendar holds CRM meetings only: save the event there "
                "to make it one"
            )


def _move_interaction(
    session: Session,
    public_url: str,
    interaction_id: int,
    source: Kept,
    target: Kept,
    to_href: str,
) -> None:
    service = InteractionService(session, public_url)
    interaction = service.get(interaction_id)
    actor = Directory(session).user(paths.Place.of(source.path).home)
    name = calendar_contents.name_of(interaction, actor.id)
    if to_href != name:
        raise NotAllowed(f"a meeting keeps its name when it moves: move it to {name}")
    if isinstance(target, StoredCalendar):
        session.execute(
            delete(StoredItem).where(
                StoredItem.collection_id == target.collection_id, StoredItem.href == to_href
            )
        )
    service.place(
        actor, interaction, target.collection_id if isinstance(target, StoredCalendar) else None
    )


def _move_stored(
    session: Session,
    item: radicale_item.Item,
    source: StoredCalendar,
    target: StoredCalendar,
    to_href: str,
) -> None:
    session.execute(
        delete(StoredItem).where(
            StoredItem.collection_id == target.collection_id, StoredItem.href == to_href
        )
    )
    row = session.scalar(
        select(StoredItem).where(
            StoredItem.collection_id == source.collection_id, StoredItem.href == item.href
        )
    )
    if row is None:
        raise storage.ComponentNotFoundError(str(item.href))
    row.collection_id, row.href = target.collection_id, to_href
    changelog.record(session, {source.calendar_key}, str(item.href), deleted=True)
    changelog.record(session, {target.calendar_key}, to_href)

"""A user's read-only address book of colleagues and rooms: the CRM's directory as vCards."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from radicale import item as radicale_item
from radicale.item import filter as radicale_filter

from caldav_bridge.caldav import paths
from caldav_bridge.domain import changelog
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import NotAllowed
from caldav_bridge.ical import vcards as contacts
from plugins.radicale_bridge_storage.base import Calendar, Entry, LazyItem, Texts

if TYPE_CHECKING:
    from plugins.radicale_bridge_storage import Storage


class DirectoryBook(Calendar):
    """A user's read-only address book of colleagues and rooms: the CRM's directory as
    vCards (``contacts``), made when asked; its CTag and sync tokens come from the directory's
    change log, which every user's book shares."""

    calendar_key = changelog.DIRECTORY_BOOK

    def __init__(self, storage_: Storage, login: str) -> None:
        super().__init__(storage_, paths.stored([login, paths.DIRECTORY]))
        self._cards: dict[str, contacts.Card] | None = None

    def _all(self) -> dict[str, contacts.Card]:
        """The cards, read once per request (a collection object lives for one request)."""
        if self._cards is None:
            with self._session() as session:
                self._cards = {card.href: card for card in Directory(session).cards()}
        return self._cards

    def _item(self, card: contacts.Card, texts: Texts) -> radicale_item.Item:
        return LazyItem(
            texts,
            collection=self,
            href=card.href,
            etag=card.etag,
            uid=card.uid,
            name="VCARD",
            component_name="",
            time_range=(radicale_filter.TIMESTAMP_MIN, radicale_filter.TIMESTAMP_MAX),
            last_modified=self.last_modified,
        )

    def _items_of(self, cards: list[contacts.Card]) -> list[radicale_item.Item]:
        texts = Texts(self, [card.href for card in cards])
        return [self._item(card, texts) for card in cards]

    def texts(self, hrefs: list[str] | None) -> dict[str, str]:
        cards = self._all()
        return {href: cards[href].text() for href in (cards if hrefs is None else hrefs)}

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        cards = self._all()
        wanted = list(dict.fromkeys(hrefs))
        found = {i.href: i for i in self._items_of([cards[h] for h in wanted if h in cards])}
        return [(href, found.get(href)) for href in wanted]

    def get_all(self) -> Iterable[radicale_item.Item]:
        return self._items_of(list(self._all().values()))

    def get_filtered(self, filters: Iterable[Any]) -> Iterable[tuple[radicale_item.Item, bool]]:
        """Every card: Radicale matches each against the addressbook-query's filters."""
        return ((item, False) for item in self.get_all())

    def entries(self, hrefs: list[str] | None = None, dated: bool = True) -> list[Entry]:
        cards = self._all()
        wanted = cards.values() if hrefs is None else [cards[h] for h in hrefs if h in cards]
        modified = self._revision()[1] if dated else None
        return [(card.href, card.etag, "VCARD", "", modified) for card in wanted]

    def _all_hrefs(self) -> Iterator[str]:
        yield from self._all()

    def has_uid(self, uid: str) -> bool:
        return any(card.uid == uid for card in self._all().values())

    def get_meta(self, key: str | None = None) -> Any:
        meta = {
            "tag": "VADDRESSBOOK",
            "D:displayname": contacts.DISPLAY_NAME,
            "CR:addressbook-description": contacts.DESCRIPTION,
        }
        return meta if key is None else meta.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        raise NotAllowed(contacts.READ_ONLY)

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        raise NotAllowed(contacts.READ_ONLY)

    def delete(self, href: str | None = None) -> None:
        raise NotAllowed(contacts.READ_ONLY)

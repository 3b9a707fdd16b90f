"""The server's URL layout, in one place: every layer (the application, the rights and storage
plugins, scheduling) parses and builds CalDAV paths here.

    /                          the root
    /<login>/                  a CRM user's principal (their calendar home)
    /<login>/interactions/     the live projection of the interactions they own or are linked to
    /<login>/directory/        their read-only address book of colleagues and rooms
    /<login>/inbox/            their schedule inbox (RFC 6638 section 2.2)
    /<login>/outbox/           their schedule outbox (RFC 6638 section 2.1), for free-busy
    /<login>/<name>/           calendars, address books and folders the user made (stored)
    /<resource>/               a room or other resource's principal
    /<resource>/bookings/      the interactions that book it (read-only)

A path is read as its names (``names``): Radicale's sanitised paths ("alice/interactions"),
request paths ("/alice/interactions/x.ics") and the paths of an answer's hrefs alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

INTERACTIONS = "interactions"
BOOKINGS = "bookings"
DIRECTORY = "directory"
INBOX = "inbox"
OUTBOX = "outbox"

# Collections the server makes in every home: no client creates, replaces or removes them,
# and they hold items only, no collections.
MADE_BY_SERVER = frozenset({INTERACTIONS, BOOKINGS, DIRECTORY, INBOX, OUTBOX})
# What a user's home lists of its own (besides the collections they made).
HOME_CALENDARS = (INTERACTIONS, DIRECTORY, BOOKINGS)
SCHEDULE_BOXES = frozenset({INBOX, OUTBOX})


def names(path: str) -> list[str]:
    """The names of ``path``, without the empty ones its slashes leave."""
    return [name for name in path.split("/") if name]


def of_url(url: str) -> list[str]:
    """The names of a URL's (or an href's) path, percent-decoded."""
    return names(unquote(urlsplit(url).path))


def stored(parts: list[str]) -> str:
    """The path the storage keeps a collection under: its names joined, no slashes around."""
    return "/".join(parts)


def href(prefix: str, *parts: str) -> str:
    """The quoted href of a collection, under the application's ``prefix``."""
    return quote(f"{prefix}/{''.join(f'{part}/' for part in parts)}")


def collection_href(prefix: str, path: str) -> str:
    """The quoted href of the collection at ``path`` (any form ``names`` reads)."""
    return href(prefix, *names(path))


@dataclass(frozen=True)
class Place:
    """Where a path points in the layout."""

    parts: tuple[str, ...]

    @classmethod
    def of(cls, path: str) -> Place:
        return cls(tuple(names(path)))

    @property
    def home(self) -> str:
        """The principal whose home the path is in ("" for the root)."""
        return self.parts[0] if self.parts else ""

    @property
    def child(self) -> str | None:
        """The name of the collection of the home the path is in, if it is in one."""
        return self.parts[1] if len(self.parts) > 1 else None

    @property
    def is_principal(self) -> bool:
        return len(self.parts) == 1

    @property
    def schedule_box(self) -> str | None:
        """INBOX or OUTBOX when the path is a user's schedule inbox or outbox itself."""
        return self.child if len(self.parts) == 2 and self.child in SCHEDULE_BOXES else None

    @property
    def in_schedule_box(self) -> bool:
        """Whether the path is a schedule inbox or outbox, or inside one."""
        return self.child in SCHEDULE_BOXES

    @property
    def in_directory(self) -> bool:
        return self.child == DIRECTORY

    @property
    def made_by_server(self) -> bool:
        """A principal, or one of the collections the server makes in every home."""
        return len(self.parts) == 1 or (len(self.parts) == 2 and self.child in MADE_BY_SERVER)

    def item(self) -> tuple[str, str] | None:
        """(calendar path, item name) when the path can be an item of a calendar in a home."""
        if len(self.parts) < 3:
            return None
        return "/" + "/".join(self.parts[:-1]) + "/", self.parts[-1]


def parent(path: str) -> str:
    """The path of the collection ``path`` is in, with slashes around."""
    above = names(path)[:-1]
    return f"/{stored(above)}/" if above else "/"


def home_child(path: str) -> str:
    """The path of the calendar of the home ``path`` is in that rights are asked about: the
    path's own calendar, or the interactions calendar for the home itself (free-busy only)."""
    place = Place.of(path)
    return f"/{place.home}/{place.child or INTERACTIONS}/"

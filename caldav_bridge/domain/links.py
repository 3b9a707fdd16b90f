"""The addresses of the bridge's own pages, under ``/.bridge/`` (a path no calendar can take:
Radicale's names never start with a dot)."""

from __future__ import annotations

PREFIX = "/.bridge/"
RSVP = "interactions/"
FEEDS = "feeds/"
FEED_SUFFIX = ".ics"


def rsvp(public_url: str, interaction_id: int, token: str) -> str:
    return f"{public_url.rstrip('/')}{PREFIX}{RSVP}{interaction_id}?token={token}"


def feed(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{PREFIX}{FEEDS}{token}{FEED_SUFFIX}"


def webcal(address: str) -> str:
    """The ``webcal://`` form calendar programs open as a subscription."""
    return "webcal://" + address.split("://", 1)[1]

"""Checks of free text typed by people or sent by clients, shared by every entry point."""

from __future__ import annotations

from caldav_bridge.errors import InvalidInput


def one_line(value: str, what: str, limit: int, required: bool = False) -> str:
    """Stripped text without line breaks (they would reach email headers) or NUL bytes."""
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{what} must not be empty")
    if len(text) > limit or any(ch in text for ch in "\r\n\x00"):
        raise InvalidInput(f"{what} must be one line of at most {limit} characters")
    return text

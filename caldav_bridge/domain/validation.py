"""Checks of free text typed by people or sent by clients, shared by every entry point."""

from __future__ import annotations

import re
import unicodedata

from caldav_bridge.domain.errors import InvalidInput

# Line and paragraph separators (U+2028, U+2029) and control characters but the tab, NEL and
# vertical tab included: any of them could end a line in an email header or a log.
_BREAKING = {"Zl", "Zp", "Cc"}


# One addr-spec, leniently (o'brien@example.com, ops@intranet, x@[192.0.2.1]): nothing that
# would make an email header name a second recipient or start a new line.
_ADDRESS = re.compile(r"[^\s<>,;@\"()\\]+@[^\s<>,;@\"()\\]+")


def mail_address(value: str) -> str:
    if not _ADDRESS.fullmatch(value) or any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInput(f"{value!r} is not one email address")
    return value


def one_line(value: str, what: str, limit: int, required: bool = False) -> str:
    """Stripped text without line breaks (they would reach email headers), control characters
    or a byte-order mark."""
    text = value.replace("\ufeff", "").strip()
    if required and not text:
        raise InvalidInput(f"{what} must not be empty")
    if len(text) > limit or any(
        unicodedata.category(ch) in _BREAKING and ch != "\t" for ch in text
    ):
        raise InvalidInput(f"{what} must be one line of at most {limit} characters")
    return text


MAX_UID = 255  # the columns that keep UIDs


def uid(value: str, what: str = "the UID") -> str:
    """A UID kept exactly as the client wrote it. It is TEXT (RFC 5545 3.8.4.7, 3.3.11): any
    character but the controls, a line feed (escaped as \\n) and a tab excepted."""
    if not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > MAX_UID:
        raise InvalidInput(f"{what} is longer than {MAX_UID} characters")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in value):
        raise InvalidInput(
            f"{what} holds a control character: iCalendar TEXT (RFC 5545 3.3.11) holds none "
            "but tab and line feed"
        )
    return value

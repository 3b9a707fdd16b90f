"""The request's path and the headers the server reads, checked at the door: one that cannot
be read is refused with a 4xx and the reason, before Radicale or the bridge trips over it with
a 500. A name in the path may hold any character but NUL and "/" (a client percent-encodes
what a URL cannot carry), and is not a dot-segment.

Each header is read with a library's parser (base64, ``email`` for media types, ``codecs``
for charsets, ``urllib.parse`` for addresses, werkzeug for Accept-Encoding, Prefer and entity
tags), by one reader here that every layer uses; what Radicale then reads of it is the same
text, or (Accept-Encoding, If-Match, If-None-Match) what the reader made of it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from radicale import types
from werkzeug.datastructures import ETags
from werkzeug.http import (
    parse_accept_header,
    parse_etags,
    parse_list_header,
    parse_options_header,
    unquote_etag,
)

from caldav_bridge.caldav import paths
from caldav_bridge.domain.errors import PreconditionFailed


@dataclass(frozen=True)
class Refusal:
    status: HTTPStatus
    reason: str


def basic_credentials(environ: types.WSGIEnviron) -> tuple[str, str] | None:
    """(login, password) of a Basic Authorization header, None without one (Radicale reads
    the header only when it starts with "Basic"); ValueError when it cannot be read."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if not header.startswith("Basic"):
        return None
    try:
        decoded = base64.b64decode(header[len("Basic") :].strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("the Authorization header's Basic credentials are not base64") from exc
    # As Radicale decodes them: UTF-8, else Latin-1 (older clients).
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        text = decoded.decode("iso8859-1")
    login, colon, password = text.partition(":")
    if not colon:
        raise ValueError("the Authorization header's Basic credentials are not login:password")
    return login, password


def _charset(environ: types.WSGIEnviron) -> Refusal | None:
    content_type = str(environ.get("CONTENT_TYPE", ""))
    if "charset" not in content_type.lower():
        return None
    parsed = Message()
    parsed["Content-Type"] = content_type
    charset = parsed.get_param("charset")
    try:
        codecs.lookup(str(charset))
    except LookupError:
        return Refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unknown charset {charset!r}")
    return None


# The columns that hold an item's or a calendar's name (href, item_href) are this long.
MAX_NAME = 255


def path_text(environ: types.WSGIEnviron) -> str:
    """The request's path as the client wrote it, as text. A PEP 3333 server (waitress,
    gunicorn) hands its bytes decoded as Latin-1, which Radicale (whose own server decodes
    UTF-8) would take for the names: "ä" would be stored as "Ã¤". ValueError when the bytes
    are not UTF-8."""
    path = str(environ.get("PATH_INFO", ""))
    try:
        raw = path.encode("latin-1")
    except UnicodeEncodeError:
        return path  # text already: a server that decoded UTF-8 itself
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("the path is not UTF-8 (RFC 3986 percent-encodes UTF-8)") from exc


def _names(path: str, what: str) -> Refusal | None:
    """Names may hold any character but NUL (refused on its own) and "/": a "." or ".."
    would climb out of the calendar, and the columns keep ``MAX_NAME`` characters."""
    names = paths.names(path)
    if any(name in (".", "..") for name in names):
        return Refusal(
            HTTPStatus.BAD_REQUEST,
            f"{what} names '.' or '..' (a dot-segment, RFC 3986 5.2.4): name the item itself",
        )
    if any(len(name) > MAX_NAME for name in names):
        return Refusal(
            HTTPStatus.BAD_REQUEST, f"a name in {what} is longer than {MAX_NAME} characters"
        )
    return None


def _path(environ: types.WSGIEnviron) -> Refusal | None:
    try:
        path = path_text(environ)
    except ValueError as exc:
        return Refusal(HTTPStatus.BAD_REQUEST, str(exc))
    raw = str(environ.get("REQUEST_URI") or environ.get("RAW_URI") or "")
    if "%2f" in urlsplit(raw).path.lower():
        return Refusal(
            HTTPStatus.BAD_REQUEST,
            "a name cannot hold '/' (%2F in the path): each '/' separates a collection",
        )
    return _names(path, "the path")


def _destination(environ: types.WSGIEnviron) -> Refusal | None:
    if environ.get("REQUEST_METHOD") not in ("MOVE", "COPY"):
        return None
    destination = str(environ.get("HTTP_DESTINATION", ""))
    try:
        address = urlsplit(destination)
        address.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        address = None
    if address is None or not unquote(address.path).startswith("/"):
        return Refusal(
            HTTPStatus.BAD_REQUEST, "the Destination header must be the address to move to"
        )
    if "%2f" in address.path.lower():
        return Refusal(HTTPStatus.BAD_REQUEST, "a name cannot hold '/' (%2F in Destination)")
    return _names(unquote(address.path), "the Destination header")


# RFC 4918 10.2 and 10.6: the only values of Depth and Overwrite.
_ENUMERATED = {
    "HTTP_DEPTH": ("Depth", {"0", "1", "infinity"}),
    "HTTP_OVERWRITE": ("Overwrite", {"T", "F"}),
}


def _enumerated(environ: types.WSGIEnviron) -> Refusal | None:
    for key, (name, values) in _ENUMERATED.items():
        value = environ.get(key)
        given = str(value).strip()
        if value is not None and (given.lower() if name == "Depth" else given) not in values:
            allowed = ", ".join(sorted(values))
            return Refusal(HTTPStatus.BAD_REQUEST, f"the {name} header must be one of {allowed}")
    return None


def _framing(environ: types.WSGIEnviron) -> Refusal | None:
    length = str(environ.get("CONTENT_LENGTH") or "0")
    if not (length.isascii() and length.isdigit()):
        return Refusal(HTTPStatus.BAD_REQUEST, "Content-Length must be a number of bytes")
    return None


def _no_nul(environ: types.WSGIEnviron) -> Refusal | None:
    """No text the server stores or looks up holds a NUL (PostgreSQL's text cannot). The
    path comes decoded (a "%00" in it is three characters of a name); the query and the
    Destination header are read decoded."""
    for name, value in environ.items():
        text = str(value)
        if name in ("QUERY_STRING", "HTTP_DESTINATION"):
            text = unquote(text)
        elif not (name.startswith("HTTP_") or name in ("CONTENT_TYPE", "PATH_INFO")):
            continue
        if "\x00" in text:
            return Refusal(HTTPStatus.BAD_REQUEST, f"NUL characters are not accepted ({name})")
    return None


def refusal(environ: types.WSGIEnviron) -> Refusal | None:
    """Why the request's path or headers cannot be read, or None."""
    for check in (_no_nul, _path, _framing, _enumerated, _charset, _destination):
        found = check(environ)
        if found is not None:
            return found
    try:
        basic_credentials(environ)
    except ValueError as exc:
        return Refusal(HTTPStatus.BAD_REQUEST, str(exc))
    return None


# ---------------------------------------------------------------------------- what is read


def accepts_gzip(environ: types.WSGIEnviron) -> bool:
    """Whether Accept-Encoding (RFC 9110 12.5.3) takes gzip: named (``x-gzip`` too), or else
    ``*``, with a q-value above 0; a named q-value wins over ``*``'s (``*;q=1, gzip;q=0``
    refuses it)."""
    accepted = parse_accept_header(str(environ.get("HTTP_ACCEPT_ENCODING", "")))
    named = [quality for value, quality in accepted if value.lower() in ("gzip", "x-gzip")]
    if named:
        return max(named) > 0
    return any(value == "*" and quality > 0 for value, quality in accepted)


def preferences(environ: types.WSGIEnviron) -> dict[str, str]:
    """The Prefer header's preferences (RFC 7240 section 2), each name (lower case) with its
    value ("" for none): the first of a name counts, parameters are left out."""
    found: dict[str, str] = {}
    for element in parse_list_header(str(environ.get("HTTP_PREFER", ""))):
        preference, _ = parse_options_header(element)
        name, _, value = preference.partition("=")
        found.setdefault(name.strip().lower(), value.strip().strip('"').lower())
    return found


def _etags(environ: types.WSGIEnviron, key: str) -> ETags | None:
    value = str(environ.get(key, "")).strip()
    return parse_etags(value) if value else None


@dataclass(frozen=True)
class Conditions:
    """A request's If-Match and If-None-Match (RFC 9110 13.1.1, 13.1.2: lists of entity tags,
    or ``*``) and If-Schedule-Tag-Match (RFC 6638 8.3). If-Match compares strongly (a weak
    ``W/`` tag matches nothing), If-None-Match weakly."""

    if_match: ETags | None = None
    if_none_match: ETags | None = None
    if_schedule_tag_match: str | None = None

    def check(self, current: str | None, schedule_tag: str | None = None) -> None:
        """Raise PreconditionFailed unless the conditions hold for an item whose ETag is
        ``current`` (None: there is no item) and whose Schedule-Tag is ``schedule_tag``."""
        if self.if_schedule_tag_match is not None and schedule_tag != self.if_schedule_tag_match:
            raise PreconditionFailed(
                "the event changed since you read it (If-Schedule-Tag-Match): read it again"
            )
        tag = unquote_etag(current)[0] if current is not None else None
        if self.if_match is not None and (tag is None or not self.if_match.contains(tag)):
            raise PreconditionFailed("the item changed since you read it (If-Match)")
        none_match = self.if_none_match
        if tag is not None and none_match is not None and none_match.contains_weak(tag):
            raise PreconditionFailed("the item exists already (If-None-Match)")

    def for_radicale(self, environ: types.WSGIEnviron) -> types.WSGIEnviron:
        """``environ`` with the conditions as Radicale's own check reads them: it compares
        If-Match with one ETag as text and knows only ``If-None-Match: *``. It is left to
        check what it can (an If-Match for an item that does not exist, ``*`` for one that
        does); the storage checks the conditions themselves inside the write."""
        kept = {
            k: v for k, v in environ.items() if k not in ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH")
        }
        if self.if_match is not None:
            kept["HTTP_IF_MATCH"] = "*"
        if self.if_none_match is not None and self.if_none_match.star_tag:
            kept["HTTP_IF_NONE_MATCH"] = "*"
        return kept


def conditions(environ: types.WSGIEnviron) -> Conditions:
    """The request's conditions on the item it writes."""
    schedule_tag = environ.get("HTTP_IF_SCHEDULE_TAG_MATCH")
    return Conditions(
        _etags(environ, "HTTP_IF_MATCH"),
        _etags(environ, "HTTP_IF_NONE_MATCH"),
        None if schedule_tag is None else str(schedule_tag).strip(),
    )

"""Every XML body the application writes itself: multistatus answers and their responses and
propstats, DAV:error bodies, and the fast listings sync clients repeat.

Bodies built as ElementTree elements are written by ``document``. The listings of a calendar
(a Depth 1 PROPFIND for ETags, a sync-collection REPORT) are written as text instead:
listing ten thousand items through ElementTree costs more than the database query. Every value
spliced into them is quoted (hrefs, RFC 3986) or escaped (ETags, content types, tokens) here;
what Radicale answered is spliced in only once it is parsed and found to be the one response
expected, else its own answer is served.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # writes XML only; what is read is parsed with defusedxml
from collections.abc import Iterable
from email.utils import format_datetime
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

import defusedxml.ElementTree as DefusedET
from radicale import item as radicale_item
from radicale import xmlutils

from caldav_bridge.caldav import paths
from caldav_bridge.caldav.base import Entry

D = "DAV:"
C = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
# The namespace of the bridge's own XML: the reason of a refused precondition.
REASON_NS = "https://caldav-bridge.invalid/ns/"

CONTENT_TYPE = "text/xml; charset=utf-8"
_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"


# ---------------------------------------------------------------------------- ElementTree


def document(root: ET.Element) -> bytes:
    """The one serialiser of the bodies built as elements."""
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text


def href(parent: ET.Element, text: str) -> None:
    ET.SubElement(parent, f"{{{D}}}href").text = text


def propstat(props: Iterable[ET.Element], status: str = "200 OK") -> ET.Element:
    found = ET.Element(f"{{{D}}}propstat")
    ET.SubElement(found, f"{{{D}}}prop").extend(props)
    ET.SubElement(found, f"{{{D}}}status").text = f"HTTP/1.1 {status}"
    return found


def multistatus(responses: Iterable[ET.Element]) -> bytes:
    root = ET.Element(f"{{{D}}}multistatus")
    root.extend(responses)
    return document(root)


def responses_of(answer: bytes) -> list[ET.Element]:
    """The responses of a multistatus (Radicale's)."""
    return list(DefusedET.fromstring(answer).findall(f"{{{D}}}response"))


def truncated(quoted_href: str, description: str) -> ET.Element:
    """The response for the request-URI of an answer that holds only part of what it would
    (RFC 6578 section 3.6, RFC 3744 section 9.4: number-of-matches-within-limits)."""
    response = ET.Element(f"{{{D}}}response")
    href(response, quoted_href)
    ET.SubElement(response, f"{{{D}}}status").text = "HTTP/1.1 507 Insufficient Storage"
    error = ET.SubElement(response, f"{{{D}}}error")
    ET.SubElement(error, f"{{{D}}}number-of-matches-within-limits")
    ET.SubElement(response, f"{{{D}}}responsedescription").text = description
    return response


def with_response(answer: bytes, response: ET.Element) -> bytes:
    """A multistatus (Radicale's) with one more response at its end."""
    root = DefusedET.fromstring(answer)
    root.append(response)
    return document(root)


def error(precondition: str, reason: str) -> bytes:
    """A DAV:error body naming the refused precondition (``C:valid-calendar-data``), and the
    reason for people (RFC 4918 section 16 lets DAV:error hold more elements; CalendarServer
    and SabreDAV do the same)."""
    root = xmlutils.webdav_error(precondition)
    ET.SubElement(root, f"{{{REASON_NS}}}reason").text = reason
    return document(root)


def propfind_body(props: Iterable[str]) -> bytes:
    """A PROPFIND asking for ``props`` (Clark names)."""
    root = ET.Element(f"{{{D}}}propfind")
    prop = ET.SubElement(root, f"{{{D}}}prop")
    for tag in props:
        ET.SubElement(prop, tag)
    return document(root)


def searchable(properties: Iterable[tuple[str, str]]) -> bytes:
    """A DAV:principal-search-property-set (RFC 3744 section 9.5): each property a principal
    search can match (Clark name), described."""
    root = ET.Element(f"{{{D}}}principal-search-property-set")
    for tag, description in properties:
        found = ET.SubElement(root, f"{{{D}}}principal-search-property")
        ET.SubElement(ET.SubElement(found, f"{{{D}}}prop"), tag)
        said = ET.SubElement(found, f"{{{D}}}description")
        said.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        said.text = description
    return document(root)


def schedule_response(answers: Iterable[tuple[str, str, str | None]]) -> bytes:
    """The C:schedule-response to an outbox POST: (recipient, request status, calendar data)
    per recipient."""
    root = ET.Element(f"{{{C}}}schedule-response")
    for recipient, status, data in answers:
        response = ET.SubElement(root, f"{{{C}}}response")
        href(ET.SubElement(response, f"{{{C}}}recipient"), recipient)
        ET.SubElement(response, f"{{{C}}}request-status").text = status
        if data is not None:
            ET.SubElement(response, f"{{{C}}}calendar-data").text = data
    return document(root)


# ---------------------------------------------------------------------------- fast listings

DATED = f"{{{D}}}getlastmodified"
# What a sync client asks of every item when it lists a calendar (RFC 4791 section 7.8.x,
# RFC 6578 clients before their first token): answered from the listing columns alone.
LISTING_PROPS = frozenset(
    f"{{{D}}}{name}" for name in ("getetag", "getcontenttype", "resourcetype", "getlastmodified")
)

# urllib's quote() keeps only ASCII letters, digits and "_.~/-". It is slow, and most names
# need nothing, or only the "@" of a UID quoted: the names of a listing are checked at once.
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9_.~/-]")
_SEPARATOR = "\x00"  # in no name that needs no quoting
_NEEDS_QUOTING_OR_SEPARATOR = re.compile(r"[^A-Za-z0-9_.~/\x00-]")


def quoted(name: str) -> str:
    if not _NEEDS_QUOTING.search(name):
        return name
    if not _NEEDS_QUOTING.search(name.replace("@", "")):
        return name.replace("@", "%40")
    return quote(name)


def _quoted_all(names: list[str]) -> list[str]:
    joined = _SEPARATOR.join(names)
    if _NEEDS_QUOTING_OR_SEPARATOR.search(joined.replace("@", "")):
        return [quoted(name) for name in names]
    return joined.replace("@", "%40").split(_SEPARATOR) if "@" in joined else names


_MARKUP = re.compile(r"[&<>]")


def _escaped_all(texts: list[str]) -> list[str]:
    return [escape(t) for t in texts] if _MARKUP.search("".join(texts)) else texts


def _content_types(entries: list[Entry]) -> list[str]:
    """Each item's Content-Type, by Radicale's rule (text/vcard for a vCard, text/calendar with
    the component for an iCalendar object), worked out once per kind of item."""
    kinds = {(entry[2], entry[3]): "" for entry in entries}
    for name, component in kinds:
        probe = radicale_item.Item(collection_path="", text="", name=name, component_name=component)
        kinds[name, component] = escape(xmlutils.get_content_type(probe, "utf-8"))
    return [kinds[entry[2], entry[3]] for entry in entries]


def item_responses(prefix: str, entries: list[Entry], names: list[str]) -> list[str]:
    """The items' <response>s as text, their hrefs under ``prefix`` (a quoted collection
    href), with the listing properties ``names`` (``LISTING_PROPS``)."""
    hrefs = _quoted_all([e[0] for e in entries])
    etags = _escaped_all([e[1] for e in entries])
    wanted = set(names)
    eo, ec = ("<getetag>", "</getetag>") if f"{{{D}}}getetag" in wanted else ("", "")
    typed = f"{{{D}}}getcontenttype" in wanted
    types = _content_types(entries) if typed else [""] * len(entries)
    co, cc = ("<getcontenttype>", "</getcontenttype>") if typed else ("", "")
    rt = "<resourcetype />" if f"{{{D}}}resourcetype" in wanted else ""
    mo, mc = ("<getlastmodified>", "</getlastmodified>") if DATED in wanted else ("", "")
    return [
        f"<response><href>{prefix}{href}</href><propstat><prop>{eo}{etag if eo else ''}{ec}"
        f"{co}{content_type}{cc}{rt}"
        f"{mo}{format_datetime(entry[4], usegmt=True) if mo and entry[4] else ''}{mc}"
        "</prop><status>HTTP/1.1 200 OK</status></propstat></response>"
        for href, etag, content_type, entry in zip(hrefs, etags, types, entries, strict=True)
    ]


def _text_of(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")


def _multistatus(parts: Iterable[str]) -> bytes:
    return f'{_DECLARATION}<multistatus xmlns="DAV:">{"".join(parts)}</multistatus>'.encode()


def listing(collection: bytes, collection_href: str, items: list[str]) -> bytes | None:
    """A Depth 1 PROPFIND's answer: Radicale's answer for the collection itself
    (``collection``, at Depth 0), then the ``items``; None when Radicale's answer is not the
    one response for ``collection_href`` expected (its own Depth 1 answer is served then)."""
    try:
        root = DefusedET.fromstring(collection)
    except Exception:  # whatever Radicale wrote, it is not to be spliced
        return None
    responses = list(root)
    if root.tag != f"{{{D}}}multistatus" or len(responses) != 1:
        return None
    (response,) = responses
    found = response.findtext(f"{{{D}}}href") or ""
    if response.tag != f"{{{D}}}response" or paths.of_url(found) != paths.of_url(collection_href):
        return None
    return _multistatus([_text_of(response), *items])


def sync_answer(
    token: str, prefix: str, items: list[str], gone: Iterable[str], more: bool
) -> bytes:
    """A sync-collection REPORT's answer (RFC 6578 section 3.2): its token, the ``items``
    changed, a 404 for each name ``gone``, and (``more``) the response that says the answer
    holds only part of the changes."""
    parts = [f"<sync-token>{escape(token)}</sync-token>", *items]
    parts += [
        f"<response><href>{prefix}{quoted(name)}</href>"
        "<status>HTTP/1.1 404 Not Found</status></response>"
        for name in gone
    ]
    if more:
        parts.append(_text_of(truncated(prefix, MORE_CHANGES)))
    return _multistatus(parts)


MORE_CHANGES = "more changes follow: ask again with this answer's sync-token"


def unquoted_path(quoted_href: str, prefix: str) -> str:
    """The path of an answer's href, without the application's ``prefix``."""
    return unquote(quoted_href)[len(prefix) :]

"""iMIP (RFC 6047): an outbox row as the email Outlook, Gmail, Thunderbird and Apple Mail show
with their own Accept and Decline buttons.

multipart/alternative: the notice in text/plain and text/html, and the iTIP message inline as
``text/calendar; method=…`` (not an attachment). Headers are built by the standard library's
email package with the SMTP policy, which refuses CR and LF in header values.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from icalendar import Calendar
from jinja2 import Environment, PackageLoader, select_autoescape

from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.models import NotificationKind, OutboxMessage
from caldav_bridge.ical.mapping import normalize_address

_TEMPLATES = Environment(  # the notice's HTML part (``caldav_bridge/mail/templates``)
    loader=PackageLoader("caldav_bridge.mail", "templates"), autoescape=select_autoescape(["html"])
)


def _header(value: str) -> str:
    """A header value on one line: CR, LF and other controls become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def _answering(calendar: str) -> str | None:
    """The address of the one ATTENDEE a REPLY names."""
    for event in Calendar.from_ical(calendar).walk("VEVENT"):
        found = event.get("ATTENDEE")
        if found is not None and not isinstance(found, list):
            return normalize_address(str(found))
    return None


def email_for(row: OutboxMessage, sender: str) -> EmailMessage:
    """The email of one outbox row (channel email)."""
    if not row.recipient_address or not row.calendar or not row.itip_method:
        raise InvalidInput(f"outbox message {row.id} is not an iMIP message")
    message = EmailMessage(policy=SMTP)
    message["From"] = _header(sender)
    message["To"] = _header(row.recipient_address)
    message["Subject"] = _header(row.subject)
    message["Date"] = format_datetime(row.created_at)
    message["Message-ID"] = _header(row.message_id)
    if row.kind is NotificationKind.OUTSIDE_REPLY:  # answers go back to the attendee
        attendee = _answering(row.calendar)
        if attendee:
            message["Reply-To"] = _header(attendee)
    message.set_content(f"{row.body}\n", charset="utf-8")
    html = _TEMPLATES.get_template("notice.html").render(
        subject=row.subject, body=row.body, link=row.link, method=row.itip_method
    )
    message.add_alternative(html, subtype="html", charset="utf-8")
    message.add_alternative(
        row.calendar, subtype="calendar", charset="utf-8", params={"method": row.itip_method}
    )
    return message

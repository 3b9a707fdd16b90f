"""Typed errors whose message a person understands.

Every error the domain raises on purpose derives from ``BridgeError``; the CLI prints its
message on one line and exits with code 2, and every other channel (CalDAV, the CRM pages, the
RSVP page, the LMTP listener) answers with the status ``status_of`` gives: one table for all.
"""

from __future__ import annotations

from http import HTTPStatus


class BridgeError(Exception):
    """An expected refusal: the request was understood and cannot be carried out."""


class ConfigurationError(BridgeError):
    pass


class InvalidInput(BridgeError):
    pass


class NotFound(BridgeError):
    pass


class AlreadyExists(BridgeError):
    pass


class NotAllowed(BridgeError):
    """The acting user may not do this (not the owner, not linked, inactive)."""


class MultiUserDisabled(BridgeError):
    def __init__(self) -> None:
        super().__init__(
            "multi-user interactions are switched off: an administrator must switch them on "
            "before other users can be linked"
        )


class LastAdministrator(BridgeError):
    """Taking the CRM's last active administrator away: nobody could reach its administration."""

    def __init__(self, login: str) -> None:
        super().__init__(
            f"{login} is the last active administrator: make another user an administrator first"
        )


class InvalidTransition(BridgeError):
    """A status change the rules of multi-user interactions forbid."""


class InteractionCancelled(BridgeError):
    pass


class StaleMessage(BridgeError):
    """An iTIP message, or an attendee's copy, older than what is known (RFC 5546 2.1.5): it
    is ignored, and each channel says so in its way (``rules.stale``)."""


class PreconditionFailed(BridgeError):
    """An If-Match or If-None-Match that no longer holds when the write happens."""


class BookingConflict(BridgeError):
    """The resource is already booked by another interaction over an overlapping time."""

    def __init__(self, resource_name: str, other_id: int, other_subject: str, when: str) -> None:
        self.other_interaction_id = other_id
        super().__init__(
            f"{resource_name} is already booked by interaction #{other_id} "
            f"'{other_subject}' ({when})"
        )


class CalDavPrecondition(NotAllowed):
    """A refusal that CalDAV reports with a precondition element (RFC 4791, RFC 6638)."""

    def __init__(self, element: str, message: str) -> None:
        self.element = element
        super().__init__(message)


class UidConflict(CalDavPrecondition):
    """Another item of the calendar has this UID (RFC 4791 5.3.2.1: 409, no-uid-conflict)."""

    def __init__(self, message: str) -> None:
        super().__init__("C:no-uid-conflict", message)


# The one table from a refusal to its HTTP status, most specific kind first. A refusal that
# depends on the interaction's present state (cancelled, already answered that way, booked) is
# a conflict; one that no state would change (who asks, what is asked) is forbidden or bad.
_STATUS: tuple[tuple[type[BridgeError], HTTPStatus], ...] = (
    (UidConflict, HTTPStatus.CONFLICT),
    (NotAllowed, HTTPStatus.FORBIDDEN),
    (InvalidInput, HTTPStatus.BAD_REQUEST),
    (ConfigurationError, HTTPStatus.BAD_REQUEST),
    (NotFound, HTTPStatus.NOT_FOUND),
    (PreconditionFailed, HTTPStatus.PRECONDITION_FAILED),
    (AlreadyExists, HTTPStatus.CONFLICT),
    (BookingConflict, HTTPStatus.CONFLICT),
    (InteractionCancelled, HTTPStatus.CONFLICT),
    (StaleMessage, HTTPStatus.CONFLICT),
    (InvalidTransition, HTTPStatus.CONFLICT),
    (MultiUserDisabled, HTTPStatus.CONFLICT),
    (LastAdministrator, HTTPStatus.CONFLICT),
)


def status_of(refusal: BridgeError) -> HTTPStatus:
    """The HTTP status every channel answers ``refusal`` with."""
    return next((s for kind, s in _STATUS if isinstance(refusal, kind)), HTTPStatus.BAD_REQUEST)

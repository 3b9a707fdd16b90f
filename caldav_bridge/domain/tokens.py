"""Signed links: answering an invitation (RSVP) and reading a feed, without a password.

A token is an HMAC-SHA256 of what it grants, under the key migration 0006 put in the settings
table, so every server process shares it and no token is stored. An RSVP token grants one user
the answer to one interaction; raising the user's ``rsvp_generation`` revokes every RSVP link
sent before. A feed token grants reading one user's or one room's calendar; a new random
``feed_nonce`` (rotate) or none (revoke) ends the old link for good.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from caldav_bridge.domain.models import Resource, Setting, User

SIGNING_KEY = "token_signing_key"

FeedSubject = User | Resource


def _key(session: Session) -> bytes:
    """The signing key, read once per transaction."""
    key = session.info.get(SIGNING_KEY)
    if key is None:
        row = session.get(Setting, SIGNING_KEY)
        if row is None:  # migration 0006 makes it; made again if the row was deleted
            try:
                with session.begin_nested():
                    session.add(Setting(key=SIGNING_KEY, value=secrets.token_urlsafe(32)))
            except IntegrityError:  # another process made it first
                pass
            row = session.get(Setting, SIGNING_KEY)
            assert row is not None
        key = session.info[SIGNING_KEY] = row.value.encode()
    return bytes(key)


def _mac(session: Session, *granted: object) -> str:
    message = "\x1f".join(str(part) for part in granted).encode()
    digest = hmac.new(_key(session), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()  # 192 bits, 32 characters


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdecimal() and len(text) < 12 else None


# ---------------------------------------------------------------------- RSVP


def rsvp_token(session: Session, user: User, interaction_id: int) -> str:
    return f"{user.id}.{_mac(session, 'rsvp', user.id, interaction_id, user.rsvp_generation)}"


def rsvp_user(session: Session, token: str, interaction_id: int) -> User | None:
    """The active user ``token`` lets answer ``interaction_id``, or None."""
    user_id, _, mac = token.partition(".")
    number = _number(user_id)
    user = session.get(User, number) if number is not None else None
    if user is None or not user.active:
        return None
    expected = _mac(session, "rsvp", user.id, interaction_id, user.rsvp_generation)
    return user if hmac.compare_digest(mac.encode(), expected.encode()) else None


def revoke_rsvp(user: User) -> None:
    """Every RSVP link sent to ``user`` so far stops working."""
    user.rsvp_generation += 1


# ---------------------------------------------------------------------- feeds

_FEED_PREFIX = {User: "u", Resource: "r"}


def feed_token(session: Session, subject: FeedSubject) -> str | None:
    """The token of the subject's feed; None when it has none."""
    if subject.feed_nonce is None:
        return None
    prefix = _FEED_PREFIX[type(subject)]
    return f"{prefix}{subject.id}-{_mac(session, 'feed', prefix, subject.id, subject.feed_nonce)}"


def rotate_feed(subject: FeedSubject) -> None:
    """Give the subject a feed, or a new link for it: the old link stops working."""
    subject.feed_nonce = secrets.token_hex(16)


def revoke_feed(subject: FeedSubject) -> None:
    subject.feed_nonce = None


def feed_subject(session: Session, token: str) -> FeedSubject | None:
    """The user or room ``token`` opens the feed of, or None."""
    head = token.partition("-")[0]
    number = _number(head[1:])
    if number is None:
        return None
    subject: FeedSubject | None
    if head[:1] == "u":
        subject = session.get(User, number)
    elif head[:1] == "r":
        subject = session.get(Resource, number)
    else:
        return None
    if subject is None or not subject.active or subject.feed_nonce is None:
        return None
    expected = feed_token(session, subject)
    assert expected is not None
    return subject if hmac.compare_digest(token.encode(), expected.encode()) else None


# ---------------------------------------------------------------------- web sessions

SESSION_HOURS = 12


def _session_mac(session: Session, user: User, expires: int) -> str:
    granted = (user.id, expires, user.password_hash, user.session_generation)
    return _mac(session, "web", *granted)


def session_token(session: Session, user: User, now: float) -> str:
    """A login to the web pages until ``now`` + SESSION_HOURS; logging out (``end_sessions``)
    or a new password ends it."""
    expires = int(now) + SESSION_HOURS * 3600
    return f"{user.id}.{expires}.{_session_mac(session, user, expires)}"


def end_sessions(user: User) -> None:
    """Every web session of ``user`` ends, in every browser."""
    user.session_generation += 1


def session_user(session: Session, token: str, now: float) -> User | None:
    """The active user a session cookie names, while it lasts; else None."""
    user_id, _, rest = token.partition(".")
    expires_text, _, mac = rest.partition(".")
    number, expires = _number(user_id), _number(expires_text)
    if number is None or expires is None or expires < now:
        return None
    user = session.get(User, number)
    if user is None or not user.active:
        return None
    expected = _session_mac(session, user, expires)
    return user if hmac.compare_digest(mac.encode(), expected.encode()) else None


def csrf_token(session: Session, cookie: str) -> str:
    """What every form of a web session carries back: a page on another site cannot know it."""
    return _mac(session, "csrf", cookie)


def csrf_valid(session: Session, cookie: str, sent: str) -> bool:
    return bool(cookie) and hmac.compare_digest(sent.encode(), csrf_token(session, cookie).encode())

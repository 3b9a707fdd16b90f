"""Administration: who may add and (de)activate users and resources, set passwords, grant the
administrator flag and switch multi-user interactions, decided here for every channel.

Each action takes the ``actor`` who asks: a CRM user (the CRM's administration page passes
the one logged in) or ``OPERATOR``, whoever runs ``caldav-bridge`` at the server's console.

The rules, the same on every channel:

- Only an active administrator, or the operator, administers; a user may set their own
  password. Anyone else is refused with ``NotAllowed``.
- A password chosen for a user follows ``passwords.check_new_password``.
- Nobody deactivates themselves or removes their own administrator flag (a click would lock
  them out of this page); another administrator, or the operator, does it.
- The last active administrator is never deactivated nor loses the flag, the operator's
  command included: once the CRM has an administrator, someone can always reach its
  administration page. Make another user an administrator first. (A CRM that never had one
  is administered from the console alone, as before.)

``Directory`` stays the store these rules write through; set-up code that is no channel (the
demo data set, tests) uses it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from caldav_bridge.db import locked
from caldav_bridge.domain import settings
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import LastAdministrator, NotAllowed
from caldav_bridge.domain.models import Resource, ResourceKind, User
from caldav_bridge.domain.passwords import check_new_password, hash_password


@dataclass(frozen=True)
class Operator:
    """Whoever runs the command at the server's console: they hold the database already, so
    they administer everything; they are no user of the CRM (no login, no calendar)."""


OPERATOR = Operator()

Actor = User | Operator


def may_administer(actor: Actor) -> bool:
    return isinstance(actor, Operator) or (actor.active and actor.is_admin)


def require_administrator(actor: Actor) -> None:
    if not may_administer(actor):
        raise NotAllowed("administration is for administrators")


def _is(actor: Actor, user: User) -> bool:
    return isinstance(actor, User) and actor.id == user.id


class Administration:
    """The administrative changes ``actor`` asks for, inside the caller's transaction."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.session = session
        self.actor = actor
        self.directory = Directory(session)

    # ------------------------------------------------------------------ users

    def add_user(
        self,
        login: str,
        display_name: str,
        emails: Sequence[str] = (),
        password: str | None = None,
        timezone: str = "UTC",
        is_admin: bool = False,
    ) -> User:
        """A new active user; without a password they cannot log in yet."""
        require_administrator(self.actor)
        if password is not None:
            check_new_password(password)
        return self.directory.add_user(login, display_name, emails, password, timezone, is_admin)

    def set_password(self, login: str, password: str) -> None:
        """A new password for ``login``: their own for anyone, another's for administrators.
        It ends the user's sessions on the pages and CalDAV's remembered check."""
        user = self.directory.user(login)
        if not _is(self.actor, user):
            require_administrator(self.actor)
        user.password_hash = hash_password(check_new_password(password))

    def set_active(self, login: str, active: bool) -> None:
        user = self._administered(login)
        if not active:
            self._may_take_away(user, "you cannot deactivate yourself")
        user.active = active

    def set_administrator(self, login: str, is_admin: bool) -> None:
        user = self._administered(login)
        if not is_admin:
            self._may_take_away(user, "you cannot remove your own administrator rights")
        user.is_admin = is_admin

    def _administered(self, login: str) -> User:
        require_administrator(self.actor)
        return self.directory.user(login)

    def _may_take_away(self, user: User, yourself: str) -> None:
        """Refuse to take ``user`` out of the active administrators if they are the actor
        (``yourself`` says so) or the last one. The administrators' rows are locked: two such
        changes at once run one after the other."""
        if _is(self.actor, user):
            raise NotAllowed(yourself)
        if not (user.active and user.is_admin):
            return
        admins = locked(self.session, select(User.id).where(User.is_admin, User.active))
        if len(self.session.scalars(admins).all()) <= 1:
            raise LastAdministrator(user.login)

    # ------------------------------------------------------------------ resources

    def add_resource(
        self,
        slug: str,
        name: str,
        email: str,
        kind: ResourceKind = ResourceKind.ROOM,
        capacity: int | None = None,
    ) -> Resource:
        require_administrator(self.actor)
        return self.directory.add_resource(slug, name, email, kind, capacity)

    def set_resource_active(self, slug: str, active: bool) -> None:
        require_administrator(self.actor)
        self.directory.resource(slug).active = active

    # ------------------------------------------------------------------ settings

    def set_multi_user(self, enabled: bool) -> None:
        """Switch multi-user interactions on or off for the whole CRM."""
        require_administrator(self.actor)
        settings.set_flag(self.session, settings.MULTI_USER, enabled)

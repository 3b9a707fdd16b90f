"""Users and resources: who can log in, who can be invited, what can be booked."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.domain.errors import AlreadyExists, InvalidInput, NotFound
from caldav_bridge.domain.models import Resource, ResourceKind, User, UserEmail
from caldav_bridge.domain.passwords import hash_password
from caldav_bridge.domain.validation import one_line
from caldav_bridge.ical import vcards as contacts
from caldav_bridge.ical.mapping import USER_URN, addresses_of, normalize_address, zone

# Logins and slugs become CalDAV path segments: keep them plain, never starting with a dot.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s<>\"',;:()\[\]]+@[^@\s<>\"',;:()\[\]]+\.[^@\s<>\"',;:()\[\]]+")


def _check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r} is not valid: use 1 to 64 lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return value


def check_email(value: str) -> str:
    address = value.strip().lower()
    if not _EMAIL.fullmatch(address):
        raise InvalidInput(f"{value!r} is not an email address")
    return address


class Directory:
    """Reads and writes users and resources inside the caller's transaction.

    It checks what is written (names, addresses), not who writes it: the channels add users and
    resources, and change passwords, activity and rights, through ``administration``, which
    decides who may; set-up code that is no channel (the demo, tests) adds them here."""

    def __init__(self, session: Session) -> None:
        self.session = session

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
        login = _check_name(login.strip(), "login")
        if self.find_user(login) is not None:
            raise AlreadyExists(f"user {login!r} already exists")
        if self.find_resource(login) is not None:
            # Users and resources share the top level of the CalDAV server's paths.
            raise AlreadyExists(f"{login!r} is already the identifier of a resource")
        addresses = [check_email(e) for e in emails]
        if len(set(addresses)) != len(addresses):
            raise InvalidInput("the same email address is given twice")
        for address in addresses:
            self._check_address_free(address)
        zone(timezone)
        user = User(
            login=login,
            display_name=one_line(display_name, "the display name", 200, required=True),
            password_hash=hash_password(password) if password else None,
            timezone=timezone,
            is_admin=is_admin,
            active=True,
            emails=[UserEmail(address=a, position=i) for i, a in enumerate(addresses)],
        )
        self.session.add(user)
        self.session.flush()
        return user

    def _check_address_free(self, address: str) -> None:
        taken = self.session.scalar(
            select(UserEmail.user_id).where(UserEmail.address == address)
        ) or self.session.scalar(select(Resource.id).where(Resource.email == address))
        if taken:
            raise AlreadyExists(f"the address {address} already belongs to someone")

    def find_user(self, login: str) -> User | None:
        return self.session.scalar(
            select(User)
            .where(User.login == login.strip().lower())
            .options(selectinload(User.emails))
        )

    def user(self, login: str) -> User:
        user = self.find_user(login)
        if user is None:
            raise NotFound(f"no user {login!r}")
        return user

    def user_by_address(self, address: str) -> User | None:
        return self.session.scalar(
            select(User).join(UserEmail).where(UserEmail.address == normalize_address(address))
        )

    def users_by_addresses(self, addresses: Sequence[str]) -> dict[str, User]:
        """The users owning any of ``addresses`` (normalised), by address, in one query; a
        user without email is found by the address events name them with."""
        wanted = {normalize_address(a) for a in addresses}
        if not wanted:
            return {}
        logins = {a[len(USER_URN) :] for a in wanted if a.startswith(USER_URN)}
        with_email = select(UserEmail.user_id).where(UserEmail.address.in_(wanted))
        users = self.session.scalars(
            select(User)
            .where(or_(User.id.in_(with_email), User.login.in_(logins)))
            .options(selectinload(User.emails))
        ).unique()
        return {a: user for user in users for a in addresses_of(user) if a in wanted}

    def resources_by_addresses(self, addresses: Sequence[str]) -> dict[str, Resource]:
        wanted = {normalize_address(a) for a in addresses}
        if not wanted:
            return {}
        rows = self.session.scalars(select(Resource).where(Resource.email.in_(wanted))).all()
        return {resource.email: resource for resource in rows}

    def users(self) -> Sequence[User]:
        return self.session.scalars(
            select(User).order_by(User.login).options(selectinload(User.emails))
        ).all()

    def count_users(self) -> int:
        return self.session.scalar(select(func.count(User.id))) or 0

    def cards(self) -> list[contacts.Card]:
        """Active users and resources as every user's address book of colleagues and rooms
        shows them (whose changes ``contacts`` logs as they are flushed)."""
        return contacts.cards(self.session)

    # ------------------------------------------------------------------ resources

    def add_resource(
        self,
        slug: str,
        name: str,
        email: str,
        kind: ResourceKind = ResourceKind.ROOM,
        capacity: int | None = None,
    ) -> Resource:
        slug = _check_name(slug.strip(), "resource identifier")
        if self.find_resource(slug) is not None:
            raise AlreadyExists(f"resource {slug!r} already exists")
        if self.find_user(slug) is not None:
            raise AlreadyExists(f"{slug!r} is already the login of a user")
        address = check_email(email)
        self._check_address_free(address)
        if capacity is not None and capacity < 1:
            raise InvalidInput("capacity must be a positive number")
        resource = Resource(
            slug=slug,
            name=one_line(name, "the resource name", 200, required=True),
            email=address,
            kind=kind,
            capacity=capacity,
            active=True,
        )
        self.session.add(resource)
        self.session.flush()
        return resource

    def find_resource(self, slug: str) -> Resource | None:
        return self.session.scalar(select(Resource).where(Resource.slug == slug.strip().lower()))

    def resource(self, slug: str) -> Resource:
        resource = self.find_resource(slug)
        if resource is None:
            raise NotFound(f"no resource {slug!r}")
        return resource

    def resource_by_address(self, address: str) -> Resource | None:
        return self.session.scalar(
            select(Resource).where(Resource.email == normalize_address(address))
        )

    def resources(self) -> Sequence[Resource]:
        return self.session.scalars(select(Resource).order_by(Resource.slug)).all()

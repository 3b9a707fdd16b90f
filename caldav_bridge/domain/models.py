"""The CRM's tables, as a typed SQLAlchemy 2 ORM.

The schema is created and changed only by the Alembic migrations in ``migrations/``;
``tests/test_migrations.py`` proves that the migrations and these models agree.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime in Python, a naive UTC timestamp in every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class ResourceKind(enum.StrEnum):
    ROOM = "room"
    VEHICLE = "vehicle"
    EQUIPMENT = "equipment"


class InteractionStatus(enum.StrEnum):
    PLANNED = "planned"
    DONE = "done"
    CANCELLED = "cancelled"


class LinkStatus(enum.StrEnum):
    INVITED = "invited"
    CONFIRMED = "confirmed"
    DECLINED = "declined"


class Channel(enum.StrEnum):
    MESSENGER = "messenger"
    EMAIL = "email"


class NotificationKind(enum.StrEnum):
    INVITATION = "invitation"
    CONFIRMATION = "confirmation"
    UPDATE = "update"
    CANCELLATION = "cancellation"
    REMOVAL = "removal"
    REPLY = "reply"
    OUTSIDE_REPLY = "outside_reply"  # a user's answer to an organizer outside the CRM


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Signed links (caldav_bridge.domain.tokens): a new generation or nonce revokes the links made
    # before; no nonce, no feed.
    rsvp_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    feed_nonce: Mapped[str | None] = mapped_column(String(32))
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    emails: Mapped[list[UserEmail]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="UserEmail.position"
    )

    @property
    def email(self) -> str | None:
        """The first address: the one invitations are sent to."""
        return self.emails[0].address if self.emails else None


class UserEmail(Base):
    __tablename__ = "user_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    user: Mapped[User] = relationship(back_populates="emails")


class Resource(Base):
    __tablename__ = "resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[ResourceKind] = mapped_column(_enum(ResourceKind))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    capacity: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    feed_nonce: Mapped[str | None] = mapped_column(String(32))  # see User.feed_nonce


class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_period", "starts_at", "ends_at"),
        Index("ix_interactions_span", "first_starts_at", "last_ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(255), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    subject: Mapped[str] = mapped_column(String(500))
    notes: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(40), default="meeting")
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    # For all-day interactions: local midnight of the first day and of the day after the last,
    # in ``timezone``, so that overlaps with timed interactions are computed correctly.
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # A recurring interaction: its RRULE value and excluded occurrences (EXDATE values, UTC
    # "YYYYMMDDTHHMMSSZ" or "YYYYMMDD" for all-day, comma-separated). ``first_starts_at`` and
    # ``last_ends_at`` hold every occurrence (``recurrence.span``: an occurrence moved before
    # DTSTART, ``recurrence.FOREVER`` for a series without end); ``ends_at`` is the first's.
    rrule: Mapped[str] = mapped_column(String(500), default="", server_default="")
    exdates: Mapped[str] = mapped_column(Text, default="", server_default="")
    first_starts_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=lambda context: context.get_current_parameters()["starts_at"]
    )
    last_ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    location: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[InteractionStatus] = mapped_column(
        _enum(InteractionStatus), default=InteractionStatus.PLANNED
    )
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    # RFC 6638 Schedule-Tag: changes with every change the organizer makes, not with answers.
    schedule_tag: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The CalDAV face, rendered by the service at each change so that serving never renders:
    # the item's name in every calendar that shows it, its iCalendar text and its ETag.
    href: Mapped[str] = mapped_column(String(255), unique=True)
    ical: Mapped[str] = mapped_column(Text, default="")
    etag: Mapped[str] = mapped_column(String(80), default="")
    # The organizer's VCALENDAR as their client last wrote it (VTIMEZONEs included): what the
    # CRM does not rule comes back from it (``mapping.interaction_calendar``); "" when the
    # interaction was made in the CRM.
    source: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The owner's own name for it, when the one everyone else sees (``href``) was taken by
    # another organizer's meeting: names are per calendar, ``href`` is shared by all.
    organizer_href: Mapped[str | None] = mapped_column(String(255), index=True)
    # The owner's calendar that holds it, when they saved (or moved) it in one of their own
    # (RFC 6638 schedules in any calendar); None: their interactions calendar.
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("stored_collections.id"), index=True)

    owner: Mapped[User] = relationship()
    links: Mapped[list[InteractionLink]] = relationship(
        back_populates="interaction", cascade="all, delete-orphan", order_by="InteractionLink.id"
    )
    bookings: Mapped[list[Booking]] = relationship(
        back_populates="interaction", cascade="all, delete-orphan", order_by="Booking.id"
    )
    guests: Mapped[list[Guest]] = relationship(
        back_populates="interaction", cascade="all, delete-orphan", order_by="Guest.id"
    )
    moves: Mapped[list[OccurrenceMove]] = relationship(
        cascade="all, delete-orphan", order_by="OccurrenceMove.recurrence_id"
    )

    @property
    def cancelled(self) -> bool:
        return self.status is InteractionStatus.CANCELLED


class InteractionLink(Base):
    """A user linked to an interaction by its owner, with that user's status."""

    __tablename__ = "interaction_links"
    __table_args__ = (UniqueConstraint("interaction_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[LinkStatus] = mapped_column(_enum(LinkStatus))
    # A calendar client's TENTATIVE answer: the CRM status stays Invited, clients see TENTATIVE.
    tentative: Mapped[bool] = mapped_column(Boolean, default=False)
    # The user declined by deleting the event: it stays out of their calendar until they are
    # invited again, accept (or answer tentatively) on any channel, or are sent the
    # organizer's next change.
    removed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # SCHEDULE-AGENT=CLIENT (RFC 6638): the organizer's client tells this user itself.
    client_scheduled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The user's calendar that holds it, when they moved it into one of their own; None: their
    # interactions calendar, where invitations arrive.
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("stored_collections.id"), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last answer taken (``rules.stale``): the interaction's SEQUENCE then, and its DTSTAMP.
    answer_sequence: Mapped[int | None] = mapped_column(Integer)
    answer_dtstamp: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    interaction: Mapped[Interaction] = relationship(back_populates="links")
    user: Mapped[User] = relationship()
    occurrence_answers: Mapped[list[OccurrenceAnswer]] = relationship(
        back_populates="link",
        cascade="all, delete-orphan",
        order_by="OccurrenceAnswer.recurrence_id",
    )


class OccurrenceMove(Base):
    """One occurrence of a recurring interaction that the organizer moved (an instance with
    RECURRENCE-ID and other times)."""

    __tablename__ = "occurrence_moves"
    __table_args__ = (UniqueConstraint("interaction_id", "recurrence_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True
    )
    recurrence_id: Mapped[datetime] = mapped_column(UTCDateTime)  # where the rule puts it
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OccurrenceAnswer(Base):
    """A linked user's answer to one occurrence of a recurring interaction, where it differs
    from their answer to the series (RECURRENCE-ID, RFC 5545 section 3.8.4.4)."""

    __tablename__ = "occurrence_answers"
    __table_args__ = (UniqueConstraint("link_id", "recurrence_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(
        ForeignKey("interaction_links.id", ondelete="CASCADE"), index=True
    )
    recurrence_id: Mapped[datetime] = mapped_column(UTCDateTime)  # the occurrence's start
    status: Mapped[LinkStatus] = mapped_column(_enum(LinkStatus))
    tentative: Mapped[bool] = mapped_column(Boolean, default=False)
    answer_sequence: Mapped[int | None] = mapped_column(Integer)  # see InteractionLink
    answer_dtstamp: Mapped[datetime | None] = mapped_column(UTCDateTime)

    link: Mapped[InteractionLink] = relationship(back_populates="occurrence_answers")


class PerUserData(Base):
    """One user's own data of an interaction (``domain.per_user``): their alarms, TRANSP and
    their client's personal X- properties, shown in their copy only, with that copy rendered
    (text and ETag) whenever the interaction or their data changes."""

    __tablename__ = "per_user_data"
    __table_args__ = (UniqueConstraint("interaction_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # A VCALENDAR of one VEVENT per instance (RECURRENCE-ID in UTC, none for the series)
    # holding only the user's properties and VALARMs (``ical.per_user``).
    data: Mapped[str] = mapped_column(Text)
    # Free-busy reads these without parsing: the series' TRANSP is TRANSPARENT, and the
    # occurrences (UTC "YYYYMMDDTHHMMSSZ", comma-separated) the user marked the other way.
    transparent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    transparency_apart: Mapped[str] = mapped_column(Text, default="", server_default="")
    ical: Mapped[str] = mapped_column(Text, default="")
    etag: Mapped[str] = mapped_column(String(80), default="")


class Guest(Base):
    """An attendee who is neither a CRM user nor a resource, kept as the organizer wrote it."""

    __tablename__ = "guests"
    __table_args__ = (UniqueConstraint("interaction_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    partstat: Mapped[str] = mapped_column(String(32), default="NEEDS-ACTION")
    client_scheduled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The guest's own last answer taken (see InteractionLink); None: they have not answered.
    answer_sequence: Mapped[int | None] = mapped_column(Integer)
    answer_dtstamp: Mapped[datetime | None] = mapped_column(UTCDateTime)

    interaction: Mapped[Interaction] = relationship(back_populates="guests")


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (UniqueConstraint("interaction_id", "resource_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    # A room asked for by a calendar client while it was busy answers DECLINED: the booking
    # is kept so that the organizer sees the answer, and holds nothing.
    declined: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    interaction: Mapped[Interaction] = relationship(back_populates="bookings")
    resource: Mapped[Resource] = relationship()


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class OutboxMessage(Base):
    """One message to deliver, written in the transaction of the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    kind: Mapped[NotificationKind] = mapped_column(_enum(NotificationKind))
    # None for an invitation from outside the CRM (``outside``): no interaction holds it.
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True
    )
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    recipient_address: Mapped[str | None] = mapped_column(String(320))
    itip_method: Mapped[str | None] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))  # none for guests
    calendar: Mapped[str | None] = mapped_column(Text)
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a messenger notice, read
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recipient: Mapped[User | None] = relationship()


class CalendarChange(Base):
    """One row per change of one item in one calendar; the revision is the calendar's.

    CalDAV sync (RFC 6578) reads the rows after a token's revision for exact deltas,
    deletions included. Revisions are given in commit order as each transaction commits
    (``changelog``): none is seen before a smaller one of its calendar is. An id is given at
    insert, in no such order.
    """

    __tablename__ = "calendar_changes"
    __table_args__ = (
        Index("ix_calendar_changes_revision", "calendar", "revision"),
        # An item's latest change: a page of a limited sync (``changelog.latest_changes``).
        Index("ix_calendar_changes_item", "calendar", "item_href", "revision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None until the transaction that wrote the row commits: only that transaction sees it so.
    revision: Mapped[int | None] = mapped_column(BigInteger)
    calendar: Mapped[str] = mapped_column(String(128))
    item_href: Mapped[str] = mapped_column(String(255))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoredCollection(Base):
    """A collection a client made itself (MKCALENDAR, MKCOL), stored generically."""

    __tablename__ = "stored_collections"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    props: Mapped[str] = mapped_column(Text, default="{}")
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoredItem(Base):
    """One item of a stored collection, with what serving and filtering need precomputed."""

    __tablename__ = "stored_items"
    __table_args__ = (
        UniqueConstraint("collection_id", "href"),
        Index("ix_stored_items_uid", "collection_id", "uid"),
        Index("ix_stored_items_period", "collection_id", "starts_ts", "ends_ts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("stored_collections.id", ondelete="CASCADE")
    )
    href: Mapped[str] = mapped_column(String(255))
    uid: Mapped[str] = mapped_column(String(255))
    etag: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(16))
    component: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    starts_ts: Mapped[int] = mapped_column(BigInteger)
    ends_ts: Mapped[int] = mapped_column(BigInteger)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduleMessage(Base):
    """An iTIP message in a user's schedule inbox (RFC 6638 section 2.2)."""

    __tablename__ = "schedule_messages"
    __table_args__ = (UniqueConstraint("user_id", "href"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    href: Mapped[str] = mapped_column(String(255))
    uid: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(16))
    ical: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

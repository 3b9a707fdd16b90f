"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 00:18:15.112309
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calendar_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calendar", sa.String(length=128), nullable=False),
        sa.Column("item_href", sa.String(length=255), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_changes")),
    )
    with op.batch_alter_table("calendar_changes", schema=None) as batch_op:
        batch_op.create_index("ix_calendar_changes_calendar", ["calendar", "id"], unique=False)

    op.create_table(
        "resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "room", "vehicle", "equipment", name="resourcekind", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
        sa.UniqueConstraint("email", name=op.f("uq_resources_email")),
        sa.UniqueConstraint("slug", name=op.f("uq_resources_slug")),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "stored_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("props", sa.Text(), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_collections")),
        sa.UniqueConstraint("path", name=op.f("uq_stored_collections_path")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("login", name=op.f("uq_users_login")),
    )
    op.create_table(
        "interactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "planned",
                "done",
                "cancelled",
                name="interactionstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.Column("href", sa.String(length=255), nullable=False),
        sa.Column("ical", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_interactions_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
        sa.UniqueConstraint("href", name=op.f("uq_interactions_href")),
        sa.UniqueConstraint("uid", name=op.f("uq_interactions_uid")),
    )
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interactions_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index("ix_interactions_period", ["starts_at", "ends_at"], unique=False)

    op.create_table(
        "stored_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("href", sa.String(length=255), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("etag", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("component", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("starts_ts", sa.BigInteger(), nullable=False),
        sa.Column("ends_ts", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["stored_collections.id"],
            name=op.f("fk_stored_items_collection_id_stored_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_items")),
        sa.UniqueConstraint("collection_id", "href", name=op.f("uq_stored_items_collection_id")),
    )
    with op.batch_alter_table("stored_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stored_items_period", ["collection_id", "starts_ts", "ends_ts"], unique=False
        )
        batch_op.create_index("ix_stored_items_uid", ["collection_id", "uid"], unique=False)

    op.create_table(
        "user_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_emails_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_emails")),
        sa.UniqueConstraint("address", name=op.f("uq_user_emails_address")),
    )
    with op.batch_alter_table("user_emails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_emails_user_id"), ["user_id"], unique=False)

    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_bookings_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name=op.f("fk_bookings_resource_id_resources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint(
            "interaction_id", "resource_id", name=op.f("uq_bookings_interaction_id")
        ),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bookings_resource_id"), ["resource_id"], unique=False)

    op.create_table(
        "guests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("partstat", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_guests_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guests")),
        sa.UniqueConstraint("interaction_id", "address", name=op.f("uq_guests_interaction_id")),
    )
    op.create_table(
        "interaction_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "invited", "confirmed", "declined", name="linkstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("tentative", sa.Boolean(), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_interaction_links_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_interaction_links_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interaction_links")),
        sa.UniqueConstraint(
            "interaction_id", "user_id", name=op.f("uq_interaction_links_interaction_id")
        ),
    )
    with op.batch_alter_table("interaction_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interaction_links_user_id"), ["user_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("messenger", "email", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "invitation",
                "confirmation",
                "update",
                "cancellation",
                "removal",
                "reply",
                name="notificationkind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("recipient_user_id", sa.Integer(), nullable=True),
        sa.Column("recipient_address", sa.String(length=320), nullable=True),
        sa.Column("itip_method", sa.String(length=16), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=500), nullable=False),
        sa.Column("calendar", sa.Text(), nullable=True),
        sa.Column(
            "state",
            sa.Enum("pending", "sent", "failed", name="outboxstate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_outbox_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_user_id"], ["users.id"], name=op.f("fk_outbox_recipient_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbox_interaction_id"), ["interaction_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outbox_recipient_user_id"), ["recipient_user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_recipient_user_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_interaction_id"))
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("interaction_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interaction_links_user_id"))

    op.drop_table("interaction_links")
    op.drop_table("guests")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bookings_resource_id"))

    op.drop_table("bookings")
    with op.batch_alter_table("user_emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_emails_user_id"))

    op.drop_table("user_emails")
    with op.batch_alter_table("stored_items", schema=None) as batch_op:
        batch_op.drop_index("ix_stored_items_uid")
        batch_op.drop_index("ix_stored_items_period")

    op.drop_table("stored_items")
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_interactions_period")
        batch_op.drop_index(batch_op.f("ix_interactions_owner_id"))

    op.drop_table("interactions")
    op.drop_table("users")
    op.drop_table("stored_collections")
    op.drop_table("settings")
    op.drop_table("resources")
    with op.batch_alter_table("calendar_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_changes_calendar")

    op.drop_table("calendar_changes")

"""scheduling: schedule inbox, Schedule-Tag, SCHEDULE-AGENT=CLIENT, declined rooms

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedule_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("href", sa.String(length=255), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("ical", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_schedule_messages_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_messages")),
        sa.UniqueConstraint("user_id", "href", name=op.f("uq_schedule_messages_user_id")),
    )
    with op.batch_alter_table("schedule_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_messages_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("schedule_tag", sa.Integer(), server_default="0", nullable=False)
        )
    for table in ("interaction_links", "guests"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "client_scheduled", sa.Boolean(), server_default=sa.false(), nullable=False
                )
            )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("declined", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_column("declined")
    for table in ("guests", "interaction_links"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("client_scheduled")
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_column("schedule_tag")
    with op.batch_alter_table("schedule_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_messages_user_id"))
    op.drop_table("schedule_messages")

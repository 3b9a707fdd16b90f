"""each user's own data of an interaction (alarms, TRANSP, their client's personal X-
properties) with their copy rendered

Revision ID: 0014_per_user_data
Revises: 0013_organizer_event
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_per_user_data"
down_revision: str | None = "0013_organizer_event"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "per_user_data",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("transparent", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("transparency_apart", sa.Text(), server_default="", nullable=False),
        sa.Column("ical", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name="fk_per_user_data_interaction_id_interactions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_per_user_data_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_per_user_data"),
        sa.UniqueConstraint("interaction_id", "user_id", name="uq_per_user_data_interaction_id"),
    )
    with op.batch_alter_table("per_user_data", schema=None) as batch_op:
        batch_op.create_index("ix_per_user_data_user_id", ["user_id"])


def downgrade() -> None:
    """Users' own alarms and transparency are lost: their copies show the shared event."""
    with op.batch_alter_table("per_user_data", schema=None) as batch_op:
        batch_op.drop_index("ix_per_user_data_user_id")
    op.drop_table("per_user_data")

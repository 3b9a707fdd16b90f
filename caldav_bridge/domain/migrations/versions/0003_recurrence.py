"""recurring interactions: RRULE, EXDATE and the end of the last occurrence; links removed
from the attendee's calendar

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rrule", sa.String(length=500), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("exdates", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("last_ends_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE interactions SET last_ends_at = ends_at")
    with op.batch_alter_table("interaction_links", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("removed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.alter_column("last_ends_at", existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index("ix_interactions_span", ["starts_at", "last_ends_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("interaction_links", schema=None) as batch_op:
        batch_op.drop_column("removed")
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_interactions_span")
        batch_op.drop_column("last_ends_at")
        batch_op.drop_column("exdates")
        batch_op.drop_column("rrule")

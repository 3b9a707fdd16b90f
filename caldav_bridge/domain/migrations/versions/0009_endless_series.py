"""the span of a series: from its earliest occurrence (a move may come before DTSTART), and
until the end of time for series without COUNT (they were cut two years after DTSTART)

Revision ID: 0009
Revises: 0008_sync_order
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008_sync_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# recurrence.FOREVER, as stored (naive UTC). A series with UNTIL gets it too: a pre-filter
# only needs to cover the span, and its next edit stores the exact end.
_FOREVER = datetime(9999, 12, 31, 23, 59, 59)


def upgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_starts_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE interactions SET first_starts_at = starts_at")
    op.execute(
        "UPDATE interactions SET first_starts_at = (SELECT MIN(m.starts_at) FROM "
        "occurrence_moves m WHERE m.interaction_id = interactions.id) WHERE rrule <> '' AND "
        "(SELECT MIN(m.starts_at) FROM occurrence_moves m WHERE m.interaction_id = "
        "interactions.id) < starts_at"
    )
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.alter_column("first_starts_at", existing_type=sa.DateTime(), nullable=False)
        batch_op.drop_index("ix_interactions_span")
        batch_op.create_index("ix_interactions_span", ["first_starts_at", "last_ends_at"])
    op.get_bind().execute(
        sa.text(
            "UPDATE interactions SET last_ends_at = :forever "
            "WHERE rrule <> '' AND rrule NOT LIKE '%COUNT=%'"
        ),
        {"forever": _FOREVER},
    )


def downgrade() -> None:
    """The wider end stays: it is right for the old code too."""
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_interactions_span")
        batch_op.create_index("ix_interactions_span", ["starts_at", "last_ends_at"])
        batch_op.drop_column("first_starts_at")

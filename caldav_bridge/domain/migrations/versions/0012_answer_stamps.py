"""the SEQUENCE and DTSTAMP of the last answer taken from each attendee (a linked user, their
answer to one occurrence, a guest), so that an older iTIP message is ignored (RFC 5546 2.1.5)

Revision ID: 0012_answer_stamps
Revises: 0011_placed_interactions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_answer_stamps"
down_revision: str | None = "0011_placed_interactions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("interaction_links", "occurrence_answers", "guests")


def upgrade() -> None:
    """Answers taken before have no stamp: the next message is compared by SEQUENCE only."""
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("answer_sequence", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column("answer_dtstamp", sa.DateTime(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("answer_dtstamp")
            batch_op.drop_column("answer_sequence")

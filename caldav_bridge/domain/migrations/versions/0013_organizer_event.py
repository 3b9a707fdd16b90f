"""the organizer's event as their client last wrote it (the VCALENDAR, VTIMEZONEs included), kept
beside the interaction so that everything the CRM does not rule comes back (issue 16)

Revision ID: 0013_organizer_event
Revises: 0012_answer_stamps
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_organizer_event"
down_revision: str | None = "0012_answer_stamps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Interactions saved before have no source: they are rendered from the CRM alone."""
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_column("source")

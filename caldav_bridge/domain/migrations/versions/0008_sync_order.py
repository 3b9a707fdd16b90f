"""sync order: each change's revision is given as its transaction commits

Revision ID: 0008_sync_order
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_sync_order"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.BigInteger(), nullable=True))
    # The tokens handed out so far name ids: the revisions of the rows written so far.
    op.execute("UPDATE calendar_changes SET revision = id")
    with op.batch_alter_table("calendar_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_changes_calendar")
        batch_op.create_index("ix_calendar_changes_revision", ["calendar", "revision"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE calendar_change_revisions")
        op.execute(
            "SELECT setval('calendar_change_revisions', COALESCE(MAX(id), 0) + 1, false) "
            "FROM calendar_changes"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE calendar_change_revisions")
    with op.batch_alter_table("calendar_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_changes_revision")
        batch_op.create_index("ix_calendar_changes_calendar", ["calendar", "id"])
        batch_op.drop_column("revision")

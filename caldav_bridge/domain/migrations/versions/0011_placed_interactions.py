"""the calendar of a user's own that holds an interaction for its owner or a linked user
(a meeting organised, or an invitation moved, in any calendar of the home), and the
organizer's own name for it when the shared one was taken

Revision ID: 0011_placed_interactions
Revises: 0010_sync_pages
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_placed_interactions"
down_revision: str | None = "0010_sync_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("interactions", "interaction_links")


def upgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organizer_href", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_interactions_organizer_href", ["organizer_href"])
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("calendar_id", sa.Integer(), nullable=True))
            batch_op.create_index(f"ix_{table}_calendar_id", ["calendar_id"])
            batch_op.create_foreign_key(
                f"fk_{table}_calendar_id_stored_collections",
                "stored_collections",
                ["calendar_id"],
                ["id"],
            )


def downgrade() -> None:
    """Placed interactions go back to their interactions calendars."""
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                f"fk_{table}_calendar_id_stored_collections", type_="foreignkey"
            )
            batch_op.drop_index(f"ix_{table}_calendar_id")
            batch_op.drop_column("calendar_id")
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_interactions_organizer_href")
        batch_op.drop_column("organizer_href")

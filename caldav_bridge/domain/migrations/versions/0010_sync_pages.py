"""sync pages: an index on each item's changes, for sync-collection with DAV:limit

Revision ID: 0010_sync_pages
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_sync_pages"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_changes", schema=None) as batch_op:
        batch_op.create_index("ix_calendar_changes_item", ["calendar", "item_href", "revision"])


def downgrade() -> None:
    with op.batch_alter_table("calendar_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_changes_item")

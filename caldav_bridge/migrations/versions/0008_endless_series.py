"""series without COUNT span until the end of time (they were cut two years after DTSTART)

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# recurrence.FOREVER, as stored (naive UTC). A series with UNTIL gets it too: a pre-filter
# only needs to cover the span, and its next edit stores the exact end.
_FOREVER = datetime(9999, 12, 31, 23, 59, 59)


def upgrade() -> None:
    op.get_bind().execute(
        sa.text(
            "UPDATE interactions SET last_ends_at = :forever "
            "WHERE rrule <> '' AND rrule NOT LIKE '%COUNT=%'"
        ),
        {"forever": _FOREVER},
    )


def downgrade() -> None:
    """Nothing to undo: the wider span is right for the old code too."""

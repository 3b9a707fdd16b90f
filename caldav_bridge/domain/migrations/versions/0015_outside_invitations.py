"""outbox rows without an interaction: the answers users send to organizers outside the CRM
and the notices of their invitations (``domain/outside.py``)

Revision ID: 0015_outside_invitations
Revises: 0014_per_user_data
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_outside_invitations"
down_revision: str | None = "0014_per_user_data"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("interaction_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE interaction_id IS NULL")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("interaction_id", existing_type=sa.Integer(), nullable=False)

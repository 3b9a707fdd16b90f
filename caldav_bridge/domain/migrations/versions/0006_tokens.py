"""signed links: the signing key, the RSVP generation and feed nonces; guests get no link

Revision ID: 0006
Revises: 0005
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rsvp_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("feed_nonce", sa.String(32), nullable=True))
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_nonce", sa.String(32), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("link", existing_type=sa.String(500), nullable=True)
    settings = sa.table("settings", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.bulk_insert(settings, [{"key": "token_signing_key", "value": secrets.token_urlsafe(32)}])


def downgrade() -> None:
    op.execute("DELETE FROM settings WHERE key = 'token_signing_key'")
    op.execute("UPDATE outbox SET link = '' WHERE link IS NULL")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("link", existing_type=sa.String(500), nullable=False)
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_column("feed_nonce")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("feed_nonce")
        batch_op.drop_column("rsvp_generation")

"""answers to one occurrence of a recurring interaction, and occurrences moved

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "occurrence_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("recurrence_id", sa.DateTime(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_occurrence_moves_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_occurrence_moves")),
        sa.UniqueConstraint(
            "interaction_id", "recurrence_id", name=op.f("uq_occurrence_moves_interaction_id")
        ),
    )
    with op.batch_alter_table("occurrence_moves", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_occurrence_moves_interaction_id"), ["interaction_id"], unique=False
        )
    op.create_table(
        "occurrence_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("recurrence_id", sa.DateTime(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "invited", "confirmed", "declined", name="linkstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("tentative", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["interaction_links.id"],
            name=op.f("fk_occurrence_answers_link_id_interaction_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_occurrence_answers")),
        sa.UniqueConstraint("link_id", "recurrence_id", name=op.f("uq_occurrence_answers_link_id")),
    )
    with op.batch_alter_table("occurrence_answers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_occurrence_answers_link_id"), ["link_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("occurrence_moves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_occurrence_moves_interaction_id"))
    op.drop_table("occurrence_moves")
    with op.batch_alter_table("occurrence_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_occurrence_answers_link_id"))
    op.drop_table("occurrence_answers")

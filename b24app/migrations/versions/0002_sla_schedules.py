"""SLA clock rounds, postponed escalations and sweep indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:30:00

Written by hand. Batch mode copies the table on SQLite and runs plain
ALTER TABLE statements on PostgreSQL, so one set of operations serves both.
"""

import sqlalchemy as sa
from alembic import op

import b24app.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("clock_round", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "reconciled_at",
                b24app.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.create_index(
            "ix_sla_clocks_reconcile", ["portal_id", "reconciled_at"], unique=False
        )

    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "postponed_until",
                b24app.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "close_after", b24app.models.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index(
            "ix_escalations_pending", ["status", "locked_until"], unique=False
        )
        batch_op.create_index(
            "ix_escalations_close_after", ["close_after"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_escalations_close_after")
        batch_op.drop_index("ix_escalations_pending")
        batch_op.drop_column("close_after")
        batch_op.drop_column("postponed_until")

    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_clocks_reconcile")
        batch_op.drop_column("reconciled_at")
        batch_op.drop_column("clock_round")

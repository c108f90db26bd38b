"""KPI deal rollups: per-day deal counts, visits, live stage moves

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00

Written by hand. The stored lead days are emptied (whole months change
shape and are built again on first use). Three new tables;
``kpi_stage_moves.bitrix_id`` becomes nullable (moves seen in live events
have no history ID) through a batch operation, which rebuilds the table on
SQLite and is a plain ALTER on PostgreSQL. The partial unique index keeps
one row per live move.
"""

import sqlalchemy as sa
from alembic import op

import b24app.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LIVE_ONLY = sa.text("bitrix_id IS NULL")


def _utc(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, b24app.models.UTCDateTime(timezone=True), nullable=nullable)


def _portal_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["portal_id"],
        ["portals.id"],
        name=op.f(f"fk_{table}_portal_id_portals"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    # Whole months of lead counts are now stored per channel and per manager;
    # the stored lead days are dropped and built again on first use.
    op.execute("DELETE FROM kpi_lead_days")
    op.execute("DELETE FROM kpi_rollup_days")

    op.create_table(
        "kpi_deal_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.String(64), nullable=False),
        sa.Column("manager", sa.Integer(), nullable=False),
        sa.Column("deals", sa.Integer(), nullable=False),
        sa.Column("priced", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("amount_all", sa.Float(), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("timed", sa.Integer(), nullable=False),
        sa.Column("linked", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        _portal_fk("kpi_deal_days"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_deal_days"),
        sa.UniqueConstraint(
            "portal_id",
            "kind",
            "day",
            "category_id",
            "stage_id",
            "manager",
            name="uq_kpi_deal_days_cell",
        ),
    )

    op.create_table(
        "kpi_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        _utc("appointment_at", nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        _utc("prev_at"),
        sa.Column("prev_day", sa.Date(), nullable=True),
        sa.Column("returned", sa.Boolean(), nullable=False),
        _portal_fk("kpi_visits"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_visits"),
        sa.UniqueConstraint(
            "portal_id", "deal_id", name="uq_kpi_visits_portal_id_deal_id"
        ),
    )
    op.create_index("ix_kpi_visits_time", "kpi_visits", ["portal_id", "appointment_at"])
    op.create_index("ix_kpi_visits_contact", "kpi_visits", ["portal_id", "contact_id"])
    op.create_index("ix_kpi_visits_day", "kpi_visits", ["portal_id", "day"])
    op.create_index("ix_kpi_visits_prev_day", "kpi_visits", ["portal_id", "prev_day"])

    op.create_table(
        "kpi_visit_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("first", sa.Integer(), nullable=False),
        sa.Column("first_returned", sa.Integer(), nullable=False),
        sa.Column("starts", sa.Integer(), nullable=False),
        sa.Column("starts_returned", sa.Integer(), nullable=False),
        sa.Column("ends", sa.Integer(), nullable=False),
        sa.Column("ends_returned", sa.Integer(), nullable=False),
        _portal_fk("kpi_visit_days"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_visit_days"),
        sa.UniqueConstraint(
            "portal_id",
            "day",
            "channel",
            name="uq_kpi_visit_days_portal_id_day_channel",
        ),
    )

    with op.batch_alter_table("kpi_stage_moves", schema=None) as batch_op:
        batch_op.alter_column("bitrix_id", existing_type=sa.Integer(), nullable=True)
    op.create_index(
        "uq_kpi_stage_moves_live",
        "kpi_stage_moves",
        ["portal_id", "entity_type", "owner_id", "stage_id", "created_at"],
        unique=True,
        sqlite_where=LIVE_ONLY,
        postgresql_where=LIVE_ONLY,
    )


def downgrade() -> None:
    op.drop_index("uq_kpi_stage_moves_live", table_name="kpi_stage_moves")
    # Live moves have no history ID and cannot stay in the older schema.
    op.execute("DELETE FROM kpi_stage_moves WHERE bitrix_id IS NULL")
    with op.batch_alter_table("kpi_stage_moves", schema=None) as batch_op:
        batch_op.alter_column("bitrix_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("kpi_visit_days")
    op.drop_index("ix_kpi_visits_prev_day", table_name="kpi_visits")
    op.drop_index("ix_kpi_visits_day", table_name="kpi_visits")
    op.drop_index("ix_kpi_visits_contact", table_name="kpi_visits")
    op.drop_index("ix_kpi_visits_time", table_name="kpi_visits")
    op.drop_table("kpi_visits")
    op.drop_table("kpi_deal_days")

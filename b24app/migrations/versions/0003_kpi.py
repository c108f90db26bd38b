"""KPI tables: deals, stage history, import checkpoints, settings, spend, claims

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 17:00:00

Written by hand. New tables are plain CREATE TABLE on both backends; the
index on ``leads`` goes through batch mode so SQLite and PostgreSQL share
one set of operations.
"""

import sqlalchemy as sa
from alembic import op

import b24app.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _utc() -> b24app.models.UTCDateTime:
    return b24app.models.UTCDateTime(timezone=True)


def _portal_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["portal_id"],
        ["portals.id"],
        name=f"fk_{name}_portal_id_portals",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "kpi_deals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("bitrix_id", sa.Integer(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.String(64), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("assigned_by_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("source_id", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("moved_at", _utc(), nullable=True),
        sa.Column("appointment_at", _utc(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("synced_at", _utc(), nullable=False),
        _portal_fk("kpi_deals"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_deals"),
        sa.UniqueConstraint(
            "portal_id", "bitrix_id", name="uq_kpi_deals_portal_id_bitrix_id"
        ),
    )
    op.create_index(
        "ix_kpi_deals_appointment", "kpi_deals", ["portal_id", "appointment_at"]
    )
    op.create_index("ix_kpi_deals_created", "kpi_deals", ["portal_id", "created_at"])
    op.create_index("ix_kpi_deals_lead", "kpi_deals", ["portal_id", "lead_id"])
    op.create_index(
        "ix_kpi_deals_contact",
        "kpi_deals",
        ["portal_id", "contact_id", "appointment_at"],
    )

    op.create_table(
        "kpi_stage_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.Integer(), nullable=False),
        sa.Column("bitrix_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.String(64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        _portal_fk("kpi_stage_moves"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_stage_moves"),
        sa.UniqueConstraint(
            "portal_id",
            "entity_type",
            "bitrix_id",
            name="uq_kpi_stage_moves_portal_id_entity_type_bitrix_id",
        ),
    )
    op.create_index(
        "ix_kpi_stage_moves_owner",
        "kpi_stage_moves",
        ["portal_id", "entity_type", "owner_id"],
    )

    op.create_table(
        "kpi_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("locked_until", _utc(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        _portal_fk("kpi_imports"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_imports"),
        sa.UniqueConstraint(
            "portal_id", "entity", name="uq_kpi_imports_portal_id_entity"
        ),
    )

    op.create_table(
        "kpi_settings",
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("daily_capacity", sa.Integer(), nullable=True),
        sa.Column("owner_email", sa.String(255), nullable=True),
        sa.Column("feed_token_hash", sa.String(64), nullable=True),
        sa.Column("feed_created_at", _utc(), nullable=True),
        sa.Column("reconciled_at", _utc(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        _portal_fk("kpi_settings"),
        sa.PrimaryKeyConstraint("portal_id", name="pk_kpi_settings"),
        sa.UniqueConstraint("feed_token_hash", name="uq_kpi_settings_feed_token_hash"),
    )

    op.create_table(
        "kpi_spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        _portal_fk("kpi_spend"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_spend"),
        sa.UniqueConstraint(
            "portal_id",
            "month",
            "channel",
            name="uq_kpi_spend_portal_id_month_channel",
        ),
    )

    op.create_table(
        "kpi_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(500), nullable=True),
        _portal_fk("kpi_claims"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_claims"),
        sa.UniqueConstraint(
            "portal_id", "kind", "day", name="uq_kpi_claims_portal_id_kind_day"
        ),
    )

    op.create_table(
        "kpi_lead_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.String(8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("manager", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("human", sa.JSON(), nullable=False),
        sa.Column("bot", sa.JSON(), nullable=False),
        _portal_fk("kpi_lead_days"),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_lead_days"),
        sa.UniqueConstraint(
            "portal_id",
            "grain",
            "day",
            "channel",
            "manager",
            name="uq_kpi_lead_days_portal_id_grain_day_channel_manager",
        ),
    )

    op.create_table(
        "kpi_rollup_days",
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.String(8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("built_at", _utc(), nullable=False),
        _portal_fk("kpi_rollup_days"),
        sa.PrimaryKeyConstraint("portal_id", "grain", "day", name="pk_kpi_rollup_days"),
    )

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_leads_portal_created", ["portal_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_portal_created")
    op.drop_table("kpi_rollup_days")
    op.drop_table("kpi_lead_days")
    op.drop_table("kpi_claims")
    op.drop_table("kpi_spend")
    op.drop_table("kpi_settings")
    op.drop_table("kpi_imports")
    op.drop_index("ix_kpi_stage_moves_owner", table_name="kpi_stage_moves")
    op.drop_table("kpi_stage_moves")
    op.drop_index("ix_kpi_deals_contact", table_name="kpi_deals")
    op.drop_index("ix_kpi_deals_lead", table_name="kpi_deals")
    op.drop_index("ix_kpi_deals_created", table_name="kpi_deals")
    op.drop_index("ix_kpi_deals_appointment", table_name="kpi_deals")
    op.drop_table("kpi_deals")

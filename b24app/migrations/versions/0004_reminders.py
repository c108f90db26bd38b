"""Appointment reminders: appointments, jobs, deliveries, consents, replies, A/B tests

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 17:00:00

Written by hand. Only new tables, so plain CREATE TABLE serves SQLite and
PostgreSQL alike.
"""

import sqlalchemy as sa
from alembic import op

import b24app.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


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
    op.create_table(
        "reminder_appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("resource_ids", sa.JSON(), nullable=False),
        _utc("starts_at", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage_id", sa.String(length=64), nullable=True),
        sa.Column("responsible_id", sa.Integer(), nullable=True),
        sa.Column("client_name", sa.String(length=120), nullable=True),
        sa.Column("service", sa.String(length=255), nullable=True),
        sa.Column("master", sa.String(length=120), nullable=True),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=32), nullable=True),
        _utc("confirmed_at"),
        _utc("cancelled_at"),
        _utc("outcome_at"),
        _utc("mark_requested_at"),
        sa.Column("offer", sa.JSON(), nullable=True),
        _utc("reconciled_at"),
        _utc("created_at", nullable=False),
        _utc("updated_at", nullable=False),
        _portal_fk("reminder_appointments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_appointments")),
        sa.UniqueConstraint(
            "portal_id",
            "source",
            "source_id",
            name=op.f("uq_reminder_appointments_portal_id_source_source_id"),
        ),
    )
    op.create_table(
        "reminder_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("offset_minutes", sa.Integer(), nullable=False),
        _utc("for_starts_at", nullable=False),
        _utc("due_at", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _utc("locked_until"),
        sa.Column("channel", sa.String(length=16), nullable=True),
        _utc("sent_at"),
        sa.Column("error", sa.String(length=500), nullable=True),
        _utc("created_at", nullable=False),
        _portal_fk("reminder_jobs"),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["reminder_appointments.id"],
            name=op.f("fk_reminder_jobs_appointment_id_reminder_appointments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_jobs")),
        sa.UniqueConstraint(
            "appointment_id",
            "kind",
            "offset_minutes",
            "for_starts_at",
            name=op.f(
                "uq_reminder_jobs_appointment_id_kind_offset_minutes_for_starts_at"
            ),
        ),
    )
    op.create_index("ix_reminder_jobs_due", "reminder_jobs", ["status", "due_at"])
    op.create_table(
        "reminder_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        _utc("created_at", nullable=False),
        _utc("updated_at", nullable=False),
        _portal_fk("reminder_deliveries"),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["reminder_jobs.id"],
            name=op.f("fk_reminder_deliveries_job_id_reminder_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_deliveries")),
    )
    op.create_index(
        "ix_reminder_deliveries_provider", "reminder_deliveries", ["provider_ref"]
    )
    op.create_table(
        "reminder_consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        _utc("granted_at"),
        _utc("revoked_at"),
        sa.Column("revoke_source", sa.String(length=32), nullable=True),
        _utc("updated_at", nullable=False),
        _portal_fk("reminder_consents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_consents")),
        sa.UniqueConstraint(
            "portal_id",
            "contact_key",
            "channel",
            name=op.f("uq_reminder_consents_portal_id_contact_key_channel"),
        ),
    )
    op.create_table(
        "reminder_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("needs_person", sa.Boolean(), nullable=False),
        _utc("created_at", nullable=False),
        _portal_fk("reminder_replies"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_replies")),
    )
    op.create_table(
        "reminder_experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("min_per_variant", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("winner", sa.String(length=32), nullable=True),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _utc("created_at", nullable=False),
        _utc("finished_at"),
        _portal_fk("reminder_experiments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_experiments")),
    )


def downgrade() -> None:
    op.drop_table("reminder_experiments")
    op.drop_table("reminder_replies")
    op.drop_table("reminder_consents")
    op.drop_index("ix_reminder_deliveries_provider", table_name="reminder_deliveries")
    op.drop_table("reminder_deliveries")
    op.drop_index("ix_reminder_jobs_due", table_name="reminder_jobs")
    op.drop_table("reminder_jobs")
    op.drop_table("reminder_appointments")

"""Tables of the reminders feature.

Every table is keyed by portal. Unique keys do the de-duplication: a
reminder for one appointment, kind, offset and appointment time exists
once, however many workers or restarts try to create it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from b24app.models import Base, utcnow


class Appointment(Base):
    """A client's visit, from a deal with an appointment time or a booking."""

    __tablename__ = "reminder_appointments"
    __table_args__ = (UniqueConstraint("portal_id", "source", "source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    # "deal" or "booking", and the Bitrix24 id of that record.
    source: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int] = mapped_column(Integer)
    deal_id: Mapped[int | None] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(Integer)
    booking_id: Mapped[int | None] = mapped_column(Integer)
    resource_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    starts_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="booked")
    stage_id: Mapped[str | None] = mapped_column(String(64))
    responsible_id: Mapped[int | None] = mapped_column(Integer)
    client_name: Mapped[str | None] = mapped_column(String(120))
    service: Mapped[str | None] = mapped_column(String(255))
    master: Mapped[str | None] = mapped_column(String(120))
    # A/B test the appointment takes part in, and its stable variant.
    experiment_id: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(32))
    confirmed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    outcome_at: Mapped[datetime | None]
    mark_requested_at: Mapped[datetime | None]
    # Free times offered for a move (unix seconds), chosen by their number.
    offer: Mapped[list[Any] | None] = mapped_column(JSON)
    reconciled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def contact_key(self) -> str:
        """Whom consent is recorded for: the contact, else the deal."""
        if self.contact_id:
            return f"contact:{self.contact_id}"
        return f"deal:{self.deal_id or self.source_id}"


class ReminderJob(Base):
    """One message due for one appointment; claimed before it is sent."""

    __tablename__ = "reminder_jobs"
    __table_args__ = (
        UniqueConstraint("appointment_id", "kind", "offset_minutes", "for_starts_at"),
        Index("ix_reminder_jobs_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("reminder_appointments.id", ondelete="CASCADE")
    )
    # "confirm", "remind" or "thanks".
    kind: Mapped[str] = mapped_column(String(16))
    offset_minutes: Mapped[int] = mapped_column(Integer)
    # The appointment time this message was planned for: a move makes new rows.
    for_starts_at: Mapped[datetime]
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(16))
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One attempt to deliver a message over one channel, with its status."""

    __tablename__ = "reminder_deliveries"
    __table_args__ = (Index("ix_reminder_deliveries_provider", "provider_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("reminder_jobs.id", ondelete="CASCADE")
    )
    appointment_id: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    # "sent", "delivered", "failed" or "skipped".
    status: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Consent(Base):
    """A client's agreement to get messages over one channel.

    ``address`` is where the messages go: a phone in E.164, a Telegram chat
    id or an e-mail address; the open-line channel needs none.
    """

    __tablename__ = "reminder_consents"
    __table_args__ = (UniqueConstraint("portal_id", "contact_key", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    contact_key: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="granted")
    # "form", "chat", "import", "telegram", "admin"; and for an opt-out
    # "stop_word" or "link".
    source: Mapped[str] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(255))
    granted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoke_source: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Reply(Base):
    """A client's reply and what the app did with it."""

    __tablename__ = "reminder_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    appointment_id: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    # "confirm", "cancel", "reschedule", "opt_out" or "unclear".
    intent: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    needs_person: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Experiment(Base):
    """An owner's A/B test of reminder texts and/or timing."""

    __tablename__ = "reminder_experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    # [{"code": "A", "control": true, "templates": {...}, "schedule": [...]}]
    variants: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metric: Mapped[str] = mapped_column(String(16), default="no_show")
    min_per_variant: Mapped[int] = mapped_column(Integer, default=100)
    status: Mapped[str] = mapped_column(String(16), default="running")
    winner: Mapped[str | None] = mapped_column(String(32))
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

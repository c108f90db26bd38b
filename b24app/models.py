"""Typed SQLAlchemy models.

Bitrix24 record ids are stored as ``bitrix_id`` columns (strings on the wire,
integers here); the local primary key is ``id``. All timestamps are stored in
UTC and returned timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A DateTime that always stores UTC and always returns aware values.

    SQLite keeps no zone information, so values are normalised on the way in
    and marked UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Portal(Base):
    """A Bitrix24 portal that installed the app, keyed by ``member_id``."""

    __tablename__ = "portals"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), unique=True)
    domain: Mapped[str] = mapped_column(String(255))
    client_endpoint: Mapped[str] = mapped_column(String(255))
    server_endpoint: Mapped[str] = mapped_column(String(255))
    # Tokens and the application token are encrypted at rest (Fernet).
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str] = mapped_column(Text)
    application_token_enc: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime]
    token_refreshed_at: Mapped[datetime]
    # Incremented on every refresh, so a worker that has an old pair can
    # tell that another process already rotated it.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    token_user_id: Mapped[int | None] = mapped_column(Integer)
    scope: Mapped[str] = mapped_column(String(512), default="")
    status: Mapped[str] = mapped_column(String(16), default="installing")
    inactive_reason: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(8), default="ru")
    rate_limit: Mapped[float | None] = mapped_column(Float)
    rate_burst: Mapped[int | None] = mapped_column(Integer)
    tag_field: Mapped[str | None] = mapped_column(String(64))
    # Maps an intent code ("booking", "urgent", "review") to the option ID
    # of the enumeration user field on the portal.
    tag_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    installed_at: Mapped[datetime | None]
    uninstalled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def __repr__(self) -> str:
        return f"<Portal {self.member_id} {self.domain} {self.status}>"


class RateLimitState(Base):
    """Shared leaky-bucket state for calls to one portal (GCRA).

    ``tat`` is the theoretical arrival time of the next request in unix
    seconds. Every process that calls the portal reserves its slot by
    advancing it in one UPDATE statement.
    """

    __tablename__ = "rate_limits"

    portal_id: Mapped[int] = mapped_column(
        ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True
    )
    tat: Mapped[float] = mapped_column(Float, default=0.0)


class MethodDeferral(Base):
    """A REST method blocked by OPERATION_TIME_LIMIT until ``until``."""

    __tablename__ = "method_deferrals"

    portal_id: Mapped[int] = mapped_column(
        ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str] = mapped_column(String(128), primary_key=True)
    until: Mapped[datetime]


class InboundEvent(Base):
    """A Bitrix24 event stored durably on receipt and processed by the worker."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("portal_id", "dedupe_key"),
        Index("ix_inbound_events_pending", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(64))
    # ``data``, ``ts`` and the acting user; never tokens.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(120))
    error: Mapped[str | None] = mapped_column(String(500))


class Lead(Base):
    """The app's copy of a portal lead: tags, first touch and timings."""

    __tablename__ = "leads"
    __table_args__ = (UniqueConstraint("portal_id", "bitrix_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    bitrix_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(String(255))
    source_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))
    status_id: Mapped[str | None] = mapped_column(String(64))
    initial_status_id: Mapped[str | None] = mapped_column(String(64))
    assigned_by_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    text_source: Mapped[str | None] = mapped_column(String(16))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    classification: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Tags a manager set by hand on the lead; never overwritten by the app.
    manual_tags: Mapped[list[str] | None] = mapped_column(JSON)
    tagged_at: Mapped[datetime | None]
    event_received_at: Mapped[datetime | None]
    tag_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_app_write_at: Mapped[datetime | None]
    first_touch_at: Mapped[datetime | None]
    first_touch_kind: Mapped[str | None] = mapped_column(String(32))
    first_touch_by: Mapped[int | None] = mapped_column(Integer)
    bot_reply_at: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    clocks: Mapped[list[SlaClock]] = relationship(back_populates="lead")


class SlaClock(Base):
    """One first-response clock tier ("bot" or "human") of one lead."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("lead_id", "tier"),
        Index("ix_sla_clocks_next_check_at", "next_check_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    tier: Mapped[str] = mapped_column(String(8))
    target_seconds: Mapped[int] = mapped_column(Integer)
    target_rule: Mapped[str] = mapped_column(String(32), default="default")
    created_at: Mapped[datetime]
    starts_at: Mapped[datetime]
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="running")
    stopped_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    # When the sweep must look at this clock next (the next ladder step).
    next_check_at: Mapped[datetime | None]
    responsible_id: Mapped[int | None] = mapped_column(Integer)

    lead: Mapped[Lead] = relationship(back_populates="clocks")
    # Raised by one each time a reassignment restarts the clock, so the ladder
    # of the new round fires again (its levels are keyed "<code>@<round>").
    clock_round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the periodic reconciliation last compared this lead with the portal.
    reconciled_at: Mapped[datetime | None]


class Escalation(Base):
    """A ladder step fired for a lead; the unique key makes it fire once."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("lead_id", "level"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="claimed")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime]
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    recipient_id: Mapped[int | None] = mapped_column(Integer)
    task_bitrix_id: Mapped[int | None] = mapped_column(Integer)
    task_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(String(500))
    # Set when the recipient was off work: the step waited until this time.
    postponed_until: Mapped[datetime | None]
    # Set when the lead got its answer (or was dropped) while this row holds
    # an open task; the sweep completes the task from this time on.
    close_after: Mapped[datetime | None]


class TagFeedback(Base):
    """A manager's correction of the app's tags on a lead."""

    __tablename__ = "tag_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    predicted: Mapped[list[str]] = mapped_column(JSON)
    corrected: Mapped[list[str]] = mapped_column(JSON)
    user_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Indexes of the SLA sweep, declared here so that the model classes above keep
# their original table arguments.
Index("ix_escalations_pending", Escalation.status, Escalation.locked_until)
Index("ix_escalations_close_after", Escalation.close_after)
Index("ix_sla_clocks_reconcile", SlaClock.portal_id, SlaClock.reconciled_at)


from b24app.kpi import models as kpi_models  # noqa: E402,F401
from b24app.reminders import models as reminder_models  # noqa: E402,F401

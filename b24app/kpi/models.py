"""Tables of the KPI feature: deal copies, stage history, import checkpoints,
per-portal KPI settings, marketing spend and once-a-day claims.

Deal amounts are stored as floats in the portal's currency; all timestamps
are UTC (see ``b24app.models.UTCDateTime``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from b24app.models import Base, Lead, utcnow


class KpiDeal(Base):
    """The app's copy of a portal deal: stage, amount, client and appointment."""

    __tablename__ = "kpi_deals"
    __table_args__ = (
        UniqueConstraint("portal_id", "bitrix_id"),
        Index("ix_kpi_deals_appointment", "portal_id", "appointment_at"),
        Index("ix_kpi_deals_created", "portal_id", "created_at"),
        Index("ix_kpi_deals_lead", "portal_id", "lead_id"),
        Index("ix_kpi_deals_contact", "portal_id", "contact_id", "appointment_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    bitrix_id: Mapped[int] = mapped_column(Integer)
    category_id: Mapped[int] = mapped_column(Integer, default=0)
    stage_id: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[float | None] = mapped_column(Float)
    assigned_by_id: Mapped[int | None] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(Integer)
    lead_id: Mapped[int | None] = mapped_column(Integer)
    source_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    moved_at: Mapped[datetime | None]
    appointment_at: Mapped[datetime | None]
    # The raw deal fields the funnel mapping may refer to (date fields, UF_*).
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class KpiStageMove(Base):
    """A lead or deal entered a stage.

    Rows from ``crm.stagehistory.list`` carry the history row's ID. Moves seen
    in live events have none (``bitrix_id`` is NULL) and are unique by owner,
    stage and time. The history row of the same move replaces them later.
    """

    __tablename__ = "kpi_stage_moves"
    __table_args__ = (
        UniqueConstraint("portal_id", "entity_type", "bitrix_id"),
        Index("ix_kpi_stage_moves_owner", "portal_id", "entity_type", "owner_id"),
        Index(
            "uq_kpi_stage_moves_live",
            "portal_id",
            "entity_type",
            "owner_id",
            "stage_id",
            "created_at",
            unique=True,
            sqlite_where=text("bitrix_id IS NULL"),
            postgresql_where=text("bitrix_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    entity_type: Mapped[int] = mapped_column(Integer)
    bitrix_id: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int] = mapped_column(Integer)
    stage_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class KpiImport(Base):
    """Progress of the history import of one entity, the resume point after a crash.

    ``last_id`` is the highest Bitrix24 ID stored; it advances in the same
    transaction as the rows, so a crash never skips or repeats a page.
    """

    __tablename__ = "kpi_imports"
    __table_args__ = (UniqueConstraint("portal_id", "entity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int | None] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))


class KpiSettings(Base):
    """Per-portal KPI settings: funnel mapping, targets, capacity, feed token."""

    __tablename__ = "kpi_settings"

    portal_id: Mapped[int] = mapped_column(
        ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True
    )
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    daily_capacity: Mapped[int | None] = mapped_column(Integer)
    owner_email: Mapped[str | None] = mapped_column(String(255))
    # SHA-256 of the feed token; the token itself is shown once and not kept.
    feed_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    feed_created_at: Mapped[datetime | None]
    reconciled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class KpiSpend(Base):
    """Marketing spend of one channel in one month, entered by the owner."""

    __tablename__ = "kpi_spend"
    __table_args__ = (UniqueConstraint("portal_id", "month", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    month: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(32))
    amount: Mapped[float] = mapped_column(Float)


class KpiClaim(Base):
    """A once-a-day action (drift alert, weekly e-mail); the unique key decides."""

    __tablename__ = "kpi_claims"
    __table_args__ = (UniqueConstraint("portal_id", "kind", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(48))
    day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="claimed")
    detail: Mapped[str | None] = mapped_column(String(500))


class KpiLeadDay(Base):
    """First-response and booking counts of one local day, channel and manager.

    Built for days before today (see ``rollup``). ``human`` and ``bot`` map
    response times in tenths of a business minute to lead counts. So
    percentiles over any range stay exact at 0.1 minute.
    """

    __tablename__ = "kpi_lead_days"
    __table_args__ = (
        UniqueConstraint("portal_id", "grain", "day", "channel", "manager"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    # "day", or "month" for the sum of a whole past month (``day`` is its 1st).
    grain: Mapped[str] = mapped_column(String(8), default="day")
    day: Mapped[date] = mapped_column(Date)
    leads: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(32))
    manager: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    human: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    bot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class KpiRollupDay(Base):
    """A built stored period (also an empty one).

    Grain "day" or "month" marks ``kpi_lead_days`` rows, and "deal" the
    ``kpi_deal_days`` rows of one local day. Grain "visits" marks the whole
    ``kpi_visits`` table of the portal (one row, ``day`` 2000-01-01).
    """

    __tablename__ = "kpi_rollup_days"

    portal_id: Mapped[int] = mapped_column(
        ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True
    )
    grain: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


class KpiDealDay(Base):
    """Deal counts of one local day, pipeline, stage and responsible user.

    ``kind`` "due" counts deals by appointment day, "made" by creation day.
    Built on first use per day (``kpi_rollup_days`` grain "deal") and dropped
    for the days a changed deal touches (see ``rollup.deals_changed``).
    """

    __tablename__ = "kpi_deal_days"
    __table_args__ = (
        UniqueConstraint(
            "portal_id",
            "kind",
            "day",
            "category_id",
            "stage_id",
            "manager",
            name="uq_kpi_deal_days_cell",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    day: Mapped[date] = mapped_column(Date)
    category_id: Mapped[int] = mapped_column(Integer)
    stage_id: Mapped[str] = mapped_column(String(64))
    manager: Mapped[int] = mapped_column(Integer)
    deals: Mapped[int] = mapped_column(Integer, default=0)
    # Deals with an amount above 0, and the sum of those amounts.
    priced: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[float] = mapped_column(Float, default=0.0)
    # The sum of every stored amount (the daily series adds them all).
    amount_all: Mapped[float] = mapped_column(Float, default=0.0)
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    timed: Mapped[int] = mapped_column(Integer, default=0)
    linked: Mapped[int] = mapped_column(Integer, default=0)
    # Moved to the stage less than ``late_cancel_hours`` before the appointment.
    late: Mapped[int] = mapped_column(Integer, default=0)


class KpiVisit(Base):
    """One visit (a visited booking deal with a contact and a time), with links.

    ``prev_at`` is the time of the contact's visit just before this one in
    (time, deal ID) order. ``returned`` is true when another visit follows within
    ``metrics.RETENTION_DAYS``. Both are kept current per contact as deals change.
    """

    __tablename__ = "kpi_visits"
    __table_args__ = (
        UniqueConstraint("portal_id", "deal_id"),
        Index("ix_kpi_visits_time", "portal_id", "appointment_at"),
        Index("ix_kpi_visits_contact", "portal_id", "contact_id"),
        Index("ix_kpi_visits_day", "portal_id", "day"),
        Index("ix_kpi_visits_prev_day", "portal_id", "prev_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    deal_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(Integer)
    appointment_at: Mapped[datetime]
    # Local days of ``appointment_at`` and ``prev_at``.
    day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[float | None] = mapped_column(Float)
    prev_at: Mapped[datetime | None]
    prev_day: Mapped[date | None] = mapped_column(Date)
    returned: Mapped[bool] = mapped_column(Boolean, default=False)


class KpiVisitDay(Base):
    """Visit counts of one local day and channel, summed from ``kpi_visits``.

    A visit with a previous visit is a link from the previous visit's day
    (``starts``) to its own day (``ends``). The links that cross a day
    boundary are the running sum of starts minus ends before it, so the
    client counts of any period need these rows plus the few links that
    span the whole period (see ``metrics``).
    """

    __tablename__ = "kpi_visit_days"
    __table_args__ = (UniqueConstraint("portal_id", "day", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(32))
    visits: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[float] = mapped_column(Float, default=0.0)
    # Visits with no previous visit (a client's first), and those returned.
    first: Mapped[int] = mapped_column(Integer, default=0)
    first_returned: Mapped[int] = mapped_column(Integer, default=0)
    # Links by the previous visit's day and by the visit's day. The "_returned"
    # columns count only links whose later visit was followed by another within
    # the window.
    starts: Mapped[int] = mapped_column(Integer, default=0)
    starts_returned: Mapped[int] = mapped_column(Integer, default=0)
    ends: Mapped[int] = mapped_column(Integer, default=0)
    ends_returned: Mapped[int] = mapped_column(Integer, default=0)


# The KPI queries select leads of one portal by creation time.
Index("ix_leads_portal_created", Lead.portal_id, Lead.created_at)

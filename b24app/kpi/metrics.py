"""Booking, visit, revenue and client KPIs of a period, from stored leads and deals.

Every function takes the period as UTC bounds ``[lower, upper)`` of whole
local days (see ``first_response.period_bounds``) and returns plain dicts
with counts, so the JSON API, the exports and the e-mail share one source.
Aggregates run in SQL; only small per-group rows reach Python. Exact
definitions: docs/kpi.md.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from b24app.kpi.models import KpiDeal, KpiSpend, KpiStageMove
from b24app.kpi.settings import OUTCOMES, KpiConfig
from b24app.models import Lead

RETENTION_DAYS = 91
LEAD_ENTITY = 1


def share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def money(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def spam_flag():
    """True for leads tagged as spam (a manager's tags win over the app's)."""
    tags = case(
        (Lead.manual_tags.is_not(None), cast(Lead.manual_tags, String)),
        else_=cast(Lead.tags, String),
    )
    return tags.like('%"spam"%')


def _booked_condition(portal_id: int, cfg: KpiConfig):
    """Return the SQL test of a booked lead (booking status now or earlier, or deal)."""
    statuses = sorted({s for o in OUTCOMES for s in cfg.lead_statuses(o)})
    parts = []
    if statuses:
        parts.append(Lead.status_id.in_(statuses))
        parts.append(
            exists().where(
                KpiStageMove.portal_id == portal_id,
                KpiStageMove.entity_type == LEAD_ENTITY,
                KpiStageMove.owner_id == Lead.bitrix_id,
                KpiStageMove.stage_id.in_(statuses),
            )
        )
    if cfg.categories:
        parts.append(
            exists().where(
                KpiDeal.portal_id == portal_id,
                KpiDeal.lead_id == Lead.bitrix_id,
                KpiDeal.category_id.in_(cfg.categories),
                KpiDeal.deleted.is_(False),
            )
        )
    return or_(*parts) if parts else literal_column("1 = 0")


def conversion(
    session: Session, portal_id: int, cfg: KpiConfig, lower: datetime, upper: datetime
) -> dict[str, Any]:
    """Lead-to-booking conversion of the cohort of leads created in the period."""
    booked = _booked_condition(portal_id, cfg)
    rows = session.execute(
        select(
            Lead.channel,
            Lead.assigned_by_id,
            func.count(),
            func.sum(case((booked, 1), else_=0)),
        )
        .where(
            Lead.portal_id == portal_id,
            Lead.created_at >= lower,
            Lead.created_at < upper,
            Lead.deleted.is_(False),
            ~spam_flag(),
        )
        .group_by(Lead.channel, Lead.assigned_by_id)
    ).all()

    by_channel: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_manager: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    total = hits = 0
    for channel, manager, count, booked_count in rows:
        booked_count = int(booked_count or 0)
        total += count
        hits += booked_count
        for key, bucket in ((channel or "other", by_channel), (manager, by_manager)):
            bucket[str(key) if key is not None else "none"][0] += count
            bucket[str(key) if key is not None else "none"][1] += booked_count
    target = cfg.targets.get("conversion")
    return {
        "leads": total,
        "booked": hits,
        "rate": share(hits, total),
        "target": target,
        "range": cfg.targets.get("conversion_range"),
        "segment": cfg.segment,
        "by_channel": _breakdown(by_channel, "leads", "booked"),
        "by_manager": _breakdown(by_manager, "leads", "booked"),
    }


def _breakdown(groups: dict[str, list[int]], whole: str, part: str) -> list[dict]:
    return [
        {"key": key, whole: n, part: k, "rate": share(k, n)}
        for key, (n, k) in sorted(groups.items(), key=lambda item: -item[1][0])
    ]


def appointments(
    session: Session, portal_id: int, cfg: KpiConfig, lower: datetime, upper: datetime
) -> dict[str, Any]:
    """No-shows, cancellations, revenue and average check of appointments due."""
    stage_outcome = {
        stage: outcome for outcome in OUTCOMES for stage in cfg.stages(outcome)
    }
    base = (
        KpiDeal.portal_id == portal_id,
        KpiDeal.category_id.in_(cfg.categories or [-1]),
        KpiDeal.deleted.is_(False),
        KpiDeal.appointment_at >= lower,
        KpiDeal.appointment_at < upper,
    )
    rows = session.execute(
        select(
            KpiDeal.stage_id,
            KpiDeal.assigned_by_id,
            func.count(),
            func.sum(case((KpiDeal.amount > 0, KpiDeal.amount), else_=0)),
            func.sum(case((KpiDeal.amount > 0, 1), else_=0)),
            func.sum(case((KpiDeal.contact_id.is_not(None), 1), else_=0)),
        )
        .where(*base)
        .group_by(KpiDeal.stage_id, KpiDeal.assigned_by_id)
    ).all()

    counts: dict[str, int] = defaultdict(int)
    revenue = 0.0
    priced = with_contact = 0
    per_manager: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for stage, manager, count, amount, amount_count, contacts in rows:
        outcome = stage_outcome.get(stage or "", "other")
        counts[outcome] += count
        key = str(manager) if manager is not None else "none"
        per_manager[key][outcome] += count
        if outcome == "visited":
            revenue += float(amount or 0)
            priced += int(amount_count or 0)
            with_contact += int(contacts or 0)
            per_manager[key]["revenue"] += float(amount or 0)

    late = _late_cancellations(session, base, cfg)
    visited, no_show = counts["visited"], counts["no_show"]
    employees = sum(1 for m in per_manager.values() if m.get("visited"))
    return {
        "due": sum(counts.values()),
        "visited": visited,
        "no_show": no_show,
        "cancelled": counts["cancelled"],
        "late_cancelled": late,
        "pending": counts["booked"] + counts["confirmed"] + counts["other"],
        "no_show_rate": share(no_show, visited + no_show),
        "no_show_target": cfg.targets.get("no_show_rate"),
        "cancel_rate": share(counts["cancelled"], sum(counts.values())),
        "revenue": money(revenue),
        "average_check": money(revenue / priced) if priced else None,
        "employees": employees,
        "revenue_per_employee": money(revenue / employees) if employees else None,
        "amount_coverage": share(priced, visited),
        "contact_coverage": share(with_contact, visited),
        "by_manager": [
            {
                "key": key,
                "visited": int(values.get("visited", 0)),
                "no_show": int(values.get("no_show", 0)),
                "cancelled": int(values.get("cancelled", 0)),
                "revenue": money(values.get("revenue", 0.0)),
                "no_show_rate": share(
                    values.get("no_show", 0),
                    values.get("visited", 0) + values.get("no_show", 0),
                ),
            }
            for key, values in sorted(per_manager.items())
        ],
    }


def _late_cancellations(session: Session, base: tuple, cfg: KpiConfig) -> int:
    stages = cfg.stages("cancelled")
    if not stages:
        return 0
    hours = int(cfg.mapping.get("late_cancel_hours") or 24)
    late = KpiDeal.moved_at >= _plus_hours(session, KpiDeal.appointment_at, -hours)
    count = session.scalar(
        select(func.count()).where(
            *base, KpiDeal.stage_id.in_(stages), KpiDeal.moved_at.is_not(None), late
        )
    )
    return int(count or 0)


def _plus_hours(session: Session, column, hours: int):
    if session.get_bind().dialect.name == "postgresql":
        return column + literal_column(f"interval '{int(hours)} hours'")
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"{int(hours):+d} hours")


def _plus_days(session: Session, column, days: int):
    if session.get_bind().dialect.name == "postgresql":
        return column + literal_column(f"interval '{int(days)} days'")
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{int(days)} days")


def retention(
    session: Session,
    portal_id: int,
    cfg: KpiConfig,
    lower: datetime,
    upper: datetime,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Share of the period's visiting clients who came again within 91 days."""
    now = now or datetime.now(UTC)
    visited = cfg.stages("visited") or ["-"]
    first = (
        select(
            KpiDeal.contact_id.label("contact_id"),
            func.min(KpiDeal.appointment_at).label("first_at"),
        )
        .where(
            KpiDeal.portal_id == portal_id,
            KpiDeal.category_id.in_(cfg.categories or [-1]),
            KpiDeal.deleted.is_(False),
            KpiDeal.stage_id.in_(visited),
            KpiDeal.contact_id.is_not(None),
            KpiDeal.appointment_at >= lower,
            KpiDeal.appointment_at < upper,
        )
        .group_by(KpiDeal.contact_id)
        .subquery()
    )
    later = aliased(KpiDeal)
    again = exists().where(
        later.portal_id == portal_id,
        later.contact_id == first.c.contact_id,
        later.category_id.in_(cfg.categories or [-1]),
        later.deleted.is_(False),
        later.stage_id.in_(visited),
        later.appointment_at > first.c.first_at,
        later.appointment_at <= _plus_days(session, first.c.first_at, RETENTION_DAYS),
    )
    clients, returned = session.execute(
        select(func.count(), func.sum(case((again, 1), else_=0))).select_from(first)
    ).one()
    return {
        "clients": int(clients or 0),
        "returned": int(returned or 0),
        "rate": share(int(returned or 0), int(clients or 0)),
        "target": cfg.targets.get("retention_3m"),
        "window_days": RETENTION_DAYS,
        "window_complete": upper + timedelta(days=RETENTION_DAYS) <= now,
    }


def acquisition(
    session: Session,
    portal_id: int,
    cfg: KpiConfig,
    start: date,
    end: date,
    lower: datetime,
    upper: datetime,
) -> dict[str, Any]:
    """CAC per channel and a 12-month revenue-per-client LTV."""
    visited = cfg.stages("visited") or ["-"]
    scope = (
        KpiDeal.portal_id == portal_id,
        KpiDeal.category_id.in_(cfg.categories or [-1]),
        KpiDeal.deleted.is_(False),
        KpiDeal.stage_id.in_(visited),
        KpiDeal.contact_id.is_not(None),
        KpiDeal.appointment_at.is_not(None),
    )
    # New clients: a first visit in the period and no visit before it.
    first = (
        select(
            KpiDeal.contact_id.label("contact_id"),
            func.min(KpiDeal.appointment_at).label("first_at"),
        )
        .where(*scope, KpiDeal.appointment_at >= lower, KpiDeal.appointment_at < upper)
        .group_by(KpiDeal.contact_id)
        .subquery()
    )
    earlier = aliased(KpiDeal)
    first_deal = aliased(KpiDeal)
    new_rows = session.execute(
        select(first_deal.channel, func.count())
        .select_from(first)
        .join(
            first_deal,
            and_(
                first_deal.portal_id == portal_id,
                first_deal.contact_id == first.c.contact_id,
                first_deal.appointment_at == first.c.first_at,
                first_deal.stage_id.in_(visited),
            ),
        )
        .where(
            ~exists().where(
                earlier.portal_id == portal_id,
                earlier.contact_id == first.c.contact_id,
                earlier.category_id.in_(cfg.categories or [-1]),
                earlier.deleted.is_(False),
                earlier.stage_id.in_(visited),
                earlier.appointment_at < lower,
            )
        )
        .group_by(first_deal.channel)
    ).all()
    new_by_channel: dict[str, int] = defaultdict(int)
    for channel, count in new_rows:
        new_by_channel[channel or "other"] += int(count)

    months = _months(start, end)
    spend_rows = session.execute(
        select(KpiSpend.channel, func.sum(KpiSpend.amount))
        .where(KpiSpend.portal_id == portal_id, KpiSpend.month.in_(months))
        .group_by(KpiSpend.channel)
    ).all()
    spend = {channel: float(amount or 0) for channel, amount in spend_rows}

    year_ago = upper - timedelta(days=365)
    revenue, clients = session.execute(
        select(func.sum(KpiDeal.amount), func.count(func.distinct(KpiDeal.contact_id)))
        .where(*scope, KpiDeal.appointment_at >= year_ago)
        .where(KpiDeal.appointment_at < upper)
    ).one()
    new_total = sum(new_by_channel.values())
    spend_total = sum(spend.values())
    ltv = money(float(revenue or 0) / clients) if clients else None
    cac = money(spend_total / new_total) if new_total and spend else None
    channels = sorted(set(spend) | set(new_by_channel))
    return {
        "months": [m.isoformat()[:7] for m in months],
        "spend": money(spend_total),
        "new_clients": new_total,
        "cac": cac,
        "ltv_12m": ltv,
        "ltv_to_cac": round(ltv / cac, 2) if ltv and cac else None,
        "spend_entered": bool(spend),
        "by_channel": [
            {
                "key": channel,
                "spend": money(spend.get(channel)),
                "new_clients": new_by_channel.get(channel, 0),
                "cac": money(spend[channel] / new_by_channel[channel])
                if spend.get(channel) and new_by_channel.get(channel)
                else None,
            }
            for channel in channels
        ],
    }


def _months(start: date, end: date) -> list[date]:
    months = []
    current = start.replace(day=1)
    while current <= end:
        months.append(current)
        current = (current + timedelta(days=32)).replace(day=1)
    return months


def coverage(
    session: Session, portal_id: int, cfg: KpiConfig, lower: datetime, upper: datetime
) -> dict[str, Any]:
    """Measure how complete the deal data is, for the period's new deals."""
    total, with_time, with_amount, with_contact, with_lead = session.execute(
        select(
            func.count(),
            func.sum(case((KpiDeal.appointment_at.is_not(None), 1), else_=0)),
            func.sum(case((KpiDeal.amount > 0, 1), else_=0)),
            func.sum(case((KpiDeal.contact_id.is_not(None), 1), else_=0)),
            func.sum(case((KpiDeal.lead_id.is_not(None), 1), else_=0)),
        ).where(
            KpiDeal.portal_id == portal_id,
            KpiDeal.category_id.in_(cfg.categories or [-1]),
            KpiDeal.deleted.is_(False),
            KpiDeal.created_at >= lower,
            KpiDeal.created_at < upper,
        )
    ).one()
    total = int(total or 0)
    return {
        "deals": total,
        "appointment_time": share(int(with_time or 0), total),
        "amount": share(int(with_amount or 0), total),
        "contact": share(int(with_contact or 0), total),
        "lead_link": share(int(with_lead or 0), total),
    }

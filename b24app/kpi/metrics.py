"""Booking, visit, revenue and client KPIs of a period, from stored leads and deals.

Every function takes the period as UTC bounds ``[lower, upper)`` of whole
local days (see ``first_response.period_bounds``) and returns plain dicts
with counts, so the JSON API, the exports and the e-mail share one source.
The deal KPIs read the stored deal days and visits (see ``rollup``), built
on first use; only small per-group rows reach Python. Exact definitions:
docs/kpi.md.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, case, cast, exists, func, literal_column, or_, select
from sqlalchemy.orm import Session

from b24app import portal_settings
from b24app.kpi import rollup
from b24app.kpi.models import (
    KpiDeal,
    KpiDealDay,
    KpiSpend,
    KpiStageMove,
    KpiVisit,
    KpiVisitDay,
)
from b24app.kpi.settings import OUTCOMES, KpiConfig
from b24app.models import Lead, Portal

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


def _scope_days(session: Session, portal_id: int, cfg: KpiConfig, lower, upper):
    """Build the stored deal days of the period; return its zone and local days."""
    portal = session.get(Portal, portal_id)
    zone = ZoneInfo(portal_settings.timezone(portal))
    days = rollup.local_days(zone, lower, upper)
    if days is None:
        raise ValueError("the period bounds must be whole local days")
    rollup.ensure_deal_days(session, portal_id, cfg, zone, *days)
    return zone, days


def _deal_days(portal_id: int, cfg: KpiConfig, kind: str, days: tuple[date, date]):
    return (
        KpiDealDay.portal_id == portal_id,
        KpiDealDay.kind == kind,
        KpiDealDay.day >= days[0],
        KpiDealDay.day <= days[1],
        KpiDealDay.category_id.in_(cfg.categories or [-1]),
    )


def appointments(
    session: Session, portal_id: int, cfg: KpiConfig, lower: datetime, upper: datetime
) -> dict[str, Any]:
    """No-shows, cancellations, revenue and average check of appointments due."""
    stage_outcome = {
        stage: outcome for outcome in OUTCOMES for stage in cfg.stages(outcome)
    }
    _, days = _scope_days(session, portal_id, cfg, lower, upper)
    rows = session.execute(
        select(
            KpiDealDay.stage_id,
            KpiDealDay.manager,
            func.sum(KpiDealDay.deals),
            func.sum(KpiDealDay.amount),
            func.sum(KpiDealDay.priced),
            func.sum(KpiDealDay.contacts),
            func.sum(KpiDealDay.late),
        )
        .where(*_deal_days(portal_id, cfg, "due", days))
        .group_by(KpiDealDay.stage_id, KpiDealDay.manager)
    ).all()

    counts: dict[str, int] = defaultdict(int)
    revenue = 0.0
    priced = with_contact = late = 0
    cancelled = set(cfg.stages("cancelled"))
    per_manager: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for stage, manager, count, amount, amount_count, contacts, late_count in rows:
        count = int(count or 0)
        outcome = stage_outcome.get(stage or "", "other")
        counts[outcome] += count
        key = str(manager) if manager else "none"
        per_manager[key][outcome] += count
        if stage in cancelled:
            late += int(late_count or 0)
        if outcome == "visited":
            revenue += float(amount or 0)
            priced += int(amount_count or 0)
            with_contact += int(contacts or 0)
            per_manager[key]["revenue"] += float(amount or 0)

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


def _visit_counts(
    session: Session, portal_id: int, cfg: KpiConfig, lower: datetime, upper: datetime
) -> dict[str, Any]:
    """Client counts of the period and its 12-month window, in one pass.

    A client's first visit in a window is the visit whose previous visit
    (``KpiVisit.prev_at``) lies before the window or does not exist. A new
    client's first visit has no previous visit at all.
    """
    cache = session.info.setdefault("kpi_visit_counts", {})
    key = (portal_id, lower, upper)
    if key not in cache:
        rollup.ensure_visits(session, portal_id, cfg)
        zone = rollup.zone_of(session, portal_id)
        period = rollup.local_days(zone, lower, upper)
        window = rollup.local_days(zone, upper - timedelta(days=365), upper)
        if period is not None and window is not None:
            cache[key] = _visit_counts_by_day(session, portal_id, period, window[0])
        else:
            cache[key] = _visit_counts_by_row(session, portal_id, lower, upper)
    return cache[key]


def _visit_counts_by_day(
    session: Session, portal_id: int, period: tuple[date, date], year_start: date
) -> dict[str, Any]:
    """Compute ``_visit_counts`` from the visit days (bounds on local midnights).

    The clients of days ``L``..``U`` are the first visits ever on those days,
    plus the links (previous visit -> visit) that cross the start of ``L``,
    less those that also pass the end of ``U``. The crossing links are the
    sum of starts minus ends over the days before ``L``. The few links that
    pass both ends are counted from the visits after ``U``.
    """
    first_day, last_day = period
    day = KpiVisitDay.day

    def total(column, since: date | None = None, before: date | None = None):
        test = (day >= since) if since is not None else (day < before)
        return func.sum(case((test, column), else_=0))

    rows = session.execute(
        select(
            KpiVisitDay.channel,
            total(KpiVisitDay.first, since=first_day),
            total(KpiVisitDay.first_returned, since=first_day),
            total(KpiVisitDay.starts - KpiVisitDay.ends, before=first_day),
            total(
                KpiVisitDay.starts_returned - KpiVisitDay.ends_returned,
                before=first_day,
            ),
            total(KpiVisitDay.amount, since=year_start),
            total(KpiVisitDay.first, since=year_start),
            total(KpiVisitDay.starts - KpiVisitDay.ends, before=year_start),
        )
        .where(KpiVisitDay.portal_id == portal_id, day <= last_day)
        .group_by(KpiVisitDay.channel)
    ).all()
    passing, passing_returned, passing_year = session.execute(
        select(
            func.sum(case((KpiVisit.prev_day < first_day, 1), else_=0)),
            func.sum(
                case(((KpiVisit.prev_day < first_day) & KpiVisit.returned, 1), else_=0)
            ),
            func.sum(case((KpiVisit.prev_day < year_start, 1), else_=0)),
        ).where(
            KpiVisit.portal_id == portal_id,
            KpiVisit.day > last_day,
            KpiVisit.prev_day.is_not(None),
        )
    ).one()

    new_by_channel: dict[str, int] = defaultdict(int)
    sums = [0, 0, 0, 0, 0.0, 0, 0]
    for channel, *values in rows:
        if values[0]:
            new_by_channel[channel or "other"] += int(values[0])
        for i, value in enumerate(values):
            sums[i] += value or 0
    return {
        "clients": int(sums[0] + sums[2] - (passing or 0)),
        "returned": int(sums[1] + sums[3] - (passing_returned or 0)),
        "new_by_channel": dict(new_by_channel),
        "revenue_12m": float(sums[4]),
        "clients_12m": int(sums[5] + sums[6] - (passing_year or 0)),
    }


def _visit_counts_by_row(
    session: Session, portal_id: int, lower: datetime, upper: datetime
) -> dict[str, Any]:
    """Compute ``_visit_counts`` from the visit rows (any bounds)."""
    year_ago = upper - timedelta(days=365)
    in_period = KpiVisit.appointment_at >= lower
    first = in_period & or_(KpiVisit.prev_at.is_(None), KpiVisit.prev_at < lower)
    in_year = KpiVisit.appointment_at >= year_ago
    first_in_year = in_year & or_(
        KpiVisit.prev_at.is_(None), KpiVisit.prev_at < year_ago
    )
    rows = session.execute(
        select(
            KpiVisit.channel,
            func.sum(case((first, 1), else_=0)),
            func.sum(case((first & KpiVisit.returned, 1), else_=0)),
            func.sum(case((in_period & KpiVisit.prev_at.is_(None), 1), else_=0)),
            func.sum(case((in_year, KpiVisit.amount), else_=None)),
            func.sum(case((first_in_year, 1), else_=0)),
        )
        .where(
            KpiVisit.portal_id == portal_id,
            KpiVisit.appointment_at >= min(lower, year_ago),
            KpiVisit.appointment_at < upper,
        )
        .group_by(KpiVisit.channel)
    ).all()
    result: dict[str, Any] = {
        "clients": 0,
        "returned": 0,
        "new_by_channel": defaultdict(int),
        "revenue_12m": 0.0,
        "clients_12m": 0,
    }
    for channel, clients, returned, new, revenue, clients_12m in rows:
        result["clients"] += int(clients or 0)
        result["returned"] += int(returned or 0)
        if new:
            result["new_by_channel"][channel or "other"] += int(new)
        result["revenue_12m"] += float(revenue or 0)
        result["clients_12m"] += int(clients_12m or 0)
    result["new_by_channel"] = dict(result["new_by_channel"])
    return result


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
    counts = _visit_counts(session, portal_id, cfg, lower, upper)
    clients, returned = counts["clients"], counts["returned"]
    return {
        "clients": clients,
        "returned": returned,
        "rate": share(returned, clients),
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
    counts = _visit_counts(session, portal_id, cfg, lower, upper)
    new_by_channel = counts["new_by_channel"]
    revenue, clients = counts["revenue_12m"], counts["clients_12m"]

    months = _months(start, end)
    spend_rows = session.execute(
        select(KpiSpend.channel, func.sum(KpiSpend.amount))
        .where(KpiSpend.portal_id == portal_id, KpiSpend.month.in_(months))
        .group_by(KpiSpend.channel)
    ).all()
    spend = {channel: float(amount or 0) for channel, amount in spend_rows}

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
    _, days = _scope_days(session, portal_id, cfg, lower, upper)
    total, with_time, with_amount, with_contact, with_lead = session.execute(
        select(
            func.sum(KpiDealDay.deals),
            func.sum(KpiDealDay.timed),
            func.sum(KpiDealDay.priced),
            func.sum(KpiDealDay.contacts),
            func.sum(KpiDealDay.linked),
        ).where(*_deal_days(portal_id, cfg, "made", days))
    ).one()
    total = int(total or 0)
    return {
        "deals": total,
        "appointment_time": share(int(with_time or 0), total),
        "amount": share(int(with_amount or 0), total),
        "contact": share(int(with_contact or 0), total),
        "lead_link": share(int(with_lead or 0), total),
    }

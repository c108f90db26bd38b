"""The KPI report of a period and the daily, weekly and monthly reports.

``kpi_report`` is what ``/api/v1/kpi`` returns: the first-response fields
(unchanged) plus conversion, appointments, retention, acquisition, data
coverage, daily series for the charts and a traffic light per KPI.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from b24app import portal_settings
from b24app.kpi import currency, metrics, rollup
from b24app.kpi import settings as kpi_settings
from b24app.kpi.first_response import first_response_report, period_bounds
from b24app.kpi.models import KpiDeal, KpiDealDay
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)


def _status(value: float | None, target: float | None, *, lower_is_better=False):
    """Traffic light: good at or past target, warn within 20 % of it, else bad."""
    if value is None or target is None:
        return "none"
    if lower_is_better:
        if value <= target:
            return "good"
        return "warn" if value <= target * 1.2 else "bad"
    if value >= target:
        return "good"
    return "warn" if value >= target * 0.8 else "bad"


def kpi_report(
    services: Services,
    portal: Portal,
    start: date,
    end: date,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return every KPI of ``start``..``end`` (inclusive local days)."""
    now = now or datetime.now(UTC)
    tz = portal_settings.timezone(portal)
    cfg = currency.ensure(services, portal, kpi_settings.load(services, portal))
    lower, upper = period_bounds(tz, start, end)
    report = first_response_report(services, portal, start, end, now=now, cfg=cfg)

    with services.db.session() as session:
        visits = metrics.appointments(session, portal.id, cfg, lower, upper)
        retention = metrics.retention(session, portal.id, cfg, lower, upper, now)
        acquisition = metrics.acquisition(
            session, portal.id, cfg, start, end, lower, upper
        )
        coverage = metrics.coverage(session, portal.id, cfg, lower, upper)
        series = deal_series(session, portal.id, cfg, tz, start, end)
        money = currency_summary(session, portal.id, cfg, lower, upper)

    conversion = _conversion(report, cfg)
    targets = cfg.targets
    report["answered_target"] = targets.get("answered_share")
    report.update(
        {
            "conversion": conversion,
            "appointments": visits,
            "retention": retention,
            "acquisition": acquisition,
            "coverage": coverage
            | {
                "lead_channel": _lead_channel_share(report),
                "amount_of_visits": visits["amount_coverage"],
                "contact_of_visits": visits["contact_coverage"],
            },
            "deals_per_day": series,
            "currency": money,
            "status": {
                "answered_share": _status(
                    report["answered_share"], targets.get("answered_share")
                ),
                "first_response_median": _status(
                    report["first_response_minutes"]["median"],
                    targets.get("first_response_median_minutes"),
                    lower_is_better=True,
                ),
                "conversion": _status(conversion["rate"], targets.get("conversion")),
                "no_show_rate": _status(
                    visits["no_show_rate"],
                    targets.get("no_show_rate"),
                    lower_is_better=True,
                ),
                "retention": _status(retention["rate"], targets.get("retention_3m")),
            },
            "targets": targets,
            "units": {
                "times": "business minutes",
                "shares": "fraction 0..1",
                "money": money["code"] or "deal currency",
            },
        }
    )
    return report


def currency_summary(
    session, portal_id: int, cfg, lower: datetime, upper: datetime
) -> dict[str, Any]:
    """Describe the currency of the amounts and the visits in other currencies.

    ``code`` is the portal's base currency (``source`` "portal"). Before it
    has been read, it is the one currency of the portal's latest stored
    deals (``source`` "deals"), or None when they have none or several.
    """
    stored = currency.info(cfg)
    base = stored["base"] if stored else None
    summary: dict[str, Any] = {
        "code": base,
        "source": "portal" if base else None,
        "rates_read_at": stored.get("read_at") if stored else None,
        "visits_other_currency": 0,
        "visits_converted": 0,
        "visits_left_out": 0,
    }
    if base is None:
        summary["code"] = currency.deals_currency(session, portal_id)
        summary["source"] = "deals" if summary["code"] else None
        return summary

    visits = session.scalars(
        select(KpiDeal.extra).where(
            KpiDeal.portal_id == portal_id,
            KpiDeal.category_id.in_(cfg.categories or [-1]),
            KpiDeal.deleted.is_(False),
            KpiDeal.stage_id.in_(cfg.stages("visited") or ["-"]),
            KpiDeal.appointment_at >= lower,
            KpiDeal.appointment_at < upper,
        )
    )
    for extra in visits:
        code = (extra or {}).get("CURRENCY_ID")
        raw = (extra or {}).get("OPPORTUNITY")
        if not code or code == base or raw is None:
            continue
        summary["visits_other_currency"] += 1
        if currency.to_base(raw, code, stored) is None:
            summary["visits_left_out"] += 1
        else:
            summary["visits_converted"] += 1
    return summary


def _conversion(report: dict[str, Any], cfg) -> dict[str, Any]:
    """Lead-to-booking conversion from the per-day lead counts (see rollup.py)."""

    def rows(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "key": g["key"],
                "leads": g["leads"],
                "booked": g["booked"],
                "rate": g["conversion"],
            }
            for g in groups
        ]

    return {
        "leads": report["leads_total"],
        "booked": report["booked"],
        "rate": metrics.share(report["booked"], report["leads_total"]),
        "target": cfg.targets.get("conversion"),
        "range": cfg.targets.get("conversion_range"),
        "segment": cfg.segment,
        "by_channel": rows(report["by_channel"]),
        "by_manager": rows(report["by_manager"]),
    }


def _lead_channel_share(report: dict[str, Any]) -> float | None:
    known = sum(
        row["leads"] for row in report["by_channel"] if row["key"] not in ("other",)
    )
    return metrics.share(known, report["leads_total"])


def deal_series(
    session, portal_id: int, cfg, tz: str, start: date, end: date
) -> list[dict[str, Any]]:
    """Per local day: bookings made, visits, no-shows and revenue due that day."""
    zone = ZoneInfo(tz)
    rollup.ensure_deal_days(session, portal_id, cfg, zone, start, end)
    days = {
        (start + timedelta(days=i)).isoformat(): {
            "date": (start + timedelta(days=i)).isoformat(),
            "bookings": 0,
            "visited": 0,
            "no_show": 0,
            "cancelled": 0,
            "revenue": 0.0,
        }
        for i in range((end - start).days + 1)
    }
    scope = (
        KpiDealDay.portal_id == portal_id,
        KpiDealDay.category_id.in_(cfg.categories or [-1]),
        KpiDealDay.day >= start,
        KpiDealDay.day <= end,
    )
    for day, count in session.execute(
        select(KpiDealDay.day, func.sum(KpiDealDay.deals))
        .where(*scope, KpiDealDay.kind == "made")
        .group_by(KpiDealDay.day)
    ):
        days[day.isoformat()]["bookings"] = int(count or 0)

    outcome_of = {
        stage: outcome
        for outcome in ("visited", "no_show", "cancelled")
        for stage in cfg.stages(outcome)
    }
    if outcome_of:
        for day, stage, count, amount in session.execute(
            select(
                KpiDealDay.day,
                KpiDealDay.stage_id,
                func.sum(KpiDealDay.deals),
                func.sum(KpiDealDay.amount_all),
            )
            .where(
                *scope,
                KpiDealDay.kind == "due",
                KpiDealDay.stage_id.in_(list(outcome_of)),
            )
            .group_by(KpiDealDay.day, KpiDealDay.stage_id)
        ):
            row = days[day.isoformat()]
            outcome = outcome_of[stage]
            row[outcome] += int(count or 0)
            if outcome == "visited":
                row["revenue"] = round(row["revenue"] + float(amount or 0), 2)
    return list(days.values())


# Daily, weekly and monthly reports.


def daily_report(
    services: Services, portal: Portal, day: date, now: datetime | None = None
) -> dict[str, Any]:
    """Report new leads, answered share, urgent leads, SLA breaches, free slots."""
    tz = portal_settings.timezone(portal)
    cfg = kpi_settings.load(services, portal)
    base = first_response_report(services, portal, day, day, now=now, cfg=cfg)
    lower, upper = period_bounds(tz, day, day)
    with services.db.session() as session:
        series = deal_series(session, portal.id, cfg, tz, day, day)[0]
        booked_due = session.scalar(
            select(func.count()).where(
                KpiDeal.portal_id == portal.id,
                KpiDeal.category_id.in_(cfg.categories or [-1]),
                KpiDeal.deleted.is_(False),
                KpiDeal.appointment_at >= lower,
                KpiDeal.appointment_at < upper,
                KpiDeal.stage_id.not_in(cfg.stages("cancelled") or ["-"]),
            )
        )
    booked_due = int(booked_due or 0)
    rv = {
        "kind": "daily",
        "date": day.isoformat(),
        "leads": base["leads_total"],
        "answered_share": base["answered_share"],
        "urgent": base["urgent"],
        "sla_breaches": base["breached_clocks"],
        "bookings": series["bookings"],
        "appointments_due": booked_due,
        "capacity": cfg.daily_capacity,
        "free_slots": None,
        "free_slots_source": None,
    }

    # The Booking module's own slots when the portal has resources there,
    # else the configured daily capacity minus the appointments due.
    if "booking" in (portal.scope or "").split(","):
        from b24app.kpi import slots

        counts = slots.free_slots_of_day(services, portal, day, lower, upper)
        if counts is not None:
            rv["capacity"] = counts["total_slots"]
            rv["free_slots"] = counts["free_slots"]
            rv["free_slots_source"] = "booking"
            return rv
    if cfg.daily_capacity is not None:
        rv["free_slots"] = max(cfg.daily_capacity - booked_due, 0)
        rv["free_slots_source"] = "capacity"
    return rv


def weekly_report(
    services: Services, portal: Portal, week_start: date, now: datetime | None = None
) -> dict[str, Any]:
    """Leads by channel, conversion and SLA by manager, no-shows and cancellations."""
    start = week_start - timedelta(days=week_start.weekday())
    end = start + timedelta(days=6)
    full = kpi_report(services, portal, start, end, now=now)
    return {
        "kind": "weekly",
        "from": start.isoformat(),
        "to": end.isoformat(),
        "leads": full["leads_total"],
        "leads_by_channel": [
            {"key": r["key"], "leads": r["leads"]} for r in full["by_channel"]
        ],
        "conversion": full["conversion"]["rate"],
        "conversion_by_manager": full["conversion"]["by_manager"],
        "visited": full["appointments"]["visited"],
        "no_show": full["appointments"]["no_show"],
        "no_show_rate": full["appointments"]["no_show_rate"],
        "cancelled": full["appointments"]["cancelled"],
        "late_cancelled": full["appointments"]["late_cancelled"],
        "within_sla_share": full["within_sla_share"],
        "sla_by_manager": [
            {
                "key": r["key"],
                "within_sla_share": r["within_sla_share"],
                "breached": r["breached"],
            }
            for r in full["by_manager"]
        ],
        "answered_share": full["answered_share"],
        "first_response_median": full["first_response_minutes"]["median"],
        "revenue": full["appointments"]["revenue"],
        "currency": full["currency"]["code"],
        "deals_per_day": full["deals_per_day"],
    }


def monthly_report(
    services: Services, portal: Portal, month: date, now: datetime | None = None
) -> dict[str, Any]:
    """Revenue, average check, revenue per employee, CAC, LTV and retention."""
    start = month.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    full = kpi_report(services, portal, start, end, now=now)
    visits = full["appointments"]
    return {
        "kind": "monthly",
        "month": start.isoformat()[:7],
        "revenue": visits["revenue"],
        "visited": visits["visited"],
        "average_check": visits["average_check"],
        "revenue_per_employee": visits["revenue_per_employee"],
        "cac": full["acquisition"]["cac"],
        "ltv_12m": full["acquisition"]["ltv_12m"],
        "new_clients": full["acquisition"]["new_clients"],
        "spend": full["acquisition"]["spend"],
        "retention_3m": full["retention"]["rate"],
        "retention_window_complete": full["retention"]["window_complete"],
        "amount_coverage": visits["amount_coverage"],
        "currency": full["currency"]["code"],
        "visits_left_out": full["currency"]["visits_left_out"],
    }

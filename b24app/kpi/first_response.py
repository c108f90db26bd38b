"""First-response KPIs of a period, from stored leads and clocks.

Definitions (all in the portal's time zone, spam leads left out):

* leads: leads created in the period, by local day;
* first response time: business minutes from the human clock's start to the
  first touch by a person, for leads that got one; median and 90th
  percentile (nearest-rank);
* answered: share of the period's leads that got a touch by a person;
* answered within SLA: touches made by the due time, over the leads whose
  clock either stopped or passed its due time;
* open clocks: running and not yet due; breached: due time passed with no
  touch;
* bot response time: business minutes from the bot clock's start to the
  first automatic reply;
* the same counts by channel and by responsible manager.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from b24app import portal_settings
from b24app.kpi import rollup
from b24app.kpi import settings as kpi_settings
from b24app.models import Escalation, Lead, Portal
from b24app.services import Services

ANSWERED_TARGET = 0.95


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def period_bounds(tz: str, start: date, end: date) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    return (
        datetime.combine(start, time(0), zone).astimezone(UTC),
        datetime.combine(end + timedelta(days=1), time(0), zone).astimezone(UTC),
    )


def first_response_report(
    services: Services,
    portal: Portal,
    start: date,
    end: date,
    now: datetime | None = None,
    cfg: kpi_settings.KpiConfig | None = None,
) -> dict[str, Any]:
    """Return the first-response KPIs for ``start``..``end`` (inclusive local days).

    ``cfg`` is the portal's KPI settings when the caller has loaded them.
    """
    now = now or datetime.now(UTC)
    tz = portal_settings.timezone(portal)
    lower, upper = period_bounds(tz, start, end)
    found, by_day = rollup.cells(services, portal, start, end, now, cfg=cfg)

    with services.db.session() as session:
        tasks = session.scalar(
            select(func.count(Escalation.id))
            .join(Lead, Escalation.lead_id == Lead.id)
            .where(
                Escalation.portal_id == portal.id,
                Escalation.action == "task_senior",
                Escalation.status == "sent",
                Lead.created_at >= lower,
                Lead.created_at < upper,
            )
        )

    whole, _, channels, managers = rollup.summarize(found)
    counts = whole.counts
    days = [
        (start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)
    ]
    tags = Counter({k: v for k, v in whole.tags.items() if v})
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "timezone": tz},
        "leads_total": counts["leads"],
        "spam": counts["spam"],
        "urgent": counts["urgent"],
        "leads_per_day": [{"date": d, "leads": by_day.get(d, 0)} for d in days],
        "first_response_minutes": _minutes(whole.human),
        "bot_response_minutes": _minutes(whole.bot),
        "answered_share": _share(counts["answered"], counts["leads"]),
        "answered_target": ANSWERED_TARGET,
        "within_sla_share": _share(counts["within"], counts["judged"]),
        "open_clocks": counts["open"],
        "breached_clocks": counts["breached"],
        "escalation_tasks": int(tasks or 0),
        "tags": dict(tags.most_common()),
        "booked": counts["booked"],
        "by_channel": _groups(channels, "other"),
        "by_manager": _groups(managers, "none"),
    }


def _minutes(histogram: Counter[int]) -> dict[str, Any]:
    return {
        "median": rollup.percentile_of(histogram, 0.5),
        "p90": rollup.percentile_of(histogram, 0.9),
        "count": sum(histogram.values()),
    }


def _groups(groups: dict[str, rollup.Cell], blank: str) -> list[dict[str, Any]]:
    rows = []
    for key, cell in groups.items():
        c = cell.counts
        if not c["leads"]:
            continue
        rows.append(
            {
                "key": key or blank,
                "leads": c["leads"],
                "booked": c["booked"],
                "conversion": _share(c["booked"], c["leads"]),
                "answered_share": _share(c["answered"], c["leads"]),
                "within_sla_share": _share(c["within"], c["judged"]),
                "breached": c["breached"],
                "median_minutes": rollup.percentile_of(cell.human, 0.5),
                "p90_minutes": rollup.percentile_of(cell.human, 0.9),
            }
        )
    return sorted(rows, key=lambda r: -r["leads"])


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

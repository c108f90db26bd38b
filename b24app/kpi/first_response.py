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
  touch.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from b24app import portal_settings
from b24app.models import Escalation, Lead, Portal, SlaClock
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
) -> dict[str, Any]:
    """Return the first-response KPIs for ``start``..``end`` (inclusive local days)."""
    now = now or datetime.now(UTC)
    tz = portal_settings.timezone(portal)
    zone = ZoneInfo(tz)
    calendar = portal_settings.calendar(portal)
    lower, upper = period_bounds(tz, start, end)

    with services.db.session() as session:
        rows = session.execute(
            select(Lead, SlaClock)
            .outerjoin(
                SlaClock, (SlaClock.lead_id == Lead.id) & (SlaClock.tier == "human")
            )
            .where(
                Lead.portal_id == portal.id,
                Lead.created_at >= lower,
                Lead.created_at < upper,
                Lead.deleted.is_(False),
            )
        ).all()
        tasks = len(
            session.scalars(
                select(Escalation.id)
                .join(Lead, Escalation.lead_id == Lead.id)
                .where(
                    Escalation.portal_id == portal.id,
                    Escalation.action == "task_senior",
                    Escalation.status == "sent",
                    Lead.created_at >= lower,
                    Lead.created_at < upper,
                )
            ).all()
        )

    days = [(start + timedelta(days=i)) for i in range((end - start).days + 1)]
    per_day = {d.isoformat(): 0 for d in days}
    tags: Counter[str] = Counter()
    response_minutes: list[float] = []
    counted = answered = within = judged = open_clocks = breached = spam = urgent = 0

    for lead, clock in rows:
        lead_tags = lead.manual_tags if lead.manual_tags is not None else lead.tags
        for tag in lead_tags or []:
            tags[tag] += 1
        if lead.urgent:
            tags["urgent"] += 1
            urgent += 1
        if "spam" in (lead_tags or []):
            spam += 1
            continue
        counted += 1
        day = lead.created_at.astimezone(zone).date().isoformat()
        per_day[day] = per_day.get(day, 0) + 1
        if lead.first_touch_at is not None:
            answered += 1
        if clock is None or clock.state == "cancelled":
            continue
        if clock.stopped_at is not None:
            judged += 1
            seconds = calendar.business_seconds_between(
                clock.starts_at, clock.stopped_at
            )
            response_minutes.append(seconds / 60)
            if clock.stopped_at <= clock.due_at:
                within += 1
        elif now >= clock.due_at:
            judged += 1
            breached += 1
        else:
            open_clocks += 1

    return {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "timezone": tz},
        "leads_total": counted,
        "spam": spam,
        "urgent": urgent,
        "leads_per_day": [{"date": d, "leads": n} for d, n in per_day.items()],
        "first_response_minutes": {
            "median": _round(percentile(response_minutes, 0.5)),
            "p90": _round(percentile(response_minutes, 0.9)),
            "count": len(response_minutes),
        },
        "answered_share": _share(answered, counted),
        "answered_target": ANSWERED_TARGET,
        "within_sla_share": _share(within, judged),
        "open_clocks": open_clocks,
        "breached_clocks": breached,
        "escalation_tasks": tasks,
        "tags": dict(tags.most_common()),
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

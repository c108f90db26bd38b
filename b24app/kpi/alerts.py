"""KPI drift alerts to the owner, at most once a day per KPI.

Checked from noon local time. Same-day checks: today's answered share below
its target, any SLA breach today, and today's median first response above
its target. Trailing checks: the no-show rate of the last 7 days (today
included) above its target, and the lead-to-booking conversion of the 14
days that ended yesterday below the low end of the segment's usual range.
Each check needs a minimum sample, so one late lead or one missed visit
does not page the owner.

The claim row (portal, "alert:<kpi>", local day) is inserted before the
notification is sent, so a second worker or a second run the same day sends
nothing. A failed send deletes the claim, so the next run tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from b24app import portal_settings
from b24app.bitrix import BitrixCallError
from b24app.kpi import metrics
from b24app.kpi import settings as kpi_settings
from b24app.kpi.claims import claim, mark, release
from b24app.kpi.first_response import first_response_report, period_bounds
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)

ALERT_HOUR = 12
MIN_LEADS = 3  # today's leads before the answered share is judged
MIN_RESPONSES = 3  # today's measured first responses before the median is judged
MIN_OUTCOMES = 5  # visits plus no-shows in 7 days before the rate is judged
MIN_CONVERSION_LEADS = 10  # leads in 14 days before the conversion is judged
NO_SHOW_DAYS = 7
CONVERSION_DAYS = 14

MESSAGES = {
    "ru": {
        "answered_share": "Отклик: сегодня отвечено {value} лидов при цели {target}.",
        "sla_breaches": "Отклик: сегодня {value} лидов без ответа в срок SLA.",
        "first_response_median": (
            "Отклик: медиана первого ответа сегодня {value} мин при цели "
            "не больше {target} мин."
        ),
        "no_show_rate": (
            "Отклик: неявки за последние 7 дней — {value} ({count} из {total} "
            "визитов) при цели не больше {target}."
        ),
        "conversion": (
            "Отклик: конверсия лидов в запись за 14 дней — {value} "
            "({count} из {total}), ниже нижней границы {target} для вашего "
            "типа бизнеса."
        ),
    },
    "en": {
        "answered_share": "Otklik: {value} of today's leads answered, target {target}.",
        "sla_breaches": "Otklik: {value} leads missed the SLA today.",
        "first_response_median": (
            "Otklik: today's median first response is {value} min, "
            "target at most {target} min."
        ),
        "no_show_rate": (
            "Otklik: no-shows of the last 7 days are {value} ({count} of {total} "
            "visits), target at most {target}."
        ),
        "conversion": (
            "Otklik: lead-to-booking conversion of the last 14 days is {value} "
            "({count} of {total}), below the low end {target} of your business type."
        ),
    },
}


@dataclass(frozen=True)
class AlertContext:
    """Inputs of every check: the portal, its settings and the local day."""

    services: Services
    portal: Portal
    cfg: kpi_settings.KpiConfig
    tz: str
    today: date
    now: datetime
    today_report: dict[str, Any]


def _percent(value: float) -> str:
    return f"{round(value * 100, 1):g} %"


def answered_share(ctx: AlertContext) -> dict[str, str] | None:
    report = ctx.today_report
    share = report["answered_share"]
    target = ctx.cfg.targets.get("answered_share")
    if report["leads_total"] < MIN_LEADS or share is None or target is None:
        return None
    if share >= target:
        return None
    return {"value": _percent(share), "target": _percent(target)}


def sla_breaches(ctx: AlertContext) -> dict[str, str] | None:
    breached = ctx.today_report["breached_clocks"]
    return {"value": str(breached)} if breached > 0 else None


def first_response_median(ctx: AlertContext) -> dict[str, str] | None:
    minutes = ctx.today_report["first_response_minutes"]
    target = ctx.cfg.targets.get("first_response_median_minutes")
    median = minutes["median"]
    if minutes["count"] < MIN_RESPONSES or median is None or target is None:
        return None
    if median <= target:
        return None
    return {"value": f"{median:g}", "target": f"{target:g}"}


def no_show_rate(ctx: AlertContext) -> dict[str, str] | None:
    target = ctx.cfg.targets.get("no_show_rate")
    if target is None:
        return None
    start = ctx.today - timedelta(days=NO_SHOW_DAYS - 1)
    lower, upper = period_bounds(ctx.tz, start, ctx.today)
    with ctx.services.db.session() as session:
        visits = metrics.appointments(session, ctx.portal.id, ctx.cfg, lower, upper)
    total = visits["visited"] + visits["no_show"]
    rate = visits["no_show_rate"]
    if total < MIN_OUTCOMES or rate is None or rate <= target:
        return None
    return {
        "value": _percent(rate),
        "count": str(visits["no_show"]),
        "total": str(total),
        "target": _percent(target),
    }


def conversion(ctx: AlertContext) -> dict[str, str] | None:
    low = (ctx.cfg.targets.get("conversion_range") or [None, None])[0]
    if low is None:
        return None
    # Today's leads had no time to book yet, so the window ends yesterday.
    end = ctx.today - timedelta(days=1)
    start = end - timedelta(days=CONVERSION_DAYS - 1)
    report = first_response_report(ctx.services, ctx.portal, start, end, now=ctx.now)
    leads, booked = report["leads_total"], report["booked"]
    rate = metrics.share(booked, leads)
    if leads < MIN_CONVERSION_LEADS or rate is None or rate >= low:
        return None
    return {
        "value": _percent(rate),
        "count": str(booked),
        "total": str(leads),
        "target": _percent(low),
    }


CHECKS: dict[str, Callable[[AlertContext], dict[str, str] | None]] = {
    "answered_share": answered_share,
    "sla_breaches": sla_breaches,
    "first_response_median": first_response_median,
    "no_show_rate": no_show_rate,
    "conversion": conversion,
}


def check_alerts(
    services: Services, portal: Portal, now: datetime | None = None
) -> list[str]:
    """Send the alerts that are due; return the KPI names notified."""
    now = now or datetime.now(UTC)
    tz = portal_settings.timezone(portal)
    local = now.astimezone(ZoneInfo(tz))
    if local.hour < ALERT_HOUR:
        return []
    owner = portal_settings.owner_user_id(portal)
    if owner is None:
        return []
    today = local.date()
    ctx = AlertContext(
        services=services,
        portal=portal,
        cfg=kpi_settings.load(services, portal),
        tz=tz,
        today=today,
        now=now,
        today_report=first_response_report(services, portal, today, today, now=now),
    )

    texts = MESSAGES.get(portal.language, MESSAGES["ru"])
    client = services.client(portal)
    sent = []
    for kpi, check in CHECKS.items():
        values = check(ctx)
        if values is None:
            continue
        kind = f"alert:{kpi}"
        if not claim(services, portal.id, kind, today):
            continue
        try:
            client.call(
                "im.notify.system.add",
                {"USER_ID": owner, "MESSAGE": texts[kpi].format(**values)},
            )
        except BitrixCallError as err:
            release(services, portal.id, kind, today)
            logger.warning(
                "kpi alert failed, will retry: %s",
                err,
                extra={"member_id": portal.member_id, "kpi": kpi, "user_id": owner},
            )
            continue
        except BaseException:
            release(services, portal.id, kind, today)
            raise
        mark(services, portal.id, kind, today, "sent")
        sent.append(kpi)
        logger.info(
            "kpi alert sent",
            extra={"member_id": portal.member_id, "kpi": kpi, "user_id": owner},
        )
    return sent

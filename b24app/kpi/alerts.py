"""KPI drift alerts to the owner, at most once a day per KPI.

Checked from noon local time: today's answered share below its target, and
today's SLA breaches. The claim row (portal, "alert:<kpi>", local day) is
inserted before the notification is sent, so a second worker or a second
run the same day sends nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from b24app import portal_settings
from b24app.kpi import settings as kpi_settings
from b24app.kpi.claims import claim, mark, release
from b24app.kpi.first_response import first_response_report
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)

ALERT_HOUR = 12
MIN_LEADS = 3

MESSAGES = {
    "ru": {
        "answered_share": "Отклик: сегодня отвечено {value} лидов при цели {target}.",
        "sla_breaches": "Отклик: сегодня {value} лидов без ответа в срок SLA.",
    },
    "en": {
        "answered_share": "Otklik: {value} of today's leads answered, target {target}.",
        "sla_breaches": "Otklik: {value} leads missed the SLA today.",
    },
}


def check_alerts(
    services: Services, portal: Portal, now: datetime | None = None
) -> list[str]:
    """Send the alerts that are due; return the KPI names notified."""
    now = now or datetime.now(UTC)
    local = now.astimezone(ZoneInfo(portal_settings.timezone(portal)))
    if local.hour < ALERT_HOUR:
        return []
    owner = portal_settings.owner_user_id(portal)
    if owner is None:
        return []
    cfg = kpi_settings.load(services, portal)
    today = local.date()
    report = first_response_report(services, portal, today, today, now=now)
    target = cfg.targets.get("answered_share")

    drifts: dict[str, dict[str, str]] = {}
    share = report["answered_share"]
    if (
        report["leads_total"] >= MIN_LEADS
        and share is not None
        and target is not None
        and share < target
    ):
        drifts["answered_share"] = {
            "value": f"{round(share * 100)} %",
            "target": f"{round(target * 100)} %",
        }
    if report["breached_clocks"] > 0:
        drifts["sla_breaches"] = {"value": str(report["breached_clocks"])}

    texts = MESSAGES.get(portal.language, MESSAGES["ru"])
    sent = []
    client = services.client(portal)
    for kpi, values in drifts.items():
        kind = f"alert:{kpi}"
        if not claim(services, portal.id, kind, today):
            continue
        try:
            client.call(
                "im.notify.system.add",
                {"USER_ID": owner, "MESSAGE": texts[kpi].format(**values)},
            )
        except Exception:
            release(services, portal.id, kind, today)
            raise
        mark(services, portal.id, kind, today, "sent")
        sent.append(kpi)
        logger.info("kpi alert sent", extra={"member_id": portal.member_id, "kpi": kpi})
    return sent

"""Hooks of the KPI feature: install step, deal events and periodic jobs.

Imported once per process by ``features.load_features()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from b24app import features, portal_settings
from b24app.bitrix.errors import BitrixCallError
from b24app.kpi import alerts, currency, history, mail, rollup, sync
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import KpiImport, KpiSettings
from b24app.models import InboundEvent, Portal
from b24app.services import Services

logger = logging.getLogger(__name__)

IMPORT_BUDGET_SECONDS = 25.0
RECONCILE_OVERLAP = timedelta(hours=1)
ROLLUP_DAYS = 730


@features.install_step
def prepare_history(services: Services, portal: Portal, client: Any) -> None:
    """Queue the history import; the worker's import job reads it in the background."""
    history.start_import(services, portal)


@features.on_event("ONCRMDEALADD")
@features.on_event("ONCRMDEALUPDATE")
def on_deal(
    services: Services, client, portal: Portal, bitrix_id: int, event: InboundEvent
) -> str:
    """Store the deal as the portal has it now (a stage change is a stage move)."""
    try:
        record = client.call("crm.deal.get", {"id": bitrix_id})
    except BitrixCallError as err:
        if "not found" in err.description.lower():
            return _mark_deleted(services, portal, bitrix_id)
        raise
    cfg = kpi_settings.load(services, portal)
    with services.db.session() as session:
        sync.upsert_deals(
            session, portal.id, [record], cfg, portal_settings.timezone(portal)
        )
    return "deal stored"


@features.on_event("ONCRMDEALDELETE")
def on_deal_delete(
    services: Services, client, portal: Portal, bitrix_id: int, event: InboundEvent
) -> str:
    return _mark_deleted(services, portal, bitrix_id)


def _mark_deleted(services: Services, portal: Portal, bitrix_id: int) -> str:
    cfg = kpi_settings.load(services, portal)
    with services.db.session() as session:
        known = sync.delete_deal(
            session, portal.id, bitrix_id, cfg, portal_settings.timezone(portal)
        )
    if not known:
        return "skipped: deal not stored"
    logger.info(
        "kpi deal marked deleted",
        extra={"member_id": portal.member_id, "deal_id": bitrix_id},
    )
    return "deal deleted"


def _each_portal(services: Services, action: Callable[[Portal], object]) -> int:
    with services.db.session() as session:
        portals = session.scalars(select(Portal).where(Portal.status == "active")).all()
    done = 0
    for portal in portals:
        try:
            action(portal)
            done += 1
        except Exception:
            logger.exception(
                "kpi job failed for a portal", extra={"member_id": portal.member_id}
            )
    return done


def import_job(services: Services) -> int:
    with services.db.session() as session:
        ids = set(
            session.scalars(
                select(KpiImport.portal_id).where(
                    KpiImport.status.in_(("pending", "running"))
                )
            )
        )

    def advance(portal: Portal) -> None:
        if portal.id in ids:
            history.run_import(services, portal, budget_seconds=IMPORT_BUDGET_SECONDS)

    return _each_portal(services, advance)


def reconcile_portal(
    services: Services, portal: Portal, now: datetime | None = None
) -> int:
    """Re-read deals changed since the last run (with an overlap) and store them."""
    now = now or datetime.now(UTC)
    with services.db.session() as session:
        row = session.get(KpiSettings, portal.id)
        since = row.reconciled_at if row else None
    since = (since or now - timedelta(days=2)) - RECONCILE_OVERLAP
    client = services.client(portal)
    # The rates move, and the base currency may change: read them before
    # the deals, so the deals are converted with the current ones.
    currency.refresh(services, portal)
    cfg = kpi_settings.load(services, portal)
    tz = portal_settings.timezone(portal)
    records = list(
        client.iter_list(
            "crm.deal.list",
            {
                "select": sync.deal_select(cfg),
                "filter": {">=DATE_MODIFY": since.isoformat()},
            },
        )
    )
    with services.db.session() as session:
        sync.upsert_deals(session, portal.id, records, cfg, tz)
    kpi_settings.save(services, portal, reconciled_at=now)
    return len(records)


def reconcile_job(services: Services) -> int:
    return _each_portal(services, lambda p: reconcile_portal(services, p))


def rollup_job(services: Services) -> int:
    """Build the stored per-day counts ahead of the first request that needs them."""

    def warm(portal: Portal) -> None:
        today = datetime.now(ZoneInfo(portal_settings.timezone(portal))).date()
        rollup.refresh(services, portal)
        rollup.cells(services, portal, today - timedelta(days=ROLLUP_DAYS), today)
        rollup.warm_deals(services, portal, today - timedelta(days=ROLLUP_DAYS), today)

    return _each_portal(services, warm)


def alerts_job(services: Services) -> int:
    return _each_portal(services, lambda p: alerts.check_alerts(services, p))


def weekly_email_job(services: Services) -> int:
    return _each_portal(services, lambda p: mail.send_weekly(services, p))


features.periodic(
    features.JobSpec("kpi_import", import_job, 30.0, setting="KPI_IMPORT_SECONDS")
)
features.periodic(
    features.JobSpec(
        "kpi_reconcile", reconcile_job, 3600.0, setting="KPI_RECONCILE_SECONDS"
    )
)
features.periodic(
    features.JobSpec("kpi_rollup", rollup_job, 600.0, setting="KPI_ROLLUP_SECONDS")
)
features.periodic(features.JobSpec("kpi_alerts", alerts_job, 900.0))
features.periodic(features.JobSpec("kpi_weekly_email", weekly_email_job, 3600.0))

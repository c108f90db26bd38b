"""Appointments from the deal funnel and the Booking module, and their messages.

Events and the periodic reconciliation both end in ``upsert``, which stores
the portal's state and replans the messages. A moved visit gets new rows
keyed by the new time and its old ones are cancelled. A cancelled or
finished visit has its pending messages cancelled.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from b24app import portal_settings
from b24app.bitrix.client import PortalClient
from b24app.bitrix.errors import BitrixCallError
from b24app.bitrix.values import optional_id
from b24app.dbutil import insert_ignore
from b24app.models import Portal
from b24app.reminders import abtest, config, schedule
from b24app.reminders.models import Appointment, Experiment, ReminderJob
from b24app.services import Services

logger = logging.getLogger(__name__)

ACTIVE = ("booked", "confirmed")
FINAL = ("visited", "no_show", "cancelled")


def parse_time(value: Any) -> datetime | None:
    """Parse a Bitrix24 ISO time ("2026-12-05T14:30:00+03:00") or unix seconds."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, int | float) or str(value).isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


# Deals


def deal_fields(portal: Portal, deal: dict[str, Any]) -> dict[str, Any] | None:
    """Appointment fields from a deal, or None when it is no appointment."""
    funnel = config.funnel(portal)
    if optional_id(deal.get("CATEGORY_ID")) != (funnel.category_id or None):
        return None
    status = funnel.status_of(deal.get("STAGE_ID"))
    starts_at = parse_time(deal.get(funnel.appointment_field))
    if status is None or starts_at is None:
        return None
    title = str(deal.get("TITLE") or "")
    service = deal.get(funnel.service_field) if funnel.service_field else None
    client_name = None
    if " — " in title:
        service_part, client_name = title.split(" — ", 1)
        service = service or service_part
    return {
        "deal_id": int(deal["ID"]),
        "contact_id": optional_id(deal.get("CONTACT_ID")),
        "starts_at": starts_at,
        "status": status,
        "stage_id": deal.get("STAGE_ID"),
        "responsible_id": optional_id(deal.get("ASSIGNED_BY_ID")),
        "client_name": (client_name or "").split(" ")[0][:120] or None,
        "service": (service or title)[:255] or None,
        "master": (deal.get(funnel.master_field) if funnel.master_field else None)
        or None,
    }


def sync_deal(
    services: Services, client: PortalClient, portal: Portal, deal_id: int
) -> str:
    try:
        deal = client.call("crm.deal.get", {"id": deal_id})
    except BitrixCallError as err:
        if "not found" in err.description.lower():
            return close(services, portal, "deal", deal_id, "cancelled")
        raise
    booking_row = _booking_of_deal(services, portal.id, deal_id)
    if booking_row is not None:
        # The booking carries the visit, but the deal's stage sets its outcome.
        status = config.funnel(portal).status_of(deal.get("STAGE_ID"))
        if status is None or status == booking_row.status or status == "booked":
            return "skipped: the deal's booking carries the appointment"
        set_status(services, portal, booking_row.id, status)
        return f"booking appointment {status}"

    fields = deal_fields(portal, deal)
    if fields is None:
        existing = find(services, portal.id, "deal", deal_id)
        if existing is None:
            return "skipped: not an appointment"
        status = config.funnel(portal).status_of(deal.get("STAGE_ID"))
        return close(services, portal, "deal", deal_id, status or "cancelled")
    return upsert(services, portal, "deal", deal_id, fields)


def _booking_of_deal(
    services: Services, portal_id: int, deal_id: int
) -> Appointment | None:
    """Return the latest booking appointment linked to the deal."""
    with services.db.session() as session:
        return session.scalars(
            select(Appointment)
            .where(
                Appointment.portal_id == portal_id,
                Appointment.source == "booking",
                Appointment.deal_id == deal_id,
            )
            .order_by(Appointment.starts_at.desc())
        ).first()


def _booked_elsewhere(services: Services, portal_id: int, deal_id: int) -> bool:
    with services.db.session() as session:
        return (
            session.scalar(
                select(Appointment.id).where(
                    Appointment.portal_id == portal_id,
                    Appointment.source == "booking",
                    Appointment.deal_id == deal_id,
                    Appointment.status.in_(ACTIVE),
                )
            )
            is not None
        )


# Bookings


def sync_booking(
    services: Services, client: PortalClient, portal: Portal, booking_id: int
) -> str:
    results, errors = client.batch(
        {
            "booking": ("booking.v1.booking.get", {"id": booking_id}),
            "external": (
                "booking.v1.booking.externalData.list",
                {"bookingId": booking_id},
            ),
            "clients": ("booking.v1.booking.client.list", {"bookingId": booking_id}),
        }
    )
    if "booking" in errors:
        if str(errors["booking"].get("error")) == "1021":
            return close(services, portal, "booking", booking_id, "cancelled")
        raise BitrixCallError(
            "booking.v1.booking.get",
            str(errors["booking"].get("error")),
            str(errors["booking"].get("error_description")),
            400,
        )
    booking = (results.get("booking") or {}).get("booking") or {}
    period = booking.get("datePeriod") or {}
    starts_at = parse_time((period.get("from") or {}).get("timestamp"))
    if starts_at is None:
        return "skipped: booking without time"
    deal_id = None
    for item in (results.get("external") or {}).get("externalData") or []:
        if item.get("moduleId") == "crm" and item.get("entityTypeId") == "DEAL":
            deal_id = optional_id(item.get("value"))
    contact_id = None
    for item in (results.get("clients") or {}).get("bookingClient") or []:
        if (item.get("type") or {}).get("code") == "CONTACT":
            contact_id = optional_id(item.get("id"))
    fields = {
        "booking_id": booking_id,
        "deal_id": deal_id,
        "contact_id": contact_id,
        "starts_at": starts_at,
        "resource_ids": [str(r) for r in booking.get("resourceIds") or []],
        "service": (booking.get("name") or "")[:255] or None,
        "client_name": None,
    }
    outcome = upsert(services, portal, "booking", booking_id, fields)
    if deal_id:
        # The booking now carries the visit; a deal-time appointment would repeat it.
        close(services, portal, "deal", deal_id, "cancelled", quiet=True)
        _kpi_booking_changed(services, portal, deal_id)
    return outcome


def _kpi_booking_changed(services: Services, portal: Portal, deal_id: int) -> None:
    """Copy the booking's time to the KPI deal copy when the mapping specifies it."""
    from b24app.kpi import settings as kpi_settings
    from b24app.kpi import sync as kpi_sync

    cfg = kpi_settings.load(services, portal)
    if cfg.mapping.get("appointment_field") != "booking":
        return
    with services.db.session() as session:
        kpi_sync.booking_changed(
            session, portal.id, deal_id, cfg, portal_settings.timezone(portal)
        )


# Storage and planning


def find(
    services: Services, portal_id: int, source: str, source_id: int
) -> Appointment | None:
    with services.db.session() as session:
        return session.scalar(
            select(Appointment).where(
                Appointment.portal_id == portal_id,
                Appointment.source == source,
                Appointment.source_id == source_id,
            )
        )


def upsert(
    services: Services,
    portal: Portal,
    source: str,
    source_id: int,
    fields: dict[str, Any],
) -> str:
    """Create or update an appointment and replan its messages."""
    now = datetime.now(UTC)
    status = fields.pop("status", None)
    with services.db.session() as session:
        created = insert_ignore(
            session,
            Appointment,
            {
                "portal_id": portal.id,
                "source": source,
                "source_id": source_id,
                "starts_at": fields["starts_at"],
                "status": status or "booked",
                "resource_ids": [],
                "created_at": now,
                "updated_at": now,
            },
            ["portal_id", "source", "source_id"],
        )
        row = session.scalars(
            select(Appointment)
            .where(
                Appointment.portal_id == portal.id,
                Appointment.source == source,
                Appointment.source_id == source_id,
            )
            .with_for_update()
        ).one()
        moved = row.starts_at != fields["starts_at"]
        for key, value in fields.items():
            if value is not None or key in ("starts_at",):
                setattr(row, key, value)
        if created is not None:
            _assign_variant(session, portal.id, row)
        row.reconciled_at = now
        if status is not None and status != row.status:
            _apply_status(row, status, now)
        elif moved and row.status == "cancelled" and status is None:
            row.status = "booked"
        session.flush()
        appointment_id = row.id
    replan(services, portal, appointment_id)
    if created is not None:
        return "appointment added"
    return "appointment moved" if moved else "appointment updated"


def _apply_status(row: Appointment, status: str, now: datetime) -> None:
    row.status = status
    if status == "confirmed" and row.confirmed_at is None:
        row.confirmed_at = now
    if status == "cancelled":
        row.cancelled_at = now
    if status in ("visited", "no_show"):
        row.outcome_at = now


def _assign_variant(session, portal_id: int, row: Appointment) -> None:
    experiment = session.scalars(
        select(Experiment)
        .where(Experiment.portal_id == portal_id, Experiment.status == "running")
        .order_by(Experiment.id.desc())
    ).first()
    if experiment is None:
        return
    row.experiment_id = experiment.id
    row.variant = abtest.assign(
        experiment.id, f"{row.source}:{row.source_id}", experiment.variants
    )


def set_status(
    services: Services, portal: Portal, appointment_id: int, status: str
) -> None:
    with services.db.session() as session:
        row = session.get(Appointment, appointment_id)
        if row.status != status:
            _apply_status(row, status, datetime.now(UTC))
    replan(services, portal, appointment_id)


def close(
    services: Services,
    portal: Portal,
    source: str,
    source_id: int,
    status: str,
    *,
    quiet: bool = False,
) -> str:
    """Mark an appointment finished or cancelled and drop its pending messages."""
    row = find(services, portal.id, source, source_id)
    if row is None:
        return "skipped: unknown appointment"
    if status in ACTIVE and row.status in ACTIVE:
        return "no change"
    set_status(services, portal, row.id, status)
    if not quiet:
        logger.info(
            "appointment closed",
            extra={"member_id": portal.member_id, "status": status},
        )
    return f"appointment {status}"


def variant_of(services: Services, row: Appointment) -> dict[str, Any] | None:
    if row.experiment_id is None or row.variant is None:
        return None
    with services.db.session() as session:
        experiment = session.get(Experiment, row.experiment_id)
    if experiment is None:
        return None
    for variant in experiment.variants:
        if variant["code"] == row.variant:
            return variant
    return None


def replan(services: Services, portal: Portal, appointment_id: int) -> int:
    """Make the pending messages match the appointment; return how many exist."""
    now = datetime.now(UTC)
    data = config.settings(portal)
    with services.db.session() as session:
        row = session.get(Appointment, appointment_id)
        stale = [ReminderJob.status == "scheduled"]
        if row.status in ACTIVE:
            stale.append(ReminderJob.for_starts_at != row.starts_at)
        elif row.status == "visited":
            stale.append(ReminderJob.kind != "thanks")
        session.execute(
            update(ReminderJob)
            .where(ReminderJob.appointment_id == row.id, *stale)
            .values(status="cancelled", error=f"appointment {row.status}")
        )
        if row.status == "confirmed":
            session.execute(
                update(ReminderJob)
                .where(
                    ReminderJob.appointment_id == row.id,
                    ReminderJob.status == "scheduled",
                    ReminderJob.kind == "confirm",
                )
                .values(status="cancelled", error="already confirmed")
            )
        session.expunge(row)
    if row.status not in ACTIVE or not data.get("enabled", True):
        return 0

    variant = variant_of(services, row)
    steps = (variant or {}).get("schedule") or config.schedule_for(data, row.service)
    if row.status == "confirmed":
        steps = [step for step in steps if step["kind"] != "confirm"]
    planned = schedule.plan(
        row.starts_at,
        steps,
        now=now,
        tz=portal_settings.timezone(portal),
        quiet=config.quiet_hours(data),
        thanks_after_minutes=data.get("thanks_after_minutes"),
    )
    with services.db.session() as session:
        for item in planned:
            insert_ignore(
                session,
                ReminderJob,
                {
                    "portal_id": portal.id,
                    "appointment_id": row.id,
                    "kind": item.kind,
                    "offset_minutes": item.offset_minutes,
                    "for_starts_at": row.starts_at,
                    "due_at": item.due_at,
                    "status": "scheduled",
                    "attempts": 0,
                    "created_at": now,
                },
                ["appointment_id", "kind", "offset_minutes", "for_starts_at"],
            )
    return len(planned)


# Reconciliation


def reconcile_portal(
    services: Services, portal: Portal, *, horizon_days: int = 14
) -> int:
    """Read the funnel's open deals and upcoming bookings; sync each one."""
    client = services.client(portal)
    funnel = config.funnel(portal)
    count = 0
    seen: set[int] = set()
    stage_ids = funnel.stages["booked"] + funnel.stages["confirmed"]
    for deal in client.iter_list(
        "crm.deal.list",
        {
            "filter": {"CATEGORY_ID": funnel.category_id, "@STAGE_ID": stage_ids},
            "select": ["*", "UF_*"],
        },
    ):
        seen.add(int(deal["ID"]))
        fields = deal_fields(portal, deal)
        if fields is None or _booked_elsewhere(services, portal.id, fields["deal_id"]):
            continue
        upsert(services, portal, "deal", int(deal["ID"]), fields)
        count += 1

    # Active deal appointments that left the open stages: read them once more.
    with services.db.session() as session:
        gone = session.scalars(
            select(Appointment.source_id).where(
                Appointment.portal_id == portal.id,
                Appointment.source == "deal",
                Appointment.status.in_(ACTIVE),
            )
        ).all()
    for deal_id in set(gone) - seen:
        sync_deal(services, client, portal, deal_id)
        count += 1

    if "booking" in (portal.scope or "").split(","):
        count += _reconcile_bookings(services, client, portal, horizon_days)
    return count


def _reconcile_bookings(
    services: Services, client: PortalClient, portal: Portal, horizon_days: int
) -> int:
    now = datetime.now(UTC)
    try:
        result = client.call(
            "booking.v1.booking.list",
            {
                "filter": {
                    "within": {
                        "dateFrom": int(now.timestamp()),
                        "dateTo": int((now + timedelta(days=horizon_days)).timestamp()),
                    }
                }
            },
        )
    except BitrixCallError as err:
        logger.warning(
            "booking list failed",
            extra={"member_id": portal.member_id, "error": err.code},
        )
        return 0
    listed = {int(item["id"]) for item in (result or {}).get("booking") or []}
    with services.db.session() as session:
        known = set(
            session.scalars(
                select(Appointment.source_id).where(
                    Appointment.portal_id == portal.id,
                    Appointment.source == "booking",
                    Appointment.status.in_(ACTIVE),
                    Appointment.starts_at >= now,
                )
            ).all()
        )
    for booking_id in listed | known:
        sync_booking(services, client, portal, booking_id)
    return len(listed | known)

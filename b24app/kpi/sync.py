"""Turn portal records (deals, leads, activities, stage history) into KPI rows.

Shared by the history import, the deal event handlers and the periodic
reconciliation, so a deal looks the same whichever way it arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from b24app import leadtext
from b24app.dbutil import insert_ignore
from b24app.kpi.models import KpiDeal, KpiStageMove
from b24app.kpi.settings import KpiConfig
from b24app.models import Lead

logger = logging.getLogger(__name__)

DEAL_SELECT = [
    "ID",
    "CATEGORY_ID",
    "STAGE_ID",
    "OPPORTUNITY",
    "ASSIGNED_BY_ID",
    "CONTACT_ID",
    "LEAD_ID",
    "SOURCE_ID",
    "DATE_CREATE",
    "MOVED_TIME",
    "BEGINDATE",
    "CLOSEDATE",
]
LEAD_SELECT = [
    "ID",
    "TITLE",
    "SOURCE_ID",
    "STATUS_ID",
    "ASSIGNED_BY_ID",
    "DATE_CREATE",
]
ACTIVITY_SELECT = [
    "ID",
    "OWNER_ID",
    "OWNER_TYPE_ID",
    "TYPE_ID",
    "DIRECTION",
    "PROVIDER_ID",
    "CREATED",
    "START_TIME",
    "RESPONSIBLE_ID",
]
OUTGOING = "2"
# Rows per INSERT, within SQLite's limit of bound parameters per statement.
INSERT_CHUNK = 500
TOUCH_TYPES = {"2": "call", "4": "email"}


def parse_moment(value: Any, tz: str) -> datetime | None:
    """Parse a Bitrix24 datetime, or a date as the local start of that day."""
    if not value:
        return None
    text = str(value)
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment.astimezone(UTC)


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number or None


def _amount(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def deal_values(record: dict[str, Any], cfg: KpiConfig, tz: str) -> dict[str, Any]:
    """The stored columns of one deal as ``crm.deal.list`` or ``.get`` returns it."""
    field = cfg.mapping.get("appointment_field") or "BEGINDATE"
    contact = _int(record.get("CONTACT_ID"))
    if contact is None and record.get("CONTACT_IDS"):
        contact = _int(record["CONTACT_IDS"][0])
    extra = {k: record.get(k) for k in ("BEGINDATE", "CLOSEDATE") if k in record}
    if field.startswith("UF_CRM_"):
        extra[field] = record.get(field)
    # NOTE: with appointment_field "booking" the time would come from Booking
    # module bookings linked to the deal, which are not read yet, so it stays
    # empty and such deals drop out of the appointment KPIs.
    return {
        "category_id": _int(record.get("CATEGORY_ID")) or 0,
        "stage_id": record.get("STAGE_ID"),
        "amount": _amount(record.get("OPPORTUNITY")),
        "assigned_by_id": _int(record.get("ASSIGNED_BY_ID")),
        "contact_id": contact,
        "lead_id": _int(record.get("LEAD_ID")),
        "source_id": record.get("SOURCE_ID"),
        "channel": leadtext.channel(record, "") if record.get("SOURCE_ID") else None,
        "created_at": parse_moment(record.get("DATE_CREATE"), tz) or datetime.now(UTC),
        "moved_at": parse_moment(record.get("MOVED_TIME"), tz),
        "appointment_at": None
        if field == "booking"
        else parse_moment(record.get(field), tz),
        "extra": extra,
        "deleted": False,
        "synced_at": datetime.now(UTC),
    }


def upsert_deals(
    session: Session,
    portal_id: int,
    records: Iterable[dict[str, Any]],
    cfg: KpiConfig,
    tz: str,
) -> int:
    """Insert or refresh deals; returns how many rows were written."""
    count = 0
    for record in records:
        bitrix_id = int(record["ID"])
        values = deal_values(record, cfg, tz)
        created = insert_ignore(
            session,
            KpiDeal,
            {"portal_id": portal_id, "bitrix_id": bitrix_id, **values},
            ["portal_id", "bitrix_id"],
        )
        if created is None:
            session.execute(
                update(KpiDeal)
                .where(KpiDeal.portal_id == portal_id, KpiDeal.bitrix_id == bitrix_id)
                .values(**values)
            )
        count += 1
    return count


def insert_leads(
    session: Session, portal_id: int, records: Iterable[dict[str, Any]], tz: str
) -> int:
    """Store past leads the app has not seen; rows from live events are kept."""
    rows = []
    for record in records:
        created = parse_moment(record.get("DATE_CREATE"), tz)
        if created is None:
            continue
        status = record.get("STATUS_ID")
        rows.append(
            {
                "portal_id": portal_id,
                "bitrix_id": int(record["ID"]),
                "title": (record.get("TITLE") or "")[:255] or None,
                "source_id": record.get("SOURCE_ID"),
                "channel": leadtext.channel(record, ""),
                "status_id": status,
                "initial_status_id": status,
                "assigned_by_id": _int(record.get("ASSIGNED_BY_ID")),
                "created_at": created,
                "tags": [],
                "classification": {},
                "urgent": False,
                "needs_review": False,
                "deleted": False,
            }
        )
    if not rows:
        return 0
    # One multi-row statement per page; rows stored by live events are kept,
    # only their status follows the portal.
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    for first in range(0, len(rows), INSERT_CHUNK):
        statement = module.insert(Lead).values(rows[first : first + INSERT_CHUNK])
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["portal_id", "bitrix_id"],
                set_={"status_id": statement.excluded.status_id},
            )
        )
    return len(rows)


def apply_activities(
    session: Session, portal_id: int, records: Iterable[dict[str, Any]], tz: str
) -> int:
    """Set the first touch of imported leads from outgoing calls and e-mails."""
    earliest: dict[int, tuple[datetime, str, int | None]] = {}
    count = 0
    for record in records:
        count += 1
        if str(record.get("OWNER_TYPE_ID")) != "1":
            continue
        if str(record.get("DIRECTION")) != OUTGOING:
            continue
        kind = TOUCH_TYPES.get(str(record.get("TYPE_ID")))
        if kind is None:
            continue
        at = parse_moment(record.get("CREATED"), tz)
        lead_id = _int(record.get("OWNER_ID"))
        if at is None or lead_id is None:
            continue
        if lead_id not in earliest or at < earliest[lead_id][0]:
            earliest[lead_id] = (at, kind, _int(record.get("RESPONSIBLE_ID")))
    if not earliest:
        return count
    leads = session.scalars(
        select(Lead).where(
            Lead.portal_id == portal_id, Lead.bitrix_id.in_(list(earliest))
        )
    ).all()
    for lead in leads:
        at, kind, user = earliest[lead.bitrix_id]
        if lead.first_touch_at is None or at < lead.first_touch_at:
            lead.first_touch_at = at
            lead.first_touch_kind = kind
            lead.first_touch_by = user
    return count


def insert_stage_moves(
    session: Session,
    portal_id: int,
    entity_type: int,
    records: Iterable[dict[str, Any]],
    tz: str,
) -> int:
    count = 0
    for record in records:
        stage = record.get("STATUS_ID") or record.get("STAGE_ID")
        at = parse_moment(record.get("CREATED_TIME"), tz)
        if not stage or at is None:
            continue
        insert_ignore(
            session,
            KpiStageMove,
            {
                "portal_id": portal_id,
                "entity_type": entity_type,
                "bitrix_id": int(record["ID"]),
                "owner_id": int(record.get("OWNER_ID") or 0),
                "stage_id": str(stage)[:64],
                "created_at": at,
            },
            ["portal_id", "entity_type", "bitrix_id"],
        )
        count += 1
    return count

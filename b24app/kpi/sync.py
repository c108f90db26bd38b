"""Turn portal records (deals, leads, activities, stage history) into KPI rows.

Shared by the history import, the deal event handlers and the periodic
reconciliation, so a deal looks the same whichever way it arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from b24app import leadtext
from b24app.dbutil import insert_ignore
from b24app.kpi import currency, rollup
from b24app.kpi.models import KpiDeal, KpiStageMove
from b24app.kpi.settings import KpiConfig
from b24app.models import Lead

logger = logging.getLogger(__name__)

DEAL_SELECT = [
    "ID",
    "CATEGORY_ID",
    "STAGE_ID",
    "OPPORTUNITY",
    "CURRENCY_ID",
    "ASSIGNED_BY_ID",
    "CONTACT_ID",
    "LEAD_ID",
    "SOURCE_ID",
    "DATE_CREATE",
    "MOVED_TIME",
    "BEGINDATE",
    "CLOSEDATE",
]


def deal_select(cfg: KpiConfig) -> list[str]:
    """Return the deal fields to read, plus the appointment field if it is a UF one.

    ``crm.deal.list`` returns user fields only when the select names them.
    """
    field = str(cfg.mapping.get("appointment_field") or "")
    if field.startswith("UF_CRM_") and field not in DEAL_SELECT:
        return [*DEAL_SELECT, field]
    return list(DEAL_SELECT)


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
LEAD_ENTITY = 1
DEAL_ENTITY = 2
# A history row this close to a live move of the same owner and stage is
# the same move (the event's MOVED_TIME and the history's CREATED_TIME).
LIVE_MOVE_MATCH = timedelta(hours=1)


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


def deal_values(record: dict[str, Any], cfg: KpiConfig, tz: str) -> dict[str, Any]:
    """The stored columns of one deal as ``crm.deal.list`` or ``.get`` returns it."""
    field = cfg.mapping.get("appointment_field") or "BEGINDATE"
    contact = _int(record.get("CONTACT_ID"))
    if contact is None and record.get("CONTACT_IDS"):
        contact = _int(record["CONTACT_IDS"][0])
    extra = {k: record.get(k) for k in ("BEGINDATE", "CLOSEDATE") if k in record}
    # The raw amount and its currency; ``amount`` is in the base currency.
    raw_amount = currency.positive(record.get("OPPORTUNITY"))
    extra["OPPORTUNITY"] = raw_amount
    extra["CURRENCY_ID"] = record.get("CURRENCY_ID") or None
    if field.startswith("UF_CRM_"):
        extra[field] = record.get(field)
    # With appointment_field "booking" the time is the start of the Booking
    # module booking linked to the deal (see ``booking_times``), set by the
    # caller.
    return {
        "category_id": _int(record.get("CATEGORY_ID")) or 0,
        "stage_id": record.get("STAGE_ID"),
        "amount": currency.to_base(
            raw_amount, extra["CURRENCY_ID"], currency.info(cfg)
        ),
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
    """Insert or refresh deals and return how many rows were written.

    A stage that differs from the stored one is recorded as a live stage
    move, and the stored deal days and visits the change touches are
    refreshed (see ``rollup.deals_changed``).
    """
    records = list(records)
    before = _stored_deals(session, portal_id, [int(r["ID"]) for r in records])
    booked_at = (
        booking_times(
            session, portal_id, list(before) + [int(r["ID"]) for r in records]
        )
        if cfg.mapping.get("appointment_field") == "booking"
        else None
    )
    zone = ZoneInfo(tz)
    days: set = set()
    contacts: set[int] = set()
    count = 0
    for record in records:
        bitrix_id = int(record["ID"])
        values = deal_values(record, cfg, tz)
        if booked_at is not None:
            values["appointment_at"] = booked_at.get(bitrix_id)
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
        old = before.get(bitrix_id)
        if (
            old is not None
            and values["stage_id"]
            and old.stage_id != values["stage_id"]
        ):
            record_stage_move(
                session,
                portal_id,
                DEAL_ENTITY,
                bitrix_id,
                values["stage_id"],
                values["moved_at"] or values["synced_at"],
            )
        _touched(zone, days, contacts, old)
        _touched(zone, days, contacts, values)
        count += 1
    rollup.deals_changed(session, portal_id, cfg, days, contacts)
    return count


def booking_times(
    session: Session, portal_id: int, deal_ids: list[int]
) -> dict[int, datetime]:
    """Start of the Booking module booking linked to each deal.

    The reminders feature stores the portal's bookings with the deal they
    are linked to. A live booking wins over a cancelled one, then the latest.
    """
    from b24app.reminders.models import Appointment

    found: dict[int, tuple[bool, datetime]] = {}
    ids = sorted(set(deal_ids))
    for first in range(0, len(ids), INSERT_CHUNK):
        rows = session.execute(
            select(
                Appointment.deal_id, Appointment.starts_at, Appointment.status
            ).where(
                Appointment.portal_id == portal_id,
                Appointment.source == "booking",
                Appointment.deal_id.in_(ids[first : first + INSERT_CHUNK]),
            )
        )
        for deal_id, starts_at, status in rows:
            rank = (status != "cancelled", starts_at)
            if deal_id not in found or rank > found[deal_id]:
                found[deal_id] = rank
    return {deal_id: rank[1] for deal_id, rank in found.items()}


def booking_changed(
    session: Session, portal_id: int, deal_id: int, cfg: KpiConfig, tz: str
) -> bool:
    """Move a stored deal's appointment time to its booking's.

    Return True if the time moved.
    """
    if cfg.mapping.get("appointment_field") != "booking":
        return False
    old = _stored_deals(session, portal_id, [deal_id]).get(deal_id)
    if old is None:
        return False
    starts_at = booking_times(session, portal_id, [deal_id]).get(deal_id)
    if old.appointment_at == starts_at:
        return False
    session.execute(
        update(KpiDeal)
        .where(KpiDeal.portal_id == portal_id, KpiDeal.bitrix_id == deal_id)
        .values(appointment_at=starts_at, synced_at=datetime.now(UTC))
    )
    days: set = set()
    contacts: set[int] = set()
    zone = ZoneInfo(tz)
    _touched(zone, days, contacts, old)
    _touched(zone, days, contacts, {"appointment_at": starts_at})
    rollup.deals_changed(session, portal_id, cfg, days, contacts)
    return True


def delete_deal(
    session: Session, portal_id: int, bitrix_id: int, cfg: KpiConfig, tz: str
) -> bool:
    """Mark a stored deal deleted. Return False when the app never stored it."""
    old = _stored_deals(session, portal_id, [bitrix_id]).get(bitrix_id)
    if old is None:
        return False
    session.execute(
        update(KpiDeal)
        .where(KpiDeal.portal_id == portal_id, KpiDeal.bitrix_id == bitrix_id)
        .values(deleted=True, synced_at=datetime.now(UTC))
    )
    days: set = set()
    contacts: set[int] = set()
    _touched(ZoneInfo(tz), days, contacts, old)
    rollup.deals_changed(session, portal_id, cfg, days, contacts)
    return True


def _stored_deals(session: Session, portal_id: int, ids: list[int]) -> dict[int, Any]:
    """Return the stored fields of ``ids`` that decide which stored days they touch."""
    found = {}
    for first in range(0, len(ids), INSERT_CHUNK):
        rows = session.execute(
            select(
                KpiDeal.bitrix_id,
                KpiDeal.stage_id,
                KpiDeal.created_at,
                KpiDeal.appointment_at,
                KpiDeal.contact_id,
            ).where(
                KpiDeal.portal_id == portal_id,
                KpiDeal.bitrix_id.in_(ids[first : first + INSERT_CHUNK]),
            )
        )
        found.update({row.bitrix_id: row for row in rows})
    return found


def _touched(zone: ZoneInfo, days: set, contacts: set[int], deal: Any) -> None:
    """Add the local days and the contact a deal version counts on."""
    if deal is None:
        return
    get = deal.get if isinstance(deal, dict) else deal._mapping.get
    for column in ("created_at", "appointment_at"):
        if get(column) is not None:
            days.add(get(column).astimezone(zone).date())
    if get("contact_id") is not None:
        contacts.add(get("contact_id"))


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
    """Store ``crm.stagehistory.list`` rows, which replace the same live moves."""
    count = 0
    for record in records:
        stage = record.get("STATUS_ID") or record.get("STAGE_ID")
        at = parse_moment(record.get("CREATED_TIME"), tz)
        if not stage or at is None:
            continue
        owner = int(record.get("OWNER_ID") or 0)
        insert_ignore(
            session,
            KpiStageMove,
            {
                "portal_id": portal_id,
                "entity_type": entity_type,
                "bitrix_id": int(record["ID"]),
                "owner_id": owner,
                "stage_id": str(stage)[:64],
                "created_at": at,
            },
            ["portal_id", "entity_type", "bitrix_id"],
        )
        session.execute(
            delete(KpiStageMove).where(
                KpiStageMove.portal_id == portal_id,
                KpiStageMove.entity_type == entity_type,
                KpiStageMove.owner_id == owner,
                KpiStageMove.stage_id == str(stage)[:64],
                KpiStageMove.bitrix_id.is_(None),
                KpiStageMove.created_at >= at - LIVE_MOVE_MATCH,
                KpiStageMove.created_at <= at + LIVE_MOVE_MATCH,
            )
        )
        count += 1
    return count


def record_stage_move(
    session: Session,
    portal_id: int,
    entity_type: int,
    owner_id: int,
    stage_id: str,
    at: datetime,
) -> None:
    """Store a stage move seen in a live event (1 lead, 2 deal), once.

    Such a row has no history ID, so the import's history row of the same move
    replaces it. A move the history already contains is not added again.
    """
    stage = str(stage_id)[:64]
    known = session.scalar(
        select(KpiStageMove.id).where(
            KpiStageMove.portal_id == portal_id,
            KpiStageMove.entity_type == entity_type,
            KpiStageMove.owner_id == owner_id,
            KpiStageMove.stage_id == stage,
            KpiStageMove.bitrix_id.is_not(None),
            KpiStageMove.created_at >= at - LIVE_MOVE_MATCH,
            KpiStageMove.created_at <= at + LIVE_MOVE_MATCH,
        )
    )
    if known is not None:
        return
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        module.insert(KpiStageMove)
        .values(
            portal_id=portal_id,
            entity_type=entity_type,
            bitrix_id=None,
            owner_id=owner_id,
            stage_id=stage,
            created_at=at,
        )
        .on_conflict_do_nothing(
            index_elements=[
                "portal_id",
                "entity_type",
                "owner_id",
                "stage_id",
                "created_at",
            ],
            index_where=KpiStageMove.bitrix_id.is_(None),
        )
    )
    logger.info(
        "kpi live stage move stored",
        extra={"portal_id": portal_id, "owner_id": owner_id, "stage_id": stage},
    )

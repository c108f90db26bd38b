"""Past CRM data for the emulated portal, and a fast path for ID-cursor pages.

``generate_history`` fills a portal with leads, booking deals, outgoing calls
and stage history spread over past days, without firing events (the app
learns about them through its history import). ``cursor_window`` lets the
list methods serve ``start=-1`` pages filtered by ``>ID`` without building
a view of every record, so importing 100,000 rows is not quadratic.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .fields import DEAL_FIELDS, format_datetime
from .params import as_dict, get_param

if TYPE_CHECKING:
    from .listing import Page
    from .state import Portal

CHUNK = 64
BOOKING_CATEGORY = 1
CHANNEL_SOURCES = ("WEB", "CALL", "1|OPENLINE", "ADVERTISING", "RECOMMENDATION")
SERVICES = ((1800, "Маникюр"), (2500, "Стрижка"), (4200, "Чистка лица"))


def cursor_window(
    params: dict, keys: Iterable[int], run: Callable[[list[int]], Page]
) -> Page | None:
    """Serve an ID-cursor page from the keys after the cursor, chunk by chunk.

    Returns None when the request is not an ID-cursor page (the caller then
    lists everything as before).
    """
    if str(get_param(params, "start", "")) != "-1":
        return None
    order = {
        str(k).upper(): str(v).upper()
        for k, v in as_dict(get_param(params, "order")).items()
    }
    if order != {"ID": "ASC"}:
        return None
    floor = as_dict(get_param(params, "filter")).get(">ID")
    try:
        floor_id = int(floor)
    except (TypeError, ValueError):
        return None
    ordered = sorted(keys)  # already ascending in practice, so this is linear
    candidates = ordered[bisect.bisect_right(ordered, floor_id) :]
    size = CHUNK
    while True:
        page = run(candidates[:size])
        rows = (
            page.result.get("items") if isinstance(page.result, dict) else page.result
        )
        if len(rows or []) >= 50 or size >= len(candidates):
            return page
        size *= 4


def _moment(portal: Portal, at: datetime) -> str:
    return format_datetime(at.astimezone(portal.tz))


def generate_history(
    portal: Portal,
    *,
    leads: int,
    deals: int,
    days: int,
    end: datetime | None = None,
    seed: int = 7,
) -> dict[str, int]:
    """Add ``leads`` leads and ``deals`` booking deals created over ``days`` days."""
    from . import crm

    rng = random.Random(seed)
    end = end or portal.now()
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    lead_ids: list[int] = []
    with portal.lock:
        for _ in range(leads):
            lead_id = portal.next_id("lead")
            at = start + timedelta(seconds=rng.random() * span)
            record = crm._blank_lead(portal, lead_id, 1)
            booked = rng.random() < 0.15
            status = (
                "CONVERTED" if booked else rng.choice(("NEW", "IN_PROCESS", "JUNK"))
            )
            stamp = _moment(portal, at)
            record.update(
                {
                    "TITLE": f"Лид #{lead_id}",
                    "SOURCE_ID": rng.choice(CHANNEL_SOURCES),
                    "STATUS_ID": status,
                    "STATUS_SEMANTIC_ID": "S" if booked else "P",
                    "ASSIGNED_BY_ID": str(rng.randint(3, 6)),
                    "DATE_CREATE": stamp,
                    "DATE_MODIFY": stamp,
                    "MOVED_TIME": stamp,
                }
            )
            portal.leads.data[lead_id] = record
            lead_ids.append(lead_id)
            _history(portal, 1, lead_id, "STATUS_ID", "NEW", at)
            if status != "NEW":
                _history(
                    portal, 1, lead_id, "STATUS_ID", status, at + timedelta(minutes=30)
                )
            if rng.random() < 0.9:
                _call(portal, lead_id, at + timedelta(minutes=rng.randint(2, 240)))

        contacts = max(deals // 3, 1)
        for _ in range(deals):
            deal_id = portal.next_id("deal")
            at = start + timedelta(seconds=rng.random() * span)
            visit = at + timedelta(days=rng.randint(0, 10))
            roll = rng.random()
            stage = (
                "C1:WON"
                if roll < 0.7
                else "C1:LOSE"
                if roll < 0.8
                else "C1:APOLOGY"
                if roll < 0.9
                else "C1:NEW"
            )
            amount, service = rng.choice(SERVICES)
            stamp = _moment(portal, at)
            record: dict[str, Any] = dict.fromkeys(DEAL_FIELDS)
            record |= {
                "ID": str(deal_id),
                "TITLE": f"{service} #{deal_id}",
                "CATEGORY_ID": str(BOOKING_CATEGORY),
                "STAGE_ID": stage,
                "STAGE_SEMANTIC_ID": "S" if stage == "C1:WON" else "P",
                "CURRENCY_ID": "RUB",
                "OPPORTUNITY": f"{amount:.2f}",
                "ASSIGNED_BY_ID": str(rng.randint(3, 6)),
                "CONTACT_ID": str(rng.randint(1, contacts)),
                "CONTACT_IDS": [],
                "LEAD_ID": str(rng.choice(lead_ids))
                if lead_ids and rng.random() < 0.5
                else None,
                "SOURCE_ID": rng.choice(CHANNEL_SOURCES),
                "BEGINDATE": visit.astimezone(portal.tz).date().isoformat(),
                "CLOSEDATE": visit.astimezone(portal.tz).date().isoformat(),
                "DATE_CREATE": stamp,
                "DATE_MODIFY": stamp,
                "MOVED_TIME": _moment(portal, min(visit, end)),
                "CLOSED": "Y" if stage != "C1:NEW" else "N",
                "OPENED": "Y",
            }
            portal.deals.data[deal_id] = record
            _history(portal, 2, deal_id, "STAGE_ID", "C1:NEW", at)
            if stage != "C1:NEW":
                _history(portal, 2, deal_id, "STAGE_ID", stage, min(visit, end))
        portal.touch()
    return {"leads": leads, "deals": deals}


def _history(
    portal: Portal, entity_type: int, owner: int, key: str, stage: str, at: datetime
) -> None:
    history_id = portal.next_id("stagehistory")
    row = {
        "ID": history_id,
        "TYPE_ID": 1,
        "OWNER_ID": owner,
        "CREATED_TIME": _moment(portal, at),
        "ENTITY_TYPE_ID": entity_type,
        key: stage,
    }
    if entity_type == 2:
        row["CATEGORY_ID"] = BOOKING_CATEGORY
    portal.stage_history.data[history_id] = row


def _call(portal: Portal, lead_id: int, at: datetime) -> None:
    activity_id = portal.next_id("activity")
    stamp = _moment(portal, at)
    portal.activities.data[activity_id] = {
        "ID": str(activity_id),
        "OWNER_ID": str(lead_id),
        "OWNER_TYPE_ID": "1",
        "TYPE_ID": "2",
        "PROVIDER_ID": "VOXIMPLANT_CALL",
        "PROVIDER_TYPE_ID": "CALL",
        "SUBJECT": "Звонок",
        "CREATED": stamp,
        "LAST_UPDATED": stamp,
        "START_TIME": stamp,
        "END_TIME": stamp,
        "DEADLINE": stamp,
        "COMPLETED": "Y",
        "STATUS": "2",
        "RESPONSIBLE_ID": "4",
        "AUTHOR_ID": "4",
        "DIRECTION": "2",
        "BINDINGS": [{"OWNER_TYPE_ID": "1", "OWNER_ID": str(lead_id)}],
        "COMMUNICATIONS": [],
        "FILES": [],
        "SETTINGS": [],
    }

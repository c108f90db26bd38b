"""Free slots of one local day, from the Booking module's resources and bookings.

A resource's slot settings (``booking.v1.resource.slots.list``) give its
working minutes per weekday and the slot size. Each slot of the day that
no booking of that resource overlaps counts as free. The day's free slots
are the sum over all resources, so a salon with two masters working
10:00-20:00 in 60-minute slots has 20 slots a day.

Only ``read_booking_module`` depends on the REST shapes. ``count_free_slots``
is pure and works on the plain records it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from b24app import portal_settings
from b24app.bitrix import BitrixCallError
from b24app.bitrix.client import PortalClient
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DEFAULT_SLOT_MINUTES = 60
PAGE_SIZE = 50  # rows per page of the Bitrix24 list methods
MAX_PAGES = 40
# Bookings are read for one extra day on each side, so a resource whose
# slot ranges use another time zone than the portal is still compared with
# all of its bookings of the day.
READ_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class SlotRange:
    weekdays: frozenset[str]
    start_minute: int  # minutes after local midnight
    end_minute: int
    slot_minutes: int
    timezone: str | None


@dataclass(frozen=True)
class Resource:
    id: int
    ranges: tuple[SlotRange, ...]


@dataclass(frozen=True)
class Booking:
    resource_ids: frozenset[int]
    starts_at: datetime
    ends_at: datetime


def read_booking_module(
    client: PortalClient, date_from: datetime, date_to: datetime
) -> tuple[list[Resource], list[Booking]]:
    """Read all resources with their slot settings and the bookings in the window.

    Shapes read (Booking module REST, ``booking.v1``):
    ``resource.list`` -> ``{"resource": [{"id", ...}]}``;
    ``resource.slots.list {resourceId}`` -> ``{"slots": [{"from", "to"
    (minutes of the day), "weekDays": ["Mon", ...], "timezone", "slotSize"
    (minutes)}]}``; ``booking.list {filter: {within: {dateFrom, dateTo}}}``
    -> ``{"booking": [{"resourceIds", "datePeriod": {"from": {"timestamp"},
    "to": {"timestamp"}}}]}``. Both lists are read in pages of 50 by ``start``.
    """
    resources = []
    for item in _pages(client, "booking.v1.resource.list", {}, "resource"):
        resource_id = int(item["id"])
        settings = client.call(
            "booking.v1.resource.slots.list", {"resourceId": resource_id}
        )
        ranges = tuple(
            SlotRange(
                weekdays=frozenset(r.get("weekDays") or WEEKDAYS),
                start_minute=int(r["from"]),
                end_minute=int(r["to"]),
                slot_minutes=int(r.get("slotSize") or DEFAULT_SLOT_MINUTES),
                timezone=r.get("timezone") or None,
            )
            for r in (settings or {}).get("slots") or []
        )
        resources.append(Resource(id=resource_id, ranges=ranges))

    window = {
        "filter": {
            "within": {
                "dateFrom": int(date_from.timestamp()),
                "dateTo": int(date_to.timestamp()),
            }
        }
    }
    bookings = []
    for item in _pages(client, "booking.v1.booking.list", window, "booking"):
        period = item["datePeriod"]
        bookings.append(
            Booking(
                resource_ids=frozenset(int(r) for r in item.get("resourceIds") or []),
                starts_at=datetime.fromtimestamp(int(period["from"]["timestamp"]), UTC),
                ends_at=datetime.fromtimestamp(int(period["to"]["timestamp"]), UTC),
            )
        )
    return resources, bookings


def _pages(
    client: PortalClient, method: str, params: dict[str, Any], key: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        page = (client.call(method, params | {"start": len(rows)}) or {}).get(key)
        rows.extend(page or [])
        if not page or len(page) < PAGE_SIZE:
            return rows
    logger.warning(
        "%s has more than %d rows; the rest is not read",
        method,
        len(rows),
        extra={"member_id": client.member_id},
    )
    return rows


def count_free_slots(
    day: date, resources: list[Resource], bookings: list[Booking], default_tz: str
) -> dict[str, int]:
    """Count the slots of ``day`` and those of them that no booking overlaps.

    Slot ranges without a time zone use ``default_tz``. A booking that
    covers part of a slot makes the whole slot busy.
    """
    total = free = 0
    for resource in resources:
        busy = [
            (b.starts_at, b.ends_at) for b in bookings if resource.id in b.resource_ids
        ]
        for slot_range in resource.ranges:
            zone = _zone(slot_range.timezone, default_tz)
            if WEEKDAYS[day.weekday()] not in slot_range.weekdays:
                continue
            midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
            step = max(slot_range.slot_minutes, 1)
            minute = slot_range.start_minute
            while minute + step <= slot_range.end_minute:
                start = (midnight + timedelta(minutes=minute)).astimezone(UTC)
                end = start + timedelta(minutes=step)
                total += 1
                if not any(b_start < end and start < b_end for b_start, b_end in busy):
                    free += 1
                minute += step
    return {"total_slots": total, "free_slots": free, "resources": len(resources)}


def free_slots_of_day(
    services: Services, portal: Portal, day: date, lower: datetime, upper: datetime
) -> dict[str, int] | None:
    """Count the slots of ``day`` from the Booking module, or return None.

    ``lower`` and ``upper`` are the UTC bounds of the local day. None means
    the module could not be read or has no resources; the reason is logged.
    """
    log = {"member_id": portal.member_id, "day": day.isoformat()}
    try:
        resources, bookings = read_booking_module(
            services.client(portal), lower - READ_MARGIN, upper + READ_MARGIN
        )
    except (BitrixCallError, OSError) as err:
        logger.warning("Booking module read failed: %s", err, extra=log)
        return None
    except (KeyError, TypeError, ValueError) as err:
        logger.warning(
            "Booking module returned an unexpected shape: %r", err, extra=log
        )
        return None
    if not resources:
        logger.info("Booking module has no resources", extra=log)
        return None
    counts = count_free_slots(
        day, resources, bookings, portal_settings.timezone(portal)
    )
    logger.info("free slots read from the Booking module", extra=log | counts)
    return counts


def _zone(name: str | None, default_tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default_tz)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default_tz)

"""Free-slot counting from Booking module records (no portal needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from b24app.kpi.slots import WEEKDAYS, Booking, Resource, SlotRange, count_free_slots

THURSDAY = date(2026, 11, 5)


def _resource(resource_id, start_hour, end_hour, *, size=60, tz=None, days=WEEKDAYS):
    return Resource(
        id=resource_id,
        ranges=(
            SlotRange(
                weekdays=frozenset(days),
                start_minute=start_hour * 60,
                end_minute=end_hour * 60,
                slot_minutes=size,
                timezone=tz,
            ),
        ),
    )


def _booking(resource_ids, start_utc: str, end_utc: str) -> Booking:
    return Booking(
        resource_ids=frozenset(resource_ids),
        starts_at=datetime.fromisoformat(start_utc).replace(tzinfo=UTC),
        ends_at=datetime.fromisoformat(end_utc).replace(tzinfo=UTC),
    )


def test_slots_partial_overlap_busy():
    resources = [_resource(1, 10, 14)]
    # 11:30-12:10 Moscow touches the 11:00 and 12:00 slots.
    bookings = [_booking([1], "2026-11-05T08:30:00", "2026-11-05T09:10:00")]

    counts = count_free_slots(THURSDAY, resources, bookings, "Europe/Moscow")

    assert counts == {"total_slots": 4, "free_slots": 2, "resources": 1}


def test_slots_booking_of_two_resources():
    resources = [_resource(1, 10, 12), _resource(2, 10, 12)]
    bookings = [_booking([1, 2], "2026-11-05T07:00:00", "2026-11-05T08:00:00")]

    counts = count_free_slots(THURSDAY, resources, bookings, "Europe/Moscow")

    assert counts["total_slots"] == 4
    assert counts["free_slots"] == 2


def test_slots_range_time_zone():
    # 10:00-12:00 in Yekaterinburg (UTC+5) is 05:00-07:00 UTC.
    resources = [_resource(1, 10, 12, tz="Asia/Yekaterinburg")]
    bookings = [_booking([1], "2026-11-05T05:00:00", "2026-11-05T06:00:00")]

    counts = count_free_slots(THURSDAY, resources, bookings, "Europe/Moscow")

    assert counts["free_slots"] == 1


def test_slots_partial_slot_at_end_dropped():
    resources = [_resource(1, 10, 11, size=45)]

    counts = count_free_slots(THURSDAY, resources, [], "Europe/Moscow")

    assert counts["total_slots"] == 1


def test_slots_day_off():
    resources = [_resource(1, 10, 20, days=("Mon", "Tue"))]

    counts = count_free_slots(THURSDAY, resources, [], "Europe/Moscow")

    assert counts["total_slots"] == 0
    assert counts["free_slots"] == 0


def test_slots_unknown_zone_uses_portal():
    resources = [_resource(1, 10, 11, tz="Mars/Olympus")]
    bookings = [_booking([1], "2026-11-05T07:00:00", "2026-11-05T08:00:00")]

    counts = count_free_slots(THURSDAY, resources, bookings, "Europe/Moscow")

    assert counts["free_slots"] == 0

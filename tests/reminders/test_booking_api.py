"""The emulator's Booking methods respond in the documented shapes.

Shapes follow the REST docs (bitrix24/b24restdocs, api-reference/booking):
``booking.v1.resource.slots.list`` returns ``{"slots": [...]}``, a missing
resource is error 1009, and ``booking.v1.booking.list`` pages by ``start``
with at most 50 rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from b24app.bitrix.errors import BitrixCallError
from b24app.reminders.replies import free_slots

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]


def _client(services, portal):
    return services.client(portal)


def test_slots_list_documented_shape(emulator, services, reminder_portal):
    resource_id = emulator.portal.add_booking_resource("Мастер Анна")
    result = _client(services, reminder_portal).call(
        "booking.v1.resource.slots.list", {"resourceId": resource_id}
    )
    slot = result["slots"][0]
    assert set(slot) == {"id", "from", "to", "timezone", "weekDays", "slotSize"}


def test_slots_set_then_list(emulator, services, reminder_portal):
    client = _client(services, reminder_portal)
    resource_id = emulator.portal.add_booking_resource("Кабинет 1")
    given = {
        "from": 540,
        "to": 1080,
        "timezone": "Europe/Moscow",
        "weekDays": WEEKDAYS,
        "slotSize": 30,
    }
    assert client.call(
        "booking.v1.resource.slots.set", {"resourceId": resource_id, "slots": [given]}
    )
    listed = client.call("booking.v1.resource.slots.list", {"resourceId": resource_id})
    stored = {k: v for k, v in listed["slots"][0].items() if k != "id"}
    assert stored == given


def test_slots_set_requires_every_field(emulator, services, reminder_portal):
    resource_id = emulator.portal.add_booking_resource("Кабинет 2")
    with pytest.raises(BitrixCallError) as caught:
        _client(services, reminder_portal).call(
            "booking.v1.resource.slots.set",
            {"resourceId": resource_id, "slots": [{"from": 540, "to": 1080}]},
        )
    assert caught.value.code == "0"


def test_slots_unset_clears(emulator, services, reminder_portal):
    client = _client(services, reminder_portal)
    resource_id = emulator.portal.add_booking_resource("Кабинет 3")
    client.call("booking.v1.resource.slots.unset", {"resourceId": resource_id})
    listed = client.call("booking.v1.resource.slots.list", {"resourceId": resource_id})
    assert listed == {"slots": []}


def test_missing_resource_is_1009(services, reminder_portal):
    with pytest.raises(BitrixCallError) as caught:
        _client(services, reminder_portal).call(
            "booking.v1.resource.slots.list", {"resourceId": 98765}
        )
    assert caught.value.code == "1009"


def test_booking_list_pages_by_50(emulator, services, reminder_portal):
    resource_id = emulator.portal.add_booking_resource("Кабинет 4")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    for n in range(55):
        begin = start + timedelta(hours=n)
        emulator.portal.create_booking(
            [resource_id], begin, begin + timedelta(minutes=30)
        )
    client = _client(services, reminder_portal)
    first = client.call("booking.v1.booking.list", {"start": 0})
    second = client.call("booking.v1.booking.list", {"start": 50})
    assert (len(first["booking"]), len(second["booking"])) == (50, 5)


def test_free_slots_follow_working_time(emulator, services, reminder_portal):
    client = _client(services, reminder_portal)
    resource_id = emulator.portal.add_booking_resource("Мастер Ольга")
    zone = ZoneInfo("Europe/Moscow")
    client.call(
        "booking.v1.resource.slots.set",
        {
            "resourceId": resource_id,
            "slots": [
                {
                    "from": 600,
                    "to": 720,
                    "timezone": "Europe/Moscow",
                    "weekDays": WEEKDAYS,
                    "slotSize": 60,
                }
            ],
        },
    )
    now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # Monday 09:00 in Moscow
    taken = datetime(2026, 12, 7, 10, 0, tzinfo=zone)
    booking_id = emulator.portal.create_booking(
        [resource_id], taken, taken + timedelta(hours=1)
    )
    row = SimpleNamespace(
        resource_ids=[str(resource_id)],
        booking_id=booking_id,
        starts_at=taken.astimezone(UTC),
    )

    slots = free_slots(client, reminder_portal, row, now=now)

    local = [slot.astimezone(zone) for slot in slots]
    assert [(s.day, s.hour) for s in local] == [(7, 11), (8, 10), (8, 11)]

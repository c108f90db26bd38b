"""Notices go out in the recipient's working time, except for urgent leads.

The business is open around the clock here, while managers work shifts of
09:00-18:00 (Moscow). The sweep runs at chosen moments of tomorrow morning.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from b24app.sla import escalation
from tests.helpers import drain, lead_row
from tests.sla.support import (
    HEAD_OF_SALES,
    MANAGER,
    OWNER,
    configure,
    new_lead,
    notices_about,
    place_clock,
    set_urgent,
    tasks_for,
)
from tests.sla.support import (
    escalation as escalation_row,
)

MSK = ZoneInfo("Europe/Moscow")
DAY_SHIFT = {str(day): [["09:00", "18:00"]] for day in range(7)}
LATE_SHIFT = {str(day): [["10:00", "18:00"]] for day in range(7)}


@pytest.fixture
def tomorrow():
    """Return a builder of moments of tomorrow (Moscow time).

    The day is read from the clock once per test, so a test that runs across
    midnight in Moscow places and sweeps its clock on the same day.
    """
    day = datetime.now(MSK).date() + timedelta(days=1)

    def at(hour: int, minute: int, second: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute, second), MSK)

    return at


@pytest.fixture
def waiting_lead(emulator, installed, services, worker, tomorrow):
    """Warned at 08:53 tomorrow, due at 09:05; the manager starts at 09:00."""
    configure(services, installed.id, manager_schedules={str(MANAGER): DAY_SHIFT})
    lead_id = new_lead(emulator, services, worker)
    place_clock(services, lead_id, tomorrow(8, 5), target_seconds=3600)
    return lead_id


def test_notice_waits_for_the_manager_shift(emulator, services, waiting_lead, tomorrow):
    escalation.sweep(services, now=tomorrow(8, 55))

    row = escalation_row(services, waiting_lead, "warn_responsible")
    assert row.status == "postponed"
    assert row.locked_until == tomorrow(9, 0)
    assert notices_about(emulator, waiting_lead, MANAGER) == []


def test_notice_still_waits_before_the_shift(
    emulator, services, waiting_lead, tomorrow
):
    escalation.sweep(services, now=tomorrow(8, 55))

    escalation.sweep(services, now=tomorrow(8, 59))

    assert notices_about(emulator, waiting_lead, MANAGER) == []


def test_notice_goes_out_once_when_the_shift_starts(
    emulator, services, waiting_lead, tomorrow
):
    escalation.sweep(services, now=tomorrow(8, 55))

    escalation.sweep(services, now=tomorrow(9, 0, 30))
    escalation.sweep(services, now=tomorrow(9, 1))
    escalation.sweep(services, now=tomorrow(9, 2))

    assert len(notices_about(emulator, waiting_lead, MANAGER)) == 1
    assert escalation_row(services, waiting_lead, "warn_responsible").status == "sent"


def test_notice_for_urgent_lead_goes_out_at_once(
    emulator, services, waiting_lead, tomorrow
):
    set_urgent(services, waiting_lead)

    escalation.sweep(services, now=tomorrow(8, 55))

    assert len(notices_about(emulator, waiting_lead, MANAGER)) == 1


def test_notice_waiting_is_dropped_when_lead_answered(
    emulator, services, worker, waiting_lead, tomorrow
):
    escalation.sweep(services, now=tomorrow(8, 55))
    emulator.portal.add_activity(
        waiting_lead, type_id=2, direction=2, author_id=MANAGER
    )
    drain(
        worker, services, until=lambda: lead_row(services, waiting_lead).first_touch_at
    )

    escalation.sweep(services, now=tomorrow(9, 0, 30))

    assert notices_about(emulator, waiting_lead, MANAGER) == []
    assert escalation_row(services, waiting_lead, "warn_responsible").status == (
        "cancelled"
    )


def test_warning_rerouted_to_senior(emulator, installed, services, worker, tomorrow):
    configure(services, installed.id, manager_schedules={str(MANAGER): LATE_SHIFT})
    lead_id = new_lead(emulator, services, worker)
    place_clock(services, lead_id, tomorrow(8, 5), target_seconds=3600)

    escalation.sweep(services, now=tomorrow(8, 55))

    notes = notices_about(emulator, lead_id, HEAD_OF_SALES)
    assert len(notes) == 1
    assert "не на смене" in notes[0]["MESSAGE"]


def test_task_waits_for_the_senior_shift(
    emulator, installed, services, worker, tomorrow
):
    configure(
        services,
        installed.id,
        manager_schedules={str(MANAGER): DAY_SHIFT, str(HEAD_OF_SALES): DAY_SHIFT},
    )
    lead_id = new_lead(emulator, services, worker)
    place_clock(services, lead_id, tomorrow(7, 45), target_seconds=3600)

    escalation.sweep(services, now=tomorrow(8, 55))
    waiting = tasks_for(emulator, lead_id)
    escalation.sweep(services, now=tomorrow(9, 0, 30))

    assert waiting == []
    assert len(tasks_for(emulator, lead_id)) == 1
    assert escalation_row(services, lead_id, "task_senior").postponed_until == (
        tomorrow(9, 0)
    )


def test_owner_notice_waits_for_the_owner(
    emulator, installed, services, worker, tomorrow
):
    configure(services, installed.id, manager_schedules={str(OWNER): DAY_SHIFT})
    lead_id = new_lead(emulator, services, worker)
    place_clock(services, lead_id, tomorrow(6, 0), target_seconds=3600)

    escalation.sweep(services, now=tomorrow(8, 30))
    night = notices_about(emulator, lead_id, OWNER)
    escalation.sweep(services, now=tomorrow(9, 0, 30))

    assert night == []
    assert len(notices_about(emulator, lead_id, OWNER)) == 1

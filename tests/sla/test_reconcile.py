"""Reconciliation: touches made while the app received no events still count.

The app server is stopped, so the portal's event deliveries fail as they do
when the app is down. The worker and the REST calls keep working.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from b24app.emulator import crm
from b24app.emulator.events import AUTOMATION, Actor
from b24app.sla import escalation, reconcile
from tests.helpers import drain, lead_row
from tests.sla.support import (
    MANAGER,
    age_lead,
    configure,
    human_clock,
    new_lead,
    now,
    tasks_for,
)


@pytest.fixture
def lead_while_down(emulator, installed, app_server, services, worker):
    """A tagged lead whose target (2 min) passed; then the app stops listening."""
    configure(services, installed.id, policy={"human_seconds": 120})
    lead_id = new_lead(emulator, services, worker)
    age_lead(services, lead_id, minutes=10)
    drain(worker, services)
    app_server.stop()
    return lead_id


def _activity_time(emulator, activity_id: int) -> datetime:
    return datetime.fromisoformat(emulator.portal.activities[activity_id]["CREATED"])


def _call_while_down(emulator, lead_id: int, **options) -> int:
    activity_id = emulator.portal.add_activity(
        lead_id, type_id=2, direction=2, author_id=MANAGER, **options
    )
    emulator.portal.events.wait_idle()
    return activity_id


def test_reconcile_finds_call_made_while_app_down(emulator, services, lead_while_down):
    activity_id = _call_while_down(emulator, lead_while_down)

    found = reconcile.reconcile_all(services)

    assert found == 1
    assert human_clock(services, lead_while_down).stopped_at == _activity_time(
        emulator, activity_id
    )


def test_reconcile_stops_clock_at_real_touch_time(emulator, services, lead_while_down):
    # The portal records the call nine minutes back: before the due time.
    emulator.portal.advance_clock(-9 * 60)
    activity_id = _call_while_down(emulator, lead_while_down)
    emulator.portal.advance_clock(9 * 60)

    reconcile.reconcile_all(services)

    clock = human_clock(services, lead_while_down)
    assert clock.stopped_at == _activity_time(emulator, activity_id)
    assert clock.state == "met"


def test_reconcile_prevents_escalation(emulator, services, lead_while_down):
    _call_while_down(emulator, lead_while_down)

    reconcile.reconcile_all(services)
    counts = escalation.sweep(services)

    assert counts["claimed"] == 0
    assert tasks_for(emulator, lead_while_down) == []


def test_reconcile_completes_task_of_lead_answered_while_down(
    emulator, services, lead_while_down
):
    escalation.sweep(services)
    _call_while_down(emulator, lead_while_down)

    reconcile.reconcile_all(services)

    assert str(tasks_for(emulator, lead_while_down)[0]["STATUS"]) == "5"


def test_reconcile_finds_status_move_while_down(emulator, services, lead_while_down):
    emulator.portal.change_lead_status(lead_while_down, "IN_PROCESS", actor_id=MANAGER)
    emulator.portal.events.wait_idle()

    reconcile.reconcile_all(services)

    assert lead_row(services, lead_while_down).first_touch_kind == "status"


def test_reconcile_ignores_planned_call(emulator, services, lead_while_down):
    _call_while_down(emulator, lead_while_down, completed=False)

    found = reconcile.reconcile_all(services)

    assert found == 0
    assert human_clock(services, lead_while_down).stopped_at is None


def test_reconcile_cancels_lead_deleted_while_down(emulator, services, lead_while_down):
    crm.delete_lead(emulator.portal, lead_while_down, Actor(user_id=MANAGER))
    emulator.portal.events.wait_idle()

    reconcile.reconcile_all(services)

    assert human_clock(services, lead_while_down).state == "cancelled"
    assert lead_row(services, lead_while_down).deleted


def test_reconcile_finds_reassignment_while_down(emulator, services, lead_while_down):
    emulator.portal.update_lead(
        lead_while_down, {"ASSIGNED_BY_ID": 5}, actor_id=MANAGER
    )
    emulator.portal.events.wait_idle()

    reconcile.reconcile_all(services)

    assert human_clock(services, lead_while_down).responsible_id == 5


def test_reconcile_trusts_event_of_robot_reply(emulator, installed, services, worker):
    configure(services, installed.id, policy={"human_seconds": 120})
    lead_id = new_lead(emulator, services, worker)
    # An automation rule e-mails the client; its event carries no user token.
    crm.store_activity(
        emulator.portal,
        {
            "OWNER_TYPE_ID": 1,
            "OWNER_ID": lead_id,
            "TYPE_ID": 4,
            "DIRECTION": 2,
            "COMPLETED": "Y",
            "SUBJECT": "Мы получили вашу заявку",
            "RESPONSIBLE_ID": MANAGER,
            "AUTHOR_ID": MANAGER,
        },
        AUTOMATION,
    )
    drain(worker, services, until=lambda: lead_row(services, lead_id).bot_reply_at)

    found = reconcile.reconcile_all(services)

    assert found == 0
    assert human_clock(services, lead_id).stopped_at is None


def test_reconcile_takes_leads_in_turns(emulator, services, lead_while_down):
    reconcile.reconcile_all(services)
    first = human_clock(services, lead_while_down).reconciled_at

    reconcile.reconcile_portal(
        services,
        _portal(services),
        now=now() + timedelta(minutes=10),
    )

    assert human_clock(services, lead_while_down).reconciled_at > first


def _portal(services):
    from sqlalchemy import select

    from b24app.models import Portal

    with services.db.session() as session:
        return session.scalar(select(Portal))

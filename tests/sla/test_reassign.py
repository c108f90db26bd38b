"""Reassignment keeps the deadline unless the policy asks for a fresh one."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from b24app.models import Portal
from b24app.sla import clocks, escalation
from tests.helpers import lead_row
from tests.sla.support import (
    MANAGER,
    OTHER_MANAGER,
    age_lead,
    configure,
    escalations,
    human_clock,
    new_lead,
    notices_about,
    now,
)


def _portal(services) -> Portal:
    with services.db.session() as session:
        return session.scalar(select(Portal))


def _lapsed(emulator, installed, services, worker, *, fresh: bool) -> int:
    configure(
        services,
        installed.id,
        policy={"human_seconds": 120, "fresh_clock_on_reassign": fresh},
    )
    lead_id = new_lead(emulator, services, worker)
    age_lead(services, lead_id, minutes=3)
    escalation.sweep(services)
    return lead_id


def _reassign(services, lead_id: int, user_id: int) -> None:
    clocks.reassign(
        services, _portal(services), lead_row(services, lead_id).id, user_id
    )


def test_reassign_keeps_deadline_by_default(emulator, installed, services, worker):
    lead_id = _lapsed(emulator, installed, services, worker, fresh=False)
    before = human_clock(services, lead_id)

    _reassign(services, lead_id, OTHER_MANAGER)

    after = human_clock(services, lead_id)
    assert (after.due_at, after.clock_round) == (before.due_at, 0)


def test_reassign_points_clock_at_new_manager(emulator, installed, services, worker):
    lead_id = _lapsed(emulator, installed, services, worker, fresh=False)

    _reassign(services, lead_id, OTHER_MANAGER)

    assert human_clock(services, lead_id).responsible_id == OTHER_MANAGER


def test_reassign_keeps_lapse_and_ladder_by_default(
    emulator, installed, services, worker
):
    lead_id = _lapsed(emulator, installed, services, worker, fresh=False)

    _reassign(services, lead_id, OTHER_MANAGER)
    escalation.sweep(services, now=now() + timedelta(seconds=30))

    assert human_clock(services, lead_id).state == "breached"
    assert notices_about(emulator, lead_id, OTHER_MANAGER) == []


def test_reassign_fresh_clock_counts_full_target(emulator, installed, services, worker):
    lead_id = _lapsed(emulator, installed, services, worker, fresh=True)
    moment = now()

    _reassign(services, lead_id, OTHER_MANAGER)

    clock = human_clock(services, lead_id)
    assert clock.state == "running"
    assert clock.clock_round == 1
    assert moment + timedelta(seconds=119) <= clock.due_at
    assert clock.due_at <= now() + timedelta(seconds=120)


def test_reassign_fresh_clock_warns_new_manager(emulator, installed, services, worker):
    lead_id = _lapsed(emulator, installed, services, worker, fresh=True)

    _reassign(services, lead_id, OTHER_MANAGER)
    escalation.sweep(services, now=now() + timedelta(seconds=100))

    assert len(notices_about(emulator, lead_id, OTHER_MANAGER)) == 1
    assert len(notices_about(emulator, lead_id, MANAGER)) == 1


def test_reassign_fresh_clock_keeps_levels_unique(
    emulator, installed, services, worker
):
    lead_id = _lapsed(emulator, installed, services, worker, fresh=True)

    _reassign(services, lead_id, OTHER_MANAGER)
    for seconds in (100, 130, 160):
        escalation.sweep(services, now=now() + timedelta(seconds=seconds))

    assert sorted(e.level for e in escalations(services, lead_id)) == [
        "task",
        "task@1",
        "warn",
        "warn@1",
    ]


def test_reassign_to_same_manager_changes_nothing(
    emulator, installed, services, worker
):
    lead_id = _lapsed(emulator, installed, services, worker, fresh=True)
    before = human_clock(services, lead_id)

    _reassign(services, lead_id, MANAGER)

    assert human_clock(services, lead_id).due_at == before.due_at

"""Fresh escalations of one portal go out together in batch calls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from b24app.bitrix import client as client_module
from b24app.models import Escalation
from b24app.sla import escalation
from tests.sla.support import (
    MANAGER,
    age_lead,
    configure,
    new_lead,
    notices_about,
    now,
    tasks_for,
)


@pytest.fixture
def batch_calls(monkeypatch):
    """Record the command keys of every batch call the app makes."""
    calls: list[list[str]] = []
    original = client_module.PortalClient.batch

    def recording_batch(self, commands, **options):
        calls.append(list(commands))
        return original(self, commands, **options)

    monkeypatch.setattr(client_module.PortalClient, "batch", recording_batch)
    return calls


def _lapsed_leads(emulator, services, worker, installed, count: int) -> list[int]:
    configure(services, installed.id, policy={"human_seconds": 120})
    lead_ids = [
        new_lead(emulator, services, worker, f"Запись на маникюр №{number}")
        for number in range(count)
    ]
    for lead_id in lead_ids:
        age_lead(services, lead_id, minutes=3)
    return lead_ids


def _statuses(services) -> list[str]:
    with services.db.session() as session:
        return sorted(session.scalars(select(Escalation.status)).all())


def test_lapses_share_one_batch_call(
    emulator, installed, services, worker, batch_calls
):
    lead_ids = _lapsed_leads(emulator, services, worker, installed, 5)
    batch_calls.clear()

    counts = escalation.sweep(services)

    sends = [keys for keys in batch_calls if any(k.startswith("task") for k in keys)]
    assert counts["sent"] == 10
    assert len(sends) == 1
    # Five tasks with their senior notices and five warnings.
    assert len(sends[0]) == 15
    assert [len(tasks_for(emulator, lead_id)) for lead_id in lead_ids] == [1] * 5


def test_large_burst_splits_at_fifty_commands(
    emulator, installed, services, worker, batch_calls
):
    _lapsed_leads(emulator, services, worker, installed, 18)
    batch_calls.clear()

    counts = escalation.sweep(services)

    sends = [keys for keys in batch_calls if any(k.startswith("task") for k in keys)]
    assert counts["sent"] == 36
    # 18 tasks take 36 commands and 18 warnings one each: 54 in two calls.
    assert [len(keys) for keys in sends] == [50, 4]
    assert _statuses(services) == ["sent"] * 36


def test_rejected_task_stops_batch_then_retried(emulator, installed, services, worker):
    lead_ids = _lapsed_leads(emulator, services, worker, installed, 3)
    emulator.portal.set_fault("tasks.task.add", "ERROR_CORE")

    first = escalation.sweep(services)
    failed = _statuses(services).count("failed")
    for minutes in (1, 2, 3):
        escalation.sweep(services, now=now() + timedelta(minutes=minutes))

    assert first["failed"] >= 1
    assert failed == first["failed"]
    assert [len(tasks_for(emulator, lead_id)) for lead_id in lead_ids] == [1] * 3
    assert [len(notices_about(emulator, i, MANAGER)) for i in lead_ids] == [1] * 3
    # The owner's level (at twice the target) also fires during the retries.
    assert set(_statuses(services)) == {"sent"}

"""The escalation ladder: one task per lead and level, whatever races it."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from b24app.models import Escalation, SlaClock
from b24app.sla import escalation
from tests.helpers import drain, lead_row
from tests.sla.support import (
    ADMINISTRATOR,
    ALWAYS_OPEN,
    HEAD_OF_SALES,
    MANAGER,
    OWNER,
    age_lead,
    configure,
    escalations,
    human_clock,
    new_lead,
    notices_about,
    now,
    tasks_for,
)


def _lapsed_lead(emulator, services, worker, installed, text="Хочу на стрижку"):
    """A lead whose two-minute target passed a minute ago."""
    configure(services, installed.id, policy={"human_seconds": 120})
    lead_id = new_lead(emulator, services, worker, text)
    age_lead(services, lead_id, minutes=3)
    return lead_id


def _task_row(services, lead_id) -> Escalation:
    return next(e for e in escalations(services, lead_id) if e.action == "task_senior")


def test_escalation_breach_creates_one_task_for_head(
    emulator, installed, services, worker
):
    lead_id = _lapsed_lead(emulator, services, worker, installed)

    first = escalation.sweep(services)
    second = escalation.sweep(services, now=now() + timedelta(seconds=20))

    tasks = tasks_for(emulator, lead_id)
    assert len(tasks) == 1
    assert int(tasks[0]["RESPONSIBLE_ID"]) == HEAD_OF_SALES
    assert first["claimed"] == 2  # warning and task; the owner's level is later
    assert second["claimed"] == 0


def test_escalation_head_of_own_department_goes_up(
    emulator, installed, services, worker
):
    configure(services, installed.id, policy={"human_seconds": 120})
    lead_id = new_lead(emulator, services, worker, ASSIGNED_BY_ID=HEAD_OF_SALES)
    age_lead(services, lead_id, minutes=3)

    escalation.sweep(services)

    assert int(tasks_for(emulator, lead_id)[0]["RESPONSIBLE_ID"]) == OWNER


def test_escalation_configured_senior_gets_task(emulator, installed, services, worker):
    configure(
        services,
        installed.id,
        policy={"human_seconds": 120},
        senior_user_id=ADMINISTRATOR,
    )
    lead_id = new_lead(emulator, services, worker)
    age_lead(services, lead_id, minutes=3)

    escalation.sweep(services)

    assert int(tasks_for(emulator, lead_id)[0]["RESPONSIBLE_ID"]) == ADMINISTRATOR


def test_escalation_task_says_what_and_how_late(emulator, installed, services, worker):
    lead_id = _lapsed_lead(emulator, services, worker, installed)

    escalation.sweep(services)

    task = tasks_for(emulator, lead_id)[0]
    assert task["TITLE"].startswith(f"Нет ответа клиенту: лид #{lead_id}")
    assert f"/crm/lead/details/{lead_id}/" in task["DESCRIPTION"]
    assert "Запрос клиента: Запись" in task["DESCRIPTION"]
    assert "срок истёк 1 мин назад" in task["DESCRIPTION"]
    assert task["DEADLINE"]
    assert str(MANAGER) in task["AUDITORS"]


def test_escalation_warns_manager_and_notifies_head(
    emulator, installed, services, worker
):
    lead_id = _lapsed_lead(emulator, services, worker, installed)

    escalation.sweep(services)

    assert len(notices_about(emulator, lead_id, MANAGER)) == 1
    assert len(notices_about(emulator, lead_id, HEAD_OF_SALES)) == 1


def test_escalation_owner_waits_for_its_level(emulator, installed, services, worker):
    lead_id = _lapsed_lead(emulator, services, worker, installed)

    escalation.sweep(services)

    assert notices_about(emulator, lead_id, OWNER) == []


def test_escalation_owner_notified_at_later_level(
    emulator, installed, services, worker
):
    lead_id = _lapsed_lead(emulator, services, worker, installed)
    escalation.sweep(services)

    escalation.sweep(services, now=now() + timedelta(minutes=2))

    assert len(notices_about(emulator, lead_id, OWNER)) == 1
    assert sorted(e.level for e in escalations(services, lead_id)) == [
        "owner",
        "task",
        "warn",
    ]


def test_escalation_answer_completes_task(emulator, installed, services, worker):
    lead_id = _lapsed_lead(emulator, services, worker, installed)
    escalation.sweep(services)

    emulator.portal.add_activity(
        lead_id, type_id=2, direction=2, author_id=MANAGER, subject="Перезвонили"
    )
    drain(worker, services, until=lambda: lead_row(services, lead_id).first_touch_at)

    assert str(tasks_for(emulator, lead_id)[0]["STATUS"]) == "5"
    assert _task_row(services, lead_id).task_closed


def test_escalation_late_answer_leaves_clock_breached(
    emulator, installed, services, worker
):
    lead_id = _lapsed_lead(emulator, services, worker, installed)
    escalation.sweep(services)

    emulator.portal.add_activity(
        lead_id, type_id=2, direction=2, author_id=MANAGER, subject="Перезвонили"
    )
    drain(worker, services, until=lambda: lead_row(services, lead_id).first_touch_at)

    clock = human_clock(services, lead_id)
    assert clock.state == "breached"
    assert clock.stopped_at == lead_row(services, lead_id).first_touch_at


def test_escalation_answered_lead_is_not_escalated(
    emulator, installed, services, worker
):
    configure(services, installed.id)
    lead_id = new_lead(emulator, services, worker)
    emulator.portal.add_activity(
        lead_id, type_id=4, direction=2, author_id=MANAGER, subject="Ответ на заявку"
    )
    drain(worker, services, until=lambda: lead_row(services, lead_id).first_touch_at)

    counts = escalation.sweep(services, now=now() + timedelta(hours=1))

    assert counts["claimed"] == 0
    assert tasks_for(emulator, lead_id) == []


def test_escalation_failed_call_is_retried_once(emulator, installed, services, worker):
    lead_id = _lapsed_lead(emulator, services, worker, installed)
    emulator.portal.set_fault("tasks.task.add", "ERROR_CORE")

    escalation.sweep(services)
    failed = _task_row(services, lead_id).status
    escalation.sweep(services, now=now() + timedelta(minutes=1))
    escalation.sweep(services, now=now() + timedelta(minutes=2))

    assert failed == "failed"
    assert len(tasks_for(emulator, lead_id)) == 1
    assert _task_row(services, lead_id).status == "sent"


def test_escalation_crash_after_task_no_duplicate(
    emulator, installed, services, worker
):
    lead_id = _lapsed_lead(emulator, services, worker, installed)
    escalation.sweep(services)
    row = _task_row(services, lead_id)
    task_id = row.task_bitrix_id
    # A worker killed between the portal call and its record leaves this
    # behind: the task exists, the claim is still "claimed", its lease expired.
    with services.db.session() as session:
        session.execute(
            update(Escalation)
            .where(Escalation.id == row.id)
            .values(
                status="claimed",
                task_bitrix_id=None,
                sent_at=None,
                attempts=0,
                locked_until=now() - timedelta(seconds=1),
            )
        )

    counts = escalation.sweep(services)

    assert counts["retried"] == 1
    assert len(tasks_for(emulator, lead_id)) == 1
    assert _task_row(services, lead_id).task_bitrix_id == task_id


def test_escalation_crash_before_call_retried(emulator, installed, services, worker):
    lead_id = _lapsed_lead(emulator, services, worker, installed)
    clock = human_clock(services, lead_id)
    # A worker claims the levels and dies before calling the portal.
    escalation._advance(services, clock.id, now())

    soon = escalation.sweep(services)
    later = escalation.sweep(services, now=now() + escalation.CLAIM_LEASE)

    assert soon["retried"] == 0
    assert later["retried"] == 2
    assert len(tasks_for(emulator, lead_id)) == 1


def test_escalation_repeated_sweeps_notify_once(emulator, installed, services, worker):
    lead_id = _lapsed_lead(emulator, services, worker, installed)

    for minutes in range(4):
        escalation.sweep(services, now=now() + timedelta(minutes=minutes))

    assert len(notices_about(emulator, lead_id, MANAGER)) == 1


def test_escalation_threads_race_fire_once(emulator, installed, services, worker):
    lead_ids = [
        _lapsed_lead(emulator, services, worker, installed, f"Запись №{i}")
        for i in range(4)
    ]
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        escalation.sweep(services)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [len(tasks_for(emulator, lead_id)) for lead_id in lead_ids] == [1] * 4
    with services.db.session() as session:
        rows = session.scalars(select(Escalation)).all()
    assert len(rows) == 2 * len(lead_ids)


def _sweep_in_process(config: dict, start) -> None:
    """A worker process: build services, wait for the others, sweep."""
    from b24app.services import Services
    from b24app.worker import run_sweep

    services = Services(config)
    services.db.engine.connect().close()
    start.wait(timeout=60)
    for _ in range(3):
        run_sweep(services)
    services.close()


def test_escalation_worker_processes_race_fire_once(
    emulator, installed, services, worker
):
    lead_ids = [
        _lapsed_lead(emulator, services, worker, installed, f"Окошко {i}?")
        for i in range(6)
    ]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    processes = [
        context.Process(target=_sweep_in_process, args=(services.config, start))
        for _ in range(4)
    ]

    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert [len(tasks_for(emulator, lead_id)) for lead_id in lead_ids] == [1] * 6
    assert [len(notices_about(emulator, i, MANAGER)) for i in lead_ids] == [1] * 6
    with services.db.session() as session:
        statuses = session.scalars(select(Escalation.status)).all()
    assert statuses == ["sent"] * 12


def test_escalation_manual_spam_cancels_clock(emulator, installed, services, worker):
    lead_id = _lapsed_lead(emulator, services, worker, installed)
    with services.db.session() as session:
        clock = session.get(SlaClock, human_clock(services, lead_id).id)
        clock.lead.manual_tags = ["spam"]

    counts = escalation.sweep(services)

    assert counts["claimed"] == 0
    assert human_clock(services, lead_id).state == "cancelled"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "меньше минуты"),
        (11, "меньше минуты"),
        (59.9, "меньше минуты"),
        (60, "1 мин"),
        (119, "1 мин"),
        (59 * 60, "59 мин"),
        (60 * 60, "1 ч"),
        (95 * 60, "1 ч 35 мин"),
        (-5, "меньше минуты"),
    ],
)
def test_duration_text_rounds_down(seconds, text):
    assert escalation.duration_text(seconds, "ru") == text


def test_duration_text_in_english():
    assert escalation.duration_text(11, "en") == "less than a minute"
    assert escalation.duration_text(95 * 60, "en") == "1 h 35 min"


def _notice_parts():
    """A lead, its human clock and an always-open portal, without a database."""
    due_at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    portal = SimpleNamespace(
        domain="example.bitrix24.ru",
        member_id="m",
        settings={"calendar": ALWAYS_OPEN},
    )
    lead = SimpleNamespace(bitrix_id=7, title="Запись на стрижку")
    clock = SimpleNamespace(due_at=due_at, target_seconds=600, responsible_id=None)
    return lead, clock, portal


def test_senior_notice_right_at_target_no_zero():
    lead, clock, portal = _notice_parts()

    text = escalation._senior_text(portal, lead, clock, clock.due_at, "ru")

    assert "0 мин" not in text
    assert "истёк меньше минуты назад" in text


def test_warning_with_seconds_left_says_under_minute():
    lead, clock, portal = _notice_parts()

    text = escalation._warn_text(
        None, portal, lead, clock, clock.due_at - timedelta(seconds=11), "ru", False
    )

    assert "осталось меньше минуты" in text
    assert "1 мин" not in text

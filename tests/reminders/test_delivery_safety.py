"""At-most-once sending, worker crashes and Telegram flood control."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from b24app.reminders import admin, channels, config, consent, dispatch
from b24app.reminders.models import ReminderJob
from tests.reminders.conftest import generic_sms_settings
from tests.reminders.support import deliveries, jobs, new_appointment, use_channels

PHONE = "+79161234567"
CHAT = 777002


class WorkerKilled(BaseException):
    """Stands for the process dying: nothing in the dispatcher catches it."""


def _client(services, portal, deal_id, *, channels_order):
    key = f"deal:{deal_id}"
    consent.grant(services, portal.id, key, "sms", source="form", address=PHONE)
    consent.grant(
        services, portal.id, key, "telegram", source="telegram", address=str(CHAT)
    )
    use_channels(services, portal, channels_order)


def _expire_leases(services) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    with services.db.session() as session:
        session.execute(
            update(ReminderJob)
            .where(ReminderJob.status == "claimed")
            .values(locked_until=past)
        )


def _make_due(services) -> None:
    """Bring the confirmation forward to now, past any wait it was given."""
    with services.db.session() as session:
        session.execute(
            update(ReminderJob)
            .where(ReminderJob.status == "scheduled", ReminderJob.kind == "confirm")
            .values(due_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def _crash_after_accept(monkeypatch, name: str) -> None:
    """Let the provider take the message, then kill the worker before it records."""
    original = getattr(channels, name)

    def send_then_die(*args, **kwargs):
        original(*args, **kwargs)
        raise WorkerKilled

    monkeypatch.setattr(channels, name, send_then_die)


def _race(services, workers: int = 2) -> None:
    threads = [
        threading.Thread(target=dispatch.dispatch_due, args=(services,), kwargs={})
        for _ in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# Worker crashes


def test_crash_after_accept_sends_once(
    emulator, services, worker, sms, reminder_portal, monkeypatch
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["sms"])
    _crash_after_accept(monkeypatch, "send_sms")
    with pytest.raises(WorkerKilled):
        dispatch.dispatch_due(services)
    assert [d.status for d in deliveries(services)] == ["sending"]

    monkeypatch.undo()
    _expire_leases(services)
    _race(services)

    assert len(sms.sent) == 1
    assert [d.status for d in deliveries(services)] == ["unknown"]
    assert jobs(services, "confirm")[0].status == "unknown"


def test_unknown_delivery_explained(
    emulator, services, worker, sms, reminder_portal, monkeypatch
):
    deal_id, row = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["sms"])
    _crash_after_accept(monkeypatch, "send_sms")
    with pytest.raises(WorkerKilled):
        dispatch.dispatch_due(services)
    monkeypatch.undo()
    _expire_leases(services)
    dispatch.dispatch_due(services)

    listed = admin.appointment_list(services, reminder_portal.id)
    shown = [d for item in listed for d in item["deliveries"]]
    assert shown[0]["status"] == "unknown"
    assert "Исход неизвестен" in shown[0]["note"]
    assert "Outcome unknown" in shown[0]["note"]


def test_crash_telegram_no_fallback_to_sms(
    emulator, services, worker, sms, telegram, reminder_portal, monkeypatch
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["telegram", "sms"])
    _crash_after_accept(monkeypatch, "send_telegram")
    with pytest.raises(WorkerKilled):
        dispatch.dispatch_due(services)
    monkeypatch.undo()
    _expire_leases(services)
    _race(services)

    assert len(telegram.sent) == 1
    assert sms.sent == []


def test_idempotent_provider_resends_safely(
    emulator, services, worker, sms, reminder_portal, monkeypatch
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["sms"])
    settings = generic_sms_settings(services, sms)
    settings["idempotency_header"] = "Idempotency-Key"
    config.save(services, reminder_portal.id, {"sms": settings})
    _crash_after_accept(monkeypatch, "send_sms")
    with pytest.raises(WorkerKilled):
        dispatch.dispatch_due(services)
    monkeypatch.undo()
    _expire_leases(services)
    _race(services)

    assert len(sms.sent) == 1
    assert [d.status for d in deliveries(services)] == ["failed", "sent"]
    assert jobs(services, "confirm")[0].status == "sent"


def test_taken_over_claim_sends_nothing(
    emulator, services, worker, sms, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["sms"])
    job_id = jobs(services, "confirm")[0].id
    now = datetime.now(UTC)
    first = dispatch.claim(services, job_id, now)
    _expire_leases(services)
    second = dispatch.claim(services, job_id, now)

    late = dispatch.deliver(services, job_id, attempts=first.attempts)
    current = dispatch.deliver(services, job_id, attempts=second.attempts)

    assert (late, current) == ("lost", "sent")
    assert len(sms.sent) == 1


# Telegram answers


def test_flood_control_defers_without_fallback(
    emulator, services, worker, sms, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["telegram", "sms"])
    telegram.behaviour.set("flood", times=1, retry_after=40)
    before = datetime.now(UTC)
    dispatch.dispatch_due(services)

    job = jobs(services, "confirm")[0]
    assert job.status == "scheduled"
    assert job.attempts == 0
    assert before + timedelta(seconds=39) <= job.due_at
    assert job.due_at <= datetime.now(UTC) + timedelta(seconds=41)
    assert [(d.channel, d.status) for d in deliveries(services)] == [
        ("telegram", "deferred")
    ]
    assert sms.sent == []


def test_flood_control_blocks_calls_until_time(
    emulator, services, worker, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["telegram"])
    telegram.behaviour.set("flood", times=1, retry_after=40)
    dispatch.dispatch_due(services)
    calls = len(telegram.calls)

    _make_due(services)
    dispatch.dispatch_due(services)
    assert len(telegram.calls) == calls
    assert jobs(services, "confirm")[0].status == "scheduled"

    config.save(
        services,
        reminder_portal.id,
        {
            dispatch.TELEGRAM_PAUSE: {
                "bot": "123456",
                "until": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
            }
        },
    )
    _make_due(services)
    dispatch.dispatch_due(services)
    assert jobs(services, "confirm")[0].status == "sent"
    assert len(telegram.sent) == 1


def test_telegram_server_error_backs_off(
    emulator, services, worker, sms, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["telegram"])
    telegram.behaviour.set("error", times=1)
    before = datetime.now(UTC)
    dispatch.dispatch_due(services)

    job = jobs(services, "confirm")[0]
    assert job.status == "scheduled"
    assert job.due_at >= before + timedelta(minutes=2)
    assert [d.status for d in deliveries(services)] == ["failed"]


def test_telegram_gateway_html_retries(
    emulator, services, worker, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["telegram"])
    telegram.behaviour.set("gateway", times=1)
    dispatch.dispatch_due(services)
    _make_due(services)
    dispatch.dispatch_due(services)

    assert [d.status for d in deliveries(services)] == ["failed", "sent"]
    assert len(telegram.sent) == 1


def test_telegram_invalid_json_not_repeated(
    emulator, services, worker, sms, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["telegram", "sms"])
    telegram.behaviour.set("invalid", times=1)
    dispatch.dispatch_due(services)
    _make_due(services)
    dispatch.dispatch_due(services)

    assert [d.status for d in deliveries(services)] == ["unknown"]
    assert sms.sent == []


def test_telegram_read_timeout_not_repeated(
    emulator, services, worker, sms, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _client(services, reminder_portal, deal_id, channels_order=["telegram", "sms"])
    telegram.behaviour.set("slow", times=1, delay=1.5)
    dispatch.dispatch_due(services)
    time.sleep(1.0)

    assert [d.status for d in deliveries(services)] == ["unknown"]
    assert len(telegram.sent) == 1
    assert sms.sent == []

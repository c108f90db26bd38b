"""Deal appointments, open-line reminders and chat replies, over loopback HTTP."""

from __future__ import annotations

from sqlalchemy import select

from b24app.reminders import config, consent, dispatch
from b24app.reminders.models import Appointment, ReminderJob, Reply
from tests.helpers import drain
from tests.reminders.conftest import add_appointment_deal


def _appointment(services, deal_id: int) -> Appointment | None:
    with services.db.session() as session:
        return session.scalar(
            select(Appointment).where(
                Appointment.source == "deal", Appointment.source_id == deal_id
            )
        )


def _setup(emulator, services, worker, portal, *, consent_given: bool = True):
    deal_id = add_appointment_deal(emulator)
    chat_id = emulator.portal.open_crm_chat("deal", deal_id)
    if consent_given:
        consent.grant(services, portal.id, f"deal:{deal_id}", "openline", source="form")
    drain(worker, services, until=lambda: _appointment(services, deal_id))
    return deal_id, chat_id


def test_install_registers_chat_bot(reminder_portal):
    assert config.settings(reminder_portal).get("bot_id")


def test_deal_appointment_plans_messages(emulator, services, worker, reminder_portal):
    deal_id, _ = _setup(emulator, services, worker, reminder_portal)
    row = _appointment(services, deal_id)
    with services.db.session() as session:
        kinds = sorted(
            session.scalars(
                select(ReminderJob.kind).where(ReminderJob.appointment_id == row.id)
            )
        )
    assert kinds == ["confirm", "remind"]


def test_reminder_reaches_client_chat(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _setup(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    texts = [m["TEXT"] for m in emulator.portal.messages_to_client(chat_id)]
    assert any("Ответьте 1" in text for text in texts)


def test_no_consent_no_message(emulator, services, worker, reminder_portal):
    _, chat_id = _setup(
        emulator, services, worker, reminder_portal, consent_given=False
    )
    dispatch.dispatch_due(services)
    assert emulator.portal.messages_to_client(chat_id) == []


def test_second_dispatch_sends_nothing(emulator, services, worker, reminder_portal):
    _, chat_id = _setup(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    dispatch.dispatch_due(services)
    assert len(emulator.portal.messages_to_client(chat_id)) == 1


def test_chat_confirm_moves_deal(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _setup(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    emulator.portal.client_reply(chat_id, "1")
    drain(
        worker,
        services,
        until=lambda: _appointment(services, deal_id).status == "confirmed",
    )
    assert emulator.portal.deals[deal_id]["STAGE_ID"] == "C1:PREPARATION"


def test_chat_cancel_notifies_responsible(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _setup(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    emulator.portal.client_reply(chat_id, "Не смогу прийти, отмените запись")
    drain(
        worker,
        services,
        until=lambda: _appointment(services, deal_id).status == "cancelled",
    )
    notified = [n["USER_ID"] for n in emulator.portal.notifications.values()]
    assert "3" in notified


def test_unclear_answer_goes_to_person(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _setup(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    emulator.portal.client_reply(chat_id, "А парковка у вас есть?")
    drain(worker, services, until=lambda: _replies(services))
    assert _replies(services)[0].needs_person


def test_unclear_answer_keeps_stage(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _setup(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    emulator.portal.client_reply(chat_id, "А парковка у вас есть?")
    drain(worker, services, until=lambda: _replies(services))
    assert emulator.portal.deals[deal_id]["STAGE_ID"] == "C1:NEW"


def test_stop_word_revokes_consent(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _setup(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    emulator.portal.client_reply(chat_id, "стоп")
    drain(worker, services, until=lambda: _replies(services))
    allowed = consent.allowed_channels(services, reminder_portal.id, f"deal:{deal_id}")
    assert allowed == {}


def test_moved_deal_reschedules(emulator, services, worker, reminder_portal):
    deal_id, _ = _setup(emulator, services, worker, reminder_portal)
    before = _appointment(services, deal_id).starts_at
    later = before.replace(microsecond=0) + __import__("datetime").timedelta(days=2)
    emulator.portal.change_deal(
        deal_id, {"UF_CRM_APPOINTMENT_AT": later.isoformat()}, actor_id=3
    )
    drain(
        worker,
        services,
        until=lambda: _appointment(services, deal_id).starts_at == later,
    )
    with services.db.session() as session:
        live = session.scalars(
            select(ReminderJob.for_starts_at).where(ReminderJob.status == "scheduled")
        ).all()
    assert set(live) == {later}


def test_cancelled_deal_cancels_messages(emulator, services, worker, reminder_portal):
    deal_id, _ = _setup(emulator, services, worker, reminder_portal)
    emulator.portal.move_deal(deal_id, "C1:APOLOGY", actor_id=3)
    drain(
        worker,
        services,
        until=lambda: _appointment(services, deal_id).status == "cancelled",
    )
    with services.db.session() as session:
        live = session.scalars(
            select(ReminderJob.id).where(ReminderJob.status == "scheduled")
        ).all()
    assert live == []


def _replies(services) -> list[Reply]:
    with services.db.session() as session:
        return list(session.scalars(select(Reply)))


def test_reconcile_restores_missed_deal(emulator, services, worker, reminder_portal):
    from b24app.reminders import appointments

    deal_id, _ = _setup(emulator, services, worker, reminder_portal)
    with services.db.session() as session:
        session.execute(Appointment.__table__.delete())
    appointments.reconcile_portal(services, reminder_portal)
    assert _appointment(services, deal_id).status == "booked"

"""Booking module appointments: events, free slots, moves and cancellations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from b24app.emulator import crm as emulator_crm
from b24app.emulator.events import AUTOMATION
from b24app.reminders import appointments, consent, dispatch
from b24app.reminders.models import Appointment
from tests.helpers import drain


def _booking_row(services, booking_id: int) -> Appointment | None:
    with services.db.session() as session:
        return session.scalar(
            select(Appointment).where(
                Appointment.source == "booking", Appointment.source_id == booking_id
            )
        )


def _book(emulator, services, worker, portal, hours: float = 5.0):
    portal_emu = emulator.portal
    resource_id = portal_emu.add_booking_resource("Мастер Анна")
    deal_id = emulator_crm.add_deal(
        portal_emu,
        {"TITLE": "Маникюр — Юлия", "CATEGORY_ID": 1, "ASSIGNED_BY_ID": 4},
        AUTOMATION,
    )
    start = (datetime.now(UTC) + timedelta(hours=hours)).replace(
        minute=0, second=0, microsecond=0
    )
    booking_id = portal_emu.create_booking(
        [resource_id],
        start,
        start + timedelta(hours=1),
        name="Маникюр",
        deal_id=deal_id,
    )
    chat_id = portal_emu.open_crm_chat("deal", deal_id)
    consent.grant(services, portal.id, f"deal:{deal_id}", "openline", source="chat")
    drain(worker, services, until=lambda: _booking_row(services, booking_id))
    return booking_id, deal_id, chat_id, start


def test_booking_event_creates_appointment(emulator, services, worker, reminder_portal):
    booking_id, deal_id, _, start = _book(emulator, services, worker, reminder_portal)
    row = _booking_row(services, booking_id)
    assert (row.deal_id, row.starts_at) == (deal_id, start)


def test_booking_moved_by_portal_reschedules(
    emulator, services, worker, reminder_portal
):
    booking_id, _, _, start = _book(emulator, services, worker, reminder_portal)
    later = start + timedelta(days=1)
    emulator.portal.move_booking(booking_id, later, later + timedelta(hours=1))
    drain(
        worker,
        services,
        until=lambda: _booking_row(services, booking_id).starts_at == later,
    )
    assert _booking_row(services, booking_id).status == "booked"


def test_booking_deleted_cancels(emulator, services, worker, reminder_portal):
    booking_id, _, _, _ = _book(emulator, services, worker, reminder_portal)
    emulator.portal.delete_booking(booking_id)
    drain(
        worker,
        services,
        until=lambda: _booking_row(services, booking_id).status == "cancelled",
    )
    assert _booking_row(services, booking_id).cancelled_at is not None


def test_reschedule_offers_free_slots(emulator, services, worker, reminder_portal):
    booking_id, _, chat_id, _ = _book(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    emulator.portal.client_reply(chat_id, "2")
    drain(worker, services, until=lambda: _booking_row(services, booking_id).offer)
    last = emulator.portal.messages_to_client(chat_id)[-1]["TEXT"]
    assert last.startswith("Свободное время: 1)")


def test_chosen_slot_moves_booking(emulator, services, worker, reminder_portal):
    booking_id, _, chat_id, _ = _book(emulator, services, worker, reminder_portal)
    dispatch.dispatch_due(services)
    emulator.portal.client_reply(chat_id, "2")
    drain(worker, services, until=lambda: _booking_row(services, booking_id).offer)
    first = _booking_row(services, booking_id).offer[0]
    emulator.portal.client_reply(chat_id, "1")
    drain(
        worker,
        services,
        until=lambda: _booking_row(services, booking_id).offer is None,
    )
    stored = emulator.portal.bookings[booking_id]["datePeriod"]["from"]["timestamp"]
    assert stored == first


def test_offered_slots_avoid_other_bookings(
    emulator, services, worker, reminder_portal
):
    booking_id, _, _, start = _book(emulator, services, worker, reminder_portal)
    row = _booking_row(services, booking_id)
    client = services.client(reminder_portal)
    slots = appointments_free(client, reminder_portal, row)
    assert start not in slots


def appointments_free(client, portal, row):
    from b24app.reminders.replies import free_slots

    return free_slots(client, portal, row)


def test_reconcile_finds_missed_booking(emulator, services, worker, reminder_portal):
    resource_id = emulator.portal.add_booking_resource("Кабинет 2")
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    emulator.portal.create_booking([resource_id], start, start + timedelta(hours=1))
    with services.db.session() as session:
        session.execute(Appointment.__table__.delete())
    appointments.reconcile_portal(services, reminder_portal)
    with services.db.session() as session:
        sources = session.scalars(select(Appointment.source)).all()
    assert "booking" in sources


def test_deal_stage_marks_booking_visit(emulator, services, worker, reminder_portal):
    booking_id, deal_id, _, _ = _book(emulator, services, worker, reminder_portal)
    emulator.portal.move_deal(deal_id, "C1:LOSE", actor_id=4)
    drain(
        worker,
        services,
        until=lambda: _booking_row(services, booking_id).status == "no_show",
    )
    assert _booking_row(services, booking_id).outcome_at is not None


def test_telegram_slot_button_moves_booking(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    from tests.reminders.support import use_channels, webhook_secret

    booking_id, deal_id, _, _ = _book(emulator, services, worker, reminder_portal)
    consent.grant(
        services,
        reminder_portal.id,
        f"deal:{deal_id}",
        "telegram",
        source="telegram",
        address="555",
    )
    use_channels(services, reminder_portal, ["telegram"])
    dispatch.dispatch_due(services)
    url = f"{app_server.url}/bot/telegram/{reminder_portal.id}"
    secret = webhook_secret(services, reminder_portal.id)
    row = _booking_row(services, booking_id)
    telegram.user_presses(url, secret, 555, f"a:{row.id}:reschedule")
    drain(worker, services, until=lambda: _booking_row(services, booking_id).offer)
    first = _booking_row(services, booking_id).offer[0]
    slot = telegram.buttons(telegram.sent[-1])[0]["callback_data"]
    telegram.user_presses(url, secret, 555, slot)
    drain(
        worker,
        services,
        until=lambda: _booking_row(services, booking_id).offer is None,
    )
    stored = emulator.portal.bookings[booking_id]["datePeriod"]["from"]["timestamp"]
    assert stored == first


def _kpi_appointment_at(services, deal_id: int):
    from b24app.kpi.models import KpiDeal

    with services.db.session() as session:
        return session.scalar(
            select(KpiDeal.appointment_at).where(KpiDeal.bitrix_id == deal_id)
        )


def test_booking_time_is_kpi_appointment_time(
    emulator, services, worker, reminder_portal
):
    from b24app.kpi import settings as kpi_settings

    cfg = kpi_settings.load(services, reminder_portal)
    kpi_settings.save(
        services,
        reminder_portal,
        mapping={**cfg.mapping, "appointment_field": "booking"},
    )
    booking_id, deal_id, _, start = _book(emulator, services, worker, reminder_portal)
    drain(
        worker,
        services,
        until=lambda: _kpi_appointment_at(services, deal_id) == start,
    )

    later = start + timedelta(days=1)
    emulator.portal.move_booking(booking_id, later, later + timedelta(hours=1))
    drain(
        worker,
        services,
        until=lambda: _kpi_appointment_at(services, deal_id) == later,
    )

    assert _kpi_appointment_at(services, deal_id) == later

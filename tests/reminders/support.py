"""Helpers of the reminder integration tests."""

from __future__ import annotations

from sqlalchemy import select

from b24app.reminders import config
from b24app.reminders.models import Appointment, Delivery, ReminderJob
from tests.helpers import drain
from tests.reminders.conftest import add_appointment_deal


def appointment(services, deal_id: int) -> Appointment | None:
    with services.db.session() as session:
        return session.scalar(
            select(Appointment).where(
                Appointment.source == "deal", Appointment.source_id == deal_id
            )
        )


def new_appointment(emulator, services, worker, **kwargs) -> tuple[int, Appointment]:
    deal_id = add_appointment_deal(emulator, **kwargs)
    drain(worker, services, until=lambda: appointment(services, deal_id))
    return deal_id, appointment(services, deal_id)


def deliveries(services) -> list[Delivery]:
    with services.db.session() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def jobs(services, kind: str | None = None) -> list[ReminderJob]:
    with services.db.session() as session:
        query = select(ReminderJob).order_by(ReminderJob.id)
        if kind:
            query = query.where(ReminderJob.kind == kind)
        return list(session.scalars(query))


def use_channels(services, portal, order: list[str], **extra) -> None:
    config.save(services, portal.id, {"channels": order, **extra})


def webhook_secret(services, portal_id: int) -> str:
    from b24app.models import Portal

    with services.db.session() as session:
        return config.settings(session.get(Portal, portal_id))["webhook_secret"]


def sms_auth(services, portal_id: int) -> tuple[str, str]:
    """Return the Basic credentials of the portal's SMS callback URLs."""
    from b24app.reminders import webhooks

    return webhooks.BASIC_USER, config.ensure_sms_secret(services, portal_id)

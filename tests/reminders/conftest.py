"""Fixtures of the reminder tests: fake providers and a configured portal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from b24app.emulator import crm as emulator_crm
from b24app.emulator.events import AUTOMATION
from b24app.models import Portal
from b24app.reminders import config
from tests.reminders.fakes import (
    GENERIC_TOKEN,
    SMSRU_KEY,
    TELEGRAM_TOKEN,
    FakeSms,
    FakeTelegram,
)


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    server = FakeTelegram()
    yield server
    server.stop()


@pytest.fixture
def sms() -> Iterator[FakeSms]:
    server = FakeSms()
    yield server
    server.stop()


@pytest.fixture
def smtp_server():
    """An SMTP server on loopback that keeps the messages it gets."""
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    class Keep:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.messages.append(envelope)
            return "250 OK"

    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def reminder_portal(installed, services, telegram, sms) -> Portal:
    """The installed portal with providers on loopback and no quiet hours."""
    config.save(
        services,
        installed.id,
        {
            "quiet_hours": {"start": "00:00", "end": "00:00"},
            "address": "ул. Ленина, 10",
            "telegram": {
                "api_url": telegram.url,
                "token_enc": services.box.encrypt(TELEGRAM_TOKEN),
                "timeout": 1.0,
            },
            "sms": {
                "provider": "smsru",
                "url": sms.url,
                "api_key_enc": services.box.encrypt(SMSRU_KEY),
                "timeout": 1.0,
            },
        },
    )
    with services.db.session() as session:
        return session.scalar(select(Portal).where(Portal.id == installed.id))


def generic_sms_settings(services, sms: FakeSms) -> dict:
    return {
        "provider": "generic",
        "url": f"{sms.url}/generic/send",
        "api_key_enc": services.box.encrypt(GENERIC_TOKEN),
        "phone_field": "phone",
        "text_field": "message",
        "id_path": "data.id",
        "timeout": 1.0,
    }


def add_appointment_deal(
    emulator,
    *,
    hours_ahead: float = 3.0,
    stage: str = "C1:NEW",
    title: str = "Стрижка и укладка — Мария Иванова",
    contact_id: int | None = None,
) -> int:
    """A deal in the bookings pipeline with an appointment time."""
    starts = datetime.now(UTC) + timedelta(hours=hours_ahead)
    fields = {
        "TITLE": title,
        "CATEGORY_ID": 1,
        "STAGE_ID": stage,
        "ASSIGNED_BY_ID": 3,
        "UF_CRM_APPOINTMENT_AT": starts.replace(microsecond=0).isoformat(),
    }
    if contact_id:
        fields["CONTACT_ID"] = contact_id
    return emulator_crm.add_deal(emulator.portal, fields, AUTOMATION)

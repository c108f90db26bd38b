"""The app reads chat bindings with imopenlines.dialog.get when the event has none.

A client writes into an open-line chat bound to a booking deal before any
reminder went there, and the ONIMBOTMESSAGEADD event carries no
CHAT_ENTITY_DATA_2. The app then requests the chat from the portal over HTTP and
finds the deal's client from ``entity_data_2``.
"""

from __future__ import annotations

from sqlalchemy import select

from b24app.emulator.methods import openlines
from b24app.models import InboundEvent
from b24app.reminders import consent
from b24app.reminders.models import Consent
from tests.helpers import drain
from tests.reminders import conftest as reminder_fixtures
from tests.reminders.support import new_appointment

# The reminder fixtures: a configured portal with fake Telegram and SMS servers.
telegram = reminder_fixtures.telegram
sms = reminder_fixtures.sms
reminder_portal = reminder_fixtures.reminder_portal


def _chat_events(services) -> list[InboundEvent]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(InboundEvent)
                .where(InboundEvent.event == "ONIMBOTMESSAGEADD")
                .order_by(InboundEvent.id)
            )
        )


def _say_without_bindings(emulator, services, worker, chat_id: int, text: str):
    before = len(_chat_events(services))
    emulator.portal.client_reply(chat_id, text, with_entity_data=False)
    drain(worker, services, until=lambda: len(_chat_events(services)) > before)
    return _chat_events(services)[-1]


def _bot_texts(emulator, chat_id: int) -> list[str]:
    return [m["TEXT"] for m in emulator.portal.messages_to_client(chat_id)]


def _consent_row(services, portal_id: int, key: str) -> Consent | None:
    with services.db.session() as session:
        return session.scalar(
            select(Consent).where(
                Consent.portal_id == portal_id,
                Consent.contact_key == key,
                Consent.channel == "openline",
            )
        )


def _unbound_event_chat(emulator, services, worker) -> tuple[int, int]:
    deal_id, _ = new_appointment(emulator, services, worker)
    chat_id = openlines.open_crm_chat(
        emulator.portal, "deal", deal_id, with_line_bots=True
    )
    return deal_id, chat_id


def test_event_without_bindings_has_no_entity_data(
    emulator, services, worker, reminder_portal
):
    _, chat_id = _unbound_event_chat(emulator, services, worker)

    event = _say_without_bindings(emulator, services, worker, chat_id, "Добрый день")

    params = event.payload["data"]["PARAMS"]
    assert params["CHAT_ID"] == str(chat_id)
    assert not params.get("CHAT_ENTITY_DATA_2")


def test_dialog_fallback_finds_deal_client(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _unbound_event_chat(emulator, services, worker)

    event = _say_without_bindings(emulator, services, worker, chat_id, "Добрый день")

    assert event.outcome == "chat consent asked"
    assert _bot_texts(emulator, chat_id) == [consent.CHAT_QUESTION]
    row = _consent_row(services, reminder_portal.id, f"deal:{deal_id}")
    assert row is not None
    assert row.status == "asked"


def test_dialog_fallback_consent_granted(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _unbound_event_chat(emulator, services, worker)
    _say_without_bindings(emulator, services, worker, chat_id, "Добрый день")

    event = _say_without_bindings(emulator, services, worker, chat_id, "Да")

    assert event.outcome == "chat consent granted"
    row = _consent_row(services, reminder_portal.id, f"deal:{deal_id}")
    assert (row.status, row.source) == ("granted", "chat")


def test_dialog_error_leaves_chat_unbound(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _unbound_event_chat(emulator, services, worker)
    emulator.portal.set_fault("imopenlines.dialog.get", "ACCESS_ERROR")

    event = _say_without_bindings(emulator, services, worker, chat_id, "Добрый день")

    assert consent.CHAT_QUESTION not in _bot_texts(emulator, chat_id)
    assert _consent_row(services, reminder_portal.id, f"deal:{deal_id}") is None
    assert event.status == "done"

"""Telegram: consent by deep link, reminders with buttons, replies by button."""

from __future__ import annotations

from b24app.reminders import consent, dispatch
from tests.helpers import drain
from tests.reminders.support import (
    appointment,
    deliveries,
    new_appointment,
    use_channels,
    webhook_secret,
)

CHAT = 777001


def _subscribe(app_server, services, worker, telegram, portal, deal_id):
    url = f"{app_server.url}/bot/telegram/{portal.id}"
    secret = webhook_secret(services, portal.id)
    code = consent.link_code(services, portal.id, f"deal:{deal_id}")
    telegram.user_writes(url, secret, CHAT, f"/start {code}")
    drain(
        worker,
        services,
        until=lambda: consent.allowed_channels(services, portal.id, f"deal:{deal_id}"),
    )
    return url, secret


def test_deep_link_grants_consent(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _subscribe(app_server, services, worker, telegram, reminder_portal, deal_id)
    allowed = consent.allowed_channels(services, reminder_portal.id, f"deal:{deal_id}")
    assert allowed == {"telegram": str(CHAT)}


def test_reminder_has_buttons(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _subscribe(app_server, services, worker, telegram, reminder_portal, deal_id)
    dispatch.dispatch_due(services)
    labels = [b["text"] for b in telegram.buttons(telegram.sent[-1])]
    assert labels == ["Приду", "Перенести", "Отменить"]


def test_button_confirms(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, row = new_appointment(emulator, services, worker)
    url, secret = _subscribe(
        app_server, services, worker, telegram, reminder_portal, deal_id
    )
    dispatch.dispatch_due(services)
    confirm = telegram.buttons(telegram.sent[-1])[0]["callback_data"]
    telegram.user_presses(url, secret, CHAT, confirm)
    drain(worker, services, until=lambda: appointment(services, deal_id).confirmed_at)
    assert emulator.portal.deals[deal_id]["STAGE_ID"] == "C1:PREPARATION"


def test_button_is_acknowledged(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, row = new_appointment(emulator, services, worker)
    url, secret = _subscribe(
        app_server, services, worker, telegram, reminder_portal, deal_id
    )
    dispatch.dispatch_due(services)
    telegram.user_presses(url, secret, CHAT, f"a:{row.id}:confirm")
    drain(worker, services, until=lambda: telegram.answered)
    assert len(telegram.answered) == 1


def test_button_of_other_chat_ignored(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, row = new_appointment(emulator, services, worker)
    url, secret = _subscribe(
        app_server, services, worker, telegram, reminder_portal, deal_id
    )
    telegram.user_presses(url, secret, 999999, f"a:{row.id}:cancel")
    drain(worker, services)
    assert appointment(services, deal_id).status == "booked"


def test_webhook_wrong_secret_rejected(app_server, telegram, reminder_portal):
    url = f"{app_server.url}/bot/telegram/{reminder_portal.id}"
    response = telegram.user_writes(url, "wrong", CHAT, "1")
    assert response.status_code == 401


def test_telegram_error_retries_later(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _subscribe(app_server, services, worker, telegram, reminder_portal, deal_id)
    use_channels(services, reminder_portal, ["telegram"])
    telegram.behaviour.set("error", times=5)
    dispatch.dispatch_due(services)
    assert [d.status for d in deliveries(services)] == ["failed"]


def test_telegram_invalid_answer_recorded(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _subscribe(app_server, services, worker, telegram, reminder_portal, deal_id)
    telegram.behaviour.set("invalid", times=5)
    dispatch.dispatch_due(services)
    assert "invalid response" in deliveries(services)[0].error


def test_blocked_bot_falls_back_to_sms(
    emulator, app_server, services, worker, telegram, sms, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _subscribe(app_server, services, worker, telegram, reminder_portal, deal_id)
    consent.grant(
        services,
        reminder_portal.id,
        f"deal:{deal_id}",
        "sms",
        source="form",
        address="+7 916 123-45-67",
    )
    use_channels(services, reminder_portal, ["telegram", "sms"])
    telegram.behaviour.set("reject", times=5)
    dispatch.dispatch_due(services)
    assert [(d.channel, d.status) for d in deliveries(services)] == [
        ("telegram", "failed"),
        ("sms", "sent"),
    ]

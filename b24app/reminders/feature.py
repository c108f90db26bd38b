"""Hooks of the reminders feature: events, periodic jobs and the install step.

Client replies arrive at ``handlers/bot.py`` (chat-bot events, Telegram
updates, SMS replies), are stored as inbound events there and handled here
by the worker, like portal events, so a failed call is retried.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import select

from b24app import features
from b24app.bitrix.client import PortalClient
from b24app.bitrix.errors import BitrixCallError
from b24app.features import JobSpec
from b24app.models import InboundEvent, Portal
from b24app.reminders import appointments, channels, config, consent, dispatch, replies
from b24app.services import Services

logger = logging.getLogger(__name__)

BOT_CODE = "otklik_reminders"
TELEGRAM_EVENT = "OTKLIKTELEGRAMUPDATE"
SMS_EVENT = "OTKLIKSMSREPLY"


# Portal events


@features.on_event("ONCRMDEALADD")
@features.on_event("ONCRMDEALUPDATE")
def on_deal(services, client, portal, deal_id: int, event: InboundEvent) -> str:
    return appointments.sync_deal(services, client, portal, deal_id)


@features.on_event("ONCRMDEALDELETE")
def on_deal_delete(services, client, portal, deal_id: int, event) -> str:
    return appointments.close(services, portal, "deal", deal_id, "cancelled")


@features.on_event("ONBOOKINGADD")
@features.on_event("ONBOOKINGUPDATE")
def on_booking(services, client, portal, booking_id: int, event) -> str:
    return appointments.sync_booking(services, client, portal, booking_id)


@features.on_event("ONBOOKINGDELETE")
def on_booking_delete(services, client, portal, booking_id: int, event) -> str:
    return appointments.close(services, portal, "booking", booking_id, "cancelled")


# Client answers


@features.on_event("ONIMBOTMESSAGEADD")
def on_chat_message(
    services: Services,
    client: PortalClient,
    portal: Portal,
    message_id: int,
    event: InboundEvent,
) -> str:
    data = event.payload.get("data") or {}
    params = data.get("PARAMS") or {}
    bot_id = config.settings(portal).get("bot_id")
    if not data.get("FROM_CLIENT"):
        return "skipped: not from a client"
    chat_id = str(params.get("CHAT_ID") or "")
    dialog_id = str(params.get("DIALOG_ID") or f"chat{chat_id}")
    appointment_id = replies.appointment_by_ref(services, portal.id, f"chat:{chat_id}")

    def respond(text: str, _buttons: list[tuple[str, str]]) -> None:
        client.call(
            "imbot.message.add",
            {"BOT_ID": bot_id, "DIALOG_ID": dialog_id, "MESSAGE": text},
        )

    contact_key = None
    if appointment_id is not None:
        with services.db.session() as session:
            row = session.get(appointments.Appointment, appointment_id)
            contact_key = row.contact_key
    return replies.handle(
        services,
        portal,
        appointment_id,
        "openline",
        str(params.get("MESSAGE") or ""),
        respond,
        contact_key=contact_key,
    )


@features.on_event(TELEGRAM_EVENT)
def on_telegram(services, client, portal, update_id: int, event) -> str:
    update = (event.payload.get("data") or {}).get("update") or {}
    cfg = config.settings(portal).get("telegram") or {}
    callback = update.get("callback_query")
    if callback:
        return _telegram_button(services, portal, cfg, callback)
    message = update.get("message") or {}
    chat_id = str((message.get("chat") or {}).get("id") or "")
    text = str(message.get("text") or "")
    if not chat_id:
        return "skipped: no chat"

    def respond(reply: str, buttons: list[tuple[str, str]]) -> None:
        _telegram_send(services, cfg, chat_id, reply, buttons)

    if text.startswith("/start"):
        return _telegram_start(services, portal, chat_id, text, respond)
    found = consent.find_by_address(services, portal.id, "telegram", chat_id)
    if found is None:
        respond(
            "Чтобы получать напоминания, откройте ссылку из письма или SMS салона.", []
        )
        return "skipped: unknown chat"
    appointment_id = replies.appointment_by_ref(
        services, portal.id, f"tg:{chat_id}:"
    ) or replies.appointment_for_contact(services, portal.id, found.contact_key)
    return replies.handle(
        services,
        portal,
        appointment_id,
        "telegram",
        text,
        respond,
        contact_key=found.contact_key,
    )


def _telegram_start(services, portal, chat_id, text, respond) -> str:
    code = text.removeprefix("/start").strip()
    try:
        portal_id, contact_key = consent.read_link_code(services, code)
    except consent.ConsentError:
        respond("Ссылка устарела или повреждена. Попросите салон прислать новую.", [])
        return "telegram start: bad code"
    if portal_id != portal.id:
        return "telegram start: other portal"
    consent.grant(
        services, portal.id, contact_key, "telegram", source="telegram", address=chat_id
    )
    respond("Готово: напомним о записи здесь. Чтобы отписаться, напишите «стоп».", [])
    return "telegram consent granted"


def _telegram_button(services, portal, cfg, callback: dict[str, Any]) -> str:
    chat_id = str(((callback.get("message") or {}).get("chat") or {}).get("id") or "")
    kind, _, rest = str(callback.get("data") or "").partition(":")
    appointment_raw, _, choice = rest.partition(":")
    channels_ok = True
    try:
        channels.telegram_call(
            services,
            cfg,
            "answerCallbackQuery",
            {"callback_query_id": callback.get("id")},
        )
    except channels.DeliveryFailed:
        channels_ok = False
    if not appointment_raw.isdigit():
        return "skipped: bad button"
    with services.db.session() as session:
        row = session.get(appointments.Appointment, int(appointment_raw))
    found = consent.find_by_address(services, portal.id, "telegram", chat_id)
    if (
        row is None
        or row.portal_id != portal.id
        or found is None
        or (found.contact_key != row.contact_key)
    ):
        return "skipped: button of another client"
    intent = choice if kind == "a" else f"slot:{choice}"
    if intent not in ("confirm", "cancel", "reschedule") and not intent.startswith(
        "slot:"
    ):
        return "skipped: bad button"

    def respond(reply: str, buttons: list[tuple[str, str]]) -> None:
        _telegram_send(services, cfg, chat_id, reply, buttons)

    outcome = replies.act(
        services,
        portal,
        row,
        "telegram",
        intent,
        respond,
        contact_key=found.contact_key,
    )
    return outcome if channels_ok else outcome + " (button not acknowledged)"


def _telegram_send(services, cfg, chat_id, text, buttons) -> None:
    try:
        channels.send_telegram(
            services, cfg, chat_id, channels.Outgoing(text=text, buttons=buttons)
        )
    except channels.DeliveryFailed as err:
        logger.warning("telegram reply failed", extra={"error": str(err)})


@features.on_event(SMS_EVENT)
def on_sms(services, client, portal, reply_id: int, event) -> str:
    data = event.payload.get("data") or {}
    phone = str(data.get("from") or "")
    found = consent.find_by_address(services, portal.id, "sms", phone)
    if found is None:
        return "skipped: unknown number"
    cfg = config.settings(portal).get("sms") or {}

    def respond(text: str, _buttons: list[tuple[str, str]]) -> None:
        allowed = consent.allowed_channels(services, portal.id, found.contact_key)
        if "sms" not in allowed:
            return
        try:
            channels.send_sms(services, cfg, phone, channels.Outgoing(text=text))
        except channels.DeliveryFailed as err:
            logger.warning("sms reply failed", extra={"error": str(err)})

    appointment_id = replies.appointment_for_contact(
        services, portal.id, found.contact_key
    )
    return replies.handle(
        services,
        portal,
        appointment_id,
        "sms",
        str(data.get("text") or ""),
        respond,
        contact_key=found.contact_key,
    )


# Periodic jobs


def _dispatch_job(services: Services) -> int:
    return dispatch.dispatch_due(services)


def _marks_job(services: Services) -> int:
    return dispatch.request_marks(services)


def _reconcile_job(services: Services) -> int:
    with services.db.session() as session:
        portals = list(session.scalars(select(Portal).where(Portal.status == "active")))
    total = 0
    for portal in portals:
        try:
            total += appointments.reconcile_portal(services, portal)
        except BitrixCallError as err:
            logger.warning(
                "reminder reconciliation failed",
                extra={"member_id": portal.member_id, "error": err.code},
            )
    return total


features.periodic(
    JobSpec("reminders-dispatch", _dispatch_job, 30, "REMINDER_DISPATCH_SECONDS")
)
features.periodic(JobSpec("reminders-marks", _marks_job, 600))
features.periodic(
    JobSpec("reminders-reconcile", _reconcile_job, 900, "REMINDER_RECONCILE_SECONDS")
)


# Install


@features.install_step
def install(services: Services, portal: Portal, client: PortalClient) -> None:
    """Add the appointment-time deal field and register the chat bot."""
    scopes = set((portal.scope or "").split(","))
    data = config.settings(portal)
    changes: dict[str, Any] = {}
    if not data.get("webhook_secret"):
        changes["webhook_secret"] = secrets.token_urlsafe(24)
    try:
        _ensure_deal_field(client, portal)
    except BitrixCallError as err:
        logger.warning(
            "appointment field not created",
            extra={"member_id": portal.member_id, "error": err.code},
        )
    if "imbot" in scopes or not portal.scope:
        try:
            changes["bot_id"] = register_bot(services, client)
        except BitrixCallError as err:
            logger.warning(
                "chat bot not registered",
                extra={"member_id": portal.member_id, "error": err.code},
            )
    if changes:
        config.save(services, portal.id, changes)


def _ensure_deal_field(client: PortalClient, portal: Portal) -> None:
    name = config.funnel(portal).appointment_field
    if not name.startswith("UF_CRM_"):
        return
    existing = client.call("crm.deal.userfield.list", {"filter": {"FIELD_NAME": name}})
    if existing:
        return
    client.call(
        "crm.deal.userfield.add",
        {
            "fields": {
                "FIELD_NAME": name.removeprefix("UF_CRM_"),
                "USER_TYPE_ID": "datetime",
                "EDIT_FORM_LABEL": {"ru": "Время визита", "en": "Appointment time"},
                "LIST_COLUMN_LABEL": {"ru": "Время визита", "en": "Appointment time"},
            }
        },
    )


def register_bot(services: Services, client: PortalClient) -> int:
    """Register the app's open-line chat bot from the manifest's ``bot`` section."""
    bot = services.manifest.get("bot") or {}
    url = services.config["PUBLIC_URL"].rstrip("/") + bot.get("handler", "/bot/events")
    result = client.call(
        "imbot.register",
        {
            "CODE": bot.get("code", BOT_CODE),
            "TYPE": bot.get("type", "O"),
            "OPENLINE": bot.get("openline", "Y"),
            "EVENT_MESSAGE_ADD": url,
            "EVENT_WELCOME_MESSAGE": url,
            "EVENT_BOT_DELETE": url,
            "PROPERTIES": {
                "NAME": (bot.get("name") or {}).get("ru", "Отклик"),
                "WORK_POSITION": (bot.get("work_position") or {}).get(
                    "ru", "Напоминания о записи"
                ),
            },
        },
    )
    return int(result)

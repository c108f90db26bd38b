"""Hooks of the reminders feature: events, periodic jobs and the install step.

Client replies arrive at ``handlers/bot.py`` (chat-bot events, Telegram
updates, SMS replies), are stored as inbound events there and handled here
by the worker, like portal events, so a failed call is retried.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
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
_LINK_DAYS = consent.LINK_CODE_TTL.days
LINK_EXPIRED_REPLY = (
    f"Срок действия ссылки истёк: она работает {_LINK_DAYS} дней. "
    "Попросите салон прислать новую ссылку.\n"
    f"This link has expired (links work for {_LINK_DAYS} days). "
    "Please ask the salon for a new one."
)
LINK_INVALID_REPLY = (
    "Ссылка повреждена. Попросите салон прислать новую.\n"
    "This link is damaged. Please ask the salon for a new one."
)


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
    if not replies.start_once(services, event):
        return "skipped: message already handled"
    chat_id = str(params.get("CHAT_ID") or "")
    dialog_id = str(params.get("DIALOG_ID") or f"chat{chat_id}")
    text = str(params.get("MESSAGE") or "")
    extra = {
        "member_id": portal.member_id,
        "chat_id": chat_id,
        "message_id": message_id,
    }

    def respond(reply: str, _buttons: list[tuple[str, str]]) -> None:
        try:
            client.call(
                "imbot.message.add",
                {"BOT_ID": bot_id, "DIALOG_ID": dialog_id, "MESSAGE": reply},
            )
        except BitrixCallError as err:
            # The reply was acted on already, so a retry would act twice.
            logger.warning("chat response not sent", extra=extra | {"error": err.code})

    appointment_id = replies.appointment_by_ref(services, portal.id, f"chat:{chat_id}")
    contact_key = None
    if appointment_id is not None:
        with services.db.session() as session:
            row = session.get(appointments.Appointment, appointment_id)
            contact_key = row.contact_key
    else:
        bindings = chat_bindings(client, params)
        contact_key = _client_key(services, portal.id, bindings)
        if contact_key:
            appointment_id = replies.appointment_for_contact(
                services, portal.id, contact_key
            )

    if contact_key:
        asked = _chat_consent(services, portal, contact_key, text, respond)
        if asked:
            logger.info("chat consent step", extra=extra | {"outcome": asked})
            return asked
    return replies.handle(
        services,
        portal,
        appointment_id,
        "openline",
        text,
        respond,
        contact_key=contact_key,
    )


def chat_bindings(client: PortalClient, params: dict[str, Any]) -> dict[str, int]:
    """Return the CRM items an open-line chat is bound to, e.g. {"DEAL": 12}.

    ``CHAT_ENTITY_DATA_2`` of the event (``entity_data_2`` of
    ``imopenlines.dialog.get``) lists them as ``LEAD|0|COMPANY|0|CONTACT|5|DEAL|12``.
    """
    raw = str(params.get("CHAT_ENTITY_DATA_2") or "")
    if not raw and params.get("CHAT_ID"):
        try:
            dialog = client.call(
                "imopenlines.dialog.get", {"CHAT_ID": params["CHAT_ID"]}
            )
        except BitrixCallError as err:
            logger.info(
                "open-line dialog not read",
                extra={"member_id": client.member_id, "error": err.code},
            )
            dialog = None
        raw = str((dialog or {}).get("entity_data_2") or "")
    parts = raw.split("|")
    result = {}
    for kind, value in zip(parts[::2], parts[1::2], strict=False):
        if value.isdigit() and int(value) > 0:
            result[kind.upper()] = int(value)
    return result


def _client_key(
    services: Services, portal_id: int, bindings: dict[str, int]
) -> str | None:
    """Whom consent is kept for: the key of the bound appointment, else the binding."""
    with services.db.session() as session:
        for column, kind in (
            (appointments.Appointment.deal_id, "DEAL"),
            (appointments.Appointment.contact_id, "CONTACT"),
        ):
            if kind not in bindings:
                continue
            row = session.scalars(
                select(appointments.Appointment)
                .where(
                    appointments.Appointment.portal_id == portal_id,
                    column == bindings[kind],
                )
                .order_by(appointments.Appointment.starts_at.desc())
                .limit(1)
            ).first()
            if row is not None:
                return row.contact_key
    if "CONTACT" in bindings:
        return f"contact:{bindings['CONTACT']}"
    if "DEAL" in bindings:
        return f"deal:{bindings['DEAL']}"
    return None


def _chat_consent(
    services: Services,
    portal: Portal,
    contact_key: str,
    text: str,
    respond: replies.Respond,
) -> str | None:
    """Ask once for open-line consent or record the reply to the question.

    Returns the outcome, or None when the message goes on to reply handling.

    The question goes only to a client with no open-line consent row at all,
    so no client is asked twice and a client who opted out is never asked.
    """
    data = config.settings(portal)
    state = consent.chat_state(services, portal.id, contact_key)
    if state == "asked":
        answer = consent.chat_answer(text)
        if answer == "agree":
            consent.grant(services, portal.id, contact_key, "openline", source="chat")
            dispatch.revive_skipped(services, portal.id, contact_key)
            respond(
                "Спасибо! Будем напоминать о записи здесь. "
                "Чтобы отписаться, напишите «стоп».",
                [],
            )
            return "chat consent granted"
        if answer == "refuse":
            channels_off = None if consent.is_stop_word(text) else ("openline",)
            consent.revoke(
                services, portal.id, contact_key, channels_off, source="chat"
            )
            respond("Хорошо, напоминать сюда не будем.", [])
            return "chat consent refused"
        return None
    if state is not None or data.get("enabled") is False:
        return None
    if "openline" not in (data.get("channels") or config.CHANNELS):
        return None
    if consent.is_stop_word(text) or not consent.mark_asked(
        services, portal.id, contact_key
    ):
        return None
    respond(consent.CHAT_QUESTION, [])
    return "chat consent asked"


@features.on_event(TELEGRAM_EVENT)
def on_telegram(services, client, portal, update_id: int, event) -> str:
    if not replies.start_once(services, event):
        return "skipped: update already handled"
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
        _telegram_send(services, portal, cfg, chat_id, reply, buttons)

    if text.startswith("/start"):
        return _telegram_start(services, portal, chat_id, text, respond)
    found = consent.find_by_address(services, portal.id, "telegram", chat_id)
    if found is None:
        respond(
            "Чтобы получать напоминания, откройте ссылку из письма или SMS салона.", []
        )
        return "skipped: unknown chat"
    appointment_id = replies.appointment_by_ref(
        services, portal.id, f"tg:{chat_id}:", prefix=True
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
    except consent.LinkCodeExpired:
        respond(LINK_EXPIRED_REPLY, [])
        return "telegram start: expired code"
    except consent.ConsentError:
        respond(LINK_INVALID_REPLY, [])
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
    # Buttons are "a:<appointment>:<action>" and "s:<appointment>:<slot number>".
    actions = ("confirm", "cancel", "reschedule")
    if (
        not _small_number(appointment_raw)
        or (kind == "a" and choice not in actions)
        or (kind == "s" and not _small_number(choice))
        or kind not in ("a", "s")
    ):
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
    intent = choice if kind == "a" else f"slot:{int(choice)}"

    def respond(reply: str, buttons: list[tuple[str, str]]) -> None:
        _telegram_send(services, portal, cfg, chat_id, reply, buttons)

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


def _small_number(text: str) -> bool:
    """Return whether ``text`` is an ASCII decimal id that fits an INTEGER column."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def _telegram_send(services, portal, cfg, chat_id, text, buttons) -> None:
    data = config.settings(portal)
    now = datetime.now(UTC)
    if dispatch.telegram_paused_until(services, data, now):
        logger.warning(
            "telegram reply dropped during flood control",
            extra={"member_id": portal.member_id},
        )
        return
    try:
        channels.send_telegram(
            services, cfg, chat_id, channels.Outgoing(text=text, buttons=buttons)
        )
    except channels.FloodControl as err:
        until = now + timedelta(seconds=err.retry_after)
        dispatch.pause_telegram(services, portal.id, data, until)
        logger.warning(
            "telegram reply hit flood control",
            extra={"member_id": portal.member_id, "retry_after": err.retry_after},
        )
    except channels.DeliveryFailed as err:
        logger.warning(
            "telegram reply failed",
            extra={"member_id": portal.member_id, "error": str(err)},
        )


@features.on_event(SMS_EVENT)
def on_sms(services, client, portal, reply_id: int, event) -> str:
    if not replies.start_once(services, event):
        return "skipped: message already handled"
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
    if not data.get(config.SMS_SECRET_KEY):
        changes[config.SMS_SECRET_KEY] = secrets.token_urlsafe(24)
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

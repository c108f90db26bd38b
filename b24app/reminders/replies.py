"""A client's reply to a reminder: confirm, move, cancel, stop, or a person.

Plain replies ("1", "да, приду", "стоп") are read by exact rules. Anything
else goes through the intent classifier; only a confident cancel or
reschedule is acted on, and every other text is handed to the responsible
manager, never guessed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from b24app import portal_settings
from b24app.bitrix.client import PortalClient
from b24app.bitrix.errors import BitrixCallError
from b24app.models import InboundEvent, Portal
from b24app.reminders import appointments, config, consent, templates
from b24app.reminders.models import Appointment, Delivery, Reply
from b24app.services import Services
from b24app.tagging.offline import OfflineEngine

logger = logging.getLogger(__name__)

CONFIRM_WORDS = frozenset(
    {
        "да",
        "приду",
        "придём",
        "придем",
        "буду",
        "будем",
        "подтверждаю",
        "подтверждаем",
        "ок",
        "ok",
        "окей",
        "хорошо",
        "конечно",
        "обязательно",
        "спасибо",
        "yes",
    }
)
NUMBERED = {"1": "confirm", "2": "reschedule", "3": "cancel"}
OFFER_SIZE = 3
DEFAULT_DURATION = timedelta(hours=1)
SLOT_HORIZON_DAYS = 7
MIN_NOTICE = timedelta(hours=2)
BOOKING_PAGE_SIZE = 50
# Pages read before giving up: 1,000 bookings in the offer horizon.
BOOKING_PAGES = 20

_engine: OfflineEngine | None = None

Respond = Callable[[str, list[tuple[str, str]]], None]


def classify(text: str, *, offer_size: int = 0, tz: str = "Europe/Moscow") -> str:
    """ "confirm", "cancel", "reschedule", "opt_out", "slot:<n>" or "unclear"."""
    global _engine
    cleaned = re.sub(r"[^\w\s]", " ", text.lower()).split()
    if not cleaned:
        return "unclear"
    if consent.is_stop_word(" ".join(cleaned)):
        return "opt_out"
    if len(cleaned) == 1 and cleaned[0].isdigit():
        number = int(cleaned[0])
        if offer_size and 1 <= number <= offer_size:
            return f"slot:{number}"
        if not offer_size and cleaned[0] in NUMBERED:
            return NUMBERED[cleaned[0]]
        return "unclear"
    if "не" not in cleaned and all(word in CONFIRM_WORDS for word in cleaned):
        return "confirm"

    _engine = _engine or OfflineEngine()
    result = _engine.classify(text, datetime.now(UTC), tz)
    if result.needs_review:
        return "unclear"
    if "reschedule" in result.tags:
        return "reschedule"
    if "cancel" in result.tags:
        return "cancel"
    return "unclear"


# Handling each incoming message once

STARTED = "reply handling started"


def start_once(services: Services, event: InboundEvent) -> bool:
    """Mark the stored message as taken, or return False if an earlier run took it.

    Each incoming message is one ``inbound_events`` row, unique by its
    message id (chat MESSAGE_ID, Telegram update_id, SMS id), so a
    redelivered event is dropped on receipt. The mark is committed before
    anything is done, so a run that is retried after a crash or a
    retryable error changes nothing a second time. The worker overwrites
    the outcome when the run ends.
    """
    with services.db.session() as session:
        taken = session.execute(
            update(InboundEvent)
            .where(InboundEvent.id == event.id, InboundEvent.outcome.is_(None))
            .values(outcome=STARTED)
        ).rowcount
    if not taken:
        logger.warning(
            "reply already handled, repeat ignored",
            extra={"portal_id": event.portal_id, "event_id": event.id},
        )
    return bool(taken)


# Finding the appointment a reply belongs to


def appointment_by_ref(
    services: Services, portal_id: int, ref: str, *, prefix: bool = False
) -> int | None:
    """Return the appointment of the latest message sent with this reference.

    ``ref`` is the whole provider reference (``chat:12``), or with ``prefix``
    its start up to a separator (``tg:777:``). The reference comes from the
    reply, so LIKE wildcards in it are escaped, and ``chat:1`` never matches
    the messages of chat 12.
    """
    if prefix:
        escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches = Delivery.provider_ref.like(f"{escaped}%", escape="\\")
    else:
        matches = Delivery.provider_ref == ref
    with services.db.session() as session:
        return session.scalar(
            select(Delivery.appointment_id)
            .where(
                Delivery.portal_id == portal_id,
                Delivery.status == "sent",
                matches,
            )
            .order_by(Delivery.id.desc())
            .limit(1)
        )


def appointment_for_contact(
    services: Services, portal_id: int, contact_key: str
) -> int | None:
    """Return the client's nearest active appointment, else the latest one."""
    kind, _, raw_id = contact_key.partition(":")
    column = Appointment.contact_id if kind == "contact" else Appointment.deal_id
    with services.db.session() as session:
        rows = list(
            session.scalars(
                select(Appointment)
                .where(Appointment.portal_id == portal_id, column == int(raw_id))
                .order_by(Appointment.starts_at.desc())
            )
        )
    active = [row for row in rows if row.status in appointments.ACTIVE]
    chosen = min(active, key=lambda r: r.starts_at) if active else (rows or [None])[0]
    return chosen.id if chosen else None


# Handling


def handle(
    services: Services,
    portal: Portal,
    appointment_id: int | None,
    channel: str,
    text: str,
    respond: Respond,
    *,
    contact_key: str | None = None,
) -> str:
    """Classify one reply and act on it. ``respond`` sends text back to the client."""
    row = _load(services, appointment_id) if appointment_id else None
    tz = portal_settings.timezone(portal)
    offer = (row.offer or []) if row else []
    intent = classify(text, offer_size=len(offer), tz=tz)
    return act(services, portal, row, channel, intent, respond, contact_key=contact_key)


def act(
    services: Services,
    portal: Portal,
    row: Appointment | None,
    channel: str,
    intent: str,
    respond: Respond,
    *,
    contact_key: str | None = None,
) -> str:
    client = services.client(portal)
    if intent == "opt_out":
        key = contact_key or (row.contact_key if row else None)
        if key:
            consent.revoke(services, portal.id, key, source="stop_word")
        respond("Вы отписались от напоминаний. Больше писать не будем.", [])
        return _log(services, portal, row, channel, intent, "opted out")
    if row is None:
        _route_to_person(client, portal, None, channel)
        respond("Передали ваше сообщение администратору.", [])
        return _log(services, portal, None, channel, intent, "no appointment", True)
    if row.status not in appointments.ACTIVE and intent != "unclear":
        respond("Эта запись уже закрыта. Администратор свяжется с вами.", [])
        _route_to_person(client, portal, row, channel)
        return _log(services, portal, row, channel, intent, "closed", True)

    values = _values(portal, row)
    if intent == "confirm":
        _move_deal(client, portal, row, "confirmed")
        appointments.set_status(services, portal, row.id, "confirmed")
        respond(templates.render("Спасибо! Ждём вас {date} в {time}.", values), [])
        return _log(services, portal, row, channel, intent, "confirmed")
    if intent == "cancel":
        _move_deal(client, portal, row, "cancelled")
        if row.booking_id:
            _call(client, "booking.v1.booking.delete", {"id": row.booking_id})
        appointments.set_status(services, portal, row.id, "cancelled")
        _notify(client, portal, row, "Клиент отменил запись {date} в {time}.")
        respond("Запись отменена. Будем рады видеть вас в другой раз.", [])
        return _log(services, portal, row, channel, intent, "cancelled")
    if intent == "reschedule":
        return _offer_slots(services, client, portal, row, channel, respond)
    if intent.startswith("slot:"):
        return _take_slot(services, client, portal, row, channel, intent, respond)

    _route_to_person(client, portal, row, channel)
    respond("Спасибо! Передали ваше сообщение администратору, он ответит.", [])
    return _log(services, portal, row, channel, "unclear", "to a person", True)


def _offer_slots(
    services: Services,
    client: PortalClient,
    portal: Portal,
    row: Appointment,
    channel: str,
    respond: Respond,
) -> str:
    slots = free_slots(client, portal, row) if row.booking_id else []
    if not slots:
        _task(
            client,
            portal,
            row,
            "Перезвоните клиенту: просит перенести запись {date} в {time}",
        )
        respond("Администратор перезвонит вам и подберёт другое время.", [])
        return _log(services, portal, row, channel, "reschedule", "callback task")
    with services.db.session() as session:
        session.get(Appointment, row.id).offer = [int(s.timestamp()) for s in slots]
    zone = ZoneInfo(portal_settings.timezone(portal))
    lines = [
        f"{n}) {slot.astimezone(zone):%d.%m %H:%M}" for n, slot in enumerate(slots, 1)
    ]
    buttons = [
        (f"{slot.astimezone(zone):%d.%m %H:%M}", f"s:{row.id}:{n}")
        for n, slot in enumerate(slots, 1)
    ]
    respond(
        "Свободное время: " + "; ".join(lines) + ". Ответьте номером варианта.",
        buttons,
    )
    return _log(services, portal, row, channel, "reschedule", "slots offered")


def _take_slot(
    services: Services,
    client: PortalClient,
    portal: Portal,
    row: Appointment,
    channel: str,
    intent: str,
    respond: Respond,
) -> str:
    number = int(intent.split(":")[1])
    offer = row.offer or []
    if not 1 <= number <= len(offer):
        respond("Такого варианта нет. Ответьте номером из списка.", [])
        return _log(services, portal, row, channel, "reschedule", "bad choice")
    start = datetime.fromtimestamp(int(offer[number - 1]), UTC)
    duration = _duration(client, row)
    tz = portal_settings.timezone(portal)
    ok = _call(
        client,
        "booking.v1.booking.update",
        {
            "id": row.booking_id,
            "fields": {
                "datePeriod": {
                    "from": {"timestamp": int(start.timestamp()), "timezone": tz},
                    "to": {
                        "timestamp": int((start + duration).timestamp()),
                        "timezone": tz,
                    },
                }
            },
        },
    )
    if ok is None:
        _task(client, portal, row, "Перезвоните клиенту: перенос записи не удался")
        respond("Не получилось перенести. Администратор перезвонит вам.", [])
        return _log(services, portal, row, channel, "reschedule", "move failed", True)
    with services.db.session() as session:
        session.get(Appointment, row.id).offer = None
    appointments.sync_booking(services, client, portal, row.booking_id)
    values = _values(portal, row, starts_at=start)
    respond(templates.render("Перенесли на {date} в {time}. Ждём вас!", values), [])
    return _log(services, portal, row, channel, "reschedule", "moved")


def free_slots(
    client: PortalClient, portal: Portal, row: Appointment, now: datetime | None = None
) -> list[datetime]:
    """Up to three free start times of the appointment's first resource.

    The Booking REST API has no free-time method, so the times come from the
    resource's working time (``booking.v1.resource.slots.list``: ``slots``
    with ``from``/``to`` in minutes of the day, ``weekDays``, ``timezone``,
    ``slotSize``) minus the bookings of that resource
    (``booking.v1.booking.list`` with ``filter.within``).
    """
    if not row.resource_ids:
        return []
    resource_id = int(row.resource_ids[0])
    now = now or datetime.now(UTC)
    ranges = _call(
        client, "booking.v1.resource.slots.list", {"resourceId": resource_id}
    )
    horizon = now + timedelta(days=SLOT_HORIZON_DAYS)
    listed = _bookings_within(client, now, horizon)
    if not ranges or listed is None:
        return []
    busy = []
    for booking in listed:
        if str(resource_id) not in [str(r) for r in booking.get("resourceIds") or []]:
            continue
        period = booking.get("datePeriod") or {}
        busy.append(
            (
                datetime.fromtimestamp(int(period["from"]["timestamp"]), UTC),
                datetime.fromtimestamp(int(period["to"]["timestamp"]), UTC),
            )
        )
    duration = _duration(client, row)
    found: list[datetime] = []
    for day in range(SLOT_HORIZON_DAYS + 1):
        for slot_range in ranges.get("slots") or []:
            zone = ZoneInfo(
                slot_range.get("timezone") or portal_settings.timezone(portal)
            )
            date = (now.astimezone(zone) + timedelta(days=day)).date()
            if date.strftime("%a") not in (slot_range.get("weekDays") or []):
                continue
            step = timedelta(minutes=int(slot_range.get("slotSize") or 60))
            start = datetime(date.year, date.month, date.day, tzinfo=zone) + timedelta(
                minutes=int(slot_range["from"])
            )
            end = datetime(date.year, date.month, date.day, tzinfo=zone) + timedelta(
                minutes=int(slot_range["to"])
            )
            while start + duration <= end and len(found) < OFFER_SIZE:
                free = start >= now + MIN_NOTICE and all(
                    start + duration <= b_start or start >= b_end
                    for b_start, b_end in busy
                )
                if free and start.astimezone(UTC) != row.starts_at:
                    found.append(start.astimezone(UTC))
                start += step
        if len(found) >= OFFER_SIZE:
            break
    return sorted(found)[:OFFER_SIZE]


def _bookings_within(
    client: PortalClient, start: datetime, end: datetime
) -> list[dict[str, Any]] | None:
    """Return every booking overlapping [start, end), or None if a page fails.

    ``booking.v1.booking.list`` returns pages of at most 50 rows, paged by
    ``start``.
    """
    rows: list[dict[str, Any]] = []
    for page in range(BOOKING_PAGES):
        result = _call(
            client,
            "booking.v1.booking.list",
            {
                "filter": {
                    "within": {
                        "dateFrom": int(start.timestamp()),
                        "dateTo": int(end.timestamp()),
                    }
                },
                "order": {"id": "ASC"},
                "start": page * BOOKING_PAGE_SIZE,
            },
        )
        if result is None:
            return None
        batch = result.get("booking") or []
        rows.extend(batch)
        if len(batch) < BOOKING_PAGE_SIZE:
            return rows
    logger.warning(
        "booking list longer than read", extra={"member_id": client.member_id}
    )
    return None


def _duration(client: PortalClient, row: Appointment) -> timedelta:
    if not row.booking_id:
        return DEFAULT_DURATION
    result = _call(client, "booking.v1.booking.get", {"id": row.booking_id})
    period = ((result or {}).get("booking") or {}).get("datePeriod") or {}
    try:
        seconds = int(period["to"]["timestamp"]) - int(period["from"]["timestamp"])
    except (KeyError, TypeError, ValueError):
        return DEFAULT_DURATION
    return timedelta(seconds=seconds) if seconds > 0 else DEFAULT_DURATION


# Portal actions


def _call(client: PortalClient, method: str, params: dict[str, Any]) -> Any:
    try:
        return client.call(method, params)
    except BitrixCallError as err:
        logger.warning(
            "portal call failed",
            extra={"member_id": client.member_id, "method": method, "error": err.code},
        )
        return None


def _move_deal(
    client: PortalClient, portal: Portal, row: Appointment, status: str
) -> None:
    if not row.deal_id:
        return
    stage = config.funnel(portal).stage_for(status)
    _call(client, "crm.deal.update", {"id": row.deal_id, "fields": {"STAGE_ID": stage}})


def _values(
    portal: Portal, row: Appointment, starts_at: datetime | None = None
) -> dict[str, str]:
    return templates.values_for(
        client_name=row.client_name,
        service=row.service,
        starts_at=starts_at or row.starts_at,
        tz=portal_settings.timezone(portal),
        address=config.settings(portal).get("address"),
        master=row.master,
    )


def _responsible(portal: Portal, row: Appointment | None) -> int | None:
    return (row.responsible_id if row else None) or portal_settings.owner_user_id(
        portal
    )


def _notify(
    client: PortalClient, portal: Portal, row: Appointment, message: str
) -> None:
    user_id = _responsible(portal, row)
    if user_id:
        text = templates.render(message, _values(portal, row))
        if row.deal_id:
            text += f" Сделка #{row.deal_id}."
        _call(client, "im.notify.system.add", {"USER_ID": user_id, "MESSAGE": text})


def _task(client: PortalClient, portal: Portal, row: Appointment, title: str) -> None:
    user_id = _responsible(portal, row)
    if not user_id:
        return
    fields: dict[str, Any] = {
        "TITLE": templates.render(title, _values(portal, row)),
        "RESPONSIBLE_ID": user_id,
        "DESCRIPTION": "Ответ клиента на напоминание Отклика.",
    }
    if row.deal_id:
        fields["UF_CRM_TASK"] = [f"D_{row.deal_id}"]
    _call(client, "tasks.task.add", {"fields": fields})


def _route_to_person(
    client: PortalClient, portal: Portal, row: Appointment | None, channel: str
) -> None:
    user_id = _responsible(portal, row)
    if not user_id:
        return
    where = {"openline": "в чате", "telegram": "в Telegram", "sms": "по SMS"}.get(
        channel, ""
    )
    text = (
        f"Клиент ответил на напоминание {where}, ответ непонятен: "
        "прочитайте и ответьте."
    )
    if row and row.deal_id:
        text += f" Сделка #{row.deal_id}."
    _call(client, "im.notify.system.add", {"USER_ID": user_id, "MESSAGE": text})


def _load(services: Services, appointment_id: int) -> Appointment | None:
    with services.db.session() as session:
        return session.get(Appointment, appointment_id)


def _log(
    services: Services,
    portal: Portal,
    row: Appointment | None,
    channel: str,
    intent: str,
    action: str,
    needs_person: bool = False,
) -> str:
    with services.db.session() as session:
        session.add(
            Reply(
                portal_id=portal.id,
                appointment_id=row.id if row else None,
                channel=channel,
                intent=intent,
                action=action,
                needs_person=needs_person or intent == "unclear",
            )
        )
    logger.info(
        "reminder reply handled",
        extra={"member_id": portal.member_id, "intent": intent, "action": action},
    )
    return f"reply {intent}: {action}"

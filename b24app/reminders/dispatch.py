"""Send due reminders at most once each, with channel fallback and retries.

A job is claimed by one UPDATE that only succeeds while it is still
scheduled (or its lease ran out), so two workers never hold one row at
once. Each channel attempt is a ``Delivery`` row: what went out, where, and
why it failed.

Sending is at most once per job and channel. Before a provider is called,
the attempt is committed as a Delivery row with status "sending", in the
same transaction that checks the claim is still this worker's. When a
worker dies after that point, the next worker to claim the job finds the
"sending" row and, unless the channel can recognise a repeat (a generic
SMS provider with an idempotency header), marks it "unknown" and sends
nothing: the client may already have the message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update

from b24app import portal_settings
from b24app.bitrix.errors import BitrixCallError, PortalInactive, RateLimited
from b24app.models import Portal
from b24app.reminders import appointments, channels, config, consent, templates
from b24app.reminders.models import Appointment, Delivery, ReminderJob
from b24app.reminders.schedule import MIN_LEAD
from b24app.services import Services

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
THANKS_WAIT = timedelta(days=1)
BATCH = 200
CONFIRM_BUTTONS = (
    ("Приду", "confirm"),
    ("Перенести", "reschedule"),
    ("Отменить", "cancel"),
)
# Settings key of the Telegram flood-control pause: {"bot": id, "until": ISO}.
TELEGRAM_PAUSE = "telegram_pause"
UNKNOWN_NOTE = (
    "Исход неизвестен: сообщение могло дойти до клиента, поэтому повторно "
    "не отправлено. Проверьте переписку и при необходимости напомните сами. / "
    "Outcome unknown: the message may have reached the client, so it was not "
    "sent again. Check the conversation and remind the client yourself if needed."
)


@dataclass
class Claim:
    """Job claimed by this worker. ``attempts`` after the claim fences later writes."""

    job_id: int
    attempts: int


def due_jobs(services: Services, now: datetime, limit: int) -> list[int]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(ReminderJob.id)
                .where(
                    or_(
                        (ReminderJob.status == "scheduled")
                        & (ReminderJob.due_at <= now),
                        (ReminderJob.status == "claimed")
                        & (ReminderJob.locked_until < now),
                    )
                )
                .order_by(ReminderJob.due_at)
                .limit(limit)
            )
        )


def claim(services: Services, job_id: int, now: datetime) -> Claim | None:
    """Claim the job for this process, or return None when another one has it."""
    with services.db.session() as session:
        result = session.execute(
            update(ReminderJob)
            .where(
                ReminderJob.id == job_id,
                or_(
                    ReminderJob.status == "scheduled",
                    (ReminderJob.status == "claimed")
                    & (ReminderJob.locked_until < now),
                ),
            )
            .values(
                status="claimed",
                locked_until=now + LEASE,
                attempts=ReminderJob.attempts + 1,
            )
        )
        if result.rowcount != 1:
            return None
        attempts = session.scalar(
            select(ReminderJob.attempts).where(ReminderJob.id == job_id)
        )
    return Claim(job_id, int(attempts))


def dispatch_due(services: Services, *, limit: int = BATCH) -> int:
    """Send every due reminder this process can claim; return how many were sent."""
    now = datetime.now(UTC)
    sent = 0
    for job_id in due_jobs(services, now, limit):
        claimed = claim(services, job_id, now)
        if claimed is None:
            continue
        try:
            outcome = deliver(services, job_id, attempts=claimed.attempts)
        except (RateLimited, BitrixCallError) as err:
            _release(services, job_id, f"portal busy: {type(err).__name__}")
            continue
        except PortalInactive:
            _finish(services, job_id, "failed", error="portal inactive")
            continue
        if outcome == "sent":
            sent += 1
    return sent


def deliver(services: Services, job_id: int, *, attempts: int | None = None) -> str:
    """Send one claimed job over the first channel that works.

    ``attempts`` is the job's attempt count right after this worker's claim.
    A worker whose claim was taken over sends nothing.
    """
    now = datetime.now(UTC)
    with services.db.session() as session:
        job = session.get(ReminderJob, job_id)
        row = session.get(Appointment, job.appointment_id)
        portal = session.get(Portal, job.portal_id)
        session.expunge_all()
    fence = job.attempts if attempts is None else attempts

    if job.kind == "thanks" and row.status in appointments.ACTIVE:
        # Thank only a visit someone marked; wait a day for the mark.
        if now - row.starts_at < THANKS_WAIT:
            _release(services, job_id, "visit not marked yet", due_at=now + LEASE * 12)
            return "waiting"
    data = config.settings(portal) if portal is not None else {}
    settled = _settle_interrupted(services, portal, data, job)
    if settled:
        return settled
    reason = _stale_reason(job, row, portal, now)
    if reason:
        _finish(services, job_id, "cancelled", error=reason)
        return "cancelled"

    allowed = consent.allowed_channels(services, portal.id, row.contact_key)
    order = [c for c in data.get("channels") or config.CHANNELS if c in allowed]
    if not order:
        _finish(services, job_id, "skipped", error="no consent")
        return "skipped"

    values = templates.values_for(
        client_name=row.client_name,
        service=row.service,
        starts_at=row.starts_at,
        tz=portal_settings.timezone(portal),
        address=data.get("address"),
        master=row.master,
    )
    variant = appointments.variant_of(services, row) or {}
    texts = {**(data.get("templates") or {}), **(variant.get("templates") or {})}
    extra = {"member_id": portal.member_id, "job_id": job.id, "kind": job.kind}

    retry = False
    for channel in order:
        if channel == "telegram":
            until = telegram_paused_until(services, data, now)
            if until is not None and _in_time(job, row, until):
                _defer(services, job_id, until)
                logger.info(
                    "reminder waits for telegram flood control",
                    extra=extra | {"until": until.isoformat()},
                )
                return "deferred"
            if until is not None:
                _record(
                    services,
                    job,
                    channel,
                    "failed",
                    error="telegram: flood control lasts past the visit",
                )
                continue

        message = _message(services, portal, row, job, texts, values, channel)
        delivery_id = _begin(services, job, channel, fence)
        if delivery_id is None:
            logger.warning("reminder claim taken over, not sent", extra=extra)
            return "lost"
        try:
            ref = _send(services, portal, data, row, channel, allowed[channel], message)
        except channels.FloodControl as err:
            until = now + timedelta(seconds=err.retry_after)
            _end(services, delivery_id, "deferred", error=str(err))
            pause_telegram(services, portal.id, data, until)
            logger.warning(
                "telegram flood control",
                extra=extra | {"retry_after": err.retry_after},
            )
            if _in_time(job, row, until):
                _defer(services, job_id, until)
                return "deferred"
            continue
        except channels.DeliveryFailed as err:
            if err.unknown:
                _end(services, delivery_id, "unknown", error=f"{err}. {UNKNOWN_NOTE}")
                _finish(services, job_id, "unknown", channel=channel, error=str(err))
                logger.warning(
                    "reminder outcome unknown, not repeated",
                    extra=extra | {"channel": channel, "error": str(err)},
                )
                return "unknown"
            retry = retry or err.retry
            _end(services, delivery_id, "failed", error=str(err))
            logger.warning(
                "reminder channel failed",
                extra=extra | {"channel": channel, "error": str(err)},
            )
            continue

        _complete(services, job_id, delivery_id, channel, ref)
        logger.info("reminder sent", extra=extra | {"channel": channel})
        return "sent"

    if retry and job.attempts < MAX_ATTEMPTS:
        next_at = now + timedelta(minutes=2**job.attempts)
        if _in_time(job, row, next_at, margin=MIN_LEAD):
            _release(services, job_id, "all channels failed", due_at=next_at)
            return "retry"
    _finish(services, job_id, "failed", error="all channels failed")
    return "failed"


def _message(
    services: Services,
    portal: Portal,
    row: Appointment,
    job: ReminderJob,
    texts: dict,
    values: dict,
    channel: str,
) -> channels.Outgoing:
    text = templates.render(templates.template_for(texts, job.kind, channel), values)
    message = channels.Outgoing(text=text, key=f"otklik-{portal.id}-{job.id}-{channel}")
    if job.kind == "confirm":
        message.buttons = [
            (label, f"a:{row.id}:{action}") for label, action in CONFIRM_BUTTONS
        ]
    if channel == "email":
        link = consent.optout_url(services, portal.id, row.contact_key)
        message.text += f"\n\nОтписаться от напоминаний: {link}"
        message.unsubscribe = link
    return message


def _in_time(
    job: ReminderJob, row: Appointment, at: datetime, margin: timedelta = MIN_LEAD / 2
) -> bool:
    """Return whether a message sent at ``at`` still arrives early enough."""
    return job.kind == "thanks" or row.starts_at - at >= margin


def _settle_interrupted(
    services: Services, portal: Portal | None, data: dict, job: ReminderJob
) -> str | None:
    """Close attempts a dead worker left in "sending" and return the job's outcome.

    Returns None when the job may be sent (nothing was pending, or every
    pending channel recognises a repeat).
    """
    with services.db.session() as session:
        rows = list(
            session.scalars(
                select(Delivery)
                .where(Delivery.job_id == job.id)
                .order_by(Delivery.id)
                .with_for_update()
            )
        )
        done = [d for d in rows if d.status in ("sent", "delivered")]
        if done:
            # The provider accepted and the row was updated, but the job was not.
            for pending in rows:
                if pending.status == "sending":
                    pending.status = "failed"
                    pending.error = "superseded by a sent attempt"
            channel = done[-1].channel
            outcome = "sent"
        else:
            channel = None
            outcome = None
            for pending in rows:
                if pending.status != "sending":
                    continue
                cfg = data.get(pending.channel) or {}
                if channels.can_resend_safely(pending.channel, cfg):
                    pending.status = "failed"
                    pending.error = (
                        "worker stopped before the answer; repeated with the "
                        "same idempotency key"
                    )
                    continue
                pending.status = "unknown"
                pending.error = f"worker stopped before the answer. {UNKNOWN_NOTE}"
                channel = pending.channel
                outcome = "unknown"
    if outcome is None:
        return None

    error = None if outcome == "sent" else "worker stopped before the answer"
    _finish(services, job.id, outcome, channel=channel, error=error)
    logger.warning(
        "interrupted reminder settled without sending",
        extra={
            "member_id": portal.member_id if portal else None,
            "job_id": job.id,
            "channel": channel,
            "outcome": outcome,
        },
    )
    return outcome


def _stale_reason(
    job: ReminderJob, row: Appointment, portal: Portal | None, now: datetime
) -> str | None:
    if portal is None or not portal.is_active:
        return "portal inactive"
    if job.kind == "thanks":
        return None if row.status == "visited" else f"appointment {row.status}"
    if row.status not in appointments.ACTIVE:
        return f"appointment {row.status}"
    if row.starts_at != job.for_starts_at:
        return "appointment moved"
    if job.kind == "confirm" and row.status == "confirmed":
        return "already confirmed"
    if row.starts_at - now < MIN_LEAD / 2:
        return "too late"
    return None


def _send(
    services: Services,
    portal: Portal,
    data: dict,
    row: Appointment,
    channel: str,
    address: str | None,
    message: channels.Outgoing,
) -> str:
    if channel == "openline":
        bot_id = data.get("bot_id")
        if not bot_id:
            raise channels.DeliveryFailed(
                "openline: chat bot not registered", retry=False
            )
        return channels.send_openline(
            services.client(portal),
            deal_id=row.deal_id,
            contact_id=row.contact_id,
            bot_id=int(bot_id),
            message=message,
        )
    if not address:
        raise channels.DeliveryFailed(f"{channel}: no address", retry=False)
    if channel == "telegram":
        return channels.send_telegram(
            services, data.get("telegram") or {}, address, message
        )
    if channel == "sms":
        return channels.send_sms(services, data.get("sms") or {}, address, message)
    if channel == "email":
        return channels.send_email(services, data.get("email") or {}, address, message)
    raise channels.DeliveryFailed(f"unknown channel {channel}", retry=False)


# Telegram flood control, shared by every worker through the portal settings


def telegram_paused_until(
    services: Services, data: dict, now: datetime
) -> datetime | None:
    """Return when the portal's bot may call the Bot API again, if that is later."""
    pause = data.get(TELEGRAM_PAUSE) or {}
    bot = channels.telegram_bot_id(services, data.get("telegram") or {})
    if not pause.get("until") or pause.get("bot") != bot:
        return None
    try:
        until = datetime.fromisoformat(pause["until"])
    except (TypeError, ValueError):
        return None
    return until if until > now else None


def pause_telegram(
    services: Services, portal_id: int, data: dict, until: datetime
) -> None:
    """Store the Bot API's retry_after so no worker calls this bot before it."""
    bot = channels.telegram_bot_id(services, data.get("telegram") or {})
    config.save(
        services, portal_id, {TELEGRAM_PAUSE: {"bot": bot, "until": until.isoformat()}}
    )


# Rows


def _begin(
    services: Services, job: ReminderJob, channel: str, fence: int
) -> int | None:
    """Commit a "sending" attempt while the claim is still ours, else return None."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        renewed = session.execute(
            update(ReminderJob)
            .where(
                ReminderJob.id == job.id,
                ReminderJob.status == "claimed",
                ReminderJob.attempts == fence,
            )
            .values(locked_until=now + LEASE)
        ).rowcount
        if renewed != 1:
            return None
        delivery = Delivery(
            portal_id=job.portal_id,
            job_id=job.id,
            appointment_id=job.appointment_id,
            channel=channel,
            status="sending",
        )
        session.add(delivery)
        session.flush()
        return delivery.id


def _end(
    services: Services,
    delivery_id: int,
    status: str,
    *,
    ref: str | None = None,
    error: str | None = None,
) -> None:
    with services.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        delivery.status = status
        delivery.provider_ref = ref
        delivery.error = (error or "")[:500] or None


def _complete(
    services: Services, job_id: int, delivery_id: int, channel: str, ref: str
) -> None:
    """Mark the attempt and the job sent in one transaction."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        delivery.status = "sent"
        delivery.provider_ref = ref
        delivery.error = None
        job = session.get(ReminderJob, job_id)
        job.status = "sent"
        job.locked_until = None
        job.channel = channel
        job.error = None
        job.sent_at = now


def _record(
    services: Services,
    job: ReminderJob,
    channel: str,
    status: str,
    *,
    ref: str | None = None,
    error: str | None = None,
) -> None:
    with services.db.session() as session:
        session.add(
            Delivery(
                portal_id=job.portal_id,
                job_id=job.id,
                appointment_id=job.appointment_id,
                channel=channel,
                status=status,
                provider_ref=ref,
                error=(error or "")[:500] or None,
            )
        )


def _finish(
    services: Services,
    job_id: int,
    status: str,
    *,
    channel: str | None = None,
    error: str | None = None,
) -> None:
    with services.db.session() as session:
        job = session.get(ReminderJob, job_id)
        job.status = status
        job.locked_until = None
        job.channel = channel
        job.error = error
        if status == "sent":
            job.sent_at = datetime.now(UTC)


def _release(
    services: Services, job_id: int, error: str, *, due_at: datetime | None = None
) -> None:
    with services.db.session() as session:
        job = session.get(ReminderJob, job_id)
        job.status = "scheduled"
        job.locked_until = None
        job.error = error
        if due_at is not None:
            job.due_at = due_at


def _defer(services: Services, job_id: int, until: datetime) -> None:
    """Defer the job for flood control without counting a failed attempt."""
    with services.db.session() as session:
        job = session.get(ReminderJob, job_id)
        job.status = "scheduled"
        job.locked_until = None
        job.due_at = until
        job.attempts = max(0, job.attempts - 1)
        job.error = f"telegram flood control until {until:%H:%M:%S} UTC"


def revive_skipped(services: Services, portal_id: int, contact_key: str) -> int:
    """Put back jobs skipped for want of consent, once the client agreed.

    Only jobs of visits still ahead come back, and the dispatcher drops any
    that has become too late.
    """
    kind, _, raw_id = contact_key.partition(":")
    column = Appointment.contact_id if kind == "contact" else Appointment.deal_id
    now = datetime.now(UTC)
    with services.db.session() as session:
        ids = select(Appointment.id).where(
            Appointment.portal_id == portal_id,
            column == int(raw_id),
            Appointment.status.in_(appointments.ACTIVE),
            Appointment.starts_at > now,
        )
        count = session.execute(
            update(ReminderJob)
            .where(
                ReminderJob.appointment_id.in_(ids),
                ReminderJob.status == "skipped",
                ReminderJob.error == "no consent",
            )
            .values(status="scheduled", due_at=now, error=None)
        ).rowcount
    if count:
        logger.info(
            "reminders put back after consent",
            extra={"portal_id": portal_id, "count": count},
        )
    return count


# Visits left unmarked


def request_marks(services: Services) -> int:
    """Ask the responsible to mark visits whose time plus grace has passed."""
    now = datetime.now(UTC)
    count = 0
    with services.db.session() as session:
        portals = list(session.scalars(select(Portal).where(Portal.status == "active")))
    for portal in portals:
        grace = timedelta(
            minutes=int(config.settings(portal).get("grace_minutes") or 120)
        )
        with services.db.session() as session:
            ids = session.scalars(
                select(Appointment.id).where(
                    Appointment.portal_id == portal.id,
                    Appointment.status.in_(appointments.ACTIVE),
                    Appointment.mark_requested_at.is_(None),
                    Appointment.starts_at < now - grace,
                )
            ).all()
        for appointment_id in ids:
            if _claim_mark(services, appointment_id, now):
                _ask_to_mark(services, portal, appointment_id)
                count += 1
    return count


def _claim_mark(services: Services, appointment_id: int, now: datetime) -> bool:
    with services.db.session() as session:
        result = session.execute(
            update(Appointment)
            .where(
                Appointment.id == appointment_id,
                Appointment.mark_requested_at.is_(None),
            )
            .values(mark_requested_at=now)
        )
        return result.rowcount == 1


def _ask_to_mark(services: Services, portal: Portal, appointment_id: int) -> None:
    with services.db.session() as session:
        row = session.get(Appointment, appointment_id)
    responsible = row.responsible_id or portal_settings.owner_user_id(portal)
    if not responsible:
        return
    local = row.starts_at.astimezone(ZoneInfo(portal_settings.timezone(portal)))
    fields = {
        "TITLE": f"Отметьте визит {local:%d.%m %H:%M}: пришёл или не пришёл",
        "DESCRIPTION": (
            "Время визита прошло, а запись не отмечена. Переведите сделку в "
            "стадию «Пришёл» или «Не пришёл»: от этого зависят напоминания и "
            "отчёт о неявках."
        ),
        "RESPONSIBLE_ID": responsible,
    }
    if row.deal_id:
        fields["UF_CRM_TASK"] = [f"D_{row.deal_id}"]
    try:
        services.client(portal).call("tasks.task.add", {"fields": fields})
    except BitrixCallError as err:
        logger.warning(
            "visit mark task failed",
            extra={"member_id": portal.member_id, "error": err.code},
        )

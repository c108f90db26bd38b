"""Send due reminders once each, with channel fallback and retries.

A job is claimed by one UPDATE that only succeeds while it is still
scheduled (or its lease ran out), so two workers never hold one row at
once. A worker that dies mid-send leaves its row to be sent again after
the lease. Each channel attempt is a ``Delivery`` row: what went out, where, and
why it failed.
"""

from __future__ import annotations

import logging
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


def claim(services: Services, job_id: int, now: datetime) -> bool:
    """Take the job for this process; False when another one has it."""
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
        return result.rowcount == 1


def dispatch_due(services: Services, *, limit: int = BATCH) -> int:
    """Send every due reminder this process can claim; return how many were sent."""
    now = datetime.now(UTC)
    sent = 0
    for job_id in due_jobs(services, now, limit):
        if not claim(services, job_id, now):
            continue
        try:
            outcome = deliver(services, job_id)
        except (RateLimited, BitrixCallError) as err:
            _release(services, job_id, f"portal busy: {type(err).__name__}")
            continue
        except PortalInactive:
            _finish(services, job_id, "failed", error="portal inactive")
            continue
        if outcome == "sent":
            sent += 1
    return sent


def deliver(services: Services, job_id: int) -> str:
    """Send one claimed job over the first channel that works."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        job = session.get(ReminderJob, job_id)
        row = session.get(Appointment, job.appointment_id)
        portal = session.get(Portal, job.portal_id)
        session.expunge_all()

    if job.kind == "thanks" and row.status in appointments.ACTIVE:
        # Thank only a visit someone marked; wait a day for the mark.
        if now - row.starts_at < THANKS_WAIT:
            _release(services, job_id, "visit not marked yet", due_at=now + LEASE * 12)
            return "waiting"
    reason = _stale_reason(job, row, portal, now)
    if reason:
        _finish(services, job_id, "cancelled", error=reason)
        return "cancelled"

    data = config.settings(portal)
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

    retry = False
    for channel in order:
        text = templates.render(
            templates.template_for(texts, job.kind, channel), values
        )
        message = channels.Outgoing(text=text)
        if job.kind == "confirm":
            message.buttons = [
                (label, f"a:{row.id}:{action}") for label, action in CONFIRM_BUTTONS
            ]
        if channel == "email":
            link = consent.optout_url(services, portal.id, row.contact_key)
            message.text += f"\n\nОтписаться от напоминаний: {link}"
        try:
            ref = _send(services, portal, data, row, channel, allowed[channel], message)
        except channels.DeliveryFailed as err:
            retry = retry or err.retry
            _record(services, job, channel, "failed", error=str(err))
            logger.warning(
                "reminder channel failed",
                extra={
                    "member_id": portal.member_id,
                    "channel": channel,
                    "error": str(err),
                },
            )
            continue
        _record(services, job, channel, "sent", ref=ref)
        _finish(services, job_id, "sent", channel=channel)
        logger.info(
            "reminder sent",
            extra={"member_id": portal.member_id, "channel": channel, "kind": job.kind},
        )
        return "sent"

    if retry and job.attempts < MAX_ATTEMPTS:
        next_at = now + timedelta(minutes=2**job.attempts)
        if job.kind == "thanks" or row.starts_at - next_at >= MIN_LEAD:
            _release(services, job_id, "all channels failed", due_at=next_at)
            return "retry"
    _finish(services, job_id, "failed", error="all channels failed")
    return "failed"


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

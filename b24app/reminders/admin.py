"""Reading and changing reminder settings, consents and A/B tests for admins.

Kept apart from the HTTP layer so the benchmark and tests can use it too.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from b24app.bitrix.errors import BitrixCallError
from b24app.models import Portal
from b24app.reminders import (
    abtest,
    channels,
    config,
    dispatch,
    templates,
    webhooks,
)
from b24app.reminders.models import (
    Appointment,
    Delivery,
    Experiment,
    ReminderJob,
)
from b24app.services import Services

SECRET_FIELDS = {"telegram": ("token",), "sms": ("api_key",), "email": ("password",)}
PLAIN_FIELDS = {
    "telegram": ("api_url", "bot_username"),
    "sms": (
        "provider",
        "url",
        "sender",
        "auth_header",
        "auth_prefix",
        "phone_field",
        "text_field",
        "sender_field",
        "id_path",
        "idempotency_header",
    ),
    "email": ("host", "port", "sender", "username", "starttls"),
}
KINDS = ("confirm", "remind")
SMS_PROVIDERS = ("smsru", "generic")
MAX_STEPS = 10
MAX_SERVICES = 50
MAX_FIELD = 255
# Shown to the owner next to deliveries whose status needs a word.
DELIVERY_NOTES = {
    "unknown": dispatch.UNKNOWN_NOTE,
    "sending": "Отправляется. / Being sent.",
    "deferred": (
        "Telegram попросил подождать (ограничение частоты), сообщение уйдёт "
        "позже. / Telegram asked to wait (flood control), so the message goes "
        "out later."
    ),
}


class SettingsError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def public_settings(portal: Portal) -> dict[str, Any]:
    """Return the settings for the page, with secrets only as "set" flags."""
    data = config.settings(portal)
    hidden = ("webhook_secret", config.SMS_SECRET_KEY, webhooks.STATE_KEY)
    result = {k: v for k, v in data.items() if k not in hidden}
    for channel, secrets in SECRET_FIELDS.items():
        cfg = dict(data.get(channel) or {})
        for name in secrets:
            cfg[f"{name}_set"] = bool(cfg.pop(f"{name}_enc", None))
        result[channel] = cfg
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_schedule(steps: Any, field: str, errors: dict[str, str]) -> list[dict]:
    if not isinstance(steps, list) or not steps:
        errors[field] = "Нужен хотя бы один шаг расписания."
        return []
    if len(steps) > MAX_STEPS:
        errors[field] = f"Не больше {MAX_STEPS} шагов расписания."
        return []
    cleaned: list[dict] = []
    offsets: set[int] = set()
    for step in steps:
        if not isinstance(step, dict):
            errors[field] = "Шаг расписания — объект с полями kind и minutes_before."
            continue
        kind = step.get("kind")
        minutes = step.get("minutes_before")
        if kind not in KINDS:
            errors[field] = (
                "Вид шага: confirm (подтверждение) или remind (напоминание)."
            )
        elif not _is_int(minutes) or not 30 <= minutes <= 14 * 24 * 60:
            errors[field] = "Время отправки: от 30 минут до 14 дней до визита."
        elif minutes in offsets:
            errors[field] = "Два шага в одно время: у каждого шага своё смещение."
        else:
            offsets.add(minutes)
            cleaned.append({"kind": kind, "minutes_before": minutes})
    return cleaned


def _check_services(value: Any, errors: dict[str, str]) -> dict[str, list[dict]]:
    if not isinstance(value, dict):
        errors["services"] = "Расписания услуг — объект «название услуги: шаги»."
        return {}
    if len(value) > MAX_SERVICES:
        errors["services"] = f"Не больше {MAX_SERVICES} расписаний услуг."
        return {}
    cleaned = {}
    for name, steps in value.items():
        title = name.strip()
        if not title or len(title) > 120:
            errors["services"] = "Название услуги — от 1 до 120 символов."
            continue
        cleaned[title] = _check_schedule(steps, f"services.{title}", errors)
    return cleaned


def _check_templates(
    value: Any, current: dict[str, str], errors: dict[str, str]
) -> dict[str, str]:
    if not isinstance(value, dict):
        errors["templates"] = "Шаблоны — объект «вид сообщения: текст»."
        return current
    texts = dict(current)
    for key, text in value.items():
        kind, _, channel = key.partition(".")
        if kind not in templates.KINDS or (channel and channel not in config.CHANNELS):
            errors[f"templates.{key}"] = (
                "Неизвестный вид сообщения: confirm, remind или thanks, "
                "с каналом через точку (confirm.sms)."
            )
            continue
        if not isinstance(text, str):
            errors[f"templates.{key}"] = "Текст шаблона должен быть строкой."
            continue
        check = templates.validate(text)
        if not check.ok:
            errors[f"templates.{key}"] = " ".join(check.errors)
        texts[key] = text
    return texts


def _check_url(value: Any, production: bool) -> str | None:
    """Return why a provider URL is refused, None when it is fine.

    In production a provider is reached over HTTPS only and never at a
    loopback, private or link-local address given as an IP.
    """
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        return "Адрес — строка не длиннее 255 символов."
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Адрес должен начинаться с https://."
    if production and parts.scheme != "https":
        return "Адрес должен начинаться с https://."
    if production and channels.is_private_host(parts.hostname):
        return "Адрес во внутренней сети недоступен: укажите адрес провайдера."
    return None


def _check_channel(
    channel: str, given: Any, production: bool, errors: dict[str, str]
) -> None:
    """Check the fields of one provider section and add errors keyed by field."""
    if not isinstance(given, dict):
        errors[channel] = "Настройки канала — объект с полями."
        return
    for name in PLAIN_FIELDS[channel] + SECRET_FIELDS[channel]:
        value = given.get(name)
        field = f"{channel}.{name}"
        if value is None or value == "":
            continue
        if name == "port":
            if not _is_int(value) or not 1 <= value <= 65535:
                errors[field] = "Порт — число от 1 до 65535."
        elif name == "starttls":
            if not isinstance(value, bool):
                errors[field] = "STARTTLS: true или false."
        elif not isinstance(value, str) or len(value) > MAX_FIELD:
            errors[field] = "Строка не длиннее 255 символов."
        elif name in ("url", "api_url"):
            problem = _check_url(value, production)
            if problem:
                errors[field] = problem
        elif name == "provider" and value not in SMS_PROVIDERS:
            errors[field] = "Провайдер: " + ", ".join(SMS_PROVIDERS) + "."
        elif name == "host" and production and channels.is_private_host(value):
            errors[field] = "Сервер во внутренней сети недоступен."


def update_settings(
    services: Services, portal: Portal, body: dict[str, Any]
) -> dict[str, Any]:
    """Validate and store the owner's changes; raises SettingsError per field.

    Nothing is stored when any field is wrong.
    """
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    production = services.config.get("ENV") == "production"
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            errors["enabled"] = "Включено: true или false."
        changes["enabled"] = body["enabled"]
    if "schedule" in body:
        changes["schedule"] = _check_schedule(body["schedule"], "schedule", errors)
    if "services" in body:
        changes["services"] = _check_services(body["services"] or {}, errors)
    if "thanks_after_minutes" in body:
        value = body["thanks_after_minutes"]
        if value is not None and (not _is_int(value) or not 0 <= value <= 2880):
            errors["thanks_after_minutes"] = (
                "От 0 до 2880 минут после визита или пусто."
            )
        changes["thanks_after_minutes"] = value
    if "grace_minutes" in body:
        value = body["grace_minutes"]
        if not _is_int(value) or not 15 <= value <= 1440:
            errors["grace_minutes"] = "От 15 до 1440 минут."
        changes["grace_minutes"] = value
    if "quiet_hours" in body:
        quiet = body["quiet_hours"]
        try:
            time.fromisoformat(quiet["start"])
            time.fromisoformat(quiet["end"])
            changes["quiet_hours"] = {"start": quiet["start"], "end": quiet["end"]}
        except (KeyError, TypeError, ValueError):
            errors["quiet_hours"] = "Укажите начало и конец тихих часов как ЧЧ:ММ."
    if "channels" in body:
        order = body["channels"]
        if (
            not isinstance(order, list)
            or not order
            or any(c not in config.CHANNELS for c in order)
            or len(set(order)) != len(order)
        ):
            errors["channels"] = (
                "Каналы по порядку, каждый один раз: "
                + ", ".join(config.CHANNELS)
                + ". Чтобы не отправлять ничего, выключите напоминания."
            )
        changes["channels"] = order
    if "address" in body:
        changes["address"] = str(body["address"] or "")[:255]
    if "templates" in body:
        current_texts = dict(config.settings(portal).get("templates") or {})
        changes["templates"] = _check_templates(
            body["templates"] or {}, current_texts, errors
        )
    current = config.settings(portal)
    for channel in SECRET_FIELDS:
        if channel not in body:
            continue
        given = body[channel] or {}
        _check_channel(channel, given, production, errors)
        if not isinstance(given, dict):
            continue
        cfg = dict(current.get(channel) or {})
        for name in PLAIN_FIELDS[channel]:
            if name in given:
                cfg[name] = given[name]
        for name in SECRET_FIELDS[channel]:
            if given.get(name):
                cfg[f"{name}_enc"] = services.box.encrypt(str(given[name]))
        changes[channel] = cfg
    if errors:
        raise SettingsError(errors)
    config.save(services, portal.id, changes)
    with services.db.session() as session:
        return public_settings(session.get(Portal, portal.id))


def booking_notes(services: Services, portal: Portal) -> list[str]:
    """Warn when Booking's own reminders are on for a resource we remind about."""
    with services.db.session() as session:
        rows = session.scalars(
            select(Appointment.resource_ids).where(
                Appointment.portal_id == portal.id, Appointment.source == "booking"
            )
        ).all()
    resource_ids = sorted({int(r) for ids in rows for r in ids or []})
    notes = []
    client = services.client(portal)
    for resource_id in resource_ids[:20]:
        try:
            resource = client.call("booking.v1.resource.get", {"id": resource_id}) or {}
        except BitrixCallError:
            continue
        resource = resource.get("resource") or resource
        own = [
            label
            for key, label in (
                ("isConfirmationNotificationOn", "подтверждение"),
                ("isReminderNotificationOn", "напоминание"),
            )
            if resource.get(key) in ("Y", True)
        ]
        if own:
            notes.append(
                f"У ресурса «{resource.get('name') or resource_id}» включены "
                f"собственные сообщения Бронирования ({', '.join(own)}): клиент "
                "получит два напоминания. Выключите их в настройках ресурса."
            )
    return notes


def appointment_list(
    services: Services, portal_id: int, limit: int = 50
) -> list[dict[str, Any]]:
    """Recent appointments with their messages and delivery attempts."""
    with services.db.session() as session:
        rows = list(
            session.scalars(
                select(Appointment)
                .where(Appointment.portal_id == portal_id)
                .order_by(Appointment.starts_at.desc())
                .limit(limit)
            )
        )
        ids = [row.id for row in rows]
        jobs = list(
            session.scalars(
                select(ReminderJob).where(ReminderJob.appointment_id.in_(ids))
            )
        )
        deliveries = list(
            session.scalars(select(Delivery).where(Delivery.appointment_id.in_(ids)))
        )
    result = []
    for row in rows:
        result.append(
            {
                "id": row.id,
                "source": row.source,
                "source_id": row.source_id,
                "deal_id": row.deal_id,
                "starts_at": row.starts_at.isoformat(),
                "status": row.status,
                "service": row.service,
                "variant": row.variant,
                "jobs": [
                    {
                        "kind": job.kind,
                        "due_at": job.due_at.isoformat(),
                        "status": job.status,
                        "channel": job.channel,
                        "error": job.error,
                    }
                    for job in jobs
                    if job.appointment_id == row.id
                ],
                "deliveries": [
                    {
                        "channel": d.channel,
                        "status": d.status,
                        "error": d.error,
                        "note": DELIVERY_NOTES.get(d.status),
                        "at": d.created_at.isoformat(),
                    }
                    for d in deliveries
                    if d.appointment_id == row.id
                ],
            }
        )
    return result


# A/B tests


def create_experiment(
    services: Services, portal_id: int, body: dict[str, Any]
) -> Experiment:
    variants = abtest.validate_variants(body.get("variants") or [])
    for variant in variants:
        errors: dict[str, str] = {}
        _check_templates(variant["templates"], {}, errors)
        if errors:
            raise abtest.ExperimentError(
                f"Вариант {variant['code']}: " + " ".join(errors.values())
            )
        if variant["schedule"]:
            errors: dict[str, str] = {}
            variant["schedule"] = _check_schedule(variant["schedule"], "s", errors)
            if errors:
                raise abtest.ExperimentError(
                    f"Вариант {variant['code']}: " + errors["s"]
                )
    metric = body.get("metric") or "no_show"
    if metric not in abtest.METRICS:
        raise abtest.ExperimentError("Метрика: no_show или confirmation.")
    minimum = body.get("min_per_variant") or 100
    if not _is_int(minimum) or minimum < 30:
        raise abtest.ExperimentError("Минимум визитов на вариант — не меньше 30.")
    with services.db.session() as session:
        running = session.scalars(
            select(Experiment).where(
                Experiment.portal_id == portal_id, Experiment.status == "running"
            )
        ).first()
        if running is not None:
            raise abtest.ExperimentError("Сначала завершите идущий тест.")
        experiment = Experiment(
            portal_id=portal_id,
            name=str(body.get("name") or "Тест напоминаний")[:120],
            variants=variants,
            metric=metric,
            min_per_variant=minimum,
            status="running",
        )
        session.add(experiment)
        session.flush()
        session.expunge(experiment)
    return experiment


def experiment_report(services: Services, experiment_id: int) -> dict[str, Any]:
    with services.db.session() as session:
        experiment = session.get(Experiment, experiment_id)
        rows = session.execute(
            select(
                Appointment.variant, Appointment.confirmed_at, Appointment.status
            ).where(Appointment.experiment_id == experiment_id)
        ).all()
    outcomes = [
        abtest.Outcome(
            variant=variant,
            confirmed=confirmed_at is not None,
            attended=status if status in ("visited", "no_show") else None,
        )
        for variant, confirmed_at, status in rows
        if variant
    ]
    report = abtest.analyse(
        experiment.variants,
        outcomes,
        metric=experiment.metric,
        min_per_variant=experiment.min_per_variant,
    )
    report.update(
        {
            "id": experiment.id,
            "name": experiment.name,
            "status": experiment.status,
            "promoted": experiment.winner,
        }
    )
    return report


def promote(services: Services, portal: Portal, experiment_id: int) -> dict[str, Any]:
    """Make the winner the portal's default and finish the test."""
    report = experiment_report(services, experiment_id)
    if report["verdict"] != "winner":
        raise abtest.ExperimentError(report["message"])
    with services.db.session() as session:
        experiment = session.get(Experiment, experiment_id)
        variant = next(v for v in experiment.variants if v["code"] == report["winner"])
        experiment.status = "finished"
        experiment.winner = variant["code"]
        experiment.verdict = {k: report[k] for k in ("verdict", "winner", "message")}
        experiment.finished_at = datetime.now(UTC)
    changes: dict[str, Any] = {}
    if variant["templates"]:
        texts = dict(config.settings(portal).get("templates") or {})
        texts.update(variant["templates"])
        changes["templates"] = texts
    if variant["schedule"]:
        changes["schedule"] = variant["schedule"]
    if changes:
        config.save(services, portal.id, changes)
    return report

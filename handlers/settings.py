"""SLA settings for portal administrators: the page and its JSON API.

The page is opened from the app's main page by a form or link that carries
the signed API token of the placement (``placement_auth``). The page keeps
the token in memory and sends it as a Bearer header, like the KPI tab. Only
portal administrators may read or change the settings (403 otherwise).

API:

* ``GET /api/v1/settings``: settings, version, presets and portal users;
* ``PUT /api/v1/settings`` with ``{"version": n, "settings": {...}}``: 200 with
  the new version, 422 with ``errors`` per field, 409 when someone saved
  since version ``n`` was read;
* ``GET /api/v1/settings/preview?created=ISO&tag=...``: due times of a lead
  created then, with a sentence per tier.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    current_app,
    g,
    jsonify,
    render_template,
    request,
)

from b24app import get_services
from b24app.bitrix.errors import BitrixCallError
from b24app.models import Portal
from b24app.placement_auth import PlacementDenied, Viewer, read_api_token
from b24app.sla import settings as sla_settings
from b24app.sla.policy import ACTIONS, CAPPED_INTENTS
from b24app.tagging.types import INTENTS, RU_LABELS

logger = logging.getLogger(__name__)

bp = Blueprint("settings", __name__)

TAGS = (*INTENTS, "urgent")


class SettingsApiError(Exception):
    def __init__(
        self, message: str, status: int, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors


@bp.errorhandler(SettingsApiError)
def _api_error(err: SettingsApiError):
    body: dict[str, Any] = {"error": str(err)}
    if err.errors is not None:
        body["errors"] = err.errors
    return jsonify(body), err.status


def _lang(viewer: Viewer) -> str:
    return "en" if (viewer.language or "").startswith("en") else "ru"


def _text(lang: str, ru: str, en: str) -> str:
    return en if lang == "en" else ru


def _viewer(token: str) -> tuple[Viewer, Portal]:
    """Check the signed token and the portal, and let only administrators pass."""
    services = get_services()
    try:
        viewer = read_api_token(services, token)
    except PlacementDenied as err:
        raise SettingsApiError(str(err), err.status) from err
    with services.db.session() as session:
        portal = session.get(Portal, viewer.portal_id)
    if portal is None or portal.member_id != viewer.member_id or not portal.is_active:
        raise SettingsApiError("portal is not active", 403)
    if not viewer.is_admin:
        raise SettingsApiError(
            _text(
                _lang(viewer),
                "Настройки может менять только администратор портала.",
                "Only portal administrators can change the settings.",
            ),
            403,
        )
    return viewer, portal


def admin_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise SettingsApiError("missing Authorization: Bearer token", 401)
        g.viewer, g.portal = _viewer(header.removeprefix("Bearer ").strip())
        g.lang = _lang(g.viewer)
        return view(*args, **kwargs)

    return wrapper


# The page


@bp.route("/settings", methods=["GET", "POST"])
def page():
    """Render the settings page, opened from the main page with the signed token."""
    token = (request.form.get("token") or request.args.get("token") or "").strip()
    if not token:
        return render_template(
            "error.html", message="Откройте настройки из приложения в Битрикс24."
        ), 401
    try:
        viewer, portal = _viewer(token)
    except SettingsApiError as err:
        return render_template("error.html", message=str(err)), err.status

    lang = _lang(viewer)
    response = current_app.make_response(
        render_template(
            "settings.html",
            lang=lang,
            t=PAGE_TEXTS[lang],
            api_token=token,
            tags=TAGS,
            tag_labels=_tag_labels(lang),
            actions=ACTIONS,
            action_labels={a: sla_settings.action_label(a, lang) for a in ACTIONS},
            segments={
                code: labels.get(lang, code)
                for code, labels in sla_settings.SEGMENT_LABELS.items()
            },
            channels={
                code: labels.get(lang, code)
                for code, labels in sla_settings.CHANNEL_LABELS.items()
            },
            capped_intents=CAPPED_INTENTS,
            bx24_js_url=current_app.config["BX24_JS_URL"],
        )
    )
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors https://{portal.domain}"
    )
    response.headers.pop("X-Frame-Options", None)
    response.headers["Cache-Control"] = "no-store"
    return response


def _tag_labels(lang: str) -> dict[str, str]:
    if lang == "en":
        return {tag: tag.capitalize() for tag in TAGS}
    return {tag: RU_LABELS.get(tag, tag) for tag in TAGS}


# The API


@bp.get("/api/v1/settings")
@admin_required
def get_settings():
    return jsonify(_settings_body(g.portal, g.lang))


@bp.put("/api/v1/settings")
@admin_required
def put_settings():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise SettingsApiError(
            _text(g.lang, "Ожидается JSON-объект.", "Expected a JSON object."),
            422,
            {
                "body": _text(
                    g.lang, "Ожидается JSON-объект.", "Expected a JSON object."
                )
            },
        )

    services = get_services()
    users = _users(services, g.portal)
    try:
        version, _ = sla_settings.save(
            services,
            g.portal.id,
            body.get("settings"),
            version=body.get("version"),
            lang=g.lang,
            known_users=[user["id"] for user in users] if users is not None else None,
        )
    except sla_settings.SettingsInvalid as err:
        raise SettingsApiError(
            _text(
                g.lang,
                "Проверьте выделенные поля.",
                "Check the highlighted fields.",
            ),
            422,
            err.errors,
        ) from err
    except sla_settings.SettingsConflict as err:
        raise SettingsApiError(
            _text(
                g.lang,
                "Настройки уже изменил другой администратор. Обновите страницу и "
                "внесите изменения снова.",
                "Another administrator changed the settings. Reload the page and "
                "make your changes again.",
            ),
            409,
        ) from err

    logger.info(
        "settings changed",
        extra={
            "member_id": g.portal.member_id,
            "user_id": g.viewer.user_id,
            "version": version,
        },
    )
    with services.db.session() as session:
        portal = session.get(Portal, g.portal.id)
    return jsonify(_settings_body(portal, g.lang, users=users))


@bp.get("/api/v1/settings/preview")
@admin_required
def preview():
    """Return the due times of a lead created at ``created`` with ``tag`` values."""
    calendar = sla_settings.calendar(g.portal)
    raw = request.args.get("created") or ""
    errors: dict[str, str] = {}
    created = None
    if raw:
        try:
            created = sla_settings.parse_local(raw, calendar.tz)
        except ValueError:
            errors["created"] = _text(
                g.lang,
                "Время в формате ISO, например 2026-03-14T20:59 или "
                "2026-03-14T20:59:00+03:00.",
                "An ISO time such as 2026-03-14T20:59 or 2026-03-14T20:59:00+03:00.",
            )
    else:
        errors["created"] = _text(g.lang, "Укажите время.", "Give a time.")
    tags = request.args.getlist("tag")
    unknown = [tag for tag in tags if tag.strip().lower() not in TAGS]
    if unknown:
        errors["tag"] = _text(
            g.lang,
            f"Неизвестный тег «{unknown[0]}»; возможны: {', '.join(TAGS)}.",
            f"Unknown tag '{unknown[0]}'; use one of {', '.join(TAGS)}.",
        )
    if errors:
        raise SettingsApiError(
            _text(g.lang, "Проверьте параметры.", "Check the parameters."), 422, errors
        )
    return jsonify(sla_settings.preview(g.portal, created, tags, lang=g.lang))


def _users(services, portal: Portal) -> list[dict[str, Any]] | None:
    try:
        return sla_settings.portal_users(services, portal)
    except BitrixCallError as err:
        logger.warning(
            "portal users not loaded",
            extra={"member_id": portal.member_id, "code": err.code},
        )
        return None


def _settings_body(
    portal: Portal, lang: str, *, users: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    if users is None:
        users = _users(get_services(), portal)
    return {
        "version": sla_settings.settings_version(portal),
        "language": lang,
        "settings": sla_settings.current(portal),
        "defaults": {"owner_user_id": portal.token_user_id},
        "presets": sla_settings.presets(),
        "effective": sla_settings.effective_targets(sla_settings.policy(portal)),
        "users": users or [],
        "users_loaded": users is not None,
    }


# Display helpers for the lead tab


@bp.app_template_filter("local_time")
def local_time(value: datetime | None, tz: str, seconds: bool = False) -> str:
    """Format a stored UTC time in the portal's zone, like 05.12.2026 09:30."""
    if value is None:
        return ""
    from zoneinfo import ZoneInfo

    return sla_settings.local_text(value, ZoneInfo(tz), seconds=seconds)


PAGE_TEXTS = {
    "ru": {
        "title": "Отклик — настройки SLA",
        "heading": "Настройки первого ответа",
        "calendar": "Рабочее время",
        "tz": "Часовой пояс",
        "country": "Учитывать производственный календарь России",
        "weekly_hint": "Интервалы через запятую, например 09:00-13:00, 14:00-21:00. "
        "Пусто — выходной.",
        "days": [
            "Понедельник",
            "Вторник",
            "Среда",
            "Четверг",
            "Пятница",
            "Суббота",
            "Воскресенье",
        ],
        "custom_dates": "Особые даты",
        "custom_hint": "По строке на дату: 2026-12-31 закрыто или "
        "2026-12-30 10:00-16:00.",
        "segment": "Тип бизнеса",
        "apply_preset": "Подставить сроки для этого типа",
        "targets": "Сроки ответа",
        "bot_seconds": "Ответ бота, секунд",
        "bot_channels": "Бот отвечает в каналах (у лидов из других каналов нет "
        "срока ответа бота):",
        "effective": "Действующие сроки менеджера:",
        "effective_default": "обычный лид",
        "capped_hint": "Срочный лид и жалоба не ждут дольше обычного лида: их "
        "срок не больше общего.",
        "capped_note": "сокращён до общего срока",
        "min": "мин",
        "human_minutes": "Ответ менеджера, минут рабочего времени",
        "intents": "Свой срок для намерения, минут (пусто — общий срок)",
        "spam_clock": "Считать срок и для спама",
        "fresh_clock": "Новый срок при передаче лида другому менеджеру",
        "warn_ratio": "Лид «под угрозой» с доли срока",
        "ladder": "Лестница эскалации",
        "ladder_hint": "Доля срока: 0.8 — за 20 % до срока, 1 — в срок, "
        "2 — через ещё один срок.",
        "code": "Код",
        "ratio": "Доля срока",
        "action": "Действие",
        "add_level": "Добавить ступень",
        "remove": "Удалить",
        "recipients": "Получатели",
        "senior": "Старший (задачи)",
        "senior_auto": "Руководитель отдела менеджера",
        "owner": "Владелец (уведомления)",
        "owner_auto": "Установивший приложение",
        "schedules": "Графики менеджеров",
        "schedules_hint": "Смены по дням недели. Уведомления менеджеру приходят "
        "только в его смену (срочные лиды — сразу).",
        "add_schedule": "Добавить график",
        "save": "Сохранить",
        "saved": "Сохранено.",
        "preview": "Проверить срок",
        "created": "Лид создан",
        "tag": "Тег",
        "no_tag": "без тега",
        "show": "Показать",
        "load_failed": "Не удалось загрузить настройки: ",
        "users_failed": "Список сотрудников не загрузился: укажите ID вручную.",
        "closed": "закрыто",
    },
    "en": {
        "title": "Otklik — SLA settings",
        "heading": "First-response settings",
        "calendar": "Working hours",
        "tz": "Time zone",
        "country": "Use the Russian production calendar",
        "weekly_hint": "Intervals separated by commas, like 09:00-13:00, "
        "14:00-21:00. Empty means closed.",
        "days": [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ],
        "custom_dates": "Special dates",
        "custom_hint": "One date per line: 2026-12-31 closed or "
        "2026-12-30 10:00-16:00.",
        "segment": "Business type",
        "apply_preset": "Use the targets of this type",
        "targets": "Response targets",
        "bot_seconds": "Bot reply, seconds",
        "bot_channels": "The bot replies in these channels (leads from other "
        "channels get no bot target):",
        "effective": "Manager targets in effect:",
        "effective_default": "ordinary lead",
        "capped_hint": "An urgent lead or a complaint never waits longer than an "
        "ordinary lead: its target is at most the general one.",
        "capped_note": "cut to the general target",
        "min": "min",
        "human_minutes": "Manager reply, minutes of working time",
        "intents": "Own target per intent, minutes (empty: the general one)",
        "spam_clock": "Run the clock for spam too",
        "fresh_clock": "New target when a lead passes to another manager",
        "warn_ratio": "A lead is at risk from this share of the target",
        "ladder": "Escalation ladder",
        "ladder_hint": "Share of the target: 0.8 is 20 % before the target, 1 at "
        "the target, 2 one more target later.",
        "code": "Code",
        "ratio": "Share",
        "action": "Action",
        "add_level": "Add a step",
        "remove": "Remove",
        "recipients": "Recipients",
        "senior": "Senior (tasks)",
        "senior_auto": "Head of the manager's department",
        "owner": "Owner (notices)",
        "owner_auto": "The user who installed the app",
        "schedules": "Manager schedules",
        "schedules_hint": "Shifts per weekday. A manager gets notices during their "
        "shift only (urgent leads at once).",
        "add_schedule": "Add a schedule",
        "save": "Save",
        "saved": "Saved.",
        "preview": "Check a deadline",
        "created": "Lead created",
        "tag": "Tag",
        "no_tag": "no tag",
        "show": "Show",
        "load_failed": "Could not load the settings: ",
        "users_failed": "The user list did not load: enter user IDs.",
        "closed": "closed",
    },
}

"""SLA settings of a portal: cached reading, validation, saving and preview.

The settings live in ``portal.settings`` next to keys owned by other parts of
the app (the tagging engine), which this module never touches:

* ``segment``: the business type whose preset policy applies by default;
* ``calendar``: ``BusinessCalendar.to_dict()`` of the business hours;
* ``policy``: ``SlaPolicy.to_dict()``, targets and the escalation ladder;
* ``senior_user_id`` and ``owner_user_id``: ladder recipients (optional);
* ``manager_schedules``: ``{user_id: weekly hours}``, a manager's shifts;
* ``settings_version``: raised by one on every save (optimistic locking).

A manager's working time is the portal calendar's time zone, country holidays
and closed dates with the manager's own weekly hours. Without a schedule a
person works the business hours. Working time decides when a notice to that
person may go out, and whether the responsible manager is expected to answer.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
import time as monotonic_time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from b24app import portal_settings
from b24app.models import Portal
from b24app.sla.calendar import BusinessCalendar, CalendarError, NoOpenTimeError
from b24app.sla.policy import (
    ACTIONS,
    CAPPED_INTENTS,
    MAX_AT_RATIO,
    MAX_BOT_SECONDS,
    MAX_HUMAN_SECONDS,
    PRESETS,
    PolicyError,
    SlaPolicy,
    compute_due,
    ladder_times,
)

logger = logging.getLogger(__name__)

SLA_KEYS = (
    "segment",
    "calendar",
    "policy",
    "senior_user_id",
    "owner_user_id",
    "manager_schedules",
)
VERSION_KEY = "settings_version"
MAX_LEVEL_CODE = 24
"""Level codes are stored with a round suffix in a 32-character column."""
MAX_CUSTOM_DATES = 366
USERS_CACHE_SECONDS = 300
MAX_USERS = 500

SEGMENT_LABELS = {
    "salon": {"ru": "Салон красоты", "en": "Beauty salon"},
    "clinic": {"ru": "Клиника", "en": "Clinic"},
    "fitness": {"ru": "Фитнес-студия", "en": "Fitness studio"},
}

_TIME = re.compile(r"(\d{2}):(\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CODE = re.compile(r"[a-z][a-z0-9_]*")
_POLICY_FIELDS = (
    "bot_seconds",
    "human_seconds",
    "intent_human_seconds",
    "spam_has_clock",
    "warn_ratio",
    "ladder",
    "fresh_clock_on_reassign",
    "bot_channels",
)

CHANNEL_LABELS = {
    "openline": {"ru": "Чаты открытых линий", "en": "Open-line chats"},
    "site": {"ru": "Формы на сайте", "en": "Website forms"},
    "email": {"ru": "Электронная почта", "en": "E-mail"},
    "phone": {"ru": "Телефон", "en": "Phone"},
    "ads": {"ru": "Реклама", "en": "Ads"},
    "referral": {"ru": "Рекомендации", "en": "Referrals"},
}
"""Lead channels as ``leadtext.channel`` names them, for the bot-tier choice."""

SECONDS_FIELDS = {
    "policy.bot_seconds": {"ru": "Ответ бота", "en": "Bot reply"},
}
"""Targets that the settings page edits in seconds; the others are in minutes."""

_FIELD_LABELS = {
    "policy.human_seconds": {"ru": "Ответ менеджера", "en": "Manager reply"},
    **SECONDS_FIELDS,
}


# Reading


def calendar(portal: Portal) -> BusinessCalendar:
    """Return the portal's business calendar, built once per distinct setting."""
    data = (portal.settings or {}).get("calendar")
    return _calendar_from_json(json.dumps(data, sort_keys=True))


@functools.lru_cache(maxsize=2048)
def _calendar_from_json(text: str) -> BusinessCalendar:
    data = json.loads(text)
    if data:
        return BusinessCalendar.from_dict(data)
    return BusinessCalendar(tz=portal_settings.DEFAULT_TIMEZONE)


def policy(portal: Portal) -> SlaPolicy:
    """Return the saved policy of the portal, else the preset of its segment."""
    settings = portal.settings or {}
    key = json.dumps(
        [settings.get("policy"), portal_settings.segment(portal)], sort_keys=True
    )
    return _policy_from_json(key)


@functools.lru_cache(maxsize=2048)
def _policy_from_json(text: str) -> SlaPolicy:
    data, segment = json.loads(text)
    if data:
        return SlaPolicy.from_dict(data)
    return PRESETS.get(segment, PRESETS[portal_settings.DEFAULT_SEGMENT])


def manager_schedules(portal: Portal) -> dict[str, dict[str, list[list[str]]]]:
    value = (portal.settings or {}).get("manager_schedules")
    return value if isinstance(value, dict) else {}


def working_calendar(portal: Portal, user_id: int | None) -> BusinessCalendar:
    """Return the calendar of ``user_id``: their shifts if set, else business hours."""
    schedule = manager_schedules(portal).get(str(user_id)) if user_id else None
    if not schedule:
        return calendar(portal)
    base = (portal.settings or {}).get("calendar")
    try:
        return _schedule_calendar(json.dumps([base, schedule], sort_keys=True))
    except CalendarError:
        logger.warning(
            "manager schedule is invalid, business hours used",
            extra={"member_id": portal.member_id, "user_id": user_id},
        )
        return calendar(portal)


@functools.lru_cache(maxsize=4096)
def _schedule_calendar(text: str) -> BusinessCalendar:
    base_data, schedule = json.loads(text)
    base = _calendar_from_json(json.dumps(base_data, sort_keys=True))
    closed = {day: [] for day, hours in base.custom_dates.items() if not hours}
    return BusinessCalendar(
        tz=base.tz_name,
        weekly=_parse_weekly_json(schedule),
        country=base.country,
        custom_dates=closed,
    )


def _parse_weekly_json(weekly: Mapping[str, Any]) -> dict[int, list]:
    parsed = BusinessCalendar.from_dict({"weekly": weekly, "country": None})
    return {day: list(hours) for day, hours in parsed.weekly.items()}


def is_working(portal: Portal, user_id: int | None, at: datetime) -> bool:
    return working_calendar(portal, user_id).is_open(at)


def next_working_time(portal: Portal, user_id: int | None, at: datetime) -> datetime:
    """Return ``at`` if the person works then, else the start of their next shift.

    A schedule with no shift within a year gives ``at``: a notice late by a
    night is better than one never sent.
    """
    try:
        return working_calendar(portal, user_id).next_opening(at)
    except NoOpenTimeError:
        logger.warning(
            "no working time found for a recipient",
            extra={"member_id": portal.member_id, "user_id": user_id},
        )
        return at


def settings_version(portal: Portal) -> int:
    return int((portal.settings or {}).get(VERSION_KEY) or 0)


def current(portal: Portal) -> dict[str, Any]:
    """Return the SLA settings as the settings page edits them, with defaults."""
    settings = portal.settings or {}
    return {
        "segment": portal_settings.segment(portal),
        "calendar": calendar(portal).to_dict(),
        "policy": policy(portal).to_dict(),
        "senior_user_id": _int_or_none(settings.get("senior_user_id")),
        "owner_user_id": _int_or_none(settings.get("owner_user_id")),
        "manager_schedules": manager_schedules(portal),
    }


def effective_targets(pol: SlaPolicy) -> dict[str, Any]:
    """Return the targets that apply to leads, for the settings page.

    ``capped`` lists the intents whose target is cut to the default one.
    """
    effective = pol.effective_intent_seconds()
    return {
        "human_seconds": pol.human_seconds,
        "intent_human_seconds": effective,
        "capped_intents": list(CAPPED_INTENTS),
        "capped": sorted(
            code
            for code, seconds in effective.items()
            if seconds < pol.intent_human_seconds[code]
        ),
    }


def presets() -> dict[str, dict[str, Any]]:
    return {
        code: {"label": SEGMENT_LABELS.get(code, {}), "policy": value.to_dict()}
        for code, value in PRESETS.items()
    }


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "", 0, "0") else None
    except (TypeError, ValueError):
        return None


# Portal users


_users_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
_users_lock = threading.Lock()


def portal_users(services, portal: Portal) -> list[dict[str, Any]]:
    """Return the active users of the portal with their names, cached for minutes."""
    with _users_lock:
        cached = _users_cache.get(portal.member_id)
    if cached and monotonic_time.monotonic() - cached[0] < USERS_CACHE_SECONDS:
        return cached[1]

    client = services.client(portal)
    users: list[dict[str, Any]] = []
    start: int | None = 0
    while start is not None and len(users) < MAX_USERS:
        response = client.call_raw("user.get", {"start": start})
        for row in response.get("result") or []:
            if str(row.get("ACTIVE", True)).lower() in ("false", "n", "0"):
                continue
            users.append(
                {
                    "id": int(row["ID"]),
                    "name": user_name(row),
                    "position": row.get("WORK_POSITION") or "",
                }
            )
        start = response.get("next")

    with _users_lock:
        _users_cache[portal.member_id] = (monotonic_time.monotonic(), users)
    return users


def user_name(row: Mapping[str, Any]) -> str:
    name = " ".join(
        str(row.get(key) or "").strip() for key in ("NAME", "LAST_NAME")
    ).strip()
    return name or f"#{row.get('ID')}"


# Validation


class SettingsInvalid(ValueError):
    """Settings with problems; ``errors`` maps a field path to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class SettingsConflict(RuntimeError):
    """The settings changed since the client read them."""

    def __init__(self, version: int) -> None:
        super().__init__(f"settings are at version {version}")
        self.version = version


@dataclass
class _Problems:
    lang: str
    errors: dict[str, str]

    def add(self, path: str, ru: str, en: str) -> None:
        self.errors.setdefault(path, en if self.lang == "en" else ru)

    def has(self, prefix: str) -> bool:
        return any(path.startswith(prefix) for path in self.errors)


def validate(
    data: Any, *, lang: str = "ru", known_users: Iterable[int] | None = None
) -> dict[str, Any]:
    """Check the settings from the page and return them in stored form.

    Raises ``SettingsInvalid`` with one message per faulty field, in Russian
    or English. ``known_users`` (when given) must contain every user id.
    """
    problems = _Problems(lang, {})
    if not isinstance(data, Mapping):
        problems.add("settings", "Ожидается объект настроек.", "Expected an object.")
        raise SettingsInvalid(problems.errors)

    for key in data:
        if key not in SLA_KEYS:
            problems.add(str(key), "Неизвестное поле.", "Unknown field.")

    users = set(known_users) if known_users is not None else None
    result: dict[str, Any] = {}
    result["segment"] = _check_segment(data.get("segment"), problems)
    calendar_data = _check_calendar(data.get("calendar"), problems)
    result["calendar"] = calendar_data
    result["policy"] = _check_policy(data.get("policy"), problems)
    for key in ("senior_user_id", "owner_user_id"):
        result[key] = _check_user(key, data.get(key), users, problems)
    result["manager_schedules"] = _check_schedules(
        data.get("manager_schedules"), users, problems
    )

    if problems.errors:
        raise SettingsInvalid(problems.errors)
    return result


def _check_segment(value: Any, problems: _Problems) -> str:
    if value is None:
        return portal_settings.DEFAULT_SEGMENT
    if value not in PRESETS:
        names = ", ".join(PRESETS)
        problems.add(
            "segment",
            f"Выберите тип бизнеса: {names}.",
            f"Choose a business type: {names}.",
        )
        return portal_settings.DEFAULT_SEGMENT
    return value


def _check_calendar(value: Any, problems: _Problems) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.add("calendar", "Ожидается объект.", "Expected an object.")
        return None
    for key in value:
        if key not in ("tz", "country", "weekly", "custom_dates"):
            problems.add(f"calendar.{key}", "Неизвестное поле.", "Unknown field.")

    tz = value.get("tz", portal_settings.DEFAULT_TIMEZONE)
    if not _valid_zone(tz):
        problems.add(
            "calendar.tz",
            "Неизвестный часовой пояс; пример: Europe/Moscow.",
            "Unknown time zone; for example Europe/Moscow.",
        )

    country = value.get("country", "RU")
    if not _valid_country(country):
        problems.add(
            "calendar.country",
            "Код страны из двух букв (RU) или пусто, чтобы не учитывать праздники.",
            "A two-letter country code (RU) or empty to ignore public holidays.",
        )

    weekly = value.get("weekly")
    if weekly is not None:
        if not isinstance(weekly, Mapping):
            problems.add(
                "calendar.weekly",
                "Ожидаются часы по дням недели.",
                "Expected hours per weekday.",
            )
        else:
            open_days = _check_weekly("calendar.weekly", weekly, problems)
            if open_days == 0 and not problems.has("calendar.weekly"):
                problems.add(
                    "calendar.weekly",
                    "Укажите часы работы хотя бы для одного дня.",
                    "Set working hours for at least one day.",
                )

    custom = value.get("custom_dates") or {}
    if not isinstance(custom, Mapping):
        problems.add(
            "calendar.custom_dates",
            "Ожидаются даты с часами.",
            "Expected dates with hours.",
        )
    elif len(custom) > MAX_CUSTOM_DATES:
        problems.add(
            "calendar.custom_dates",
            f"Не больше {MAX_CUSTOM_DATES} особых дат.",
            f"At most {MAX_CUSTOM_DATES} special dates.",
        )
    else:
        for key, hours in custom.items():
            path = f"calendar.custom_dates.{key}"
            if not _valid_date(key):
                problems.add(
                    path,
                    "Дата в формате ГГГГ-ММ-ДД.",
                    "A date as YYYY-MM-DD.",
                )
                continue
            _check_hours(path, hours, problems)

    if problems.has("calendar"):
        return None
    try:
        return BusinessCalendar.from_dict(value).to_dict()
    except CalendarError as err:
        problems.add("calendar", f"Ошибка в календаре: {err}", f"Calendar: {err}")
        return None


def _check_weekly(prefix: str, weekly: Mapping, problems: _Problems) -> int:
    open_days = 0
    for key, hours in weekly.items():
        path = f"{prefix}.{key}"
        if str(key) not in {str(day) for day in range(7)}:
            problems.add(
                path,
                "День недели — число от 0 (понедельник) до 6 (воскресенье).",
                "A weekday is a number from 0 (Monday) to 6 (Sunday).",
            )
            continue
        if _check_hours(path, hours, problems):
            open_days += 1
    return open_days


def _check_hours(path: str, hours: Any, problems: _Problems) -> int:
    """Check one day's intervals; return how many there are."""
    if not isinstance(hours, list):
        problems.add(
            path,
            "Ожидается список интервалов вида [«09:00», «18:00»].",
            'Expected a list of intervals like ["09:00", "18:00"].',
        )
        return 0

    spans = []
    for pair in hours:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            problems.add(
                path,
                "Каждый интервал — начало и конец, например 09:00–18:00.",
                "Each interval is a start and an end, like 09:00-18:00.",
            )
            return 0
        start, end = _minutes(pair[0], end=False), _minutes(pair[1], end=True)
        if start is None or end is None:
            problems.add(
                path,
                f"Время в формате ЧЧ:ММ от 00:00 до 24:00, получено «{pair[0]}–"
                f"{pair[1]}».",
                f"Times are HH:MM from 00:00 to 24:00, got '{pair[0]}-{pair[1]}'.",
            )
            return 0
        if start >= end:
            problems.add(
                path,
                f"Начало {pair[0]} должно быть раньше конца {pair[1]}.",
                f"Start {pair[0]} must be before end {pair[1]}.",
            )
            return 0
        spans.append((start, end, pair))

    spans.sort()
    for (_, first_end, first), (second_start, _, second) in zip(
        spans, spans[1:], strict=False
    ):
        if second_start < first_end:
            problems.add(
                path,
                f"Интервалы {first[0]}–{first[1]} и {second[0]}–{second[1]} "
                "пересекаются.",
                f"Intervals {first[0]}-{first[1]} and {second[0]}-{second[1]} overlap.",
            )
            return 0
    return len(spans)


def _minutes(text: Any, *, end: bool) -> int | None:
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    hour, minute = int(match[1]), int(match[2])
    if end and (hour, minute) == (24, 0):
        return 24 * 60
    if hour > 23 or minute > 59:
        return None
    return hour * 60 + minute


def _valid_zone(name: Any) -> bool:
    if not isinstance(name, str) or not name or "/" not in name:
        return name == "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _valid_country(code: Any) -> bool:
    if code is None:
        return True
    try:
        BusinessCalendar(country=code)
    except CalendarError:
        return False
    return True


def _valid_date(text: Any) -> bool:
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _check_policy(value: Any, problems: _Problems) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.add("policy", "Ожидается объект.", "Expected an object.")
        return None
    for key in value:
        if key not in _POLICY_FIELDS:
            problems.add(f"policy.{key}", "Неизвестное поле.", "Unknown field.")

    _check_seconds(
        "policy.bot_seconds", value.get("bot_seconds", 30), MAX_BOT_SECONDS, problems
    )
    _check_seconds(
        "policy.human_seconds",
        value.get("human_seconds", 1800),
        MAX_HUMAN_SECONDS,
        problems,
    )

    intents = value.get("intent_human_seconds", {})
    if not isinstance(intents, Mapping):
        problems.add(
            "policy.intent_human_seconds",
            "Ожидаются сроки по намерениям.",
            "Expected targets per intent.",
        )
    else:
        for code, seconds in intents.items():
            path = f"policy.intent_human_seconds.{code}"
            if not (isinstance(code, str) and _CODE.fullmatch(code)) or (
                code == "default"
            ):
                problems.add(path, "Неизвестное намерение.", "Unknown intent.")
                continue
            _check_seconds(path, seconds, MAX_HUMAN_SECONDS, problems)

    for name in ("spam_has_clock", "fresh_clock_on_reassign"):
        if name in value and not isinstance(value[name], bool):
            problems.add(f"policy.{name}", "Да или нет.", "Yes or no.")

    channels = value.get("bot_channels", [])
    if not isinstance(channels, list) or not all(
        isinstance(channel, str) and _CODE.fullmatch(channel) for channel in channels
    ):
        problems.add(
            "policy.bot_channels",
            "Ожидается список каналов, например openline.",
            "Expected a list of channels such as openline.",
        )

    ratio = value.get("warn_ratio", 0.8)
    if not _number(ratio) or not 0 < ratio < 1:
        problems.add(
            "policy.warn_ratio",
            "Доля срока больше 0 и меньше 1, например 0.8.",
            "A share of the target above 0 and below 1, such as 0.8.",
        )

    _check_ladder(value.get("ladder", []), problems)

    if problems.has("policy"):
        return None
    try:
        return SlaPolicy.from_dict(value).to_dict()
    except PolicyError as err:
        problems.add("policy", f"Ошибка в сроках: {err}", f"Targets: {err}")
        return None


def _check_seconds(path: str, value: Any, maximum: int, problems: _Problems) -> None:
    """Check a target stored in seconds, in the unit the page edits it in.

    The page edits the bot target in seconds and every human target in
    minutes, so a message names the field and that unit.
    """
    labels = _FIELD_LABELS.get(path) or _intent_label(path)
    seconds_unit = path in SECONDS_FIELDS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        if seconds_unit:
            ru = "целое число секунд больше нуля"
            en = "a whole number of seconds above zero"
        else:
            ru, en = "число минут больше нуля", "a number of minutes above zero"
        problems.add(path, f"{labels['ru']}: {ru}.", f"{labels['en']}: {en}.")
    elif value > maximum:
        if seconds_unit:
            ru, en = f"не больше {maximum} с", f"at most {maximum} s"
        else:
            ru, en = f"не больше {maximum // 60} мин", f"at most {maximum // 60} min"
        problems.add(path, f"{labels['ru']}: {ru}.", f"{labels['en']}: {en}.")


def _intent_label(path: str) -> dict[str, str]:
    from b24app.tagging.types import RU_LABELS

    code = path.rpartition(".")[2]
    return {
        "ru": f"Срок для «{RU_LABELS.get(code, code).lower()}»",
        "en": f"Target for '{code}'",
    }


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check_ladder(ladder: Any, problems: _Problems) -> None:
    if not isinstance(ladder, list):
        problems.add(
            "policy.ladder", "Ожидается список ступеней.", "Expected a list of steps."
        )
        return
    seen: set[str] = set()
    for index, level in enumerate(ladder):
        path = f"policy.ladder.{index}"
        if not isinstance(level, Mapping):
            problems.add(path, "Ожидается ступень.", "Expected a step.")
            continue
        code = level.get("code")
        if not (
            isinstance(code, str)
            and _CODE.fullmatch(code)
            and len(code) <= MAX_LEVEL_CODE
        ):
            problems.add(
                f"{path}.code",
                f"Код из латинских строчных букв, цифр и «_», до {MAX_LEVEL_CODE} "
                "символов, начинается с буквы.",
                f"A code of lower-case letters, digits and '_', up to "
                f"{MAX_LEVEL_CODE} characters, starting with a letter.",
            )
        elif code in seen:
            problems.add(
                f"{path}.code", "Такой код уже есть.", "This code is already used."
            )
        else:
            seen.add(code)
        ratio = level.get("at_ratio")
        if not _number(ratio) or not 0 < ratio <= MAX_AT_RATIO:
            problems.add(
                f"{path}.at_ratio",
                f"Доля срока больше 0 и не больше {MAX_AT_RATIO:g}, например 1.0.",
                f"A share of the target above 0 and up to {MAX_AT_RATIO:g}, "
                "such as 1.0.",
            )
        if level.get("action") not in ACTIONS:
            problems.add(
                f"{path}.action",
                "Действие: предупредить ответственного, задача старшему или "
                "уведомить владельца.",
                "Action: warn the responsible, task for the senior or notify the "
                "owner.",
            )
        for key in level:
            if key not in ("code", "at_ratio", "action"):
                problems.add(f"{path}.{key}", "Неизвестное поле.", "Unknown field.")


def _check_user(
    path: str, value: Any, users: set[int] | None, problems: _Problems
) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        problems.add(path, "Ожидается сотрудник.", "Expected a user.")
        return None
    try:
        user_id = int(value)
    except ValueError:
        user_id = 0
    if user_id <= 0:
        problems.add(path, "Ожидается сотрудник.", "Expected a user.")
        return None
    if users is not None and user_id not in users:
        problems.add(
            path,
            f"Сотрудник {user_id} не найден на портале.",
            f"User {user_id} is not on the portal.",
        )
    return user_id


def _check_schedules(
    value: Any, users: set[int] | None, problems: _Problems
) -> dict[str, dict[str, list[list[str]]]]:
    if value in (None, {}):
        return {}
    if not isinstance(value, Mapping):
        problems.add(
            "manager_schedules",
            "Ожидаются графики по сотрудникам.",
            "Expected schedules per user.",
        )
        return {}

    result = {}
    for key, weekly in value.items():
        path = f"manager_schedules.{key}"
        user_id = _check_user(path, key, users, problems)
        if user_id is None:
            continue
        if not isinstance(weekly, Mapping):
            problems.add(path, "Ожидаются часы по дням недели.", "Expected hours.")
            continue
        if _check_weekly(path, weekly, problems) == 0:
            problems.add(
                path,
                "Укажите хотя бы одну смену или удалите график.",
                "Add at least one shift or remove the schedule.",
            )
            continue
        if problems.has(path):
            continue
        parsed = BusinessCalendar.from_dict({"weekly": weekly, "country": None})
        result[str(user_id)] = {
            day: hours for day, hours in parsed.to_dict()["weekly"].items() if hours
        }
    return result


# Saving


def save(
    services,
    portal_id: int,
    data: Any,
    *,
    version: Any,
    lang: str = "ru",
    known_users: Iterable[int] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Validate and store the SLA settings unless someone saved in between.

    Returns the new version and the stored settings. Raises ``SettingsInvalid``
    (422) or ``SettingsConflict`` (409). The row is locked while the version
    is compared, so two concurrent saves of one version cannot both win.
    """
    if isinstance(version, bool) or not isinstance(version, int):
        message = {"ru": "Нужен номер версии настроек.", "en": "Version is required."}
        raise SettingsInvalid({"version": message["en" if lang == "en" else "ru"]})
    cleaned = validate(data, lang=lang, known_users=known_users)

    with services.db.session() as session:
        portal = session.scalars(
            select(Portal).where(Portal.id == portal_id).with_for_update()
        ).one()
        stored = dict(portal.settings or {})
        current_version = int(stored.get(VERSION_KEY) or 0)
        if version != current_version:
            raise SettingsConflict(current_version)

        for key in SLA_KEYS:
            value = cleaned.get(key)
            if value in (None, {}) and key != "segment":
                stored.pop(key, None)
            else:
                stored[key] = value
        stored[VERSION_KEY] = current_version + 1
        portal.settings = stored

    logger.info(
        "sla settings saved",
        extra={"portal_id": portal_id, "version": current_version + 1},
    )
    return current_version + 1, cleaned


# Preview


def preview(
    portal: Portal, created_at: datetime, tags: Iterable[str], *, lang: str = "ru"
) -> dict[str, Any]:
    """Due times of a lead created at ``created_at`` with ``tags``, with sentences.

    The tag "urgent" sets the urgent flag. Times are shown in the portal's zone.
    """
    cal = calendar(portal)
    pol = policy(portal)
    codes = [tag.strip().lower() for tag in tags if tag and tag.strip()]
    urgent = "urgent" in codes
    intents = [code for code in codes if code != "urgent"]
    due = compute_due(created_at, intents, urgent, pol, cal)
    created_text = local_text(created_at, cal.tz)
    result: dict[str, Any] = {
        "timezone": cal.tz_name,
        "created_at": created_at.astimezone(cal.tz).isoformat(),
        "clock": due is not None,
        "tiers": [],
        "ladder": [],
    }
    if due is None:
        result["text"] = _t(
            lang,
            f"Лид со спамом, созданный {created_text}, не получает срока ответа.",
            f"A spam lead created {created_text} gets no response deadline.",
        )
        return result

    bot_text = _t(
        lang,
        f"Лид, созданный {created_text}, должен получить ответ бота до "
        f"{due_text(due.bot_due, cal.tz, pol.bot_seconds)}. "
        f"{_bot_channels_text(pol, 'ru')}",
        f"A lead created {created_text} would be due for the bot's reply at "
        f"{due_text(due.bot_due, cal.tz, pol.bot_seconds)}. "
        f"{_bot_channels_text(pol, 'en')}",
    )
    human_due_text = due_text(due.human_due, cal.tz, due.human_seconds)
    minutes = _minutes_text(due.human_seconds)
    human_text = _t(
        lang,
        f"Лид, созданный {created_text}, должен получить ответ менеджера до "
        f"{human_due_text} ({minutes} рабочего времени"
        f"{_rule_text(due.rule, lang)}).",
        f"A lead created {created_text} would be due for a manager's reply at "
        f"{human_due_text} ({minutes} of working time"
        f"{_rule_text(due.rule, lang)}).",
    )
    if due.human_starts_at > due.created_at:
        human_text += " " + _t(
            lang,
            f"Лид пришёл в нерабочее время: отсчёт начнётся "
            f"{local_text(due.human_starts_at, cal.tz)}.",
            f"It arrived out of hours: the clock starts "
            f"{local_text(due.human_starts_at, cal.tz)}.",
        )

    result["tiers"] = [
        {
            "tier": "bot",
            "starts_at": due.created_at.astimezone(cal.tz).isoformat(),
            "due_at": due.bot_due.astimezone(cal.tz).isoformat(),
            "target_seconds": pol.bot_seconds,
            "text": bot_text,
        },
        {
            "tier": "human",
            "starts_at": due.human_starts_at.astimezone(cal.tz).isoformat(),
            "due_at": due.human_due.astimezone(cal.tz).isoformat(),
            "target_seconds": due.human_seconds,
            "rule": due.rule,
            "text": human_text,
        },
    ]
    result["ladder"] = [
        {
            "level": level.code,
            "action": level.action,
            "at": at.astimezone(cal.tz).isoformat(),
            "text": f"{action_label(level.action, lang)}: {local_text(at, cal.tz)}",
        }
        for level, at in ladder_times(due, pol, cal)
    ]
    result["text"] = " ".join(tier["text"] for tier in result["tiers"])
    return result


def _bot_channels_text(pol: SlaPolicy, lang: str) -> str:
    names = [
        CHANNEL_LABELS.get(code, {}).get(lang, code).lower()
        for code in pol.bot_channels
    ]
    if not names:
        return _t(
            lang,
            "Срок бота не действует ни в одном канале.",
            "The bot target applies to no channel.",
        )
    joined = ", ".join(names)
    return _t(
        lang,
        f"Срок бота действует только для лидов из каналов: {joined}.",
        f"The bot target applies only to leads from these channels: {joined}.",
    )


def _rule_text(rule: str, lang: str) -> str:
    if rule == "default":
        return ""
    from b24app.tagging.types import RU_LABELS

    label = RU_LABELS.get(rule, rule).lower() if lang != "en" else rule
    return _t(lang, f", срок для «{label}»", f", target for '{label}'")


def _minutes_text(seconds: float) -> str:
    minutes = seconds / 60
    shown = f"{minutes:g}" if minutes < 10 else f"{round(minutes)}"
    return f"{shown} мин"


ACTION_LABELS = {
    "warn_responsible": {
        "ru": "предупреждение ответственному",
        "en": "warning to the responsible",
    },
    "task_senior": {"ru": "задача старшему", "en": "task for the senior"},
    "notify_owner": {"ru": "уведомление владельцу", "en": "notice to the owner"},
}


def action_label(action: str, lang: str = "ru") -> str:
    labels = ACTION_LABELS.get(action)
    if labels is None:
        return action
    return labels["en" if lang == "en" else "ru"]


SECONDS_SHOWN_BELOW = 120
"""Due times of targets shorter than this many seconds are shown to the second."""


def due_text(moment: datetime, tz, target_seconds: float) -> str:
    """Format a due time, to the second when the target is under two minutes.

    The same rule holds for both tiers, so a one-minute manager target shows
    seconds like a 30-second bot target does.
    """
    return local_text(moment, tz, seconds=target_seconds < SECONDS_SHOWN_BELOW)


def local_text(moment: datetime, tz, *, seconds: bool = False) -> str:
    """Format a moment as the portal's people read it: 05.12.2026 09:30."""
    local = moment.astimezone(tz)
    return local.strftime("%d.%m.%Y %H:%M:%S" if seconds else "%d.%m.%Y %H:%M")


def parse_local(text: str, tz) -> datetime:
    """Read an ISO time; one without an offset is taken in ``tz``."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _t(lang: str, ru: str, en: str) -> str:
    return en if lang == "en" else ru

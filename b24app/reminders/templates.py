"""Russian message templates with placeholders, their preview and validation.

A template is plain text with ``{placeholder}`` fields. Validation reports
errors (unknown placeholder, broken braces, empty or overlong text) that
block saving, and warnings (the rendered text needs more than one SMS) that
the owner may accept.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

PLACEHOLDERS = {
    "name": "имя клиента",
    "service": "услуга",
    "date": "дата визита",
    "time": "время визита",
    "address": "адрес",
    "master": "мастер",
}
KINDS = ("confirm", "remind", "thanks")
MAX_LENGTH = 1000
SMS_GSM7_LIMIT = 160
SMS_UNICODE_LIMIT = 70

DEFAULT_TEMPLATES = {
    "confirm": (
        "{name}, вы записаны: {service}, {date} в {time}. "
        "Ответьте 1 — приду, 2 — перенести, 3 — отменить."
    ),
    "remind": "{name}, ждём вас {date} в {time}: {service}. Адрес: {address}.",
    "thanks": "{name}, спасибо, что пришли! Будем рады видеть вас снова.",
}
MONTHS = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)

# The GSM 03.38 basic set and its extension table (each extension char costs 2).
_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


@dataclass
class Check:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": self.errors, "warnings": self.warnings}


def placeholders_in(text: str) -> list[str]:
    """Names of the ``{fields}`` of a template; raises ValueError on bad braces."""
    names = []
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise ValueError(name)
        names.append(name)
    return names


def sms_limit(text: str) -> tuple[int, int]:
    """Length of ``text`` in SMS units and the one-message limit for its encoding."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in text):
        return sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text), SMS_GSM7_LIMIT
    # UCS-2: characters outside the basic plane take two units.
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text), SMS_UNICODE_LIMIT


def validate(text: str, sample: dict[str, str] | None = None) -> Check:
    """Check a template; ``sample`` gives the values the length is checked with."""
    check = Check()
    if not text or not text.strip():
        check.errors.append("Текст пустой.")
        return check
    if len(text) > MAX_LENGTH:
        check.errors.append(f"Текст длиннее {MAX_LENGTH} символов.")
    try:
        names = placeholders_in(text)
    except ValueError as err:
        check.errors.append(
            f"Поле «{{{err}}}» записано неверно: пишите поля как {{name}}, "
            "без пробелов и двоеточий; одиночную фигурную скобку удвойте."
        )
        return check
    unknown = sorted(set(names) - set(PLACEHOLDERS))
    for name in unknown:
        known = ", ".join("{" + key + "}" for key in PLACEHOLDERS)
        check.errors.append(f"Неизвестное поле {{{name}}}. Доступны: {known}.")
    if check.errors:
        return check

    rendered = render(text, sample or sample_values())
    units, limit = sms_limit(rendered)
    if units > limit:
        alphabet = "латиница" if limit == SMS_GSM7_LIMIT else "кириллица"
        check.warnings.append(
            f"В SMS не уместится в одно сообщение: {units} символов при пределе "
            f"{limit} ({alphabet}); уйдёт {segments(units, limit)} частями."
        )
    return check


def segments(units: int, limit: int) -> int:
    """Count the SMS parts of a long text (each part loses room to a header)."""
    if units <= limit:
        return 1
    part = 153 if limit == SMS_GSM7_LIMIT else 67
    return -(-units // part)


def render(text: str, values: dict[str, str]) -> str:
    """Fill the placeholders; a missing value becomes an empty string."""
    safe = {key: values.get(key) or "" for key in PLACEHOLDERS}
    rendered = text.format_map(safe)
    return " ".join(rendered.split()) if "\n" not in rendered else rendered.strip()


def values_for(
    *,
    client_name: str | None,
    service: str | None,
    starts_at: datetime,
    tz: str,
    address: str | None,
    master: str | None,
) -> dict[str, str]:
    """Placeholder values of one appointment, in the portal's time zone."""
    local = starts_at.astimezone(ZoneInfo(tz))
    return {
        "name": (client_name or "Здравствуйте").strip(),
        "service": (service or "визит").strip(),
        "date": f"{local.day} {MONTHS[local.month - 1]}",
        "time": local.strftime("%H:%M"),
        "address": (address or "").strip(),
        "master": (master or "").strip(),
    }


def sample_values() -> dict[str, str]:
    """Typical values used when no real appointment is at hand."""
    return {
        "name": "Мария",
        "service": "Стрижка и укладка",
        "date": "12 декабря",
        "time": "14:30",
        "address": "ул. Ленина, 10",
        "master": "Анна",
    }


def template_for(templates: dict[str, str], kind: str, channel: str | None) -> str:
    """Pick the text for a kind, preferring a channel-specific one."""
    if channel and templates.get(f"{kind}.{channel}"):
        return templates[f"{kind}.{channel}"]
    return templates.get(kind) or DEFAULT_TEMPLATES[kind]

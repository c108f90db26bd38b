"""Funnel mapping, targets and delivery settings of the KPIs, per portal.

The mapping lists which lead statuses and deal stages mean booked,
confirmed, visited, no-show and cancelled, which deal pipeline holds the
appointments, and which deal field holds the appointment time. Presets give
a working start for salons, clinics and fitness studios; the owner edits
them in the KPI tab.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from b24app import portal_settings
from b24app.kpi.models import KpiDeal, KpiSettings
from b24app.models import Lead, Portal
from b24app.services import Services

OUTCOMES = ("booked", "confirmed", "visited", "no_show", "cancelled")
SEGMENTS = ("salon", "clinic", "fitness")

_BOOKING_STAGES = {
    "booked": ["C1:NEW"],
    "confirmed": ["C1:PREPARATION"],
    "visited": ["C1:WON"],
    "no_show": ["C1:LOSE"],
    "cancelled": ["C1:APOLOGY"],
}

PRESETS: dict[str, dict[str, Any]] = {
    segment: {
        "segment": segment,
        "lead_statuses": {"booked": ["CONVERTED"]},
        "deal_categories": [1],
        "deal_stages": copy.deepcopy(_BOOKING_STAGES),
        # "BEGINDATE", "CLOSEDATE", a UF_CRM_* date field, or "booking" for
        # Booking module bookings linked to the deal.
        "appointment_field": "BEGINDATE",
        "late_cancel_hours": 24 if segment != "fitness" else 12,
    }
    for segment in SEGMENTS
}

# Conversion targets: (low, target, high) of the segment's usual range.
CONVERSION_TARGETS = {
    "salon": (0.10, 0.12, 0.18),
    "clinic": (0.06, 0.08, 0.12),
    "fitness": (None, None, None),
}
DEFAULT_TARGETS = {
    "answered_share": 0.95,
    "no_show_rate": 0.10,
    "first_response_median_minutes": 15.0,
    "retention_3m": 0.40,
}


@dataclass(frozen=True)
class KpiConfig:
    """The effective settings of one portal: stored values over the preset."""

    mapping: dict[str, Any]
    targets: dict[str, Any]
    daily_capacity: int | None
    owner_email: str | None

    def stages(self, outcome: str) -> list[str]:
        return list(self.mapping.get("deal_stages", {}).get(outcome) or [])

    def lead_statuses(self, outcome: str) -> list[str]:
        return list(self.mapping.get("lead_statuses", {}).get(outcome) or [])

    @property
    def categories(self) -> list[int]:
        return [int(c) for c in self.mapping.get("deal_categories") or []]

    @property
    def segment(self) -> str:
        return self.mapping.get("segment") or "salon"


class MappingError(ValueError):
    """An invalid mapping value: ``field`` names it, with Russian and English text.

    ``str()`` is the English message, so callers that ignore the language
    still get a readable error.
    """

    def __init__(self, field: str, ru: str, en: str):
        super().__init__(en)
        self.field = field
        self.ru = ru
        self.en = en


def preset(segment: str) -> dict[str, Any]:
    if segment not in PRESETS:
        raise MappingError(
            "segment",
            f"Тип бизнеса должен быть одним из: {', '.join(SEGMENTS)}.",
            f"segment must be one of {', '.join(SEGMENTS)}",
        )
    return copy.deepcopy(PRESETS[segment])


def default_targets(segment: str) -> dict[str, Any]:
    low, target, high = CONVERSION_TARGETS.get(segment, (None, None, None))
    return DEFAULT_TARGETS | {
        "conversion": target,
        "conversion_range": [low, high],
    }


def load(services: Services, portal: Portal) -> KpiConfig:
    with services.db.session() as session:
        row = session.get(KpiSettings, portal.id)
        mapping = dict(row.mapping) if row and row.mapping else {}
        targets = dict(row.targets) if row and row.targets else {}
        capacity = row.daily_capacity if row else None
        email = row.owner_email if row else None
    segment = mapping.get("segment") or portal_settings.segment(portal)
    if segment not in PRESETS:
        segment = "salon"
    effective = preset(segment) | mapping
    return KpiConfig(
        mapping=effective,
        targets=default_targets(effective["segment"]) | targets,
        daily_capacity=capacity,
        owner_email=email,
    )


def validate_mapping(data: Any) -> dict[str, Any]:
    """Check an edited mapping; raise MappingError with a message for the owner."""
    if not isinstance(data, dict):
        raise MappingError(
            "mapping",
            "Настройки воронки должны быть JSON-объектом.",
            "mapping must be a JSON object",
        )
    segment = data.get("segment", "salon")
    result = preset(segment)
    for key in ("lead_statuses", "deal_stages"):
        value = data.get(key, result[key])
        if not isinstance(value, dict):
            raise MappingError(
                key,
                f"{key}: нужен объект «исход → список кодов».",
                f"{key} must be an object of outcome -> list of codes",
            )
        for outcome, codes in value.items():
            if outcome not in OUTCOMES:
                raise MappingError(
                    key,
                    f"{key}: неизвестный исход «{outcome}». "
                    f"Допустимые: {', '.join(OUTCOMES)}.",
                    f"{key}: unknown outcome {outcome!r}; use {', '.join(OUTCOMES)}",
                )
            if not isinstance(codes, list) or not all(
                isinstance(c, str) and 0 < len(c) <= 64 for c in codes
            ):
                raise MappingError(
                    f"{key}.{outcome}",
                    f"{key}.{outcome}: перечислите коды через запятую, каждый "
                    "не длиннее 64 символов.",
                    f"{key}.{outcome} must be a list of stage codes",
                )
        result[key] = value
    categories = data.get("deal_categories", result["deal_categories"])
    if not isinstance(categories, list) or not all(
        isinstance(c, int) and c >= 0 for c in categories
    ):
        raise MappingError(
            "deal_categories",
            "Воронки записей: укажите ID воронок целыми числами через запятую, "
            "например 0, 1.",
            "deal_categories must be a list of pipeline ids",
        )
    result["deal_categories"] = categories
    field = data.get("appointment_field", result["appointment_field"])
    if not isinstance(field, str) or not (
        field in ("BEGINDATE", "CLOSEDATE", "booking") or field.startswith("UF_CRM_")
    ):
        raise MappingError(
            "appointment_field",
            "Поле времени визита: укажите BEGINDATE, CLOSEDATE, поле UF_CRM_… "
            "или booking.",
            "appointment_field must be BEGINDATE, CLOSEDATE, a UF_CRM_ field "
            "or booking",
        )
    result["appointment_field"] = field
    hours = data.get("late_cancel_hours", result["late_cancel_hours"])
    if not isinstance(hours, int) or not 0 <= hours <= 168:
        raise MappingError(
            "late_cancel_hours",
            "Порог поздней отмены: целое число часов от 0 до 168.",
            "late_cancel_hours must be an integer 0..168",
        )
    result["late_cancel_hours"] = hours
    return result


def save(services: Services, portal: Portal, **values: Any) -> None:
    """Update the stored settings row (created on first use)."""
    with services.db.session() as session:
        row = session.get(KpiSettings, portal.id)
        if row is None:
            row = KpiSettings(portal_id=portal.id, mapping={}, targets={})
            session.add(row)
        if "mapping" in values and "currency" in (row.mapping or {}):
            # The portal's currency is read from the portal, not edited: a
            # saved mapping keeps it.
            values["mapping"] = values["mapping"] | {
                "currency": row.mapping["currency"]
            }
        for key, value in values.items():
            setattr(row, key, value)


def save_currency(services: Services, portal: Portal, value: dict[str, Any]) -> None:
    """Store the portal's base currency and rates (see ``b24app.kpi.currency``)."""
    with services.db.session() as session:
        row = session.get(KpiSettings, portal.id)
        if row is None:
            row = KpiSettings(portal_id=portal.id, mapping={}, targets={})
            session.add(row)
        # A new dict, so the JSON column sees the change.
        row.mapping = dict(row.mapping or {}) | {"currency": value}


# Marketing spend is entered per lead channel, so CAC per channel can divide
# it by the new clients of that channel. The standard names are those that
# ``leadtext.channel`` gives; a portal's own lead sources add more.
STANDARD_CHANNELS = ("site", "phone", "email", "openline", "ads", "referral", "other")


def known_channels(services: Services, portal: Portal) -> list[str]:
    """Return the standard channels and those of the portal's leads and deals."""
    with services.db.session() as session:
        seen = set(
            session.scalars(
                select(Lead.channel)
                .where(Lead.portal_id == portal.id, Lead.channel.is_not(None))
                .distinct()
            )
        )
        seen |= set(
            session.scalars(
                select(KpiDeal.channel)
                .where(KpiDeal.portal_id == portal.id, KpiDeal.channel.is_not(None))
                .distinct()
            )
        )
    extra = sorted(c for c in seen if c and c not in STANDARD_CHANNELS)
    return list(STANDARD_CHANNELS) + extra


# SMTP settings of the weekly e-mail, read from the environment.


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None
    password: str | None
    tls: str  # "starttls", "ssl" or "none"
    timeout: float  # seconds, for the connection and each SMTP command
    # PEM bundle of the CAs that may sign the server's certificate; None uses
    # the system store. The certificate and host name are always verified.
    ca_file: str | None = None


def smtp_settings(environ: dict[str, str] | None = None) -> SmtpSettings | None:
    """OTKLIK_SMTP_* settings, or None when no host is configured.

    Raises ValueError naming the variable when a value is invalid.
    """
    env = os.environ if environ is None else environ
    host = env.get("OTKLIK_SMTP_HOST", "").strip()
    if not host:
        return None
    tls = env.get("OTKLIK_SMTP_TLS", "starttls").strip().lower()
    if tls not in ("starttls", "ssl", "none"):
        raise ValueError("OTKLIK_SMTP_TLS must be starttls, ssl or none")
    try:
        port = int(env.get("OTKLIK_SMTP_PORT") or (465 if tls == "ssl" else 587))
        timeout = float(env.get("OTKLIK_SMTP_TIMEOUT") or 30)
    except ValueError as err:
        raise ValueError(
            "OTKLIK_SMTP_PORT must be an integer and OTKLIK_SMTP_TIMEOUT a number"
        ) from err
    if not 0 < port < 65536:
        raise ValueError(f"OTKLIK_SMTP_PORT must be 1..65535, got {port}")
    if not 0 < timeout <= 600:
        raise ValueError(
            "OTKLIK_SMTP_TIMEOUT must be above 0 and at most 600 seconds, "
            f"got {timeout}"
        )
    ca_file = env.get("OTKLIK_SMTP_CA_FILE", "").strip() or None
    if ca_file and not os.path.isfile(ca_file):
        raise ValueError(f"OTKLIK_SMTP_CA_FILE {ca_file!r} is not a readable file")
    return SmtpSettings(
        host=host,
        port=port,
        sender=env.get("OTKLIK_SMTP_FROM", "otklik@localhost"),
        username=env.get("OTKLIK_SMTP_USER") or None,
        password=env.get("OTKLIK_SMTP_PASSWORD") or None,
        tls=tls,
        timeout=timeout,
        ca_file=ca_file,
    )

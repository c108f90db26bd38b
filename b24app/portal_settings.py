"""Per-portal settings with defaults: calendar, SLA policy, tagging engine."""

from __future__ import annotations

from typing import Any

from b24app.models import Portal
from b24app.sla.calendar import BusinessCalendar
from b24app.sla.policy import PRESETS, SlaPolicy

DEFAULT_SEGMENT = "salon"
DEFAULT_TIMEZONE = "Europe/Moscow"


def segment(portal: Portal) -> str:
    return (portal.settings or {}).get("segment") or DEFAULT_SEGMENT


def timezone(portal: Portal) -> str:
    settings = portal.settings or {}
    return (settings.get("calendar") or {}).get("tz") or DEFAULT_TIMEZONE


def calendar(portal: Portal) -> BusinessCalendar:
    """The portal's business calendar; every day 09:00-21:00 Moscow by default."""
    data = (portal.settings or {}).get("calendar")
    if data:
        return BusinessCalendar.from_dict(data)
    return BusinessCalendar(tz=DEFAULT_TIMEZONE)


def policy(portal: Portal) -> SlaPolicy:
    data = (portal.settings or {}).get("policy")
    if data:
        return SlaPolicy.from_dict(data)
    return PRESETS[segment(portal)]


def engine_settings(portal: Portal) -> dict[str, Any]:
    return (portal.settings or {}).get("engine") or {"engine": "offline"}


def senior_user_id(portal: Portal) -> int | None:
    value = (portal.settings or {}).get("senior_user_id")
    return int(value) if value else None


def owner_user_id(portal: Portal) -> int | None:
    value = (portal.settings or {}).get("owner_user_id")
    return int(value) if value else portal.token_user_id

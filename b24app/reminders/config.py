"""Per-portal reminder settings with defaults, kept in ``portal.settings``.

``portal.settings["reminders"]`` contains the owner's choices; secrets of the
providers (bot token, SMS key, SMTP password) are stored encrypted under
``*_enc`` keys and never returned to the page. The deal funnel comes from
``portal.settings["funnel"]`` when the KPI settings define it.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from datetime import time
from typing import Any

from b24app.models import Portal
from b24app.reminders.templates import DEFAULT_TEMPLATES

CHANNELS = ("openline", "telegram", "sms", "email")
# Password of the SMS provider callbacks (HTTP Basic auth or the HMAC key
# of the signature header). It is kept apart from ``webhook_secret``, the
# Telegram secret token, which earlier versions also put in the SMS
# callback path, where web server access logs recorded it.
SMS_SECRET_KEY = "sms_webhook_secret"
DEFAULT_SCHEDULE = [
    {"kind": "confirm", "minutes_before": 24 * 60},
    {"kind": "remind", "minutes_before": 120},
]
DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "schedule": DEFAULT_SCHEDULE,
    # Minutes after the visit for a thank-you message; None sends none.
    "thanks_after_minutes": None,
    # Schedules per service name (a substring of the service, case-insensitive).
    "services": {},
    "quiet_hours": {"start": "21:00", "end": "09:00"},
    "channels": list(CHANNELS),
    "templates": dict(DEFAULT_TEMPLATES),
    "address": "",
    # After the visit time plus this, an unmarked appointment gets a task.
    "grace_minutes": 120,
    "sms": {},
    "telegram": {},
    "email": {},
}

# The seeded bookings pipeline: booked, confirmed, visited, no-show, cancelled.
DEFAULT_FUNNEL = {
    "category_id": 1,
    "stages": {
        "booked": ["C1:NEW"],
        "confirmed": ["C1:PREPARATION"],
        "visited": ["C1:WON"],
        "no_show": ["C1:LOSE"],
        "cancelled": ["C1:APOLOGY"],
    },
    "appointment_field": "UF_CRM_APPOINTMENT_AT",
    "service_field": "UF_CRM_SERVICE",
    "master_field": "UF_CRM_MASTER",
}


@dataclass(frozen=True)
class Funnel:
    category_id: int
    stages: dict[str, list[str]]
    appointment_field: str
    service_field: str | None
    master_field: str | None

    def status_of(self, stage_id: str | None) -> str | None:
        """Our status for a deal stage, or None for a stage outside the funnel."""
        for status, stage_ids in self.stages.items():
            if stage_id in stage_ids:
                return status
        return None

    def stage_for(self, status: str) -> str:
        return self.stages[status][0]


def settings(portal: Portal) -> dict[str, Any]:
    """Return the portal's reminder settings merged over the defaults."""
    merged = copy.deepcopy(DEFAULTS)
    merged.update((portal.settings or {}).get("reminders") or {})
    return merged


def funnel(portal: Portal) -> Funnel:
    """Return the booking funnel from the KPI funnel settings, else the default.

    Accepted shape of ``portal.settings["funnel"]``: ``category_id``,
    ``stages`` (status -> stage id or list of ids) and the field names.
    """
    raw = {**DEFAULT_FUNNEL, **((portal.settings or {}).get("funnel") or {})}
    stages = {
        key: [value] if isinstance(value, str) else list(value)
        for key, value in (raw.get("stages") or DEFAULT_FUNNEL["stages"]).items()
    }
    for key, value in DEFAULT_FUNNEL["stages"].items():
        stages.setdefault(key, value)
    return Funnel(
        category_id=int(raw.get("category_id") or 0),
        stages=stages,
        appointment_field=str(raw.get("appointment_field")),
        service_field=raw.get("service_field"),
        master_field=raw.get("master_field"),
    )


def quiet_hours(data: dict[str, Any]) -> tuple[time, time]:
    quiet = data.get("quiet_hours") or DEFAULTS["quiet_hours"]
    return time.fromisoformat(quiet["start"]), time.fromisoformat(quiet["end"])


def schedule_for(data: dict[str, Any], service: str | None) -> list[dict[str, Any]]:
    """Return the steps for a service; a per-service schedule wins."""
    lowered = (service or "").lower()
    for name, steps in (data.get("services") or {}).items():
        if name and name.lower() in lowered:
            return list(steps)
    return list(data.get("schedule") or DEFAULT_SCHEDULE)


def save(services, portal_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the stored reminder settings under a row lock."""
    with services.db.session() as session:
        portal, stored, current = _locked(session, portal_id)
        current.update(changes)
        stored["reminders"] = current
        # A new dict, so SQLAlchemy detects the JSON change.
        portal.settings = stored
        return current


def ensure_sms_secret(services, portal_id: int) -> str:
    """Return the portal's SMS callback secret, creating it under a row lock."""
    with services.db.session() as session:
        portal, stored, current = _locked(session, portal_id)
        if current.get(SMS_SECRET_KEY):
            return current[SMS_SECRET_KEY]
        current[SMS_SECRET_KEY] = secrets.token_urlsafe(24)
        stored["reminders"] = current
        portal.settings = stored
        return current[SMS_SECRET_KEY]


def _locked(session, portal_id: int) -> tuple[Portal, dict[str, Any], dict[str, Any]]:
    """Lock the portal row; return it, a copy of its settings and their reminders."""
    from sqlalchemy import select

    portal = session.scalars(
        select(Portal).where(Portal.id == portal_id).with_for_update()
    ).one()
    stored = dict(portal.settings or {})
    return portal, stored, dict(stored.get("reminders") or {})

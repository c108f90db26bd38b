"""Helpers for the SLA tests that run the app against the emulated portal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from b24app.models import Escalation, Lead, Portal, SlaClock
from tests.helpers import drain, lead_row

OWNER = 1
HEAD_OF_SALES = 2
ADMINISTRATOR = 3
MANAGER = 4
OTHER_MANAGER = 5

ALWAYS_OPEN = {
    "tz": "Europe/Moscow",
    "country": None,
    "weekly": {str(day): [["00:00", "24:00"]] for day in range(7)},
}


def configure(services, portal_id: int, *, policy=None, **settings) -> None:
    """Replace the portal's SLA settings: always open, 60 s target by default."""
    with services.db.session() as session:
        portal = session.get(Portal, portal_id)
        stored = {
            "calendar": ALWAYS_OPEN,
            "policy": {"human_seconds": 60} | (policy or {}),
        }
        portal.settings = stored | settings


def new_lead(emulator, services, worker, text="Хочу записаться на стрижку", **fields):
    """Create a lead on the portal and wait until the app tagged it."""
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER} | fields, kind="form", message=text
    )
    drain(
        worker,
        services,
        until=lambda: (r := lead_row(services, lead_id)) and r.tagged_at,
    )
    return lead_id


def human_clock(services, bitrix_id: int) -> SlaClock | None:
    with services.db.session() as session:
        return session.scalar(
            select(SlaClock)
            .join(Lead, SlaClock.lead_id == Lead.id)
            .where(Lead.bitrix_id == bitrix_id, SlaClock.tier == "human")
        )


def age_lead(services, bitrix_id: int, minutes: float) -> SlaClock:
    """Move the lead and its clocks back in time, as if it arrived earlier.

    With an always-open calendar every due time moves by the same amount.
    """
    shift = timedelta(minutes=minutes)
    with services.db.session() as session:
        lead = session.scalar(select(Lead).where(Lead.bitrix_id == bitrix_id))
        lead.created_at -= shift
        for clock in session.scalars(
            select(SlaClock).where(SlaClock.lead_id == lead.id)
        ):
            clock.created_at -= shift
            clock.starts_at -= shift
            clock.due_at -= shift
            if clock.next_check_at is not None:
                clock.next_check_at -= shift
    return human_clock(services, bitrix_id)


def place_clock(services, bitrix_id: int, starts_at: datetime, target_seconds: int):
    """Set the human clock to start at ``starts_at`` (always-open calendar)."""
    with services.db.session() as session:
        lead = session.scalar(select(Lead).where(Lead.bitrix_id == bitrix_id))
        clock = session.scalar(
            select(SlaClock).where(
                SlaClock.lead_id == lead.id, SlaClock.tier == "human"
            )
        )
        clock.starts_at = starts_at
        clock.created_at = min(clock.created_at, starts_at)
        clock.target_seconds = target_seconds
        clock.due_at = starts_at + timedelta(seconds=target_seconds)
        clock.next_check_at = starts_at


def set_urgent(services, bitrix_id: int) -> None:
    with services.db.session() as session:
        session.scalar(select(Lead).where(Lead.bitrix_id == bitrix_id)).urgent = True


def escalations(services, bitrix_id: int) -> list[Escalation]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(Escalation)
                .join(Lead, Escalation.lead_id == Lead.id)
                .where(Lead.bitrix_id == bitrix_id)
                .order_by(Escalation.id)
            )
        )


def escalation(services, bitrix_id: int, action: str) -> Escalation:
    rows = [e for e in escalations(services, bitrix_id) if e.action == action]
    assert len(rows) == 1, f"expected one {action} row, got {len(rows)}"
    return rows[0]


def tasks_for(emulator, bitrix_id: int) -> list[dict]:
    return [
        task
        for task in emulator.portal.tasks.snapshot()
        if f"L_{bitrix_id}" in (task.get("UF_CRM_TASK") or [])
    ]


def notices(emulator, user_id: int | None = None) -> list[dict]:
    return [
        note
        for note in emulator.portal.notifications.snapshot()
        if user_id is None or int(note["USER_ID"]) == user_id
    ]


def notices_about(emulator, bitrix_id: int, user_id: int | None = None) -> list[dict]:
    marker = f"/crm/lead/details/{bitrix_id}/"
    return [note for note in notices(emulator, user_id) if marker in note["MESSAGE"]]


def now() -> datetime:
    return datetime.now(UTC)

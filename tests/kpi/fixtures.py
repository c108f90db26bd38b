"""Hand-computed KPI fixtures written straight into the app's tables."""

from __future__ import annotations

from datetime import UTC, date, datetime

from b24app.kpi.models import KpiDeal, KpiSpend, KpiStageMove
from b24app.models import Lead

NOV = (date(2026, 11, 1), date(2026, 11, 30))
LATER = datetime(2027, 6, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lead(portal_id, bitrix_id, created, channel, manager, status="NEW", tags=()):
    return Lead(
        portal_id=portal_id,
        bitrix_id=bitrix_id,
        created_at=at(created),
        channel=channel,
        assigned_by_id=manager,
        status_id=status,
        tags=list(tags),
        classification={},
        urgent=False,
        needs_review=False,
        deleted=False,
    )


def deal(
    portal_id,
    bitrix_id,
    stage,
    due,
    *,
    amount=None,
    manager=4,
    contact=None,
    category=1,
    moved=None,
    channel="site",
    lead_id=None,
    created="2026-11-01T09:00:00",
):
    return KpiDeal(
        portal_id=portal_id,
        bitrix_id=bitrix_id,
        category_id=category,
        stage_id=stage,
        amount=amount,
        assigned_by_id=manager,
        contact_id=contact,
        lead_id=lead_id,
        channel=channel,
        created_at=at(created),
        moved_at=at(moved) if moved else None,
        appointment_at=at(due) if due else None,
        extra={},
        deleted=False,
    )


def november(services, portal_id: int) -> None:
    """Leads and deals of November 2026 (Moscow time, UTC+3); see the tests."""
    p = portal_id
    with services.db.session() as session:
        session.add_all(
            [
                lead(p, 1, "2026-11-03T10:00:00", "site", 4, "CONVERTED"),
                lead(p, 2, "2026-11-04T10:00:00", "site", 4),
                lead(p, 3, "2026-11-05T10:00:00", "phone", 5),
                lead(p, 4, "2026-11-06T10:00:00", "phone", 5),
                lead(p, 5, "2026-11-07T10:00:00", "site", 4, "CONVERTED", ["spam"]),
                # 01:00 on 1 November in Moscow: inside the period.
                lead(p, 6, "2026-10-31T22:00:00", "ads", 5),
                # 00:30 on 1 December in Moscow: outside.
                lead(p, 7, "2026-11-30T21:30:00", "ads", 5, "CONVERTED"),
                KpiStageMove(
                    portal_id=p,
                    entity_type=1,
                    bitrix_id=900,
                    owner_id=3,
                    stage_id="CONVERTED",
                    created_at=at("2026-11-05T11:00:00"),
                ),
                deal(p, 1, "C1:WON", "2026-11-05T10:00:00", amount=1000, contact=100),
                deal(
                    p,
                    2,
                    "C1:WON",
                    "2026-11-10T10:00:00",
                    amount=3000,
                    manager=5,
                    contact=101,
                    channel="phone",
                    lead_id=2,
                ),
                deal(p, 3, "C1:WON", "2026-11-20T10:00:00", manager=5, contact=100),
                deal(p, 4, "C1:LOSE", "2026-11-12T10:00:00", contact=102),
                deal(
                    p,
                    5,
                    "C1:APOLOGY",
                    "2026-11-15T12:00:00",
                    moved="2026-11-15T02:00:00",
                ),
                deal(
                    p,
                    6,
                    "C1:APOLOGY",
                    "2026-11-25T12:00:00",
                    moved="2026-11-20T12:00:00",
                ),
                deal(p, 7, "C1:WON", "2027-03-01T10:00:00", amount=2000, contact=101),
                deal(
                    p,
                    8,
                    "WON",
                    "2026-11-06T10:00:00",
                    amount=9999,
                    contact=103,
                    category=0,
                ),
                KpiSpend(
                    portal_id=p, month=date(2026, 11, 1), channel="site", amount=3000
                ),
                KpiSpend(
                    portal_id=p, month=date(2026, 11, 1), channel="phone", amount=1000
                ),
            ]
        )

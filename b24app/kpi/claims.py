"""Once-per-day claims: the unique (portal, kind, day) row decides who acts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select, update

from b24app.dbutil import insert_ignore
from b24app.kpi.models import KpiClaim
from b24app.services import Services


def claim(services: Services, portal_id: int, kind: str, day: date) -> bool:
    with services.db.session() as session:
        return (
            insert_ignore(
                session,
                KpiClaim,
                {
                    "portal_id": portal_id,
                    "kind": kind,
                    "day": day,
                    "status": "claimed",
                    "created_at": datetime.now(UTC),
                },
                ["portal_id", "kind", "day"],
            )
            is not None
        )


def release(services: Services, portal_id: int, kind: str, day: date) -> None:
    with services.db.session() as session:
        row = session.scalar(
            select(KpiClaim).where(
                KpiClaim.portal_id == portal_id,
                KpiClaim.kind == kind,
                KpiClaim.day == day,
            )
        )
        if row is not None:
            session.delete(row)


def mark(services: Services, portal_id: int, kind: str, day: date, status: str):
    with services.db.session() as session:
        session.execute(
            update(KpiClaim)
            .where(
                KpiClaim.portal_id == portal_id,
                KpiClaim.kind == kind,
                KpiClaim.day == day,
            )
            .values(status=status)
        )

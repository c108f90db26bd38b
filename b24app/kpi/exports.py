"""CSV and XLSX downloads of the reports, and the secret CSV feed for spreadsheets.

The feed URL carries a random token; only its SHA-256 is stored, so a leaked
database does not leak working feed URLs. Rotating replaces the hash,
revoking clears it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select

from b24app import portal_settings
from b24app.kpi import settings as kpi_settings
from b24app.kpi.first_response import first_response_report
from b24app.kpi.models import KpiSettings
from b24app.kpi.report import deal_series
from b24app.models import Portal
from b24app.services import Services

FEED_DAYS = 90
DAILY_COLUMNS = [
    "date",
    "leads",
    "bookings",
    "visited",
    "no_show",
    "cancelled",
    "revenue",
]


def daily_rows(
    services: Services, portal: Portal, start: date, end: date
) -> list[dict[str, Any]]:
    """Return one row per local day: leads, bookings, visits, no-shows, revenue."""
    tz = portal_settings.timezone(portal)
    cfg = kpi_settings.load(services, portal)
    leads = {
        row["date"]: row["leads"]
        for row in first_response_report(services, portal, start, end)["leads_per_day"]
    }
    with services.db.session() as session:
        series = deal_series(session, portal.id, cfg, tz, start, end)
    return [{"date": d["date"], "leads": leads.get(d["date"], 0), **d} for d in series]


def flatten(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """Scalar fields of a report as (name, value) pairs; lists become sheets."""
    pairs: list[tuple[str, Any]] = []
    for key, value in report.items():
        if isinstance(value, dict):
            pairs.extend((f"{key}.{k}", v) for k, v in flatten(value))
        elif not isinstance(value, list):
            pairs.append((key, value))
    return pairs


def tables(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for key, value in report.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            found[key] = value
        elif isinstance(value, dict):
            found.update({f"{key}.{k}": v for k, v in tables(value).items()})
    return found


def to_csv(report: dict[str, Any]) -> str:
    """Write the report's scalar fields as ``name,value`` lines, then each table."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["field", "value"])
    writer.writerows(flatten(report))
    for name, rows in tables(report).items():
        writer.writerow([])
        writer.writerow([name])
        columns = list(rows[0])
        writer.writerow(columns)
        writer.writerows([[row.get(c) for c in columns] for row in rows])
    return out.getvalue()


def to_xlsx(report: dict[str, Any]) -> bytes:
    """Build a workbook: a "summary" sheet of scalar fields, one sheet per table."""
    book = Workbook()
    sheet = book.active
    sheet.title = "summary"
    sheet.append(["field", "value"])
    for name, value in flatten(report):
        sheet.append([name, value])
    for name, rows in tables(report).items():
        table = book.create_sheet(name.replace("/", "_")[:31])
        columns = list(rows[0])
        table.append(columns)
        for row in rows:
            table.append([_cell(row.get(c)) for c in columns])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return (
        value if isinstance(value, int | float | str) or value is None else str(value)
    )


def rows_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([[row.get(c) for c in columns] for row in rows])
    return out.getvalue()


# The feed


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def rotate_feed(services: Services, portal: Portal) -> str:
    """Issue a new feed token (the old URL stops working); return the token."""
    token = secrets.token_urlsafe(24)
    kpi_settings.save(
        services,
        portal,
        feed_token_hash=_digest(token),
        feed_created_at=datetime.now(UTC),
    )
    return token


def revoke_feed(services: Services, portal: Portal) -> None:
    kpi_settings.save(services, portal, feed_token_hash=None, feed_created_at=None)


def portal_for_feed(services: Services, token: str) -> Portal | None:
    if not token or len(token) > 128:
        return None
    with services.db.session() as session:
        row = session.scalar(
            select(KpiSettings).where(KpiSettings.feed_token_hash == _digest(token))
        )
        if row is None:
            return None
        portal = session.get(Portal, row.portal_id)
    return portal if portal is not None and portal.is_active else None


def feed_csv(services: Services, portal: Portal, today: date) -> str:
    start = today - timedelta(days=FEED_DAYS - 1)
    return rows_csv(daily_rows(services, portal, start, today), DAILY_COLUMNS)

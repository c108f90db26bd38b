"""The KPI report reads the base currency and the rates from the emulated portal.

Unlike test_kpi_currency.py, nothing here replaces ``currency.read_portal``:
the app calls ``crm.currency.base.get`` and ``crm.currency.list`` over HTTP.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from b24app.kpi import currency, report, sync
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import KpiDeal
from tests.kpi.fixtures import LATER, NOV

TZ = "Europe/Moscow"


@pytest.fixture
def fresh_caches(monkeypatch):
    """Start without failed currency reads remembered by earlier tests."""
    monkeypatch.setattr(currency, "_failed_at", {})


def _visit(bitrix_id: int, amount: float, code: str) -> dict:
    return {
        "ID": str(bitrix_id),
        "CATEGORY_ID": "1",
        "STAGE_ID": "C1:WON",
        "OPPORTUNITY": str(amount),
        "CURRENCY_ID": code,
        "ASSIGNED_BY_ID": "4",
        "CONTACT_ID": str(500 + bitrix_id),
        "SOURCE_ID": "WEB",
        "DATE_CREATE": "2026-11-01T09:00:00+03:00",
        "BEGINDATE": "2026-11-10T12:00:00+03:00",
    }


def _store(services, portal, records):
    cfg = kpi_settings.load(services, portal)
    with services.db.session() as session:
        sync.upsert_deals(session, portal.id, records, cfg, TZ)


def _amount(services, bitrix_id: int) -> float | None:
    with services.db.session() as session:
        return session.scalar(
            select(KpiDeal.amount).where(KpiDeal.bitrix_id == bitrix_id)
        )


def test_report_reads_base_currency(services, installed, fresh_caches, caplog):
    caplog.set_level(logging.INFO, logger="b24app.kpi.currency")

    body = report.kpi_report(services, installed, *NOV, now=LATER)

    assert body["currency"]["code"] == "RUB"
    assert body["currency"]["source"] == "portal"
    assert body["units"]["money"] == "RUB"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]


def test_report_stores_portal_rates(services, installed, emulator, fresh_caches):
    report.kpi_report(services, installed, *NOV, now=LATER)

    stored = currency.info(kpi_settings.load(services, installed))
    assert stored is not None
    assert stored["base"] == "RUB"
    assert stored["rates"] == {"USD": 92.5, "EUR": 99.8}


def test_report_converts_with_portal_rates(services, installed, fresh_caches):
    _store(services, installed, [_visit(1, 1000, "RUB"), _visit(2, 10, "USD")])

    body = report.kpi_report(services, installed, *NOV, now=LATER)

    assert body["appointments"]["revenue"] == 1925.0
    assert body["currency"]["visits_converted"] == 1
    assert body["currency"]["visits_left_out"] == 0
    assert _amount(services, 2) == 925.0


def test_refresh_follows_portal_base_change(
    services, installed, emulator, fresh_caches
):
    _store(services, installed, [_visit(1, 925, "RUB"), _visit(2, 10, "USD")])
    report.kpi_report(services, installed, *NOV, now=LATER)

    emulator.portal.set_currencies("USD", {"EUR": 1.08})
    stored = currency.refresh(services, installed)

    assert stored is not None
    assert stored["base"] == "USD"
    assert stored["rates"]["EUR"] == 1.08
    # 100 RUB = 1.0811 USD after the switch.
    assert stored["rates"]["RUB"] == pytest.approx(0.010811)
    assert _amount(services, 2) == 10.0
    assert _amount(services, 1) == pytest.approx(10.0, abs=0.01)
    body = report.kpi_report(services, installed, *NOV, now=LATER)
    assert body["currency"]["code"] == "USD"


def test_list_failure_keeps_base_currency(
    services, installed, emulator, fresh_caches, caplog
):
    emulator.portal.set_fault("crm.currency.list", "ACCESS_DENIED")
    caplog.set_level(logging.INFO, logger="b24app.kpi.currency")

    body = report.kpi_report(services, installed, *NOV, now=LATER)

    assert body["currency"]["code"] == "RUB"
    messages = [r.getMessage() for r in caplog.records]
    assert any("currency rates not read" in text for text in messages)
    assert not any("base currency not read" in text for text in messages)

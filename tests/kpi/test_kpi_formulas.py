"""Each KPI formula on the hand-computed November fixture (see fixtures.py)."""

from __future__ import annotations

import pytest

from b24app.kpi import metrics
from b24app.kpi import settings as kpi_settings
from b24app.kpi.first_response import period_bounds
from b24app.kpi.report import deal_series, kpi_report
from tests.kpi.fixtures import LATER, NOV, november


@pytest.fixture
def nov(services, installed):
    november(services, installed.id)
    cfg = kpi_settings.load(services, installed)
    lower, upper = period_bounds("Europe/Moscow", *NOV)
    with services.db.session() as session:
        yield session, installed.id, cfg, lower, upper


def _row(rows, key):
    return next(r for r in rows if r["key"] == key)


def test_conversion_cohort(nov):
    result = metrics.conversion(*nov)

    assert result["leads"] == 5
    assert result["booked"] == 3
    assert result["rate"] == 0.6
    assert result["target"] == 0.12


def test_conversion_by_channel_and_manager(nov):
    result = metrics.conversion(*nov)

    assert _row(result["by_channel"], "site")["rate"] == 1.0
    assert _row(result["by_channel"], "phone")["rate"] == 0.5
    assert _row(result["by_channel"], "ads")["rate"] == 0.0
    assert _row(result["by_manager"], "5")["booked"] == 1


def test_appointments_no_show_and_cancellations(nov):
    result = metrics.appointments(*nov)

    assert result["visited"] == 3
    assert result["no_show"] == 1
    assert result["no_show_rate"] == 0.25
    assert result["cancelled"] == 2
    assert result["late_cancelled"] == 1


def test_appointments_revenue(nov):
    result = metrics.appointments(*nov)

    assert result["revenue"] == 4000
    assert result["average_check"] == 2000
    assert result["revenue_per_employee"] == 2000
    assert result["amount_coverage"] == 0.6667


def test_retention_three_months(nov):
    session, portal_id, cfg, lower, upper = nov

    result = metrics.retention(session, portal_id, cfg, lower, upper, LATER)

    assert result["clients"] == 2
    assert result["returned"] == 1
    assert result["rate"] == 0.5
    assert result["window_complete"] is True


def test_acquisition_cac_and_ltv(nov):
    session, portal_id, cfg, lower, upper = nov

    result = metrics.acquisition(session, portal_id, cfg, *NOV, lower, upper)

    assert result["spend"] == 4000
    assert result["new_clients"] == 2
    assert result["cac"] == 2000
    assert _row(result["by_channel"], "site")["cac"] == 3000
    assert result["ltv_12m"] == 2000


def test_coverage_of_deals(nov):
    result = metrics.coverage(*nov)

    assert result["deals"] == 7
    assert result["amount"] == 0.4286
    assert result["appointment_time"] == 1.0


def test_deal_series_by_local_day(nov):
    session, portal_id, cfg, _, _ = nov

    series = deal_series(session, portal_id, cfg, "Europe/Moscow", *NOV)

    fifth = next(d for d in series if d["date"] == "2026-11-05")
    assert fifth["visited"] == 1
    assert fifth["revenue"] == 1000
    assert sum(d["bookings"] for d in series) == 7


def test_kpi_report_traffic_lights(services, installed):
    november(services, installed.id)

    report = kpi_report(services, installed, *NOV, now=LATER)

    assert report["status"]["conversion"] == "good"
    assert report["status"]["no_show_rate"] == "bad"
    assert report["conversion"]["rate"] == 0.6


def test_stored_days_match_live(services, installed):
    from zoneinfo import ZoneInfo

    from sqlalchemy import func, select

    from b24app import portal_settings
    from b24app.kpi import rollup
    from b24app.kpi.first_response import first_response_report
    from b24app.kpi.models import KpiRollupDay

    november(services, installed.id)
    cfg = kpi_settings.load(services, installed)
    lower, upper = period_bounds("Europe/Moscow", *NOV)
    with services.db.session() as session:
        live = rollup.total(
            rollup.scan(
                session,
                installed.id,
                cfg,
                portal_settings.calendar(installed),
                ZoneInfo("Europe/Moscow"),
                lower,
                upper,
                LATER,
            )
        )

    stored = first_response_report(services, installed, *NOV, now=LATER)
    again = first_response_report(services, installed, *NOV, now=LATER)

    with services.db.session() as session:
        days = session.scalar(select(func.count()).where(KpiRollupDay.grain == "day"))
        months = session.scalar(
            select(func.count()).where(KpiRollupDay.grain == "month")
        )
    assert days == 30
    assert months == 1
    assert sum(d["leads"] for d in stored["leads_per_day"]) == live.counts["leads"]
    assert stored["leads_total"] == live.counts["leads"]
    assert stored["booked"] == live.counts["booked"]
    assert stored["spam"] == live.counts["spam"]
    assert again == stored


def test_mapping_change_rebuilds_days(services, installed):
    from b24app.kpi import rollup
    from b24app.kpi.first_response import first_response_report

    november(services, installed.id)
    before = first_response_report(services, installed, *NOV, now=LATER)
    kpi_settings.save(
        services, installed, mapping={"lead_statuses": {"booked": ["NEW"]}}
    )
    rollup.invalidate(services, installed.id)

    after = first_response_report(services, installed, *NOV, now=LATER)

    assert before["booked"] == 3
    assert after["booked"] == 4

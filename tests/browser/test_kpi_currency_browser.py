"""KPI tab amounts with the portal's currency, and managers who left, in Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from b24app.kpi import settings as kpi_settings
from b24app.kpi import sync
from tests.helpers import open_kpi_tab_as
from tests.kpi.fixtures import november

RUB = {"base": "RUB", "rates": {}, "read_at": "2026-11-30T12:00:00+00:00"}
TZ = "Europe/Moscow"
# Intl puts a no-break space (U+00A0) or a narrow one (U+202F) between the
# digit groups and before the sign.
SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


def _text(locator) -> str:
    return locator.inner_text().translate(SPACES)


def _chart(frame, canvas: str, expression: str):
    return frame.locator(canvas).evaluate(
        f"c => {{ const chart = Chart.getChart(c); return {expression}; }}"
    )


def _dismiss(emulator, user_id: int) -> None:
    with emulator.portal.lock:
        emulator.portal.users.data[user_id]["ACTIVE"] = False


def _november_range(frame) -> None:
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)
    frame.locator("#period").select_option("custom")
    frame.locator("#from").fill("2026-11-01")
    frame.locator("#to").fill("2026-11-30")
    frame.locator("#apply-range").click()
    frame.locator("#conversion", has_text="60\u202f%").wait_for(timeout=5000)


@pytest.fixture
def rouble_november(services, installed, emulator):
    from b24app.kpi import names
    from b24app.sla import settings as sla_settings

    sla_settings._users_cache.pop(installed.member_id, None)
    names._inactive_cache.pop(installed.member_id, None)
    kpi_settings.save_currency(services, installed, RUB)
    november(services, installed.id)
    _dismiss(emulator, 5)
    return installed


@pytest.mark.browser
def test_tab_amounts_in_roubles(page, emulator, rouble_november):
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    _november_range(frame)

    assert _text(frame.locator("#revenue")) == "4 000 ₽"
    assert _text(frame.locator("#avg-check")) == "2 000 ₽"
    assert _text(frame.locator("#per-employee")) == "2 000 ₽"
    assert _text(frame.locator("#cac")) == "2 000 ₽"
    assert frame.locator("#kpi").get_attribute("data-currency") == "RUB"
    ticks = _chart(frame, "#chart-revenue", "chart.scales.y.ticks.map(t => t.label)")
    assert ticks
    assert all(label.endswith("₽") for label in ticks)
    assert page.console_errors == []


@pytest.mark.browser
def test_tab_names_manager_who_left(page, emulator, rouble_november):
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    _november_range(frame)

    managers = _chart(frame, "#chart-managers", "chart.data.labels")

    assert "Екатерина Лебедева (уволена)" in managers
    assert "Дмитрий Ковалёв" in managers
    assert "Менеджер #5" not in managers
    assert page.console_errors == []


@pytest.mark.browser
def test_tab_amounts_english(page, services, app_server, rouble_november):
    open_kpi_tab_as(page, services, app_server, rouble_november, "en")
    _november_range(page)

    managers = page.locator("#chart-managers").evaluate(
        "c => Chart.getChart(c).data.labels"
    )
    assert _text(page.locator("#revenue")) == "₽4,000"
    assert "Екатерина Лебедева (left)" in managers
    assert page.console_errors == []


@pytest.mark.browser
def test_tab_forecast_revenue_in_roubles(page, emulator, services, installed):
    kpi_settings.save_currency(services, installed, RUB)
    cfg = kpi_settings.load(services, installed)
    today = datetime.now(UTC).date()
    records = []
    for offset in range(1, 50):
        day = today - timedelta(days=offset)
        records.append(
            {
                "ID": str(offset),
                "CATEGORY_ID": "1",
                "STAGE_ID": "C1:WON",
                "OPPORTUNITY": str(1000 + 10 * (offset % 7)),
                "CURRENCY_ID": "RUB",
                "ASSIGNED_BY_ID": "4",
                "CONTACT_ID": str(300 + offset),
                "DATE_CREATE": f"{day.isoformat()}T09:00:00+03:00",
                "BEGINDATE": f"{day.isoformat()}T12:00:00+03:00",
            }
        )
    with services.db.session() as session:
        sync.upsert_deals(session, installed.id, records, cfg, TZ)

    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-forecast='shown']").wait_for(timeout=15000)

    ticks = _chart(
        frame, "#chart-forecast-revenue", "chart.scales.y.ticks.map(t => t.label)"
    )
    bookings = _chart(
        frame, "#chart-forecast", "chart.scales.y.ticks.map(t => t.label)"
    )
    assert ticks
    assert all(label.endswith("₽") for label in ticks)
    assert not any(label.endswith("₽") for label in bookings)
    assert page.console_errors == []

"""The KPI tab's revenue forecast and spend table, in real headless Chromium."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from b24app.kpi.models import KpiDeal
from tests.helpers import open_kpi_tab_as

TAB = "/_emulator/ui/placement/CRM_ANALYTICS_MENU"


def _open_tab(page, emulator):
    page.goto(f"{emulator.base_url}{TAB}")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)
    return frame


def _labels(frame, canvas: str) -> list[str]:
    return frame.locator(canvas).evaluate(
        "c => Chart.getChart(c).data.datasets.map(d => d.label)"
    )


@pytest.fixture
def hundred_days(services, installed):
    """Three won deals of 1,000 a day over the 100 portal days before today."""
    moscow = ZoneInfo("Europe/Moscow")
    today = datetime.now(moscow).date()
    start = datetime.combine(today - timedelta(days=100), time(12), tzinfo=moscow)
    with services.db.session() as session:
        session.add_all(
            KpiDeal(
                portal_id=installed.id,
                bitrix_id=10_000 + i,
                category_id=1,
                stage_id="C1:WON",
                amount=1000,
                created_at=start + timedelta(days=i // 3),
                appointment_at=start + timedelta(days=i // 3),
                extra={},
                deleted=False,
            )
            for i in range(3 * 100)
        )
    return installed


@pytest.mark.browser
def test_revenue_forecast_chart_and_period(page, emulator, hundred_days):
    frame = _open_tab(page, emulator)
    frame.locator("#kpi[data-forecast='shown']").wait_for(timeout=15000)

    for canvas in ("#chart-forecast", "#chart-forecast-revenue"):
        box = frame.locator(canvas).bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert box["height"] > 50
    assert _labels(frame, "#chart-forecast-revenue") == [
        "Нижняя граница 80\u202f%",
        "Интервал 80\u202f%",
        "Прогноз",
    ]
    band_fill = frame.locator("#chart-forecast-revenue").evaluate(
        "c => Chart.getChart(c).data.datasets[1].fill"
    )
    assert band_fill == "-1"
    weekly_revenue = frame.locator("#chart-forecast-revenue").evaluate(
        "c => Chart.getChart(c).data.datasets[2].data"
    )
    assert len(weekly_revenue) == 4
    assert all(20_000 <= value <= 22_000 for value in weekly_revenue)
    for note in ("#forecast-note", "#forecast-revenue-note"):
        text = frame.locator(note).inner_text()
        assert "MAPE" in text
        assert "интервал 80\u202f%" in text

    # The period picker still reloads the KPIs after the forecast is drawn.
    with page.expect_response(lambda r: "/api/v1/kpi?period=month" in r.url) as info:
        frame.locator("#period").select_option("month")

    assert info.value.status == 200
    assert frame.locator("#chart-forecast-revenue").is_visible()
    assert page.console_errors == []


@pytest.mark.browser
def test_forecast_notes_missing_history(page, emulator, installed):
    frame = _open_tab(page, emulator)
    frame.locator("#kpi[data-forecast='hidden']").wait_for(timeout=15000)

    for note in ("#forecast-note", "#forecast-revenue-note"):
        assert frame.locator(note).inner_text() == (
            "Прогноз появится через 28 дн.: нужно 28 дней истории, есть 0."
        )
    assert frame.locator("#chart-forecast-revenue").is_hidden()
    assert page.console_errors == []


@pytest.mark.browser
def test_import_line_in_words(page, emulator, services, installed):
    from b24app.kpi import history

    # Before the first request the totals are unknown, so no "0 of 0".
    history.start_import(services, installed)
    frame = _open_tab(page, emulator)
    frame.locator("#kpi[data-import='running']").wait_for(timeout=15000)
    text = frame.locator("#import-text").inner_text()
    assert text == "Загружаем историю из Битрикс24…"
    assert frame.locator("#import-bar").is_hidden()

    history.run_import(services, installed)
    frame = _open_tab(page, emulator)
    frame.locator("#kpi[data-import='done']").wait_for(timeout=15000)

    text = frame.locator("#import-text").inner_text()
    assert text.startswith("Загружено из истории: ")
    assert re.fullmatch(
        r"Загружено из истории: \d+ лид(а|ов)?, \d+ сдел(ка|ки|ок)", text
    )
    assert frame.locator("#import-bar").is_hidden()
    assert page.console_errors == []


@pytest.mark.browser
def test_import_line_hidden_when_empty(page, emulator, services, installed):
    from sqlalchemy import update

    from b24app.kpi import history
    from b24app.kpi.models import KpiImport

    history.start_import(services, installed)
    with services.db.session() as session:
        session.execute(
            update(KpiImport)
            .where(KpiImport.portal_id == installed.id)
            .values(status="done", rows_total=0, rows_done=0)
        )

    frame = _open_tab(page, emulator)
    frame.locator("#kpi[data-import='done']").wait_for(timeout=15000)

    assert frame.locator("#import").is_hidden()
    assert page.console_errors == []


@pytest.mark.browser
def test_admin_toolbar_and_way_back(page, emulator, installed):
    frame = _open_tab(page, emulator)
    buttons = frame.locator("nav.admin-links button")
    buttons.first.wait_for(timeout=5000)
    first, second = buttons.nth(0).bounding_box(), buttons.nth(1).bounding_box()

    # The two buttons sit side by side on one line.
    assert abs(first["y"] - second["y"]) < 2
    assert second["x"] > first["x"] + first["width"]

    frame.locator("nav.admin-links button", has_text="Напоминания клиентам").click()
    frame.locator("#reminders").wait_for(timeout=15000)
    frame.locator("form.back-link button", has_text="← К показателям").click()
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)

    frame.locator("nav.admin-links button", has_text="Настройки SLA").click()
    frame.locator("#settings").wait_for(timeout=15000)
    frame.locator("form.back-link button", has_text="← К показателям").click()
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)

    assert frame.locator("nav.admin-links").is_visible()
    assert all("400" in message for message in page.console_errors)


@pytest.mark.browser
def test_english_ui_formats(page, services, app_server, installed):
    from tests.kpi.fixtures import november

    november(services, installed.id)
    open_kpi_tab_as(page, services, app_server, installed, "en")
    page.locator("#period").select_option("custom")
    page.locator("#from").fill("2026-11-01")
    page.locator("#to").fill("2026-11-30")
    page.locator("#apply-range").click()
    page.locator("#conversion", has_text="60\u202f%").wait_for(timeout=5000)

    labels = page.locator("#chart-channels").evaluate(
        "c => Chart.getChart(c).data.labels"
    )
    assert "Website" in labels
    assert page.locator("#revenue-coverage").inner_text() == (
        "amount known for 66.7\u202f% of visits"
    )
    assert page.locator("#cancelled-detail").inner_text() == "1 of them late"
    days = page.locator("#chart-visits").evaluate("c => Chart.getChart(c).data.labels")
    assert days[0] == "Nov 1"
    assert page.locator("[data-i18n=cancelled]").inner_text() == "Cancellations"


def _row(frame, month: str, channel: str):
    return frame.locator(
        f"#spend-table tr[data-month='{month}'][data-channel='{channel}']"
    )


def _amount(frame, month: str, channel: str) -> str:
    text = _row(frame, month, channel).locator("td.amount").inner_text()
    return text.replace("\u00a0", " ").replace("\u202f", " ")


@pytest.mark.browser
def test_spend_table_add_edit_delete(page, emulator, installed):
    frame = _open_tab(page, emulator)
    frame.locator("#admin summary").click()
    frame.locator("#kpi[data-spend-rows='0']").wait_for(timeout=15000)
    assert frame.locator("#spend-empty").is_visible()
    form = frame.locator("#spend-form")

    # Add two rows, one after the other as a person would.
    rows = (("2026-11", "ads", "1500"), ("2026-10", "site", "700"))
    for count, (month, channel, amount) in enumerate(rows, start=1):
        form.locator("[name=month]").fill(month)
        form.locator("[name=channel]").select_option(channel)
        form.locator("[name=amount]").fill(amount)
        form.locator("button[type=submit]").click()
        frame.locator(f"#kpi[data-spend-rows='{count}']").wait_for(timeout=5000)

    assert _amount(frame, "2026-11", "ads") == "1 500"
    assert (
        frame.locator("#spend-table tbody tr").first.get_attribute("data-month")
        == "2026-11"
    )
    assert frame.locator("#spend-empty").is_hidden()

    # Edit the amount in place.
    _row(frame, "2026-11", "ads").locator("[data-action=edit]").click()
    _row(frame, "2026-11", "ads").locator("input[name=amount]").fill("2500")
    _row(frame, "2026-11", "ads").locator("[data-action=save]").click()
    frame.locator("#spend-table td.amount", has_text="2 500").wait_for(timeout=5000)

    assert _amount(frame, "2026-11", "ads") == "2 500"

    # Delete the other row.
    _row(frame, "2026-10", "site").locator("[data-action=delete]").click()
    frame.locator("#kpi[data-spend-rows='1']").wait_for(timeout=5000)

    assert _row(frame, "2026-10", "site").count() == 0
    assert frame.locator("#spend-status").inner_text() == "Удалено"
    assert page.console_errors == []


@pytest.mark.browser
def test_spend_validation_errors_shown(page, emulator, installed):
    frame = _open_tab(page, emulator)
    frame.locator("#admin summary").click()
    frame.locator("#kpi[data-spend-rows='0']").wait_for(timeout=15000)
    form = frame.locator("#spend-form")
    error = frame.locator("#spend-error")

    form.locator("[name=month]").fill("2026-11")
    form.locator("[name=channel]").select_option("site")
    form.locator("[name=amount]").fill("-5")
    form.locator("button[type=submit]").click()
    error.wait_for(state="visible", timeout=5000)

    assert error.inner_text() == "Сумма должна быть числом не меньше 0."
    assert form.locator("[name=amount]").get_attribute("aria-invalid") == "true"

    form.locator("[name=amount]").fill("99999999999999999999")
    form.locator("button[type=submit]").click()
    frame.locator("#spend-error", has_text="слишком большая").wait_for(timeout=5000)

    assert error.inner_text().replace("\u00a0", " ") == (
        "Сумма слишком большая: допускается не больше 1 000 000 000 000."
    )
    assert form.locator("[name=amount]").get_attribute("aria-invalid") == "true"

    form.locator("[name=amount]").fill("100")
    form.locator("[name=month]").fill("")
    form.locator("button[type=submit]").click()
    frame.locator("#spend-error", has_text="ГГГГ-ММ").wait_for(timeout=5000)

    assert frame.locator("#kpi[data-spend-rows='0']").count() == 1
    # The general error line stays for load failures only.
    assert frame.locator("#error").is_hidden()
    # Chromium logs each rejected request (HTTP 400) as a console error.
    assert all("400" in message for message in page.console_errors)

"""The KPI tab inside the emulated portal's iframe, in real headless Chromium."""

from __future__ import annotations

import pytest

from tests.helpers import drain, lead_row

MANAGER = 4
TEXTS = (
    "Хочу записаться на маникюр завтра в 15:00",
    "Сколько стоит стрижка и окрашивание?",
    "Срочно! Сломался ноготь, нужна мастер сегодня вечером",
    "Не смогу прийти в субботу, отмените запись",
)


@pytest.fixture
def tagged_leads(emulator, installed, services, worker):
    ids = [
        emulator.portal.create_lead(
            {"ASSIGNED_BY_ID": MANAGER}, kind="form", message=text
        )
        for text in TEXTS
    ]
    drain(
        worker,
        services,
        until=lambda: all((r := lead_row(services, i)) and r.tagged_at for i in ids),
    )
    emulator.portal.add_activity(
        ids[0], type_id=2, direction=2, author_id=MANAGER, subject="Звонок"
    )
    drain(worker, services, until=lambda: lead_row(services, ids[0]).first_touch_at)
    return ids


@pytest.mark.browser
def test_kpi_tab_renders_charts_in_portal_iframe(page, emulator, tagged_leads):
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")

    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)

    assert frame.locator("#leads-total").inner_text() == str(len(tagged_leads))
    assert frame.locator("#answered").inner_text() == "25\u202f%"
    for canvas in ("#chart-leads", "#chart-sla", "#chart-tags"):
        box = frame.locator(canvas).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50
    assert page.console_errors == []


@pytest.mark.browser
def test_kpi_tab_period_picker_reloads(page, emulator, tagged_leads):
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)

    with page.expect_response(lambda r: "/api/v1/kpi?period=month" in r.url) as info:
        frame.locator("#period").select_option("month")

    assert info.value.status == 200
    assert frame.locator("#leads-total").inner_text() == str(len(tagged_leads))
    assert page.console_errors == []


@pytest.mark.browser
def test_kpi_tab_refuses_foreign_frame(page, app_server, installed, emulator):
    from html import escape

    from b24app.emulator.install import _with_query, frame_fields

    query, form = frame_fields(
        emulator.portal, user_id=MANAGER, placement="CRM_ANALYTICS_MENU", options=None
    )
    inputs = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in form.items()
    )
    action = escape(_with_query(f"{app_server.url}/placements/kpi", query))
    # A page of another origin than the portal's frames the tab.
    page.goto(f"{app_server.url}/healthz")
    page.set_content(
        f'<form id="f" method="post" target="t" action="{action}">{inputs}'
        '</form><iframe name="t" id="t"></iframe>'
    )

    with page.expect_response(lambda r: "/placements/kpi" in r.url) as info:
        page.evaluate("document.getElementById('f').submit()")

    assert info.value.status == 200
    page.wait_for_timeout(500)
    frame = page.frame(name="t")
    assert frame is None or frame.query_selector("#kpi") is None


@pytest.fixture
def november_data(services, installed):
    from tests.kpi.fixtures import november

    november(services, installed.id)
    return installed


@pytest.mark.browser
def test_kpi_tab_custom_range_shows_funnel(page, emulator, november_data):
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)

    frame.locator("#period").select_option("custom")
    frame.locator("#from").fill("2026-11-01")
    frame.locator("#to").fill("2026-11-30")
    with page.expect_response(
        lambda r: "from=2026-11-01&to=2026-11-30" in r.url
    ) as info:
        frame.locator("#apply-range").click()

    assert info.value.status == 200
    frame.locator("#conversion", has_text="60\u202f%").wait_for(timeout=5000)
    assert frame.locator("#no-show").inner_text() == "25\u202f%"
    assert "bad" in frame.locator("#card-noshow").get_attribute("class")
    assert "÷" in frame.locator("#card-conversion").get_attribute("title")
    for canvas in (
        "#chart-channels",
        "#chart-managers",
        "#chart-visits",
        "#chart-revenue",
    ):
        box = frame.locator(canvas).bounding_box()
        assert box is not None and box["width"] > 100
    assert page.console_errors == []


def _chart(frame, canvas: str, expression: str):
    return frame.locator(canvas).evaluate(
        f"c => {{ const chart = Chart.getChart(c); return {expression}; }}"
    )


@pytest.mark.browser
def test_kpi_tab_labels_and_formats(page, emulator, november_data):
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)
    frame.locator("#period").select_option("custom")
    frame.locator("#from").fill("2026-11-01")
    frame.locator("#to").fill("2026-11-30")
    frame.locator("#apply-range").click()
    frame.locator("#conversion", has_text="60\u202f%").wait_for(timeout=5000)

    channels = _chart(frame, "#chart-channels", "chart.data.labels")
    managers = _chart(frame, "#chart-managers", "chart.data.labels")
    days = _chart(frame, "#chart-visits", "chart.data.labels")
    assert "Сайт" in channels
    assert "Телефон" in channels
    assert "site" not in channels
    assert "Дмитрий Ковалёв" in managers
    assert "4" not in managers
    assert days[0] == "1 нояб."
    assert days[-1] == "30 нояб."
    # Axis ticks follow the Russian locale: the percent axis carries " %".
    ticks = _chart(frame, "#chart-managers", "chart.scales.y.ticks.map(t => t.label)")
    assert all(label.endswith("\u202f%") for label in ticks)
    assert _chart(frame, "#chart-managers", "chart.options.locale") == "ru-RU"

    assert frame.locator("#cancelled").inner_text() == "2"
    assert frame.locator("#cancelled-detail").inner_text() == "из них поздних 1"
    assert frame.locator("#revenue").inner_text().replace("\u00a0", " ") == "4 000 ₽"
    coverage = frame.locator("#revenue-coverage").inner_text()
    assert coverage == "сумма есть у 66,7\u202f% визитов"

    intents = _chart(frame, "#chart-tags", "chart.data.labels")
    assert "Спам" not in intents
    assert "Срочно" not in intents
    flags = frame.locator("#tags-flags").inner_text()
    assert "Срочных: " in flags
    assert "Спам: 1 (не входит в число лидов)" in flags
    assert page.console_errors == []


@pytest.mark.browser
def test_kpi_tab_range_checked_before_request(page, emulator, installed):
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)
    requests = []
    page.on("request", lambda r: "from=" in r.url and requests.append(r.url))

    frame.locator("#period").select_option("custom")
    frame.locator("#from").fill("2026-11-30")
    frame.locator("#to").fill("2026-11-01")
    frame.locator("#apply-range").click()
    error = frame.locator("#range-error")
    error.wait_for(state="visible", timeout=5000)

    assert error.inner_text() == (
        "Дата окончания раньше даты начала (30 нояб.). Выберите более позднюю дату."
    )
    assert frame.locator("#to").get_attribute("aria-invalid") == "true"
    assert frame.locator("#from").get_attribute("aria-invalid") is None
    assert frame.locator("#error").is_hidden()
    assert requests == []

    frame.locator("#to").fill("2026-12-01")
    with page.expect_response(lambda r: "from=2026-11-30&to=2026-12-01" in r.url):
        frame.locator("#apply-range").click()

    assert error.is_hidden()
    assert frame.locator("#to").get_attribute("aria-invalid") is None
    assert page.console_errors == []


@pytest.mark.browser
def test_kpi_tab_forecast_hidden_and_import_progress(
    page, emulator, services, installed
):
    from b24app.kpi import history

    history.start_import(services, installed)
    history.run_import(services, installed, batch_size=1, max_requests=1)

    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-forecast='hidden']").wait_for(timeout=15000)
    frame.locator("#kpi[data-import='running']").wait_for(timeout=15000)

    note = frame.locator("#forecast-note").inner_text()
    assert note.startswith("Прогноз появится через 28 дн.: нужно 28 дней истории")
    assert frame.locator("#import").is_visible()
    assert frame.locator("#admin").is_visible()
    assert page.console_errors == []

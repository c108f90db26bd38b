"""The KPI tab's settings and ad-spend forms: errors and channel names."""

from __future__ import annotations

import pytest

from tests.helpers import open_kpi_tab_as

TAB = "/_emulator/ui/placement/CRM_ANALYTICS_MENU"


def _open_settings(page, emulator):
    page.goto(f"{emulator.base_url}{TAB}")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)
    frame.locator("#admin summary").click()
    frame.locator("#kpi[data-spend-rows]").wait_for(timeout=15000)
    return frame


def _open_english(page, services, app_server, installed):
    open_kpi_tab_as(page, services, app_server, installed, "en")
    page.locator("#admin summary").click()
    page.locator("#kpi[data-spend-rows]").wait_for(timeout=15000)
    return page


@pytest.mark.browser
def test_settings_save_error_next_to_button(page, emulator, installed):
    frame = _open_settings(page, emulator)
    form = frame.locator("#mapping-form")
    status = frame.locator("#mapping-status")

    form.locator("button[type=submit]").click()
    frame.locator("#mapping-status", has_text="Сохранено").wait_for(timeout=5000)

    assert status.get_attribute("role") is None

    cases = [
        ("daily_capacity", "999999999999999", "Мест в день: укажите целое число"),
        ("appointment_field", "", "Поле времени визита: укажите BEGINDATE"),
        ("deal_categories", "abc", "Воронки записей: укажите ID воронок"),
    ]
    for name, value, message in cases:
        # Reload the stored values, so only one field is invalid at a time.
        page.reload()
        frame = _open_settings(page, emulator)
        form = frame.locator("#mapping-form")
        status = frame.locator("#mapping-status")
        form.locator(f"[name={name}]").fill(value)
        form.locator("button[type=submit]").click()
        frame.locator("#mapping-status.error").wait_for(timeout=5000)

        assert status.inner_text().startswith("Не удалось сохранить: ")
        assert message in status.inner_text()
        assert status.get_attribute("role") == "alert"
        assert form.locator(f"[name={name}]").get_attribute("aria-invalid") == "true"
        assert frame.locator("#error").is_hidden()

    # Fixing the field and saving again clears the error and the mark.
    form.locator("[name=deal_categories]").fill("1")
    form.locator("button[type=submit]").click()
    frame.locator("#mapping-status", has_text="Сохранено").wait_for(timeout=5000)

    assert status.get_attribute("role") is None
    assert status.get_attribute("class") == "muted"
    assert form.locator("[name=deal_categories]").get_attribute("aria-invalid") is None
    assert all("400" in message for message in page.console_errors)


@pytest.mark.browser
def test_settings_save_clears_old_status(page, emulator, installed):
    frame = _open_settings(page, emulator)
    form = frame.locator("#mapping-form")
    status = frame.locator("#mapping-status")
    form.locator("button[type=submit]").click()
    frame.locator("#mapping-status", has_text="Сохранено").wait_for(timeout=5000)

    # Hold the next save so the status can be read while it is in flight.
    page.route("**/api/v1/kpi/settings", lambda route: None)
    form.locator("button[type=submit]").click()
    frame.locator("#mapping-status", has_text="Сохранено").wait_for(
        state="detached", timeout=5000
    )

    assert status.inner_text() == ""


@pytest.mark.browser
def test_settings_error_in_english(page, services, app_server, installed):
    tab = _open_english(page, services, app_server, installed)
    form = tab.locator("#mapping-form")
    form.locator("[name=daily_capacity]").fill("999999999999999")
    form.locator("button[type=submit]").click()
    tab.locator("#mapping-status.error").wait_for(timeout=5000)

    assert tab.locator("#mapping-status").inner_text() == (
        "Could not save: daily_capacity must be an integer 0..10000 or null"
    )


@pytest.mark.browser
def test_spend_channel_select_labels(page, emulator, installed):
    frame = _open_settings(page, emulator)
    select = frame.locator("#spend-form [name=channel]")
    labels = select.locator("option").all_inner_texts()
    codes = [
        select.locator("option").nth(i).get_attribute("value")
        for i in range(len(labels))
    ]

    assert codes[:3] == ["site", "phone", "email"]
    assert labels[:2] == ["Сайт", "Телефон"]
    assert "Реклама" in labels

    # The owner picks the label shown in the table; the form sends the code.
    form = frame.locator("#spend-form")
    form.locator("[name=month]").fill("2026-11")
    select.select_option(label="Реклама")
    form.locator("[name=amount]").fill("1500")
    form.locator("button[type=submit]").click()
    frame.locator("#kpi[data-spend-rows='1']").wait_for(timeout=5000)

    row = frame.locator("#spend-table tr[data-month='2026-11'][data-channel='ads']")
    assert row.locator("td").nth(1).inner_text() == "Реклама"
    assert frame.locator("#spend-error").is_hidden()


@pytest.mark.browser
def test_spend_channel_select_english(page, services, app_server, installed):
    tab = _open_english(page, services, app_server, installed)
    labels = tab.locator("#spend-form [name=channel] option").all_inner_texts()

    assert labels[:2] == ["Website", "Phone"]
    assert "Ads" in labels

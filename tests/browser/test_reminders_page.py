"""The reminders settings page, opened from the KPI tab as an admin does."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest

from b24app import portal_settings
from b24app.models import Portal
from b24app.reminders import config, consent, dispatch
from tests.reminders.support import deliveries, new_appointment

CLIENT = "Светлана Петрова"
SERVICE = "Окрашивание"
# Sample data uses "Мария", so this first name shows the preview used the deal.
GREETING = "Здравствуйте, Светлана!"


@pytest.fixture
def reminded(emulator, installed, services, worker):
    """One deal appointment whose confirmation went out in the open-line chat."""
    config.save(
        services,
        installed.id,
        {"quiet_hours": {"start": "00:00", "end": "00:00"}, "channels": ["openline"]},
    )
    deal_id, row = new_appointment(
        emulator, services, worker, title=f"{SERVICE} — {CLIENT}"
    )
    emulator.portal.open_crm_chat("deal", deal_id)
    consent.grant(services, installed.id, f"deal:{deal_id}", "openline", source="form")
    dispatch.dispatch_due(services)
    assert [d.status for d in deliveries(services)] == ["sent"]
    return row


def _open_reminders(page, emulator):
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)
    frame.get_by_role("button", name="Напоминания клиентам").click()
    frame.locator("#reminders[data-loaded='true']").wait_for(timeout=15000)
    return frame


@pytest.mark.browser
def test_reminders_page_edit_preview_save(page, emulator, services, reminded):
    frame = _open_reminders(page, emulator)
    confirm = frame.locator('[data-template="confirm"]')
    error = frame.locator('[data-error="templates.confirm"]')
    preview = frame.locator('[data-preview="confirm"]')

    confirm.fill("Здравствуйте, {name}! Ждём вас в {hall}.")
    error.filter(has_text="Неизвестное поле {hall}").wait_for(timeout=5000)
    assert preview.inner_text() == ""

    confirm.fill("Здравствуйте, {name}! {service} ждёт вас {date} в {time}.")
    preview.filter(has_text=GREETING).wait_for(timeout=5000)
    assert SERVICE in preview.inner_text()
    assert error.inner_text() == ""

    frame.locator("#confirm-before").fill("48")
    frame.locator("#remind-before").fill("45")
    frame.locator("#remind-unit").select_option("1")
    frame.locator("#save").click()
    frame.locator("#status", has_text="Сохранено").wait_for(timeout=5000)

    with services.db.session() as session:
        stored = config.settings(session.get(Portal, reminded.portal_id))
    assert stored["schedule"] == [
        {"kind": "confirm", "minutes_before": 2880},
        {"kind": "remind", "minutes_before": 45},
    ]
    assert "{service} ждёт вас" in stored["templates"]["confirm"]

    row = frame.locator(f'#appointments tr[data-appointment="{reminded.id}"]')
    assert "открытая линия: отправлено" in row.inner_text()
    assert SERVICE in row.inner_text()
    assert page.console_errors == []


@pytest.mark.browser
def test_appointment_list_readable(page, emulator, services, reminded):
    frame = _open_reminders(page, emulator)
    row = frame.locator(f'#appointments tr[data-appointment="{reminded.id}"]')
    cells = row.locator("td")

    with services.db.session() as session:
        zone = ZoneInfo(
            portal_settings.timezone(session.get(Portal, reminded.portal_id))
        )
    local = reminded.starts_at.astimezone(zone)
    visit = cells.nth(0).inner_text()
    assert visit.startswith(f"{local.day} ")
    assert f"{local:%H:%M}" in visit
    assert re.search(r"\d\d:\d\d:\d\d", visit) is None

    assert cells.nth(1).inner_text() == "записан"
    assert cells.nth(2).inner_text() == "открытая линия: отправлено"
    assert page.console_errors == []


@pytest.mark.browser
def test_quiet_hours_off_note(page, emulator, services, reminded):
    frame = _open_reminders(page, emulator)
    note = frame.locator("#quiet-off")
    assert note.is_visible()
    assert "Тихие часы выключены" in note.inner_text()

    frame.locator("#quiet-start").fill("22:00")
    note.wait_for(state="hidden", timeout=5000)

    frame.locator("#quiet-end").fill("22:00")
    note.wait_for(state="visible", timeout=5000)
    assert page.console_errors == []


@pytest.mark.browser
def test_reminders_page_rejects_unknown_field_on_save(
    page, emulator, services, reminded
):
    frame = _open_reminders(page, emulator)
    frame.locator('[data-template="remind"]').fill("Напоминаем: {when}.")
    frame.locator("#save").click()

    frame.locator("#error", has_text="Проверьте поля").wait_for(timeout=5000)
    message = frame.locator('[data-error="templates.remind"]').inner_text()
    assert "Неизвестное поле {when}" in message
    # Chromium logs the rejected save (HTTP 422) itself, and nothing else may fail.
    unexpected = [e for e in page.console_errors if "status of 422" not in e]
    assert unexpected == []


@pytest.mark.browser
def test_ab_test_rates_and_promotion(page, emulator, services, installed):
    from datetime import UTC, datetime, timedelta

    from b24app.reminders import admin
    from b24app.reminders.models import Appointment, Experiment

    experiment = admin.create_experiment(
        services,
        installed.id,
        {
            "name": "Короткий текст",
            "min_per_variant": 30,
            "variants": [
                {"code": "A", "control": True},
                {"code": "B", "templates": {"remind": "Ждём вас {date} в {time}."}},
            ],
        },
    )
    # 12 of 40 clients of the control missed their visit, 2 of 40 with B.
    past = datetime.now(UTC) - timedelta(days=3)
    with services.db.session() as session:
        for index in range(80):
            variant = "A" if index < 40 else "B"
            missed = index < 12 or 40 <= index < 42
            session.add(
                Appointment(
                    portal_id=installed.id,
                    source="deal",
                    source_id=9000 + index,
                    deal_id=9000 + index,
                    starts_at=past,
                    status="no_show" if missed else "visited",
                    experiment_id=experiment.id,
                    variant=variant,
                )
            )

    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)
    frame.get_by_role("button", name="Напоминания клиентам").click()
    frame.locator("#experiments[data-loaded='true']").wait_for(timeout=15000)

    block = frame.locator(f'.experiment[data-experiment="{experiment.id}"]')
    control = block.locator('tr[data-variant="A"]').inner_text()
    variant = block.locator('tr[data-variant="B"]').inner_text()
    assert "30,0\xa0%" in control
    assert "(контроль)" in control
    assert "5,0\xa0%" in variant
    assert "Вероятность случайной разницы" in block.locator("tr").first.inner_text()
    chance = block.locator('tr[data-variant="B"] td').last
    assert re.fullmatch(r"\d+,\d\xa0%", chance.inner_text())
    assert "p = 0," in chance.get_attribute("title")
    assert "лучше контрольного" in block.locator(".verdict").inner_text()

    block.locator("button.promote").click()
    frame.locator(
        f'.experiment[data-experiment="{experiment.id}"] h3', has_text="вариант B"
    ).wait_for(timeout=5000)
    with services.db.session() as session:
        stored = session.get(Experiment, experiment.id)
        assert stored.status == "finished"
        assert stored.winner == "B"
    assert page.console_errors == []

"""The lead card tab: clock state, minutes left or overdue, tags, escalations."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from b24app.sla import escalation
from tests.helpers import drain, lead_row
from tests.sla.support import (
    MANAGER,
    age_lead,
    configure,
    new_lead,
    place_clock,
)

MSK = ZoneInfo("Europe/Moscow")


def _tab(emulator, lead_id: int, user_id: int = MANAGER) -> str:
    response = emulator.portal.open_placement(
        "CRM_LEAD_DETAIL_TAB", {"ID": str(lead_id)}, user_id
    )
    assert response.status_code == 200
    return response.text


def _human_state(page: str) -> str:
    return re.search(r'data-tier="human" data-state="(\w+)"', page)[1]


def _closed_now() -> dict:
    """Two open hours a day that never include the current hour."""
    start = (datetime.now(MSK).hour + 6) % 22
    hours = [[f"{start:02d}:00", f"{start + 2:02d}:00"]]
    return {
        "tz": "Europe/Moscow",
        "country": None,
        "weekly": {str(day): hours for day in range(7)},
    }


def test_lead_tab_shows_running_clock(emulator, installed, services, worker):
    configure(services, installed.id, policy={"human_seconds": 600})
    lead_id = new_lead(emulator, services, worker)

    page = _tab(emulator, lead_id)

    assert _human_state(page) == "running"
    assert re.search(r"осталось (9|10) мин", page)


def test_lead_tab_shows_tags(emulator, installed, services, worker):
    configure(services, installed.id)
    lead_id = new_lead(emulator, services, worker, "Хочу записаться на маникюр")

    assert '<span class="tag">Запись</span>' in _tab(emulator, lead_id)


def test_lead_tab_shows_pause_until_opening(emulator, installed, services, worker):
    configure(services, installed.id, calendar=_closed_now())
    lead_id = new_lead(emulator, services, worker)

    page = _tab(emulator, lead_id)

    assert _human_state(page) == "paused"
    assert "на паузе до" in page


def test_lead_tab_out_of_hours_start(emulator, installed, services, worker):
    configure(services, installed.id, calendar=_closed_now())
    lead_id = new_lead(emulator, services, worker)

    assert "Лид пришёл в нерабочее время: отсчёт с" in _tab(emulator, lead_id)


def test_lead_tab_shows_met_clock(emulator, installed, services, worker):
    configure(services, installed.id, policy={"human_seconds": 600})
    lead_id = new_lead(emulator, services, worker)
    emulator.portal.add_activity(lead_id, type_id=2, direction=2, author_id=MANAGER)
    drain(worker, services, until=lambda: lead_row(services, lead_id).first_touch_at)

    page = _tab(emulator, lead_id)

    assert _human_state(page) == "met"
    assert "ответ меньше чем за минуту" in page
    assert "0 мин" not in page
    # A web-form lead has no bot clock, so the call cannot show as a bot reply.
    assert 'data-tier="bot"' not in page


def test_lead_tab_shows_overdue_minutes(emulator, installed, services, worker):
    configure(services, installed.id, policy={"human_seconds": 120})
    lead_id = new_lead(emulator, services, worker)
    age_lead(services, lead_id, minutes=5)

    page = _tab(emulator, lead_id)

    assert _human_state(page) == "breached"
    assert "просрочка 3 мин" in page


def test_lead_tab_lists_escalations(emulator, installed, services, worker):
    configure(services, installed.id, policy={"human_seconds": 120})
    lead_id = new_lead(emulator, services, worker)
    age_lead(services, lead_id, minutes=3)
    escalation.sweep(services)

    page = _tab(emulator, lead_id)

    assert "предупреждение ответственному: отправлено" in page
    assert re.search(r"задача старшему: отправлено, получатель #2, задача #\d+", page)


def test_lead_tab_shows_notice_waiting_for_shift(emulator, installed, services, worker):
    shift = {str(day): [["09:00", "18:00"]] for day in range(7)}
    configure(services, installed.id, manager_schedules={str(MANAGER): shift})
    lead_id = new_lead(emulator, services, worker)
    tomorrow = datetime.now(MSK).date() + timedelta(days=1)
    place_clock(
        services,
        lead_id,
        datetime.combine(tomorrow, time(8, 5), MSK),
        target_seconds=3600,
    )
    escalation.sweep(services, now=datetime.combine(tomorrow, time(8, 55), MSK))

    page = _tab(emulator, lead_id)

    assert f"ждёт рабочего времени до {tomorrow:%d.%m.%Y} 09:00" in page


def test_lead_tab_says_manager_is_off_shift(emulator, installed, services, worker):
    hours = _closed_now()["weekly"]
    configure(services, installed.id, manager_schedules={str(MANAGER): hours})
    lead_id = new_lead(emulator, services, worker)

    assert "Ответственный не на смене до" in _tab(emulator, lead_id)


def test_lead_tab_for_unknown_lead(emulator, installed, services):
    assert "Лид #777 ещё не обработан" in _tab(emulator, 777)


def test_lead_tab_shows_extracted_details(emulator, installed, services, worker):
    configure(services, installed.id)
    lead_id = new_lead(
        emulator,
        services,
        worker,
        "Здравствуйте, меня зовут Ирина. Хочу записаться на маникюр 12 декабря",
    )

    page = _tab(emulator, lead_id)

    assert re.search(r'data-detail="name">Ирина<', page)
    assert re.search(r'data-detail="service">[^<]*маникюр', page, re.IGNORECASE)
    assert re.search(r'data-detail="desired">12\.12\.\d{4}', page)


def test_lead_tab_times_of_a_move(emulator, installed, services, worker):
    configure(services, installed.id)
    lead_id = new_lead(
        emulator,
        services,
        worker,
        "Добрый день, я записана на 18 декабря, перенесите на 22 декабря пожалуйста",
    )

    page = _tab(emulator, lead_id)

    assert re.search(r'data-detail="booked">18\.12\.\d{4}<', page)
    assert re.search(r'data-detail="desired">22\.12\.\d{4}<', page)

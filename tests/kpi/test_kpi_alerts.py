"""Drift alerts of the first-response median, no-shows and conversion.

Small fixtures are written straight into the app's tables. The notifications
go to the emulated portal's im.notify.system.add.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from b24app.kpi import alerts
from b24app.kpi import settings as kpi_settings
from b24app.models import SlaClock
from tests.kpi.fixtures import at, deal, lead

# Wednesday 18 November 2026, 13:00 in Moscow (UTC+3).
NOON = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


def _owner_notes(emulator, portal, word: str) -> list[str]:
    owner = str(alerts.portal_settings.owner_user_id(portal))
    return [
        n["MESSAGE"]
        for n in emulator.portal.notifications.data.values()
        if n["USER_ID"] == owner and word in n["MESSAGE"]
    ]


def _answered_leads(services, portal_id: int, minutes: list[int]) -> None:
    """Add leads created at 10:00 Moscow on 18 November.

    Each lead is responded to after its entry of ``minutes``.
    """
    with services.db.session() as session:
        for index, delay in enumerate(minutes):
            created = at("2026-11-18T07:00:00")
            touched = created + timedelta(minutes=delay)
            row = lead(portal_id, 500 + index, "2026-11-18T07:00:00", "site", 4)
            row.first_touch_at = touched
            session.add(row)
            session.flush()
            session.add(
                SlaClock(
                    portal_id=portal_id,
                    lead_id=row.id,
                    tier="human",
                    target_seconds=15 * 60,
                    created_at=created,
                    starts_at=created,
                    due_at=created + timedelta(minutes=15),
                    state="stopped",
                    stopped_at=touched,
                )
            )


def test_median_alert_once_a_day(emulator, services, installed):
    _answered_leads(services, installed.id, [40, 50, 60])

    first = alerts.check_alerts(services, installed, now=NOON)
    second = alerts.check_alerts(services, installed, now=NOON + timedelta(hours=1))

    assert "first_response_median" in first
    assert "first_response_median" not in second
    notes = _owner_notes(emulator, installed, "медиана первого ответа")
    assert len(notes) == 1
    assert "50 мин" in notes[0]
    assert "не больше 15 мин" in notes[0]


def test_median_alert_only_own_day(emulator, services, installed):
    _answered_leads(services, installed.id, [40, 50, 60])
    alerts.check_alerts(services, installed, now=NOON)

    # Same leads, but judged as "today" only on their own day: nothing new.
    next_day = alerts.check_alerts(services, installed, now=NOON + timedelta(days=1))

    assert "first_response_median" not in next_day
    assert len(_owner_notes(emulator, installed, "медиана первого ответа")) == 1


def test_median_within_target_silent(emulator, services, installed):
    _answered_leads(services, installed.id, [5, 6, 7])

    sent = alerts.check_alerts(services, installed, now=NOON)

    assert "first_response_median" not in sent
    assert _owner_notes(emulator, installed, "медиана") == []


def test_median_needs_three_responses(emulator, services, installed):
    _answered_leads(services, installed.id, [90, 90])

    sent = alerts.check_alerts(services, installed, now=NOON)

    assert "first_response_median" not in sent


def _outcomes(services, portal_id: int, stages: list[tuple[str, str]]) -> None:
    with services.db.session() as session:
        session.add_all(
            deal(portal_id, 700 + i, stage, due)
            for i, (stage, due) in enumerate(stages)
        )


def test_no_show_alert_last_seven_days(emulator, services, installed):
    _outcomes(
        services,
        installed.id,
        [
            ("C1:WON", "2026-11-12T10:00:00"),  # 12 November: first day counted
            ("C1:WON", "2026-11-14T10:00:00"),
            ("C1:WON", "2026-11-16T10:00:00"),
            ("C1:WON", "2026-11-18T07:00:00"),
            ("C1:LOSE", "2026-11-13T10:00:00"),
            ("C1:LOSE", "2026-11-17T10:00:00"),
            ("C1:LOSE", "2026-11-10T10:00:00"),  # 8 days back: outside
        ],
    )

    sent = alerts.check_alerts(services, installed, now=NOON)
    again = alerts.check_alerts(services, installed, now=NOON + timedelta(hours=2))

    assert "no_show_rate" in sent
    assert "no_show_rate" not in again
    notes = _owner_notes(emulator, installed, "неявки за последние 7 дней")
    assert len(notes) == 1
    assert "33.3 %" in notes[0]
    assert "2 из 6" in notes[0]
    assert "не больше 10 %" in notes[0]


def test_no_show_within_target_silent(emulator, services, installed):
    kpi_settings.save(services, installed, targets={"no_show_rate": 0.5})
    _outcomes(
        services,
        installed.id,
        [("C1:WON", f"2026-11-1{d}T10:00:00") for d in range(3, 7)]
        + [("C1:LOSE", "2026-11-17T10:00:00")],
    )

    sent = alerts.check_alerts(services, installed, now=NOON)

    assert "no_show_rate" not in sent


def test_no_show_needs_five_outcomes(emulator, services, installed):
    _outcomes(
        services,
        installed.id,
        [("C1:LOSE", "2026-11-16T10:00:00"), ("C1:LOSE", "2026-11-17T10:00:00")],
    )

    sent = alerts.check_alerts(services, installed, now=NOON)

    assert "no_show_rate" not in sent


def _leads_in_window(services, portal_id: int, total: int, converted: int) -> None:
    """``total`` leads over 4..17 November, the first ``converted`` booked."""
    with services.db.session() as session:
        for i in range(total):
            created = datetime(2026, 11, 4 + i % 14, 9, tzinfo=UTC).isoformat()[:19]
            status = "CONVERTED" if i < converted else "NEW"
            session.add(lead(portal_id, 800 + i, created, "site", 4, status))
        # Today's unbooked leads do not pull the rate down.
        for i in range(10):
            session.add(lead(portal_id, 900 + i, "2026-11-18T06:00:00", "site", 4))


def test_conversion_alert_below_range(emulator, services, installed):
    _leads_in_window(services, installed.id, total=12, converted=1)

    sent = alerts.check_alerts(services, installed, now=NOON)
    again = alerts.check_alerts(services, installed, now=NOON + timedelta(hours=3))

    assert "conversion" in sent
    assert "conversion" not in again
    notes = _owner_notes(emulator, installed, "конверсия лидов в запись за 14 дней")
    assert len(notes) == 1
    assert "8.3 %" in notes[0]
    assert "1 из 12" in notes[0]
    assert "10 %" in notes[0]


def test_conversion_in_range_silent(emulator, services, installed):
    _leads_in_window(services, installed.id, total=12, converted=2)

    sent = alerts.check_alerts(services, installed, now=NOON)

    assert "conversion" not in sent


def test_conversion_needs_ten_leads(emulator, services, installed):
    _leads_in_window(services, installed.id, total=8, converted=0)

    sent = alerts.check_alerts(services, installed, now=NOON)

    assert "conversion" not in sent


def test_conversion_skipped_without_range(emulator, services, installed):
    kpi_settings.save(services, installed, mapping={"segment": "fitness"})
    _leads_in_window(services, installed.id, total=12, converted=0)

    sent = alerts.check_alerts(services, installed, now=NOON)

    assert "conversion" not in sent


def test_alerts_english_portal(emulator, services, installed):
    with services.db.session() as session:
        session.get(type(installed), installed.id).language = "en"
        installed.language = "en"
    _answered_leads(services, installed.id, [40, 50, 60])

    alerts.check_alerts(services, installed, now=NOON)

    notes = _owner_notes(emulator, installed, "median first response")
    assert len(notes) == 1
    assert "target at most 15 min" in notes[0]

"""Weekly e-mail through a real SMTP server, drift alerts once a day, forecast."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from b24app.kpi import alerts, mail, png
from b24app.kpi import settings as kpi_settings
from b24app.kpi.forecast import fit, forecast, forecast_series, project
from b24app.kpi.models import KpiDeal
from b24app.models import Lead
from tests.conftest import free_port
from tests.kpi.fixtures import november

MOSCOW = ZoneInfo("Europe/Moscow")
MONDAY_MORNING = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield (
        inbox,
        kpi_settings.smtp_settings(
            {
                "OTKLIK_SMTP_HOST": "127.0.0.1",
                "OTKLIK_SMTP_PORT": str(controller.port),
                "OTKLIK_SMTP_TLS": "none",
                "OTKLIK_SMTP_FROM": "kpi@otklik.test",
            }
        ),
    )
    controller.stop()


def test_weekly_email_sent_once(services, installed, smtp_server):
    inbox, smtp = smtp_server
    november(services, installed.id)
    kpi_settings.save(services, installed, owner_email="owner@salon.test")

    first = mail.send_weekly(services, installed, now=MONDAY_MORNING, smtp=smtp)
    second = mail.send_weekly(services, installed, now=MONDAY_MORNING, smtp=smtp)

    assert first == "sent"
    assert second == "skipped: already sent"
    assert len(inbox.messages) == 1
    assert inbox.messages[0][1] == ["owner@salon.test"]


def test_weekly_email_parts(services, installed, smtp_server):
    inbox, smtp = smtp_server
    november(services, installed.id)
    kpi_settings.save(services, installed, owner_email="owner@salon.test")

    mail.send_weekly(services, installed, now=MONDAY_MORNING, smtp=smtp)

    message = email.message_from_bytes(inbox.messages[0][2])
    types = [part.get_content_type() for part in message.walk()]
    assert "text/plain" in types
    assert "text/html" in types
    assert types.count("image/png") == 2
    assert "2026-11-09" in message["Subject"]


def test_weekly_email_not_due_on_tuesday(services, installed, smtp_server):
    _, smtp = smtp_server
    kpi_settings.save(services, installed, owner_email="owner@salon.test")

    outcome = mail.send_weekly(
        services, installed, now=MONDAY_MORNING + timedelta(days=1), smtp=smtp
    )

    assert outcome == "skipped: not due"


def test_png_chart_is_png():
    data = png.bar_chart([1, 3, 2], width=60, height=30, target=2)

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data[12:16] == b"IHDR"


def _unanswered_leads(emulator, services, worker, count=3):
    from tests.helpers import drain, lead_row

    ids = [
        emulator.portal.create_lead({"ASSIGNED_BY_ID": 4}, message="Хочу на маникюр")
        for _ in range(count)
    ]
    drain(
        worker,
        services,
        until=lambda: all((r := lead_row(services, i)) and r.tagged_at for i in ids),
    )
    return ids


def test_alert_once_a_day(emulator, services, installed, worker):
    ids = _unanswered_leads(emulator, services, worker)
    # The leads get wall-clock creation times, and Moscow midnight may pass
    # before the check, so they are moved to the morning of a fixed day.
    day = date(2026, 11, 16)
    with services.db.session() as session:
        session.execute(
            update(Lead)
            .where(Lead.bitrix_id.in_(ids))
            .values(created_at=datetime.combine(day, time(9, 0), MOSCOW))
        )
    noon = datetime.combine(day, time(13, 0), MOSCOW)

    first = alerts.check_alerts(services, installed, now=noon)
    second = alerts.check_alerts(services, installed, now=noon)

    assert "answered_share" in first
    assert second == []
    notes = [n for n in emulator.portal.notifications.values() if "Отклик" in str(n)]
    assert len([n for n in notes if "отвечено" in str(n)]) == 1


def test_alert_waits_for_noon(emulator, services, installed, worker):
    _unanswered_leads(emulator, services, worker)
    morning = datetime.combine(datetime.now(MOSCOW).date(), time(8, 0), MOSCOW)

    assert alerts.check_alerts(services, installed, now=morning) == []


def test_forecast_hidden_with_short_history(services, installed):
    november(services, installed.id)

    result = forecast(services, installed, now=datetime(2026, 11, 10, tzinfo=UTC))

    assert result["available"] is False
    assert result["missing_days"] == 28 - 9


def test_forecast_shown_with_history(services, installed):
    start = datetime(2026, 8, 1, 9, tzinfo=UTC)
    with services.db.session() as session:
        session.add_all(
            KpiDeal(
                portal_id=installed.id,
                bitrix_id=i + 1,
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

    result = forecast(services, installed, now=start + timedelta(days=100))

    assert result["available"] is True
    assert result["bookings"]["weeks"][0]["value"] == pytest.approx(21, abs=0.5)
    assert result["bookings"]["backtest"]["mape"] == pytest.approx(0, abs=0.02)
    revenue = result["revenue"]
    assert revenue["weeks"][0]["value"] == pytest.approx(21000, rel=0.03)
    assert all(w["low"] <= w["value"] <= w["high"] for w in revenue["weeks"])
    assert revenue["backtest"]["mape"] == pytest.approx(0, abs=0.02)
    assert revenue["backtest"]["interval_hits"] == "4/4"


def test_fit_recovers_weekday_pattern():
    values = [10.0 if i % 7 < 5 else 2.0 for i in range(56)]

    model = fit(values, first_weekday=0)
    ahead = project(model, 7)

    assert ahead[0] == pytest.approx(10, abs=0.5)
    assert ahead[5] == pytest.approx(2, abs=0.5)


def test_forecast_interval_brackets_value():
    values = [float(5 + (i % 3)) for i in range(70)]

    weeks = forecast_series(values, date(2026, 11, 30))["weeks"]

    assert all(w["low"] <= w["value"] <= w["high"] for w in weeks)
    assert len(weeks) == 4

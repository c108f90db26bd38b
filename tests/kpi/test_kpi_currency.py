"""KPI amounts in the portal's base currency, and names of managers who left."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
import requests
from openpyxl import load_workbook
from sqlalchemy import select

from b24app.bitrix.errors import BitrixCallError
from b24app.emulator import crm
from b24app.emulator.events import AUTOMATION
from b24app.kpi import currency, mail, names, report, sync
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import KpiDeal
from b24app.sla import settings as sla_settings
from tests.helpers import drain
from tests.kpi.fixtures import LATER, NOV, november

OWNER, MANAGER = 1, 4
NOV_QUERY = "from=2026-11-01&to=2026-11-30"
TZ = "Europe/Moscow"
RUB_WITH_USD = {
    "base": "RUB",
    "rates": {"USD": 90.0},
    "read_at": "2026-11-30T12:00:00+00:00",
}


def _token(emulator, user_id: int) -> str:
    page = emulator.portal.open_placement("CRM_ANALYTICS_MENU", user_id=user_id)
    return re.search(r'data-api-token="([^"]+)"', page.text).group(1)


@pytest.fixture
def api(emulator, installed, app_server, services):
    def call(method, path, *, user=OWNER, lang=None, **kwargs):
        token = _token(emulator, user)
        if lang is not None:
            from b24app.placement_auth import Viewer, sign_api_token

            viewer = Viewer(
                portal_id=installed.id,
                member_id=installed.member_id,
                user_id=user,
                is_admin=user == OWNER,
                language=lang,
            )
            token = sign_api_token(services, viewer)
        return requests.request(
            method,
            f"{app_server.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
            **kwargs,
        )

    return call


@pytest.fixture
def fresh_caches(monkeypatch):
    """Start without cached users, dismissed users or failed reads."""
    monkeypatch.setattr(sla_settings, "_users_cache", {})
    monkeypatch.setattr(names, "_inactive_cache", {})
    monkeypatch.setattr(names, "_failed_at", {})
    monkeypatch.setattr(currency, "_failed_at", {})


def _visit(bitrix_id, amount, code, *, day="2026-11-10", contact=None):
    return {
        "ID": str(bitrix_id),
        "CATEGORY_ID": "1",
        "STAGE_ID": "C1:WON",
        "OPPORTUNITY": str(amount),
        "CURRENCY_ID": code,
        "ASSIGNED_BY_ID": "4",
        "CONTACT_ID": str(contact or 500 + bitrix_id),
        "SOURCE_ID": "WEB",
        "DATE_CREATE": "2026-11-01T09:00:00+03:00",
        "BEGINDATE": f"{day}T12:00:00+03:00",
    }


def _store(services, portal, records):
    cfg = kpi_settings.load(services, portal)
    with services.db.session() as session:
        sync.upsert_deals(session, portal.id, records, cfg, TZ)


def _stored(services, bitrix_id):
    with services.db.session() as session:
        row = session.scalar(select(KpiDeal).where(KpiDeal.bitrix_id == bitrix_id))
        if row is not None:
            session.expunge(row)
        return row


# Conversion rules (no database).


def test_to_base_same_currency():
    assert currency.to_base(1500.0, "RUB", RUB_WITH_USD) == 1500.0


def test_to_base_converts_with_rate():
    assert currency.to_base(10.0, "usd", RUB_WITH_USD) == 900.0


def test_to_base_without_rate_is_none():
    assert currency.to_base(10.0, "EUR", RUB_WITH_USD) is None


def test_to_base_before_first_read():
    assert currency.to_base(10.0, "EUR", None) == 10.0
    assert currency.to_base(None, "RUB", RUB_WITH_USD) is None


def test_money_text_by_language():
    assert currency.money_text(12500.4, "RUB", "ru") == "12\u00a0500\u00a0руб."
    assert currency.money_text(12500.4, "RUB", "en") == "12,500\u00a0₽"
    assert currency.money_text(7.0, "CHF", "ru") == "7\u00a0CHF"
    assert currency.money_text(None, "RUB", "ru") == "—"
    assert currency.money_text(900.0, None, "ru") == "900"


# Stored deals.


def test_deal_keeps_currency_and_raw_amount(services, installed):
    kpi_settings.save_currency(services, installed, RUB_WITH_USD)
    _store(services, installed, [_visit(1, 10, "USD"), _visit(2, 40, "EUR")])

    usd, eur = _stored(services, 1), _stored(services, 2)

    assert usd.amount == 900.0
    assert usd.extra["CURRENCY_ID"] == "USD"
    assert usd.extra["OPPORTUNITY"] == 10.0
    assert eur.amount is None
    assert eur.extra["CURRENCY_ID"] == "EUR"


def test_deal_select_reads_currency():
    cfg = kpi_settings.KpiConfig(
        mapping=kpi_settings.preset("salon"),
        targets={},
        daily_capacity=None,
        owner_email=None,
    )

    assert "CURRENCY_ID" in sync.deal_select(cfg)


def test_deal_event_stores_currency(emulator, services, installed, worker):
    deal_id = crm.add_deal(
        emulator.portal,
        {
            "TITLE": "Стрижка",
            "CATEGORY_ID": 1,
            "OPPORTUNITY": "30",
            "CURRENCY_ID": "USD",
        },
        AUTOMATION,
    )

    drain(worker, services, until=lambda: _stored(services, deal_id))

    assert _stored(services, deal_id).extra["CURRENCY_ID"] == "USD"


def test_refresh_converts_stored_deals(services, installed, monkeypatch, fresh_caches):
    _store(services, installed, [_visit(1, 10, "USD"), _visit(2, 700, "RUB")])
    assert _stored(services, 1).amount == 10.0

    monkeypatch.setattr(currency, "read_portal", lambda s, p: dict(RUB_WITH_USD))
    stored = currency.refresh(services, installed)

    assert stored["base"] == "RUB"
    assert _stored(services, 1).amount == 900.0
    assert _stored(services, 2).amount == 700.0
    cfg = kpi_settings.load(services, installed)
    assert cfg.mapping["currency"]["rates"] == {"USD": 90.0}


def test_refresh_failure_keeps_stored(services, installed, monkeypatch, fresh_caches):
    kpi_settings.save_currency(services, installed, RUB_WITH_USD)
    calls = []

    def unreachable(services, portal):
        calls.append(portal.member_id)
        raise BitrixCallError("crm.currency.base.get", "TIMEOUT", "timed out", None)

    monkeypatch.setattr(currency, "read_portal", unreachable)

    assert currency.refresh(services, installed) is None
    assert currency.info(kpi_settings.load(services, installed)) == RUB_WITH_USD
    assert calls == [installed.member_id]


def test_ensure_retries_after_a_minute(services, installed, monkeypatch, fresh_caches):
    calls = []

    def unreachable(services, portal):
        calls.append(1)
        raise BitrixCallError("crm.currency.base.get", "TIMEOUT", "timed out", None)

    monkeypatch.setattr(currency, "read_portal", unreachable)
    cfg = kpi_settings.load(services, installed)

    currency.ensure(services, installed, cfg)
    currency.ensure(services, installed, cfg)

    assert len(calls) == 1


def test_mapping_save_keeps_currency(api, services, installed):
    kpi_settings.save_currency(services, installed, RUB_WITH_USD)
    mapping = kpi_settings.preset("clinic")

    response = api("PUT", "/kpi/settings", json={"mapping": mapping})

    assert response.status_code == 200
    assert response.json()["mapping"]["segment"] == "clinic"
    assert response.json()["mapping"]["currency"] == RUB_WITH_USD


# The report.


@pytest.fixture
def mixed_visits(services, installed):
    kpi_settings.save_currency(services, installed, RUB_WITH_USD)
    _store(
        services,
        installed,
        [
            _visit(1, 1000, "RUB"),
            _visit(2, 10, "USD", day="2026-11-11"),
            _visit(3, 50, "EUR", day="2026-11-12"),
        ],
    )
    return installed


def test_report_sums_base_currency_only(services, mixed_visits):
    body = report.kpi_report(services, mixed_visits, *NOV, now=LATER)

    assert body["appointments"]["revenue"] == 1900.0
    assert body["appointments"]["amount_coverage"] == pytest.approx(0.6667, abs=1e-4)
    assert body["currency"]["code"] == "RUB"
    assert body["currency"]["source"] == "portal"
    assert body["currency"]["visits_other_currency"] == 2
    assert body["currency"]["visits_converted"] == 1
    assert body["currency"]["visits_left_out"] == 1
    assert body["units"]["money"] == "RUB"


def test_report_currency_from_deals(services, installed, monkeypatch, fresh_caches):
    monkeypatch.setattr(
        currency,
        "read_portal",
        lambda s, p: (_ for _ in ()).throw(
            BitrixCallError("crm.currency.base.get", "ERROR", "failed", 400)
        ),
    )
    _store(services, installed, [_visit(1, 1000, "KZT")])

    body = report.kpi_report(services, installed, *NOV, now=LATER)

    assert body["currency"]["code"] == "KZT"
    assert body["currency"]["source"] == "deals"
    assert body["appointments"]["revenue"] == 1000.0


def test_report_loads_settings_once(services, mixed_visits, monkeypatch):
    calls = []
    real_load = kpi_settings.load

    def counting(services, portal):
        calls.append(portal.id)
        return real_load(services, portal)

    monkeypatch.setattr(kpi_settings, "load", counting)

    report.kpi_report(services, mixed_visits, *NOV, now=LATER)

    assert calls == [mixed_visits.id]


def test_weekly_and_monthly_carry_currency(services, mixed_visits):
    week = report.weekly_report(services, mixed_visits, date(2026, 11, 10), now=LATER)
    month = report.monthly_report(services, mixed_visits, date(2026, 11, 1), now=LATER)

    assert week["currency"] == "RUB"
    assert week["revenue"] == 1900.0
    assert month["currency"] == "RUB"
    assert month["visits_left_out"] == 1


def test_kpi_json_currency(api, mixed_visits):
    body = api("GET", f"/kpi?{NOV_QUERY}").json()

    assert body["currency"]["code"] == "RUB"
    assert body["appointments"]["revenue"] == 1900.0


def test_forecast_json_currency(services, installed):
    from datetime import UTC, datetime, timedelta

    from b24app.kpi.forecast import forecast

    kpi_settings.save_currency(services, installed, RUB_WITH_USD)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    records = [
        _visit(i, 1000, "RUB", day=(date(2026, 10, 1) + timedelta(days=i)).isoformat())
        | {"DATE_CREATE": (date(2026, 10, 1) + timedelta(days=i)).isoformat()}
        for i in range(1, 60)
    ]
    _store(services, installed, records)

    body = forecast(services, installed, now=now)

    assert body["available"] is True
    assert body["currency"] == "RUB"


# Downloads and the weekly e-mail.


def test_xlsx_money_cells_carry_currency(api, mixed_visits):
    response = api("GET", f"/reports/kpi.xlsx?{NOV_QUERY}")
    book = load_workbook(io.BytesIO(response.content))
    summary = book["Сводка"]

    formats = {
        row[2].value: row[1].number_format for row in summary.iter_rows(min_row=2)
    }
    values = {row[2].value: row[1].value for row in summary.iter_rows(min_row=2)}

    assert "руб." in formats["appointments.revenue"]
    assert values["appointments.revenue"] == 1900.0
    assert "руб." in formats["appointments.average_check"]
    assert "руб." not in formats["coverage.amount"]
    assert "руб." not in formats["appointments.no_show_rate"]
    days = book["Сделки по дням"]
    header = [cell.value for cell in days[1]]
    revenue_column = header.index("Выручка") + 1
    assert "руб." in days.cell(row=2, column=revenue_column).number_format


def test_csv_names_currency(api, mixed_visits):
    text = api("GET", f"/reports/kpi.csv?{NOV_QUERY}").content.decode("utf-8-sig")

    assert "currency.code,RUB" in text.splitlines()
    assert "currency.visits_left_out,1" in text.splitlines()


def _weekly(revenue, code):
    return {
        "from": "2026-11-09",
        "to": "2026-11-15",
        "leads": 3,
        "answered_share": 1.0,
        "first_response_median": 4.0,
        "conversion": 0.5,
        "visited": 2,
        "no_show": 0,
        "no_show_rate": 0.0,
        "cancelled": 0,
        "late_cancelled": 0,
        "within_sla_share": 1.0,
        "revenue": revenue,
        "currency": code,
        "leads_by_channel": [{"key": "site", "leads": 3}],
        "deals_per_day": [{"bookings": 1}] * 7,
    }


def test_weekly_mail_revenue_in_rubles():
    message = mail.build_message(
        _weekly(12500.0, "RUB"),
        sender="a@example.com",
        recipient="b@example.com",
        lang="ru",
    )
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()

    assert "Выручка: 12\u00a0500\u00a0руб." in text
    assert "12\u00a0500\u00a0руб." in html


def test_weekly_mail_revenue_english():
    message = mail.build_message(
        _weekly(12500.0, "RUB"),
        sender="a@example.com",
        recipient="b@example.com",
        lang="en",
    )
    text = message.get_body(("plain",)).get_content()

    assert "Revenue: 12,500\u00a0₽" in text


# Managers who left the portal.


def _dismiss(emulator, user_id):
    with emulator.portal.lock:
        emulator.portal.users.data[user_id]["ACTIVE"] = False


def test_names_mark_dismissed_manager(api, emulator, installed, services, fresh_caches):
    november(services, installed.id)
    _dismiss(emulator, 5)

    body = api("GET", f"/kpi?{NOV_QUERY}").json()

    assert body["names"]["loaded"] is True
    assert body["names"]["managers"]["4"] == "Дмитрий Ковалёв"
    assert body["names"]["managers"]["5"] == "Екатерина Лебедева (уволена)"


def test_names_mark_dismissed_english(api, emulator, installed, services, fresh_caches):
    november(services, installed.id)
    _dismiss(emulator, 5)

    body = api("GET", f"/kpi?{NOV_QUERY}", lang="en").json()

    assert body["names"]["managers"]["5"] == "Екатерина Лебедева (left)"


def test_dismissed_users_read_once(
    services, installed, emulator, monkeypatch, fresh_caches
):
    _dismiss(emulator, 5)
    calls = []
    real_read = names._read_inactive

    def counting(services, portal, user_ids):
        calls.append(list(user_ids))
        return real_read(services, portal, user_ids)

    monkeypatch.setattr(names, "_read_inactive", counting)

    first = names.manager_names(services, installed, ["4", "5", "999"])
    second = names.manager_names(services, installed, ["4", "5", "999"])

    assert first == second
    assert first["5"] == "Екатерина Лебедева (уволена)"
    assert "999" not in first
    assert calls == [[5, 999]]


def test_dismissed_read_failure_not_loaded(
    services, installed, monkeypatch, fresh_caches
):
    def unreachable(services, portal, user_ids):
        raise BitrixCallError("user.get", "TIMEOUT", "timed out", None)

    monkeypatch.setattr(names, "_read_inactive", unreachable)

    assert names.manager_names(services, installed, ["999"]) is None
    assert names.manager_names(services, installed, ["4"]) is None

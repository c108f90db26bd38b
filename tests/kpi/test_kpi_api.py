"""The KPI API: exports, feed tokens, settings, spend, reports, auth and bad input."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from openpyxl import load_workbook

from tests.kpi.fixtures import november

OWNER, MANAGER = 1, 4
NOV_QUERY = "from=2026-11-01&to=2026-11-30"


def _token(emulator, user_id: int) -> str:
    page = emulator.portal.open_placement("CRM_ANALYTICS_MENU", user_id=user_id)
    return re.search(r'data-api-token="([^"]+)"', page.text).group(1)


@pytest.fixture
def api(emulator, installed, app_server):
    def call(method, path, *, user=OWNER, **kwargs):
        headers = {"Authorization": f"Bearer {_token(emulator, user)}"}
        headers |= kwargs.pop("headers", {})
        return requests.request(
            method,
            f"{app_server.url}/api/v1{path}",
            headers=headers,
            timeout=20,
            **kwargs,
        )

    return call


@pytest.fixture
def with_november(services, installed):
    november(services, installed.id)


def test_kpi_json_has_new_sections(api, with_november):
    body = api("GET", f"/kpi?{NOV_QUERY}").json()

    assert body["conversion"]["rate"] == 0.6
    assert body["appointments"]["no_show_rate"] == 0.25
    assert body["leads_total"] == 5
    assert len(body["deals_per_day"]) == 30


def test_kpi_json_names_managers(api, with_november):
    body = api("GET", f"/kpi?{NOV_QUERY}").json()

    assert body["names"]["loaded"] is True
    assert body["names"]["managers"]["4"] == "Дмитрий Ковалёв"
    assert body["names"]["managers"]["5"] == "Екатерина Лебедева"
    assert set(body["names"]["managers"]) <= {r["key"] for r in body["by_manager"]}


def test_kpi_json_names_portal_unreachable(api, with_november, monkeypatch):
    from b24app.bitrix.errors import BitrixCallError
    from b24app.kpi import names

    calls = []

    def unreachable(services, portal):
        calls.append(portal.member_id)
        raise BitrixCallError("user.get", "TIMEOUT", "timed out", None)

    monkeypatch.setattr(names.sla_settings, "portal_users", unreachable)
    monkeypatch.setattr(names, "_failed_at", {})

    first = api("GET", f"/kpi?{NOV_QUERY}")
    second = api("GET", f"/kpi?{NOV_QUERY}")

    assert first.status_code == 200
    assert first.json()["names"] == {"managers": {}, "loaded": False}
    assert second.json()["names"]["loaded"] is False
    assert second.json()["conversion"]["rate"] == 0.6
    # The failure is remembered, so the second report does not call the portal.
    assert len(calls) == 1


def test_export_csv_content(api, with_november):
    response = api("GET", f"/reports/kpi.csv?{NOV_QUERY}")

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    fields = {row[0]: row[1] for row in rows if len(row) == 2}
    assert response.headers["Content-Type"].startswith("text/csv")
    assert fields["conversion.rate"] == "0.6"
    assert fields["appointments.revenue"] == "4000.0"
    assert ["date", "leads"] in rows


def test_export_name_has_portal_date(api, monkeypatch):
    import handlers.api

    # 22:30 UTC on 5 December is 01:30 on 6 December in Moscow.
    late = datetime(2026, 12, 5, 22, 30, tzinfo=UTC)

    class LateEvening(datetime):
        @classmethod
        def now(cls, tz=None):
            return late.astimezone(tz)

    monkeypatch.setattr(handlers.api, "datetime", LateEvening)

    response = api("GET", f"/reports/kpi.csv?{NOV_QUERY}")

    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="otklik-kpi-2026-12-06.csv"'


def test_export_csv_booleans(api, with_november):
    response = api("GET", f"/reports/kpi.csv?{NOV_QUERY}")

    text = response.content.decode("utf-8-sig")
    fields = {row[0]: row[1] for row in csv.reader(io.StringIO(text)) if len(row) == 2}
    assert fields["retention.window_complete"] == "false"
    assert fields["acquisition.spend_entered"] == "true"
    assert "False" not in text
    assert "True" not in text


def test_export_xlsx_content(api, with_november):
    response = api("GET", "/reports/monthly.xlsx?date=2026-11-10")

    book = load_workbook(io.BytesIO(response.content))
    rows = list(book["Сводка"].iter_rows(values_only=True))
    by_key = {row[2]: row[:2] for row in rows[1:]}
    assert rows[0] == ("Показатель", "Значение", "Ключ")
    assert by_key["revenue"] == ("Выручка", 4000)
    assert by_key["average_check"] == ("Средний чек", 2000)
    assert by_key["month"] == ("Месяц", "2026-11")
    assert by_key["retention_window_complete"][1] is False


def test_export_xlsx_tables_titled(api, with_november):
    response = api("GET", f"/reports/kpi.xlsx?{NOV_QUERY}")

    book = load_workbook(io.BytesIO(response.content))
    header = next(book["Сделки по дням"].iter_rows(values_only=True))
    assert header == ("Дата", "Записи", "Пришли", "Не пришли", "Отменили", "Выручка")
    assert next(book["Лиды по дням"].iter_rows(values_only=True)) == ("Дата", "Лиды")
    summary = {row[2]: row[0] for row in book["Сводка"].iter_rows(values_only=True)}
    assert summary["appointments.no_show_rate"] == "Визиты · Доля неявок"


def test_reports_weekly_and_daily(api, with_november):
    weekly = api("GET", "/reports/weekly?date=2026-11-12").json()
    daily = api("GET", "/reports/daily?date=2026-11-05").json()

    assert weekly["from"] == "2026-11-09"
    assert weekly["no_show"] == 1
    assert daily["leads"] == 1


def test_daily_free_slots_from_capacity(api, emulator, with_november):
    # A portal that does not use the Booking module: no resources there.
    emulator.portal.booking_resources.data.clear()
    api("PUT", "/kpi/settings", json={"daily_capacity": 8})

    daily = api("GET", "/reports/daily?date=2026-11-05").json()

    assert daily["free_slots"] == 7
    assert daily["capacity"] == 8
    assert daily["free_slots_source"] == "capacity"


def test_daily_free_slots_unknown(api, emulator, with_november):
    emulator.portal.booking_resources.data.clear()

    daily = api("GET", "/reports/daily?date=2026-11-05").json()

    assert daily["free_slots"] is None
    assert daily["free_slots_source"] is None


def test_daily_free_slots_from_booking(api, emulator, with_november):
    # The seeded portal has two masters working 10:00-20:00 in 60-minute slots.
    resources = sorted(emulator.portal.booking_resources.data)
    moscow = ZoneInfo("Europe/Moscow")
    first = datetime(2026, 11, 5, 10, 0, tzinfo=moscow)
    emulator.portal.create_booking([resources[0]], first, first + timedelta(hours=1))
    # 12:30-13:30 overlaps two slots of the second master.
    second = datetime(2026, 11, 5, 12, 30, tzinfo=moscow)
    emulator.portal.create_booking([resources[1]], second, second + timedelta(hours=1))
    # The next day's booking does not count.
    later = datetime(2026, 11, 6, 10, 0, tzinfo=moscow)
    emulator.portal.create_booking([resources[0]], later, later + timedelta(hours=1))
    api("PUT", "/kpi/settings", json={"daily_capacity": 8})

    daily = api("GET", "/reports/daily?date=2026-11-05").json()

    assert daily["free_slots_source"] == "booking"
    assert daily["capacity"] == 20
    assert daily["free_slots"] == 17


def test_daily_free_slots_weekdays(api, emulator, with_november):
    resources = sorted(emulator.portal.booking_resources.data)
    # The second master works on weekdays only; 7 November 2026 is a Saturday.
    emulator.portal.booking_resources.data[resources[1]]["slotRanges"][0][
        "weekDays"
    ] = ["Mon", "Tue", "Wed", "Thu", "Fri"]

    saturday = api("GET", "/reports/daily?date=2026-11-07").json()
    friday = api("GET", "/reports/daily?date=2026-11-06").json()

    assert saturday["capacity"] == 10
    assert friday["capacity"] == 20


def test_daily_free_slots_without_scope(api, services, installed, with_november):
    with services.db.session() as session:
        portal = session.get(type(installed), installed.id)
        portal.scope = ",".join(s for s in portal.scope.split(",") if s != "booking")
    api("PUT", "/kpi/settings", json={"daily_capacity": 3})

    daily = api("GET", "/reports/daily?date=2026-11-05").json()

    assert daily["free_slots_source"] == "capacity"
    assert daily["free_slots"] == 2


def test_feed_rotate_and_revoke(api, app_server, with_november):
    first = api("POST", "/kpi/feed").json()["url"]
    second = api("POST", "/kpi/feed").json()["url"]

    assert requests.get(first, timeout=20).status_code == 404
    feed = requests.get(second, timeout=20)
    assert feed.status_code == 200
    assert (
        feed.text.splitlines()[0]
        == "date,leads,bookings,visited,no_show,cancelled,revenue"
    )
    api("DELETE", "/kpi/feed")
    assert requests.get(second, timeout=20).status_code == 404


def test_settings_mapping_saved(api):
    mapping = {"segment": "clinic", "deal_stages": {"visited": ["C1:WON", "WON"]}}

    body = api("PUT", "/kpi/settings", json={"mapping": mapping}).json()

    assert body["mapping"]["segment"] == "clinic"
    assert body["mapping"]["deal_stages"]["visited"] == ["C1:WON", "WON"]
    assert body["targets"]["conversion"] == 0.08


@pytest.mark.parametrize(
    "payload, field, message",
    [
        ({"mapping": {"segment": "zoo"}}, "segment", "Тип бизнеса должен быть"),
        (
            {"mapping": {"deal_stages": {"won": ["X"]}}},
            "deal_stages",
            "неизвестный исход «won»",
        ),
        (
            {"mapping": {"deal_stages": {"visited": [""]}}},
            "deal_stages.visited",
            "перечислите коды через запятую",
        ),
        (
            {"mapping": {"deal_categories": [None]}},
            "deal_categories",
            "Воронки записей: укажите ID воронок",
        ),
        (
            {"mapping": {"appointment_field": ""}},
            "appointment_field",
            "Поле времени визита: укажите BEGINDATE",
        ),
        (
            {"mapping": {"appointment_field": "TITLE"}},
            "appointment_field",
            "Поле времени визита",
        ),
        ({"targets": {"conversion": -1}}, "targets", "Цели должны быть"),
        ({"daily_capacity": -1}, "daily_capacity", "от 0 до 10000"),
        ({"daily_capacity": 999999999999999}, "daily_capacity", "от 0 до 10000"),
        ({"daily_capacity": True}, "daily_capacity", "от 0 до 10000"),
        ({"owner_email": "nobody"}, "owner_email", "E-mail владельца"),
    ],
)
def test_settings_bad_input(api, payload, field, message):
    before = api("GET", "/kpi/settings").json()

    response = api("PUT", "/kpi/settings", json=payload)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert message in response.json()["error"]
    assert api("GET", "/kpi/settings").json() == before


def test_settings_nothing_to_save(api):
    response = api("PUT", "/kpi/settings", json={})

    assert response.status_code == 400
    assert "Нечего сохранять" in response.json()["error"]
    assert "field" not in response.json()


def test_settings_errors_in_english(services, installed, app_server):
    from b24app.placement_auth import Viewer, sign_api_token

    token = sign_api_token(
        services,
        Viewer(
            portal_id=installed.id,
            member_id=installed.member_id,
            user_id=OWNER,
            is_admin=True,
            language="en",
        ),
    )
    cases = [
        ({"daily_capacity": 999999999999999}, "daily_capacity must be"),
        ({"mapping": {"appointment_field": ""}}, "appointment_field must be"),
        ({"mapping": {"deal_categories": [None]}}, "deal_categories must be"),
    ]
    for payload, message in cases:
        response = requests.put(
            f"{app_server.url}/api/v1/kpi/settings",
            headers={"Authorization": f"Bearer {token}"},
            json=payload,
            timeout=20,
        )

        assert response.status_code == 400
        assert message in response.json()["error"]


def test_settings_need_admin(api):
    response = api("PUT", "/kpi/settings", user=MANAGER, json={"daily_capacity": 5})

    assert response.status_code == 403


def test_spend_entry_and_bad_input(api):
    good = api(
        "PUT",
        "/kpi/spend",
        json={"month": "2026-11", "channel": "site", "amount": 5000},
    )
    again = api(
        "PUT",
        "/kpi/spend",
        json={"month": "2026-11", "channel": "site", "amount": 6000},
    )
    bad = api(
        "PUT", "/kpi/spend", json={"month": "11.2026", "channel": "site", "amount": 1}
    )

    assert good.status_code == 200
    assert again.json()["items"] == [
        {"month": "2026-11", "channel": "site", "amount": 6000.0}
    ]
    assert bad.status_code == 400


def test_spend_list_has_channels(api, with_november):
    body = api("GET", "/kpi/spend").json()

    assert {"month": "2026-11", "channel": "phone", "amount": 1000.0} in body["items"]
    assert body["channels"][:3] == ["site", "phone", "email"]
    assert "ads" in body["channels"]


def test_spend_portal_channel_allowed(api, services, installed):
    from tests.kpi.fixtures import lead

    with services.db.session() as session:
        session.add(lead(installed.id, 1, "2026-11-03T10:00:00", "vk", 4))

    response = api(
        "PUT", "/kpi/spend", json={"month": "2026-11", "channel": "vk", "amount": 10}
    )

    assert response.status_code == 200
    assert "vk" in response.json()["channels"]


def test_spend_delete(api):
    for channel, amount in (("site", 5000), ("ads", 1200.5)):
        api(
            "PUT",
            "/kpi/spend",
            json={"month": "2026-10", "channel": channel, "amount": amount},
        )

    deleted = api("DELETE", "/kpi/spend?month=2026-10&channel=site")
    missing = api("DELETE", "/kpi/spend?month=2026-10&channel=site")

    assert deleted.status_code == 200
    assert deleted.json()["items"] == [
        {"month": "2026-10", "channel": "ads", "amount": 1200.5}
    ]
    assert missing.status_code == 404
    assert "no spend entered for site in 2026-10" in missing.json()["error"]


def test_spend_changes_need_admin(api):
    api("PUT", "/kpi/spend", json={"month": "2026-10", "channel": "ads", "amount": 1})

    put = api(
        "PUT",
        "/kpi/spend",
        user=MANAGER,
        json={"month": "2026-10", "channel": "ads", "amount": 2},
    )
    deleted = api("DELETE", "/kpi/spend?month=2026-10&channel=ads", user=MANAGER)
    listed = api("GET", "/kpi/spend", user=MANAGER)

    assert put.status_code == 403
    assert deleted.status_code == 403
    assert listed.json()["items"][0]["amount"] == 1


@pytest.mark.parametrize(
    "payload, field, message",
    [
        ({"month": "2026-13"}, "month", "month must be YYYY-MM"),
        ({"month": "2026-1"}, "month", "month must be YYYY-MM"),
        ({"month": None}, "month", "month must be YYYY-MM"),
        ({"month": "1999-12"}, "month", "within 2000..2100"),
        ({"channel": "telegram-ads"}, "channel", "unknown channel 'telegram-ads'"),
        ({"channel": ""}, "channel", "unknown channel"),
        ({"amount": -5}, "amount", "amount must be a number from 0"),
        ({"amount": "100"}, "amount", "amount must be a number from 0"),
        ({"amount": True}, "amount", "amount must be a number from 0"),
        ({"amount": 1e13}, "amount", "amount is too large: at most 1000000000000"),
        (
            {"amount": 99999999999999999999},
            "amount",
            "amount is too large: at most 1000000000000",
        ),
    ],
)
def test_spend_bad_input(api, payload, field, message):
    body = {"month": "2026-11", "channel": "site", "amount": 100} | payload

    response = api("PUT", "/kpi/spend", json=body)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert message in response.json()["error"]
    assert api("GET", "/kpi/spend").json()["items"] == []


@pytest.mark.parametrize(
    "path, status",
    [
        ("/reports/yearly", 404),
        ("/reports/kpi.pdf", 404),
        ("/reports/daily?date=yesterday", 400),
    ],
)
def test_reports_bad_input(api, path, status):
    assert api("GET", path).status_code == status


def test_import_endpoints(api):
    started = api("POST", "/kpi/import", json={})
    rejected = api("POST", "/kpi/import", user=MANAGER, json={})

    assert started.status_code == 200
    assert started.json()["status"] == "running"
    assert rejected.status_code == 403


def test_api_without_token(app_server, installed):
    response = requests.get(f"{app_server.url}/api/v1/kpi/forecast", timeout=20)

    assert response.status_code == 401


def test_spend_rejects_nan_amount(api):
    # Python's JSON parser reads NaN, which no spend amount may be.
    response = api(
        "PUT",
        "/kpi/spend",
        data='{"month": "2026-11", "channel": "site", "amount": NaN}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["field"] == "amount"
    assert api("GET", "/kpi/spend").json()["items"] == []

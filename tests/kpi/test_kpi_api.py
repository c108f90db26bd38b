"""The KPI API: exports, feed tokens, settings, spend, reports, auth and bad input."""

from __future__ import annotations

import csv
import io
import re

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


def test_export_csv_content(api, with_november):
    response = api("GET", f"/reports/kpi.csv?{NOV_QUERY}")

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    fields = {row[0]: row[1] for row in rows if len(row) == 2}
    assert response.headers["Content-Type"].startswith("text/csv")
    assert fields["conversion.rate"] == "0.6"
    assert fields["appointments.revenue"] == "4000.0"


def test_export_xlsx_content(api, with_november):
    response = api("GET", "/reports/monthly.xlsx?date=2026-11-10")

    book = load_workbook(io.BytesIO(response.content))
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True)}
    assert summary["revenue"] == 4000
    assert summary["average_check"] == 2000
    assert summary["month"] == "2026-11"


def test_reports_weekly_and_daily(api, with_november):
    weekly = api("GET", "/reports/weekly?date=2026-11-12").json()
    daily = api("GET", "/reports/daily?date=2026-11-05").json()

    assert weekly["from"] == "2026-11-09"
    assert weekly["no_show"] == 1
    assert daily["leads"] == 1
    assert daily["free_slots"] is None


def test_daily_free_slots_from_capacity(api, with_november):
    api("PUT", "/kpi/settings", json={"daily_capacity": 8})

    daily = api("GET", "/reports/daily?date=2026-11-05").json()

    assert daily["free_slots"] == 7


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
    "payload, message",
    [
        ({"mapping": {"segment": "zoo"}}, "segment must be one of"),
        ({"mapping": {"deal_stages": {"won": ["X"]}}}, "unknown outcome"),
        ({"mapping": {"appointment_field": "TITLE"}}, "appointment_field must be"),
        ({"daily_capacity": -1}, "daily_capacity must be"),
        ({"owner_email": "nobody"}, "owner_email must be"),
        ({}, "nothing to save"),
    ],
)
def test_settings_bad_input(api, payload, message):
    response = api("PUT", "/kpi/settings", json=payload)

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

"""The KPI tab placement and its JSON API."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from b24app.kpi.first_response import first_response_report, percentile
from tests.helpers import drain, lead_row

MANAGER = 4


def _token(response) -> str:
    match = re.search(r'data-api-token="([^"]+)"', response.text)
    assert match, "the page carries no API token"
    return match.group(1)


def test_kpi_tab_renders_frameable_page(emulator, installed):
    response = emulator.portal.open_placement("CRM_ANALYTICS_MENU", user_id=MANAGER)

    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert policy == f"frame-ancestors https://{emulator.domain}"
    assert "X-Frame-Options" not in response.headers
    assert "/static/vendor/chart.umd.js" in response.text
    assert _token(response)


def test_kpi_tab_rejects_forged_viewer(installed, app_server):
    response = requests.post(
        f"{app_server.url}/placements/kpi",
        data={
            "member_id": installed.member_id,
            "AUTH_ID": "not-a-token",
            "PLACEMENT": "CRM_ANALYTICS_MENU",
        },
        timeout=10,
    )

    assert response.status_code == 401
    assert "data-api-token" not in response.text


def test_kpi_tab_unknown_portal(app_server, installed):
    response = requests.post(
        f"{app_server.url}/placements/kpi",
        data={"member_id": "f" * 32, "AUTH_ID": "x"},
        timeout=10,
    )

    assert response.status_code == 404


def test_kpi_api_requires_token(emulator, installed, app_server):
    url = f"{app_server.url}/api/v1/kpi"
    token = _token(
        emulator.portal.open_placement("CRM_ANALYTICS_MENU", user_id=MANAGER)
    )

    missing = requests.get(url, timeout=10)
    forged = requests.get(
        url, headers={"Authorization": "Bearer " + token[:-2] + "xx"}, timeout=10
    )
    good = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    assert missing.status_code == 401
    assert forged.status_code == 401
    assert good.status_code == 200
    assert set(good.json()) >= {
        "leads_per_day",
        "first_response_minutes",
        "answered_share",
        "within_sla_share",
        "open_clocks",
        "breached_clocks",
        "tags",
    }


@pytest.mark.parametrize(
    "query, field, message",
    [
        ("period=year", "period", "Параметр period: неизвестное значение «year»"),
        ("from=2026-13-01&to=2026-12-01", "from", "Параметр from: укажите дату"),
        ("from=2026-12-01", "to", "Параметр to: укажите дату как ГГГГ-ММ-ДД"),
        (
            "from=2026-12-02&to=2026-12-01",
            "to",
            "Параметр to: дата окончания 2026-12-01 раньше даты начала 2026-12-02",
        ),
        ("from=2020-01-01&to=2026-01-01", "to", "период длиннее 366 дней"),
    ],
)
def test_kpi_api_rejects_bad_periods(
    emulator, installed, app_server, query, field, message
):
    token = _token(
        emulator.portal.open_placement("CRM_ANALYTICS_MENU", user_id=MANAGER)
    )

    response = requests.get(
        f"{app_server.url}/api/v1/kpi?{query}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert message in response.json()["error"]


def test_kpi_api_period_error_english(services, installed, app_server):
    from b24app.placement_auth import Viewer, sign_api_token

    viewer = Viewer(
        portal_id=installed.id,
        member_id=installed.member_id,
        user_id=MANAGER,
        is_admin=False,
        language="en",
    )

    response = requests.get(
        f"{app_server.url}/api/v1/kpi?from=2026-12-02&to=2026-12-01",
        headers={"Authorization": f"Bearer {sign_api_token(services, viewer)}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("Parameter to: the end date")


def test_kpi_page_from_settings_token(emulator, installed, app_server):
    token = _token(
        emulator.portal.open_placement("CRM_ANALYTICS_MENU", user_id=MANAGER)
    )

    back = requests.post(f"{app_server.url}/kpi", data={"token": token}, timeout=10)
    forged = requests.post(
        f"{app_server.url}/kpi", data={"token": token[:-2] + "xx"}, timeout=10
    )
    missing = requests.post(f"{app_server.url}/kpi", timeout=10)

    assert back.status_code == 200
    assert f'data-api-token="{token}"' in back.text
    policy = back.headers["Content-Security-Policy"]
    assert policy == f"frame-ancestors https://{emulator.domain}"
    assert forged.status_code == 401
    assert missing.status_code == 401


def test_reminders_page_links_back(emulator, installed, app_server):
    owner_page = emulator.portal.open_placement("CRM_ANALYTICS_MENU", user_id=1)
    token = _token(owner_page)

    page = requests.post(
        f"{app_server.url}/reminders", data={"token": token}, timeout=10
    )

    assert page.status_code == 200
    assert 'action="/kpi"' in page.text
    assert "← К показателям" in page.text


def test_percentile_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1, 2, 3, 4], 0.5) == 2
    assert percentile(list(range(1, 11)), 0.9) == 9


def test_report_counts_small_fixture(emulator, installed, services, worker):
    ids = [
        emulator.portal.create_lead(
            {"ASSIGNED_BY_ID": MANAGER}, kind="form", message=text
        )
        for text in (
            "Хочу записаться на маникюр",
            "Сколько стоит стрижка?",
            "Купите рекламу в нашем паблике, скидки на продвижение",
        )
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

    today = datetime.now(UTC).date()
    report = first_response_report(
        services, installed, today - timedelta(days=1), today + timedelta(days=1)
    )

    spam = 1 if "spam" in lead_row(services, ids[2]).tags else 0
    assert report["leads_total"] == 3 - spam
    assert report["answered_share"] == round(1 / (3 - spam), 4)
    assert report["first_response_minutes"]["count"] == 1
    assert report["open_clocks"] == 2 - spam
    assert sum(d["leads"] for d in report["leads_per_day"]) == 3 - spam
    assert date.fromisoformat(report["period"]["from"]) == today - timedelta(days=1)

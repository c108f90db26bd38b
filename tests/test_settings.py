"""The SLA settings page and API: admins only, per-field errors, versions."""

from __future__ import annotations

import re
import threading

import pytest
import requests
from sqlalchemy import select

from b24app.models import Portal
from b24app.placement_auth import Viewer, sign_api_token
from tests.sla.support import HEAD_OF_SALES, MANAGER, OWNER


def _token(emulator, user_id: int) -> str:
    """The signed API token the KPI page hands to a user's browser."""
    page = emulator.portal.open_placement("CRM_ANALYTICS_MENU", None, user_id)
    return re.search(r'data-api-token="([^"]+)"', page.text)[1]


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture
def admin(emulator, installed, app_server, http):
    """Calls the settings API as the portal owner (an administrator)."""
    token = _token(emulator, OWNER)

    def call(method: str, path: str, **options):
        headers = {"Authorization": f"Bearer {token}"}
        return http.request(
            method, f"{app_server.url}{path}", headers=headers, **options
        )

    call.token = token
    return call


def _put(admin, version, settings):
    return admin(
        "PUT", "/api/v1/settings", json={"version": version, "settings": settings}
    )


def _stored(services) -> dict:
    with services.db.session() as session:
        return session.scalar(select(Portal)).settings


# The page


def test_settings_page_opens_for_admin(admin, app_server, http):
    page = http.post(f"{app_server.url}/settings", data={"token": admin.token})

    assert page.status_code == 200
    assert "Рабочее время" in page.text


def test_settings_page_may_be_framed_by_the_portal(admin, app_server, http, emulator):
    page = http.post(f"{app_server.url}/settings", data={"token": admin.token})

    assert page.headers["Content-Security-Policy"] == (
        f"frame-ancestors https://{emulator.domain}"
    )


def test_settings_page_rejects_non_admin(emulator, installed, app_server, http):
    token = _token(emulator, MANAGER)

    page = http.post(f"{app_server.url}/settings", data={"token": token})

    assert page.status_code == 403


def test_settings_page_in_english(installed, app_server, http, services):
    viewer = Viewer(installed.id, installed.member_id, OWNER, True, "en")
    token = sign_api_token(services, viewer)

    page = http.get(f"{app_server.url}/settings", params={"token": token})

    assert "Working hours" in page.text


# Reading


def test_settings_api_rejects_non_admin(emulator, installed, app_server, http):
    headers = {"Authorization": f"Bearer {_token(emulator, MANAGER)}"}

    response = http.get(f"{app_server.url}/api/v1/settings", headers=headers)

    assert response.status_code == 403


def test_settings_api_requires_token(installed, app_server, http):
    response = http.get(f"{app_server.url}/api/v1/settings")

    assert response.status_code == 401


def test_settings_get_returns_defaults(admin):
    body = admin("GET", "/api/v1/settings").json()

    assert body["version"] == 0
    assert body["settings"]["segment"] == "salon"
    assert body["settings"]["calendar"]["tz"] == "Europe/Moscow"


def test_settings_get_lists_users_with_names(admin):
    users = admin("GET", "/api/v1/settings").json()["users"]

    assert {"id": HEAD_OF_SALES, "name": "Ирина Белова"} in [
        {"id": user["id"], "name": user["name"]} for user in users
    ]


# Saving


def test_settings_put_saves_and_bumps_version(admin, services):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    settings["calendar"]["tz"] = "Asia/Yekaterinburg"
    settings["policy"]["human_seconds"] = 20 * 60

    response = _put(admin, 0, settings)

    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert _stored(services)["calendar"]["tz"] == "Asia/Yekaterinburg"


def test_settings_put_saves_recipients_and_schedules(admin, services):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    settings["senior_user_id"] = HEAD_OF_SALES
    settings["manager_schedules"] = {str(MANAGER): {"0": [["10:00", "19:00"]]}}

    _put(admin, 0, settings)

    stored = _stored(services)
    assert stored["senior_user_id"] == HEAD_OF_SALES
    assert stored["manager_schedules"] == {"4": {"0": [["10:00", "19:00"]]}}


def test_settings_put_keeps_other_settings(admin, services, installed):
    with services.db.session() as session:
        session.get(Portal, installed.id).settings = {"engine": {"engine": "offline"}}
    settings = admin("GET", "/api/v1/settings").json()["settings"]

    _put(admin, 0, settings)

    assert _stored(services)["engine"] == {"engine": "offline"}


def test_settings_put_stale_version_conflicts(admin):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    _put(admin, 0, settings)

    response = _put(admin, 0, settings)

    assert response.status_code == 409


def test_settings_put_concurrent_saves_one_wins(admin):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    barrier = threading.Barrier(4)
    codes = []

    def save():
        barrier.wait()
        codes.append(_put(admin, 0, settings).status_code)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == [200, 409, 409, 409]


def test_settings_put_invalid_names_fields(admin):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    settings["calendar"]["weekly"]["0"] = [["18:00", "09:00"]]
    settings["policy"]["human_seconds"] = 0
    settings["policy"]["ladder"][0]["action"] = "sms"

    response = _put(admin, 0, settings)

    assert response.status_code == 422
    assert sorted(response.json()["errors"]) == [
        "calendar.weekly.0",
        "policy.human_seconds",
        "policy.ladder.0.action",
    ]


def test_settings_put_negative_minutes_names_unit(admin):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    settings["policy"]["human_seconds"] = -5 * 60

    response = _put(admin, 0, settings)

    assert response.status_code == 422
    assert response.json()["errors"]["policy.human_seconds"] == (
        "Ответ менеджера: число минут больше нуля."
    )


def test_settings_short_default_caps_urgent(admin):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    settings["policy"]["human_seconds"] = 60

    body = _put(admin, 0, settings).json()

    # The stored presets stay, and the targets in effect are cut to 1 minute.
    assert body["settings"]["policy"]["intent_human_seconds"]["urgent"] == 600
    assert body["effective"]["intent_human_seconds"]["urgent"] == 60
    assert body["effective"]["intent_human_seconds"]["complaint"] == 60
    assert body["effective"]["intent_human_seconds"]["cancel"] == 3600
    assert body["effective"]["capped"] == ["complaint", "urgent"]


def test_settings_put_saves_bot_channels(admin, services):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    assert settings["policy"]["bot_channels"] == ["openline"]
    settings["policy"]["bot_channels"] = ["openline", "site"]

    response = _put(admin, 0, settings)

    assert response.status_code == 200
    assert _stored(services)["policy"]["bot_channels"] == ["openline", "site"]


def test_settings_put_rejects_unknown_user(admin):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    settings["owner_user_id"] = 99

    response = _put(admin, 0, settings)

    assert "99" in response.json()["errors"]["owner_user_id"]


def test_settings_put_without_version_is_invalid(admin):
    settings = admin("GET", "/api/v1/settings").json()["settings"]

    response = admin("PUT", "/api/v1/settings", json={"settings": settings})

    assert response.json()["errors"]["version"]


# Preview


def test_settings_preview_says_due_time(admin):
    response = admin(
        "GET", "/api/v1/settings/preview", params={"created": "2026-12-07T22:15"}
    )

    assert response.json()["tiers"][1]["text"].startswith(
        "Лид, созданный 07.12.2026 22:15, должен получить ответ менеджера до "
        "08.12.2026 09:30"
    )


def test_settings_preview_follows_saved_calendar(admin):
    settings = admin("GET", "/api/v1/settings").json()["settings"]
    settings["calendar"]["weekly"] = {str(d): [["10:00", "19:00"]] for d in range(7)}
    _put(admin, 0, settings)

    response = admin(
        "GET",
        "/api/v1/settings/preview",
        params={"created": "2026-12-07T22:15", "tag": "complaint"},
    )

    assert response.json()["tiers"][1]["due_at"] == "2026-12-08T10:15:00+03:00"


def test_settings_preview_rejects_bad_time(admin):
    response = admin("GET", "/api/v1/settings/preview", params={"created": "завтра"})

    assert response.status_code == 422
    assert "created" in response.json()["errors"]


def test_settings_preview_rejects_unknown_tag(admin):
    response = admin(
        "GET",
        "/api/v1/settings/preview",
        params={"created": "2026-12-07T12:00", "tag": "vip"},
    )

    assert "tag" in response.json()["errors"]


# The page in a real browser


@pytest.fixture
def settings_page(page, admin, app_server):
    page.goto(f"{app_server.url}/settings?token={admin.token}")
    page.locator("#settings[data-loaded='true']").wait_for(timeout=15000)
    return page


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_settings_browser_saves_target(settings_page, services):
    settings_page.fill("#human-minutes", "20")
    settings_page.click("#save")
    settings_page.locator("#status.ok").wait_for(timeout=15000)

    assert _stored(services)["policy"]["human_seconds"] == 20 * 60
    assert settings_page.console_errors == []


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_settings_browser_marks_invalid_day(settings_page):
    settings_page.fill('.weekly[data-day="0"]', "18:00-09:00")
    settings_page.click("#save")
    settings_page.locator(".field-error").first.wait_for(timeout=15000)

    monday = settings_page.locator('[data-field="calendar.weekly.0"]')
    assert "invalid" in monday.get_attribute("class")
    assert "раньше конца" in settings_page.locator(".field-error").first.inner_text()


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_settings_browser_shows_preview(settings_page):
    settings_page.fill("#preview-created", "2026-12-07T22:15")
    settings_page.click("#preview")
    settings_page.locator("#preview-ladder li").first.wait_for(timeout=15000)

    assert "08.12.2026 09:30" in settings_page.inner_text("#preview-text")


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_settings_browser_shows_capped_targets(settings_page, services):
    settings_page.fill("#human-minutes", "1")

    effective = settings_page.inner_text("#effective-list")
    assert "обычный лид: 1 мин" in effective
    assert "Срочно: 1 мин (сокращён до общего срока)" in effective
    assert "Отмена: 60 мин" in effective

    settings_page.uncheck('.bot-channel[value="openline"]')
    settings_page.check('.bot-channel[value="site"]')
    settings_page.click("#save")
    settings_page.locator("#status.ok").wait_for(timeout=15000)

    policy = _stored(services)["policy"]
    assert policy["human_seconds"] == 60
    assert policy["intent_human_seconds"]["urgent"] == 600
    assert policy["bot_channels"] == ["site"]
    assert settings_page.console_errors == []

"""The admin JSON API: settings, previews, consents, A/B tests; unmarked visits."""

from __future__ import annotations

import random

import requests
from sqlalchemy import update

from b24app import portal_settings
from b24app.placement_auth import Viewer, sign_api_token
from b24app.reminders import abtest, dispatch
from b24app.reminders.models import Appointment
from tests.reminders.support import new_appointment


def _headers(
    services, portal, admin: bool = True, language: str = "ru"
) -> dict[str, str]:
    viewer = Viewer(portal.id, portal.member_id, 1 if admin else 3, admin, language)
    return {"Authorization": f"Bearer {sign_api_token(services, viewer)}"}


def _api(app_server, path: str) -> str:
    return f"{app_server.url}/api/v1/reminders{path}"


def test_settings_hide_secrets(app_server, services, reminder_portal):
    body = requests.get(
        _api(app_server, "/settings"),
        headers=_headers(services, reminder_portal),
        timeout=10,
    ).json()
    assert body["settings"]["sms"]["api_key_set"] is True


def test_settings_secret_never_returned(app_server, services, reminder_portal):
    text = requests.get(
        _api(app_server, "/settings"),
        headers=_headers(services, reminder_portal),
        timeout=10,
    ).text
    assert "api_key_enc" not in text


def test_settings_need_admin(app_server, services, reminder_portal):
    response = requests.get(
        _api(app_server, "/settings"),
        headers=_headers(services, reminder_portal, admin=False),
        timeout=10,
    )
    assert response.status_code == 403


def test_settings_reject_unknown_placeholder(app_server, services, reminder_portal):
    response = requests.put(
        _api(app_server, "/settings"),
        json={"templates": {"confirm": "Привет, {клиент}!"}},
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert "Неизвестное поле" in response.json()["errors"]["templates.confirm"]


def test_settings_save_schedule(app_server, services, reminder_portal):
    steps = [{"kind": "confirm", "minutes_before": 2880}]
    response = requests.put(
        _api(app_server, "/settings"),
        json={"schedule": steps},
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert response.json()["settings"]["schedule"] == steps


def test_settings_reject_offset_out_of_range(app_server, services, reminder_portal):
    response = requests.put(
        _api(app_server, "/settings"),
        json={"schedule": [{"kind": "remind", "minutes_before": 20}]},
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert response.status_code == 422
    message = response.json()["errors"]["schedule"]
    assert message == "Время отправки: от 30 минут до 14 дней до визита."


def test_settings_return_portal_timezone(app_server, services, reminder_portal):
    body = requests.get(
        _api(app_server, "/settings"),
        headers=_headers(services, reminder_portal),
        timeout=10,
    ).json()
    assert body["timezone"] == portal_settings.timezone(reminder_portal)


def test_preview_with_real_appointment(
    emulator, app_server, services, worker, reminder_portal
):
    _, row = new_appointment(emulator, services, worker)
    body = requests.post(
        _api(app_server, "/preview"),
        json={"text": "{name}, {service}", "appointment_id": row.id},
        headers=_headers(services, reminder_portal),
        timeout=10,
    ).json()
    assert body["text"] == "Мария, Стрижка и укладка"


def test_consent_import_reports_bad_rows(app_server, services, reminder_portal):
    response = requests.post(
        _api(app_server, "/consents"),
        json={
            "items": [
                {
                    "contact_key": "contact:5",
                    "channel": "sms",
                    "address": "+79161234567",
                },
                {"contact_key": "contact:6", "channel": "sms", "address": "123"},
            ]
        },
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert (response.json()["saved"], list(response.json()["errors"])) == (1, ["1"])


def test_consent_list_masks_phone(app_server, services, reminder_portal):
    headers = _headers(services, reminder_portal)
    requests.post(
        _api(app_server, "/consents"),
        json={"contact_key": "contact:5", "channel": "sms", "address": "+79161234567"},
        headers=headers,
        timeout=10,
    )
    body = requests.get(
        _api(app_server, "/consents?contact_key=contact:5"), headers=headers, timeout=10
    ).json()
    assert body["consents"][0]["address"] == "+7916*****67"


def test_experiment_promotes_winner(
    emulator, app_server, services, worker, reminder_portal
):
    headers = _headers(services, reminder_portal)
    created = requests.post(
        _api(app_server, "/experiments"),
        json={
            "name": "Короткий текст",
            "min_per_variant": 30,
            "variants": [
                {"code": "A", "control": True},
                {
                    "code": "B",
                    "templates": {"confirm": "{name}, ждём {date} в {time}."},
                },
            ],
        },
        headers=headers,
        timeout=10,
    ).json()
    _simulated_outcomes(services, reminder_portal, created["id"])
    response = requests.post(
        _api(app_server, f"/experiments/{created['id']}/promote"),
        headers=headers,
        timeout=10,
    )
    assert response.json()["winner"] == "B"


def test_experiment_without_control_rejected(app_server, services, reminder_portal):
    response = requests.post(
        _api(app_server, "/experiments"),
        json={"variants": [{"code": "A"}, {"code": "B"}]},
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert response.status_code == 422


def _simulated_outcomes(services, portal, experiment_id: int) -> None:
    """Finished appointments: B has far fewer no-shows than A."""
    from datetime import UTC, datetime

    rng = random.Random(3)
    variants = [{"code": "A", "control": True}, {"code": "B"}]
    with services.db.session() as session:
        for index in range(400):
            variant = abtest.assign(experiment_id, f"sim:{index}", variants)
            no_show = rng.random() < (0.25 if variant == "A" else 0.05)
            session.add(
                Appointment(
                    portal_id=portal.id,
                    source="sim",
                    source_id=index,
                    starts_at=datetime(2026, 11, 1, tzinfo=UTC),
                    status="no_show" if no_show else "visited",
                    resource_ids=[],
                    experiment_id=experiment_id,
                    variant=variant,
                )
            )


def test_unmarked_visit_gets_task(emulator, services, worker, reminder_portal):
    _, row = new_appointment(emulator, services, worker)
    from datetime import UTC, datetime, timedelta

    with services.db.session() as session:
        session.execute(
            update(Appointment)
            .where(Appointment.id == row.id)
            .values(starts_at=datetime.now(UTC) - timedelta(hours=5))
        )
    dispatch.request_marks(services)
    dispatch.request_marks(services)
    titles = [t["TITLE"] for t in emulator.portal.tasks.values()]
    assert sum("Отметьте визит" in title for title in titles) == 1


def test_page_renders_for_admin(app_server, services, reminder_portal):
    token = _headers(services, reminder_portal)["Authorization"].split(" ")[1]
    response = requests.post(
        f"{app_server.url}/reminders", data={"token": token}, timeout=10
    )
    assert "Напоминания о записи" in response.text
    assert '<html lang="ru">' in response.text
    zone = portal_settings.timezone(reminder_portal)
    assert f'data-timezone="{zone}"' in response.text


def test_page_language_english(app_server, services, reminder_portal):
    headers = _headers(services, reminder_portal, language="en")
    token = headers["Authorization"].split(" ")[1]
    response = requests.post(
        f"{app_server.url}/reminders", data={"token": token}, timeout=10
    )
    assert '<html lang="en">' in response.text
    assert 'data-lang="en"' in response.text
    assert "Quiet hours off" in response.text


def test_telegram_link_code_is_accepted(app_server, services, reminder_portal):
    from b24app.reminders import consent

    body = requests.get(
        _api(app_server, "/telegram-link?contact_key=contact:9"),
        headers=_headers(services, reminder_portal),
        timeout=10,
    ).json()
    assert consent.read_link_code(services, body["code"]) == (
        reminder_portal.id,
        "contact:9",
    )


def test_booking_own_reminders_noted(
    emulator, app_server, services, worker, reminder_portal
):
    from datetime import UTC, datetime, timedelta

    from tests.helpers import drain

    resource = emulator.portal.add_booking_resource(
        "Мастер Олег", isReminderNotificationOn="Y"
    )
    start = datetime.now(UTC) + timedelta(days=1)
    booking_id = emulator.portal.create_booking(
        [resource], start, start + timedelta(hours=1)
    )
    drain(worker, services, until=lambda: _booked(services, booking_id))
    body = requests.get(
        _api(app_server, "/settings"),
        headers=_headers(services, reminder_portal),
        timeout=10,
    ).json()
    assert "Мастер Олег" in body["notes"][0]


def _booked(services, booking_id: int) -> bool:
    from sqlalchemy import select

    with services.db.session() as session:
        return bool(
            session.scalar(
                select(Appointment.id).where(
                    Appointment.source == "booking",
                    Appointment.source_id == booking_id,
                )
            )
        )


def test_variant_timing_applies(
    emulator, app_server, services, worker, reminder_portal
):
    from b24app.reminders import admin

    admin.create_experiment(
        services,
        reminder_portal.id,
        {
            "min_per_variant": 30,
            "variants": [
                {"code": "A", "control": True, "weight": 0.000001},
                {"code": "B", "schedule": [{"kind": "remind", "minutes_before": 60}]},
            ],
        },
    )
    _, row = new_appointment(emulator, services, worker)
    from tests.reminders.support import jobs

    assert (row.variant, [job.kind for job in jobs(services)]) == ("B", ["remind"])


def test_worker_runs_reminder_jobs(worker):
    ids = {job.id for job in worker.jobs()}
    assert {"reminders-dispatch", "reminders-reconcile", "reminders-marks"} <= ids

"""SMS provider callbacks: credentials out of the URL path, old URLs, logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from b24app.models import InboundEvent, Portal
from b24app.reminders import config, consent, dispatch, webhooks
from b24app.reminders.feature import SMS_EVENT
from tests.reminders.support import (
    deliveries,
    new_appointment,
    sms_auth,
    use_channels,
    webhook_secret,
)
from tests.reminders.test_admin_api import _api, _headers

PHONE = "+79161234567"
REPLY = {"from": PHONE, "text": "3", "id": "cb-1"}


@pytest.fixture(autouse=True)
def legacy_urls_open(monkeypatch):
    """Keep the old URLs within their grace period, whatever the run's date.

    The period ends on a fixed date (``webhooks.LEGACY_URLS_UNTIL``), so on
    the wall clock the tests of old URLs would fail from that date on.
    """
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    monkeypatch.setattr(webhooks, "LEGACY_URLS_UNTIL", tomorrow)


def _url(app_server, portal, callback: str = "reply") -> str:
    return f"{app_server.url}/bot/sms/{portal.id}/{callback}"


def _legacy_url(app_server, portal, secret: str, callback: str = "reply") -> str:
    return f"{app_server.url}/bot/sms/{portal.id}/{secret}/{callback}"


def _other_portal(services) -> Portal:
    now = datetime.now(UTC)
    with services.db.session() as session:
        portal = Portal(
            member_id="other-member",
            domain="other.bitrix24.example",
            client_endpoint="https://other.bitrix24.example/rest/",
            server_endpoint="https://oauth.bitrix24.example/rest/",
            access_token_enc=services.box.encrypt("a"),
            refresh_token_enc=services.box.encrypt("r"),
            token_expires_at=now + timedelta(hours=1),
            token_refreshed_at=now,
            status="active",
            settings={
                "reminders": {
                    "webhook_secret": "other-secret",
                    config.SMS_SECRET_KEY: "other-portal-sms-secret",
                }
            },
        )
        session.add(portal)
        session.flush()
        session.expunge(portal)
    return portal


def _events(services) -> list[InboundEvent]:
    with services.db.session() as session:
        return list(
            session.scalars(select(InboundEvent).where(InboundEvent.event == SMS_EVENT))
        )


def _callback_state(services, portal_id: int) -> dict:
    with services.db.session() as session:
        portal = session.get(Portal, portal_id)
        return config.settings(portal).get(webhooks.STATE_KEY) or {}


def _settings_body(app_server, services, portal) -> dict:
    return requests.get(
        _api(app_server, "/settings"),
        headers=_headers(services, portal),
        timeout=10,
    ).json()


def _sent_sms_delivery(emulator, services, worker, portal) -> str:
    """Send one SMS reminder through the SMS.ru fake; return its SMS.ru id."""
    deal_id, _ = new_appointment(emulator, services, worker)
    consent.grant(
        services, portal.id, f"deal:{deal_id}", "sms", source="form", address=PHONE
    )
    use_channels(services, portal, ["sms"])
    dispatch.dispatch_due(services)
    return deliveries(services)[0].provider_ref.removeprefix("smsru:")


# The URL the owner pastes


def test_settings_url_keeps_secret_out_of_path(app_server, services, reminder_portal):
    body = _settings_body(app_server, services, reminder_portal)
    secret = sms_auth(services, reminder_portal.id)[1]
    for callback in ("reply", "status"):
        parts = urlsplit(body["webhooks"][f"sms_{callback}"])
        assert parts.username == webhooks.BASIC_USER
        assert parts.password == secret
        assert parts.path == f"/bot/sms/{reminder_portal.id}/{callback}"
        assert secret not in parts.path
    assert body["webhooks"]["sms_signature_header"] == webhooks.SIGNATURE_HEADER


def test_sms_secret_differs_from_telegram_secret(services, reminder_portal):
    sms_secret = sms_auth(services, reminder_portal.id)[1]
    assert sms_secret != webhook_secret(services, reminder_portal.id)


def test_settings_hide_sms_secret(app_server, services, reminder_portal):
    body = _settings_body(app_server, services, reminder_portal)
    assert config.SMS_SECRET_KEY not in body["settings"]
    assert "webhook_secret" not in body["settings"]


def test_pasted_url_works_as_given(app_server, services, reminder_portal):
    """requests, like provider HTTP clients, sends the URL's user as Basic auth."""
    url = _settings_body(app_server, services, reminder_portal)["webhooks"]["sms_reply"]
    response = requests.post(url, json=REPLY, timeout=10)
    assert response.status_code == 200
    assert len(_events(services)) == 1


def test_secret_created_for_portal_without_one(app_server, services, reminder_portal):
    config.save(services, reminder_portal.id, {config.SMS_SECRET_KEY: None})
    body = _settings_body(app_server, services, reminder_portal)
    created = urlsplit(body["webhooks"]["sms_reply"]).password
    assert created
    assert created == sms_auth(services, reminder_portal.id)[1]


# Authentication of the new URLs


def test_reply_with_basic_auth_stored(app_server, services, reminder_portal):
    response = requests.post(
        _url(app_server, reminder_portal),
        json=REPLY,
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    assert response.status_code == 200
    assert [e.payload["data"]["from"] for e in _events(services)] == [PHONE]


def test_reply_without_credentials_rejected(app_server, services, reminder_portal):
    response = requests.post(_url(app_server, reminder_portal), json=REPLY, timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "missing credentials" in response.json()["error"]
    assert _events(services) == []


@pytest.mark.parametrize(
    "auth",
    [
        ("otklik", "guess"),
        ("otklik", ""),
        ("someone", "guess"),
    ],
    ids=["wrong-password", "empty-password", "other-user"],
)
def test_reply_wrong_password_rejected(app_server, services, reminder_portal, auth):
    response = requests.post(
        _url(app_server, reminder_portal), json=REPLY, auth=auth, timeout=10
    )
    assert response.status_code == 401
    assert "wrong callback credentials" in response.json()["error"]
    assert _events(services) == []


def test_reply_with_telegram_secret_rejected(app_server, services, reminder_portal):
    """The Telegram secret token is not the SMS callback password."""
    telegram_secret = webhook_secret(services, reminder_portal.id)
    response = requests.post(
        _url(app_server, reminder_portal),
        json=REPLY,
        auth=(webhooks.BASIC_USER, telegram_secret),
        timeout=10,
    )
    assert response.status_code == 401
    assert _events(services) == []


def test_reply_with_bearer_header_rejected(app_server, services, reminder_portal):
    secret = sms_auth(services, reminder_portal.id)[1]
    response = requests.post(
        _url(app_server, reminder_portal),
        json=REPLY,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert _events(services) == []


def test_reply_with_other_portals_password_rejected(
    app_server, services, reminder_portal
):
    other = _other_portal(services)
    response = requests.post(
        _url(app_server, reminder_portal),
        json=REPLY,
        auth=(webhooks.BASIC_USER, "other-portal-sms-secret"),
        timeout=10,
    )
    assert response.status_code == 401
    assert _events(services) == []
    response = requests.post(
        _url(app_server, other),
        json=REPLY,
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    assert response.status_code == 401
    assert _events(services) == []


def test_reply_for_unknown_portal(app_server, services, reminder_portal):
    response = requests.post(
        f"{app_server.url}/bot/sms/999999/reply",
        json=REPLY,
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    assert response.status_code == 404
    assert _events(services) == []


def test_reply_before_secret_set_up_rejected(app_server, services, reminder_portal):
    config.save(services, reminder_portal.id, {config.SMS_SECRET_KEY: None})
    response = requests.post(
        _url(app_server, reminder_portal),
        json=REPLY,
        auth=(webhooks.BASIC_USER, ""),
        timeout=10,
    )
    assert response.status_code == 401
    assert "not set up" in response.json()["error"]
    assert _events(services) == []


# The signature header


def _signed(secret: str, payload: dict) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        webhooks.SIGNATURE_HEADER: webhooks.signature(secret, body),
    }
    return body, headers


def test_reply_with_signature_stored(app_server, services, reminder_portal):
    secret = sms_auth(services, reminder_portal.id)[1]
    body, headers = _signed(secret, REPLY)
    response = requests.post(
        _url(app_server, reminder_portal), data=body, headers=headers, timeout=10
    )
    assert response.status_code == 200
    assert len(_events(services)) == 1


def test_reply_with_wrong_signature_rejected(app_server, services, reminder_portal):
    body, headers = _signed("not-the-secret", REPLY)
    response = requests.post(
        _url(app_server, reminder_portal), data=body, headers=headers, timeout=10
    )
    assert response.status_code == 403
    assert webhooks.SIGNATURE_HEADER in response.json()["error"]
    assert _events(services) == []


def test_signature_of_other_body_rejected(app_server, services, reminder_portal):
    """A signature copied from one request does not cover a changed body."""
    secret = sms_auth(services, reminder_portal.id)[1]
    _, headers = _signed(secret, REPLY)
    changed = json.dumps({**REPLY, "text": "1"}).encode()
    response = requests.post(
        _url(app_server, reminder_portal), data=changed, headers=headers, timeout=10
    )
    assert response.status_code == 403
    assert _events(services) == []


def test_signed_form_body_stored(app_server, services, reminder_portal):
    secret = sms_auth(services, reminder_portal.id)[1]
    body = b"from=%2B79161234567&text=1&id=form-1"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        webhooks.SIGNATURE_HEADER: webhooks.signature(secret, body),
    }
    response = requests.post(
        _url(app_server, reminder_portal), data=body, headers=headers, timeout=10
    )
    assert response.status_code == 200
    assert [e.payload["data"]["text"] for e in _events(services)] == ["1"]


# Delivery reports


def test_forged_status_report_changes_nothing(
    emulator, app_server, services, worker, sms, reminder_portal
):
    sms_id = _sent_sms_delivery(emulator, services, worker, reminder_portal)
    report = {"data[]": f"sms_status\n{sms_id}\n103\n1765000000"}
    for auth in (None, ("otklik", "guess")):
        response = requests.post(
            _url(app_server, reminder_portal, "status"),
            data=report,
            auth=auth,
            timeout=10,
        )
        assert response.status_code == 401
    assert deliveries(services)[0].status == "sent"


def test_status_report_with_basic_auth(
    emulator, app_server, services, worker, sms, reminder_portal
):
    sms_id = _sent_sms_delivery(emulator, services, worker, reminder_portal)
    response = requests.post(
        _url(app_server, reminder_portal, "status"),
        data={"data[]": f"sms_status\n{sms_id}\n103\n1765000000"},
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    assert response.text == "100"
    assert deliveries(services)[0].status == "delivered"


# Old URLs with the secret in the path


def test_legacy_url_accepted_and_noted(app_server, services, reminder_portal):
    old_secret = webhook_secret(services, reminder_portal.id)
    response = requests.post(
        _legacy_url(app_server, reminder_portal, old_secret), json=REPLY, timeout=10
    )
    assert response.status_code == 200
    assert len(_events(services)) == 1
    assert _callback_state(services, reminder_portal.id)["reply"]["legacy_at"]
    notes = _settings_body(app_server, services, reminder_portal)["notes"]
    assert any("старый адрес" in note for note in notes)


def test_legacy_url_rejects_sms_secret(app_server, services, reminder_portal):
    """The new secret never works in a path, where access logs would keep it."""
    sms_secret = sms_auth(services, reminder_portal.id)[1]
    response = requests.post(
        _legacy_url(app_server, reminder_portal, sms_secret), json=REPLY, timeout=10
    )
    assert response.status_code == 404
    assert _events(services) == []


def test_legacy_url_closed_after_new_url_used(app_server, services, reminder_portal):
    old_secret = webhook_secret(services, reminder_portal.id)
    requests.post(
        _url(app_server, reminder_portal),
        json=REPLY,
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    assert _callback_state(services, reminder_portal.id)["reply"]["migrated"]

    response = requests.post(
        _legacy_url(app_server, reminder_portal, old_secret),
        json={**REPLY, "id": "cb-2"},
        timeout=10,
    )
    assert response.status_code == 410
    assert "reminder settings" in response.json()["error"]
    assert len(_events(services)) == 1


def test_legacy_status_open_while_reply_migrated(app_server, services, reminder_portal):
    """Each callback is closed on its own, when the provider moved that one."""
    old_secret = webhook_secret(services, reminder_portal.id)
    requests.post(
        _url(app_server, reminder_portal),
        json=REPLY,
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    response = requests.post(
        _legacy_url(app_server, reminder_portal, old_secret, "status"),
        data={"data[]": "sms_status\nx\n103\n1765000000"},
        timeout=10,
    )
    assert response.text == "100"


def test_legacy_url_closed_after_cutoff(
    app_server, services, reminder_portal, monkeypatch
):
    monkeypatch.setattr(
        webhooks, "LEGACY_URLS_UNTIL", datetime.now(UTC) - timedelta(seconds=1)
    )
    old_secret = webhook_secret(services, reminder_portal.id)
    response = requests.post(
        _legacy_url(app_server, reminder_portal, old_secret), json=REPLY, timeout=10
    )
    assert response.status_code == 410
    assert _events(services) == []


def test_legacy_forged_request_changes_nothing(app_server, services, reminder_portal):
    before = _callback_state(services, reminder_portal.id)
    response = requests.post(
        _legacy_url(app_server, reminder_portal, "guess"), json=REPLY, timeout=10
    )
    assert response.status_code == 404
    assert _events(services) == []
    assert _callback_state(services, reminder_portal.id) == before


def test_forged_new_url_request_keeps_legacy_open(
    app_server, services, reminder_portal
):
    """A rejected request does not close the old URL for the real provider."""
    requests.post(
        _url(app_server, reminder_portal),
        json=REPLY,
        auth=("otklik", "guess"),
        timeout=10,
    )
    assert _callback_state(services, reminder_portal.id) == {}


# Logs


def test_logs_never_carry_sms_secret(
    emulator, app_server, services, worker, sms, reminder_portal, caplog
):
    caplog.set_level(logging.DEBUG)
    secret = sms_auth(services, reminder_portal.id)[1]
    url = _url(app_server, reminder_portal)
    requests.post(
        url, json=REPLY, auth=sms_auth(services, reminder_portal.id), timeout=10
    )
    requests.post(url, json=REPLY, auth=("otklik", secret + "x"), timeout=10)
    body, headers = _signed(secret, {**REPLY, "id": "cb-3"})
    requests.post(url, data=body, headers=headers, timeout=10)
    _settings_body(app_server, services, reminder_portal)
    assert caplog.records
    assert secret not in caplog.text


def test_app_logs_omit_legacy_path_secret(
    app_server, services, reminder_portal, caplog
):
    """The web server's access log keeps the old path, but the app's logs do not."""
    caplog.set_level(logging.DEBUG)
    old_secret = webhook_secret(services, reminder_portal.id)
    requests.post(
        _legacy_url(app_server, reminder_portal, old_secret), json=REPLY, timeout=10
    )
    app_records = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    assert any("old URL" in r.getMessage() for r in app_records)
    for record in app_records:
        assert old_secret not in record.getMessage()
        assert old_secret not in str(record.__dict__)

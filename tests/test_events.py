"""The events endpoint: verification, durability and de-duplication."""

from __future__ import annotations

import requests

from tests.helpers import events_stored

MEMBER = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _body(member_id: str, app_token: str, lead_id: int = 101) -> dict[str, str]:
    return {
        "event": "ONCRMLEADADD",
        "event_handler_id": "41",
        "data[FIELDS][ID]": str(lead_id),
        "ts": "1767225600",
        "auth[member_id]": member_id,
        "auth[application_token]": app_token,
        "auth[domain]": "example.bitrix24.ru",
    }


def _app_token(services, portal) -> str:
    return services.application_token(portal)


def test_event_unknown_portal_rejected(installed, app_server, services):
    response = requests.post(
        f"{app_server.url}/events", data=_body(MEMBER, "x"), timeout=5
    )

    assert response.status_code == 404
    assert response.json()["error"] == "unknown portal"
    assert events_stored(services) == []


def test_event_wrong_token_rejected(installed, app_server, services):
    body = _body(installed.member_id, "not-the-token")

    response = requests.post(f"{app_server.url}/events", data=body, timeout=5)

    assert response.status_code == 401
    assert events_stored(services, "ONCRMLEADADD") == []


def test_event_malformed_bodies_rejected(installed, app_server, services):
    url = f"{app_server.url}/events"

    as_json = requests.post(url, json={"event": "ONCRMLEADADD"}, timeout=5)
    no_event = requests.post(
        url, data={"auth[member_id]": installed.member_id}, timeout=5
    )
    no_auth = requests.post(url, data={"event": "ONCRMLEADADD"}, timeout=5)
    unknown = requests.post(
        url, data=_body(installed.member_id, "t") | {"event": "ONFOO"}, timeout=5
    )
    bad_key = requests.post(
        url, data={"event": "ONCRMLEADADD", "auth[member_id": "x"}, timeout=5
    )

    assert as_json.status_code == 415
    assert no_event.status_code == 400
    assert no_auth.status_code == 400
    assert unknown.status_code == 400
    assert bad_key.status_code == 400
    assert events_stored(services, "ONCRMLEADADD") == []


def test_event_duplicate_stored_once(installed, app_server, services):
    body = _body(installed.member_id, _app_token(services, installed), lead_id=555)

    first = requests.post(f"{app_server.url}/events", data=body, timeout=5)
    second = requests.post(f"{app_server.url}/events", data=body, timeout=5)

    assert first.json()["status"] == "queued"
    assert second.json()["status"] == "duplicate"
    stored = [
        e
        for e in events_stored(services, "ONCRMLEADADD")
        if e.payload["data"]["FIELDS"]["ID"] == "555"
    ]
    assert len(stored) == 1


def test_event_payload_keeps_no_tokens(installed, app_server, services):
    body = _body(installed.member_id, _app_token(services, installed), lead_id=556)
    body["auth[access_token]"] = "secret-access-token"

    requests.post(f"{app_server.url}/events", data=body, timeout=5)

    stored = [
        e
        for e in events_stored(services, "ONCRMLEADADD")
        if e.payload["data"]["FIELDS"]["ID"] == "556"
    ][0]
    assert "secret-access-token" not in repr(stored.payload)
    assert stored.payload["has_user_token"] is True

"""Installing the app on the emulated portal, over real HTTP."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from b24app.models import Portal
from b24app.services import load_manifest


def _portal(services) -> Portal:
    with services.db.session() as session:
        return session.scalar(select(Portal))


def test_install_binds_everything_once(emulator, installed, services, app_server):
    manifest = load_manifest()
    portal = emulator.portal

    assert installed.status == "active"
    assert portal.installed
    bound_events = {name for name, *_ in _event_bindings(portal)}
    assert bound_events == set(manifest["events"])
    placements = {row["placement"] for row in portal.placements.snapshot()}
    assert placements == {p["code"] for p in manifest["placements"]}
    assert set(installed.tag_options) == set(manifest["lead_tag_field"]["options"])

    # A second install (reinstall) adds no duplicate binding or field.
    count_events = len(_event_bindings(portal))
    count_fields = len(portal.userfields.snapshot())
    portal.install_app(
        handler_url=f"{app_server.url}/app", install_url=f"{app_server.url}/install"
    )
    assert len(_event_bindings(portal)) == count_events
    assert len(portal.userfields.snapshot()) == count_fields


def _event_bindings(portal):
    return [(row["event"], row["handler"]) for row in portal.event_bindings.snapshot()]


def test_install_stores_tokens_encrypted(installed, services):
    portal = _portal(services)

    assert portal.access_token_enc
    assert "." not in portal.domain or portal.domain.startswith("127.0.0.1")
    assert services.box.decrypt(portal.access_token_enc) != portal.access_token_enc


def test_forged_install_changes_nothing(installed, services, app_server):
    before = _portal(services)

    response = requests.post(
        f"{app_server.url}/install",
        params={"DOMAIN": "evil.example.com", "PROTOCOL": "1", "LANG": "ru"},
        data={
            "member_id": before.member_id,
            "AUTH_ID": "forged",
            "REFRESH_ID": "forged",
            "SERVER_ENDPOINT": "https://evil.example.com/rest/",
        },
        timeout=10,
    )

    after = _portal(services)
    assert response.status_code == 403
    assert after.domain == before.domain
    assert after.client_endpoint == before.client_endpoint
    assert after.access_token_enc == before.access_token_enc
    assert after.token_version == before.token_version


def test_install_without_fields_is_rejected(app_server, services):
    response = requests.post(
        f"{app_server.url}/install", data={"member_id": "x"}, timeout=10
    )

    assert response.status_code == 400
    assert "REFRESH_ID" in response.text
    assert _portal(services) is None


def test_uninstall_event_deactivates(emulator, installed, services):
    emulator.portal.uninstall_app(clean=False)

    emulator.portal.wait_for(
        lambda: _portal(services).status == "uninstalled", timeout=10
    )
    assert _portal(services).status == "uninstalled"


def test_onappinstall_event_confirms_portal(emulator, app_server, services):
    emulator.portal.config.app_install_event_url = f"{app_server.url}/events"

    emulator.portal.install_app(
        handler_url=f"{app_server.url}/app", install_url=f"{app_server.url}/install"
    )
    delivered = emulator.portal.wait_for(
        lambda: [d for d in emulator.portal.delivered_events if d[0] == "ONAPPINSTALL"],
        timeout=10,
    )

    assert delivered
    assert delivered[0][2] == 200
    portal = _portal(services)
    assert services.application_token(portal) == emulator.portal.app.application_token


def test_forged_onappinstall_changes_nothing(installed, services, app_server):
    before = _portal(services)

    response = requests.post(
        f"{app_server.url}/events",
        data={
            "event": "ONAPPINSTALL",
            "auth[member_id]": before.member_id,
            "auth[refresh_token]": "forged",
            "auth[application_token]": "forged-app-token",
            "auth[domain]": "evil.example.com",
        },
        timeout=10,
    )

    after = _portal(services)
    assert response.status_code == 403
    assert after.domain == before.domain
    assert after.application_token_enc == before.application_token_enc


@pytest.mark.parametrize("path", ["/", "/app", "/install"])
def test_opened_outside_portal_explains(app_server, services, path):
    response = requests.get(f"{app_server.url}{path}", timeout=10)

    assert response.status_code == 200
    assert "работает внутри Bitrix24" in response.text
    assert _portal(services) is None

"""The official b24pysdk against the emulator, over HTTPS with the test CA."""

from __future__ import annotations

import pytest
from b24pysdk import BitrixApp, BitrixToken
from b24pysdk.api.requesters import BitrixOAuthRequester
from b24pysdk.credentials.auth import RenewedOAuth
from b24pysdk.credentials.oauth_event_data import OAuthEventData
from b24pysdk.credentials.oauth_placement_data import OAuthPlacementData
from b24pysdk.errors import BitrixAPIBadRequest, BitrixAPIError
from emu_helpers import RestClient


class EmulatorBitrixApp(BitrixApp):
    """BitrixApp whose token refresh goes to the emulator's OAuth server.

    b24pysdk 1.3.2 hard-codes the cloud token URL in BitrixOAuthRequester.
    """

    def __init__(self, *, client_id: str, client_secret: str, token_url: str):
        super().__init__(client_id=client_id, client_secret=client_secret)
        self._requester = type(
            "EmulatorOAuthRequester",
            (BitrixOAuthRequester,),
            {"_OAUTH_TOKEN_URL": token_url},
        )

    def refresh_oauth_token(self, refresh_token: str, **kwargs) -> RenewedOAuth:
        payload = self._requester(self, **kwargs).refresh_oauth_token(refresh_token)
        return RenewedOAuth.from_dict(payload)


@pytest.fixture
def sdk_env(monkeypatch, emulator):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_path))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return emulator


@pytest.fixture
def token(sdk_env) -> BitrixToken:
    tokens = sdk_env.portal.issue_tokens()
    app = EmulatorBitrixApp(
        client_id=sdk_env.config.client_id,
        client_secret=sdk_env.config.client_secret,
        token_url=sdk_env.token_url,
    )
    return BitrixToken(
        domain=sdk_env.domain,
        auth_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        bitrix_app=app,
    )


def test_sdk_call_method(token: BitrixToken):
    response = token.call_method("user.current")
    assert response["result"]["ID"] == "1"


def test_sdk_lead_round_trip(token: BitrixToken):
    lead_id = token.call_method(
        "crm.lead.add", {"fields": {"TITLE": "Запись на маникюр"}}
    )["result"]
    lead = token.call_method("crm.lead.get", {"id": lead_id})["result"]
    assert lead["TITLE"] == "Запись на маникюр"


def test_sdk_batch_with_reference(token: BitrixToken):
    response = token.call_batch(
        {
            "lead": ("crm.lead.add", {"fields": {"TITLE": "Из батча"}}),
            "read": ("crm.lead.get", {"id": "$result[lead]"}),
        }
    )
    assert response["result"]["result"]["read"]["TITLE"] == "Из батча"


def test_sdk_call_list_pages(token: BitrixToken, sdk_env):
    for number in range(120):
        sdk_env.portal.create_lead(
            {"TITLE": str(number)}, kind="title", message=str(number)
        )
    response = token.call_list("crm.lead.list", {"select": ["ID"]})
    assert len(response["result"]) == 120


def test_sdk_legacy_error_raises(token: BitrixToken):
    with pytest.raises(BitrixAPIBadRequest):
        token.call_method("crm.lead.get", {"id": 987654})


def test_sdk_unknown_method_raises(token: BitrixToken):
    with pytest.raises(BitrixAPIError):
        token.call_method("crm.nothing.here")


def test_sdk_refreshes_expired_token(token: BitrixToken, sdk_env):
    old_refresh = token.refresh_token
    sdk_env.portal.expire_tokens()
    response = token.call_method("profile")
    assert response["result"]["ID"] == "1"
    assert token.refresh_token != old_refresh


def test_sdk_parses_delivered_event(sdk_env, receiver):
    client = RestClient(sdk_env)
    sdk_env.portal.install_app()
    client.result(
        "event.bind", {"event": "ONCRMLEADADD", "handler": f"{receiver.url}/e"}
    )
    client.result("crm.lead.add", {"fields": {"TITLE": "x"}})
    assert sdk_env.portal.wait_for(lambda: receiver.events("ONCRMLEADADD"))

    event = OAuthEventData.from_dict(receiver.events("ONCRMLEADADD")[0].form)
    assert event.event == "ONCRMLEADADD"
    assert event.auth.member_id == sdk_env.config.member_id
    assert event.auth.user_id == 1


def test_sdk_parses_placement_post(sdk_env, receiver):
    client = RestClient(sdk_env)
    sdk_env.portal.install_app()
    client.result(
        "placement.bind",
        {"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": f"{receiver.url}/tab"},
    )
    sdk_env.portal.open_placement("CRM_LEAD_DETAIL_TAB", {"ID": 5}, user_id=3)

    frame = receiver.requests[0]
    parsed = OAuthPlacementData.from_dict({**frame.args, **frame.form})
    assert parsed.placement == "CRM_LEAD_DETAIL_TAB"
    assert parsed.placement_options == {"ID": "5"}

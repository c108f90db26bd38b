"""Leaky bucket, operating-time limiter and injected faults."""

import pytest
import requests
from emu_helpers import RestClient


def _call_until_status(client: RestClient, status: int, attempts: int) -> list[int]:
    seen = []
    for _ in range(attempts):
        seen.append(client.call("server.time").status_code)
        if seen[-1] == status:
            break
    return seen


def test_rate_limit_rejects_with_503(make_emulator):
    client = RestClient(make_emulator(rate=0.5, burst=5))
    statuses = _call_until_status(client, 503, attempts=20)
    assert statuses[-1] == 503
    response = client.call("server.time")
    assert response.json()["error"] == "QUERY_LIMIT_EXCEEDED"


def test_rate_limit_recovers_after_drain(make_emulator):
    handle = make_emulator(rate=2.0, burst=3)
    client = RestClient(handle)
    statuses = _call_until_status(client, 503, attempts=20)
    drained = handle.portal.wait_for(lambda: handle.portal.bucket.level < 2, timeout=5)
    assert statuses[-1] == 503
    assert drained
    assert client.call("server.time").status_code == 200


def test_batch_counts_as_one_request(make_emulator):
    handle = make_emulator(rate=0.01, burst=2)
    client = RestClient(handle)
    commands = {f"c{number}": "server.time" for number in range(20)}
    first = client.call("batch", {"cmd": commands})
    second = client.call("server.time")
    assert first.status_code == 200
    assert second.status_code == 200


def test_operating_limit_blocks_one_method(client: RestClient, emulator):
    emulator.portal.set_operating_limit(0.0)
    assert client.call("crm.lead.list").status_code == 200
    blocked = client.call("crm.lead.list")
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "OPERATION_TIME_LIMIT"
    assert client.call("crm.deal.list").status_code == 200


def test_operating_keys_in_time(client: RestClient):
    time_block = client.call("crm.lead.list").json()["time"]
    assert "operating" in time_block
    assert "operating_reset_at" in time_block


def test_fault_fails_next_call_only(client: RestClient, emulator):
    emulator.portal.set_fault("crm.lead.list", "QUERY_LIMIT_EXCEEDED", times=1)
    first = client.call("crm.lead.list")
    second = client.call("crm.lead.list")
    assert first.status_code == 503
    assert first.json()["error"] == "QUERY_LIMIT_EXCEEDED"
    assert second.status_code == 200


def test_fault_expired_token(client: RestClient, emulator):
    emulator.portal.set_fault("profile", "expired_token")
    response = client.call("profile")
    assert response.status_code == 401
    assert response.json()["error"] == "expired_token"


def test_fault_internal_error(client: RestClient, emulator):
    emulator.portal.set_fault("crm.lead.add", "INTERNAL_SERVER_ERROR", times=2)
    statuses = [client.call("crm.lead.add", {"fields": {"TITLE": "t"}}).status_code]
    statuses.append(client.call("crm.lead.add", {"fields": {"TITLE": "t"}}).status_code)
    statuses.append(client.call("crm.lead.add", {"fields": {"TITLE": "t"}}).status_code)
    assert statuses == [500, 500, 200]


def test_fault_latency_then_success(client: RestClient, emulator):
    emulator.portal.set_fault("profile", "latency_ms", latency_ms=50)
    assert client.call("profile").status_code == 200


def test_fault_timeout_hangs_past_client_timeout(client: RestClient, emulator):
    emulator.portal.set_fault("profile", "timeout", hang_seconds=3)
    with pytest.raises(requests.Timeout):
        client.session.post(
            f"{emulator.base_url}/rest/profile",
            json={"auth": client.token},
            timeout=0.5,
        )


def test_fault_inside_batch_hits_command(client: RestClient, emulator):
    emulator.portal.set_fault("crm.lead.get", "ACCESS_DENIED")
    result = client.result("batch", {"cmd": {"a": "crm.lead.get?id=1", "b": "profile"}})
    assert result["result_error"]["a"]["error"] == "ACCESS_DENIED"
    assert "b" in result["result"]


def test_fault_on_token_endpoint(emulator):
    tokens = emulator.portal.issue_tokens()
    emulator.portal.set_fault("oauth.token", "INTERNAL_SERVER_ERROR")
    session = requests.Session()
    session.trust_env = False
    response = session.get(
        emulator.token_url,
        params={
            "grant_type": "refresh_token",
            "client_id": emulator.config.client_id,
            "client_secret": emulator.config.client_secret,
            "refresh_token": tokens["refresh_token"],
        },
        verify=str(emulator.ca_path),
        timeout=10,
    )
    assert response.status_code == 500

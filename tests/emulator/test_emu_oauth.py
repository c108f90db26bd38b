"""Token endpoint: refresh rotation, code exchange, expiry and client checks."""

from urllib.parse import parse_qs, urlsplit

import pytest
from emu_helpers import RestClient, loopback_session

TOKEN_FIELDS = {
    "access_token",
    "refresh_token",
    "expires",
    "expires_in",
    "scope",
    "domain",
    "server_endpoint",
    "client_endpoint",
    "member_id",
    "status",
    "user_id",
}


@pytest.fixture
def oauth(emulator):
    session = loopback_session(emulator.ca_path)

    def request(**params):
        query = {
            "client_id": emulator.config.client_id,
            "client_secret": emulator.config.client_secret,
            **params,
        }
        return session.get(emulator.token_url, params=query, timeout=10)

    return request


def test_refresh_returns_documented_fields(emulator, oauth):
    tokens = emulator.portal.issue_tokens()
    body = oauth(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    ).json()
    assert set(body) == TOKEN_FIELDS
    assert body["member_id"] == emulator.config.member_id
    assert body["client_endpoint"] == f"{emulator.base_url}/rest/"
    assert body["expires_in"] == 3600


def test_refresh_rotates_tokens(emulator, oauth):
    tokens = emulator.portal.issue_tokens()
    body = oauth(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    ).json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]


def test_refresh_token_reuse_is_invalid_grant(emulator, oauth):
    tokens = emulator.portal.issue_tokens()
    oauth(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    reuse = oauth(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"


def test_wrong_secret_is_invalid_client(emulator, oauth):
    tokens = emulator.portal.issue_tokens()
    response = oauth(
        grant_type="refresh_token",
        refresh_token=tokens["refresh_token"],
        client_secret="wrong",
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_expired_token_then_refresh(emulator, oauth):
    client = RestClient(emulator)
    tokens = emulator.portal.issue_tokens()
    emulator.portal.expire_tokens()
    expired = client.call("profile", token=tokens["access_token"])
    renewed = oauth(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    after = client.call("profile", token=renewed.json()["access_token"])
    assert expired.status_code == 401
    assert expired.json()["error"] == "expired_token"
    assert after.status_code == 200


def test_token_expires_after_ttl(make_emulator):
    handle = make_emulator(token_ttl=60)
    client = RestClient(handle)
    handle.portal.advance_clock(61)
    assert client.call("profile").json()["error"] == "expired_token"


def test_authorization_code_flow(make_emulator):
    handle = make_emulator(app_handler_url="https://127.0.0.1:9/app/")
    session = loopback_session(handle.ca_path)
    redirect = session.get(
        f"{handle.base_url}/oauth/authorize/",
        params={"client_id": handle.config.client_id, "state": "xyz"},
        allow_redirects=False,
        timeout=10,
    )
    query = parse_qs(urlsplit(redirect.headers["Location"]).query)
    exchange = session.get(
        handle.token_url,
        params={
            "grant_type": "authorization_code",
            "client_id": handle.config.client_id,
            "client_secret": handle.config.client_secret,
            "code": query["code"][0],
        },
        timeout=10,
    )
    assert redirect.status_code == 302
    assert query["state"] == ["xyz"]
    assert query["member_id"] == [handle.config.member_id]
    assert exchange.json()["user_id"] == 1


def test_authorization_code_single_use(emulator, oauth):
    code = emulator.portal.tokens.issue_code(1)
    oauth(grant_type="authorization_code", code=code)
    reuse = oauth(grant_type="authorization_code", code=code)
    assert reuse.json()["error"] == "invalid_grant"


def test_unknown_grant_type(oauth):
    response = oauth(grant_type="password")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_uninstall_revokes_tokens(emulator):
    client = RestClient(emulator)
    emulator.portal.uninstall_app(clean=True)
    response = client.call("profile")
    assert response.status_code == 401
    assert response.json()["error"] == "APPLICATION_NOT_FOUND"

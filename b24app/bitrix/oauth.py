"""Token refresh at the Bitrix24 OAuth server, through b24pysdk's requester.

b24pysdk hard-codes the east-region OAuth host; portals in the west region
and the portal emulator use another one, so the token URL comes from the
app's OAUTH_URL setting. The OAuth server is the party the app trusts: a
refresh response names the portal (``member_id``, ``client_endpoint``) that
issued the refresh token, which is how install requests are confirmed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from b24pysdk import BitrixApp
from b24pysdk.api.requesters import BitrixOAuthRequester
from b24pysdk.errors import BitrixSDKException

logger = logging.getLogger(__name__)


class OAuthError(Exception):
    """The OAuth server rejected the request; ``code`` is its error string."""

    def __init__(self, code: str, description: str) -> None:
        self.code = code
        self.description = description
        super().__init__(f"OAuth server error {code}: {description}")

    @property
    def revoked(self) -> bool:
        """Whether the grant is gone for good (the portal must reinstall)."""
        return self.code.lower() in {"invalid_grant", "invalid_client", "not_installed"}


class _ConfiguredOAuthRequester(BitrixOAuthRequester):
    __slots__ = ("_token_url",)

    def __init__(self, app: BitrixApp, token_url: str, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._token_url = token_url

    @property
    def _OAUTH_TOKEN_URL(self) -> str:  # noqa: N802 - overrides the SDK constant
        return self._token_url


@dataclass(frozen=True)
class TokenGrant:
    """A fresh token pair and the portal facts the OAuth server returned."""

    access_token: str
    refresh_token: str
    expires_at: datetime
    member_id: str
    client_endpoint: str
    server_endpoint: str
    domain: str
    scope: str
    user_id: int | None

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> TokenGrant:
        try:
            expires_in = int(data.get("expires_in") or 3600)
            expires = data.get("expires")
            expires_at = (
                datetime.fromtimestamp(int(expires), UTC)
                if expires
                else datetime.now(UTC) + timedelta(seconds=expires_in)
            )
            client_endpoint = str(data["client_endpoint"])
            return cls(
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]),
                expires_at=expires_at,
                member_id=str(data["member_id"]),
                client_endpoint=client_endpoint,
                server_endpoint=str(data.get("server_endpoint") or ""),
                # The token response's ``domain`` is unreliable (sometimes the
                # OAuth host), so the portal host comes from client_endpoint.
                domain=client_endpoint.split("://", 1)[-1].split("/", 1)[0],
                scope=str(data.get("scope") or ""),
                user_id=int(data["user_id"]) if data.get("user_id") else None,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise OAuthError("invalid_response", f"token response lacks {err}") from err


class OAuthClient:
    """Refreshes tokens for the app's client_id at the configured OAuth server."""

    def __init__(
        self,
        *,
        oauth_url: str,
        client_id: str,
        client_secret: str,
        timeout: tuple[float, float],
    ) -> None:
        self._token_url = f"{oauth_url.rstrip('/')}/oauth/token/"
        self._app = BitrixApp(client_id=client_id, client_secret=client_secret)
        self._timeout = timeout

    def refresh(self, refresh_token: str) -> TokenGrant:
        """Exchange a refresh token for a new pair (the old one is consumed)."""
        requester = _ConfiguredOAuthRequester(
            self._app, self._token_url, timeout=self._timeout, max_retries=1
        )
        try:
            data = requester.refresh_oauth_token(refresh_token)
        except BitrixSDKException as err:
            raise _to_oauth_error(err) from err

        return TokenGrant.from_response(data)


def _to_oauth_error(err: BitrixSDKException) -> OAuthError:
    body = getattr(err, "json_response", None) or {}
    code = str(body.get("error") or type(err).__name__)
    description = str(body.get("error_description") or err)
    return OAuthError(code, description)

"""OAuth server of the emulated portal: tokens, codes, webhooks, `/oauth/token/`.

Access tokens live `token_ttl` seconds. Refresh tokens rotate: a refresh
consumes the old refresh token, so presenting it again fails with
`invalid_grant`, as the Bitrix24 docs advise clients to assume.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, redirect, request

from .errors import RestError

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

bp = Blueprint("emulator_oauth", __name__)

# An authorization code is valid for 30 seconds (Bitrix24 OAuth docs).
CODE_TTL_SECONDS = 30


@dataclass
class AccessToken:
    """An issued access token and the user it acts for."""

    value: str
    user_id: int
    expires_at: float


@dataclass
class TokenPair:
    """An access token with the refresh token issued alongside it."""

    access: AccessToken
    refresh_token: str


@dataclass
class _RefreshRecord:
    user_id: int
    consumed: bool = False


@dataclass
class Webhook:
    """An incoming webhook: `/rest/<user_id>/<code>/<method>`."""

    user_id: int
    code: str
    scopes: tuple[str, ...]


class TokenStore:
    """Tokens of the one app installed on the portal, guarded by the portal lock."""

    def __init__(self, portal: Portal) -> None:
        self._portal = portal
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, _RefreshRecord] = {}
        self._codes: dict[str, tuple[int, float]] = {}
        self._revoked: set[str] = set()
        self.webhooks: dict[str, Webhook] = {}

    def issue(self, user_id: int) -> TokenPair:
        """Issue a new access and refresh token pair for a user."""
        with self._portal.lock:
            access = AccessToken(
                value=secrets.token_hex(35),
                user_id=user_id,
                expires_at=self._portal.time() + self._portal.config.token_ttl,
            )
            refresh_token = secrets.token_hex(35)
            self._access[access.value] = access
            self._refresh[refresh_token] = _RefreshRecord(user_id=user_id)
            return TokenPair(access=access, refresh_token=refresh_token)

    def token_for_user(self, user_id: int) -> AccessToken:
        """Return a valid access token of the user, issuing one when none is left."""
        with self._portal.lock:
            now = self._portal.time()
            for access in self._access.values():
                if access.user_id == user_id and access.expires_at > now:
                    return access
            return self.issue(user_id).access

    def lookup(self, value: str) -> AccessToken | None:
        with self._portal.lock:
            return self._access.get(value)

    def check_access(self, value: str) -> AccessToken:
        """Return the token record or raise the REST error a portal would send."""
        with self._portal.lock:
            access = self._access.get(value)
            if access is None:
                if value in self._revoked:
                    raise RestError("APPLICATION_NOT_FOUND")
                raise RestError("NO_AUTH_FOUND")
            if access.expires_at <= self._portal.time():
                raise RestError("expired_token")
            return access

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; the old one is consumed."""
        with self._portal.lock:
            record = self._refresh.get(refresh_token)
            if record is None or record.consumed:
                raise RestError("invalid_grant", "Invalid grant", status=400)
            record.consumed = True
            return self.issue(record.user_id)

    def issue_code(self, user_id: int) -> str:
        """Issue a one-time authorization code for the code-exchange flow."""
        with self._portal.lock:
            code = secrets.token_hex(35)
            self._codes[code] = (user_id, self._portal.time() + CODE_TTL_SECONDS)
            return code

    def exchange_code(self, code: str) -> TokenPair:
        with self._portal.lock:
            entry = self._codes.pop(code, None)
            if entry is None or entry[1] <= self._portal.time():
                raise RestError("invalid_grant", "Invalid grant", status=400)
            return self.issue(entry[0])

    def expire_all(self) -> int:
        """Make every access token expired now; return how many there were."""
        with self._portal.lock:
            now = self._portal.time()
            for access in self._access.values():
                access.expires_at = min(access.expires_at, now - 1)
            return len(self._access)

    def revoke_all(self) -> None:
        """Drop every token, as an uninstall does."""
        with self._portal.lock:
            self._revoked.update(self._access)
            self._access.clear()
            self._refresh.clear()
            self._codes.clear()

    def add_webhook(self, user_id: int, scopes: tuple[str, ...]) -> Webhook:
        with self._portal.lock:
            hook = Webhook(user_id=user_id, code=secrets.token_hex(8), scopes=scopes)
            self.webhooks[hook.code] = hook
            return hook

    def check_webhook(self, user_id: str, code: str) -> Webhook:
        with self._portal.lock:
            hook = self.webhooks.get(code)
            if hook is None or str(hook.user_id) != user_id:
                raise RestError("INVALID_CREDENTIALS")
            return hook


def token_response(portal: Portal, pair: TokenPair) -> dict:
    """Build the JSON body of a token endpoint response."""
    config = portal.config
    return {
        "access_token": pair.access.value,
        "expires": int(pair.access.expires_at),
        "expires_in": config.token_ttl,
        "scope": ",".join(config.scopes),
        "domain": portal.domain,
        "server_endpoint": portal.server_endpoint,
        "status": config.app_status,
        "client_endpoint": portal.client_endpoint,
        "member_id": config.member_id,
        "user_id": pair.access.user_id,
        "refresh_token": pair.refresh_token,
    }


def _oauth_error(error: RestError):
    response = jsonify(error.to_body())
    response.status_code = error.status
    return response


@bp.route("/oauth/token/", methods=["GET", "POST"])
@bp.route("/oauth/token", methods=["GET", "POST"])
def token_endpoint():
    """Exchange an authorization code or rotate a refresh token."""
    portal: Portal = current_app.extensions["emulator"]
    values = request.values

    fault = portal.faults.take("oauth.token")
    if fault is not None:
        try:
            fault.apply(portal)
        except RestError as error:
            return _oauth_error(error)

    grant_type = values.get("grant_type", "")
    if grant_type not in ("refresh_token", "authorization_code"):
        return _oauth_error(
            RestError("invalid_request", "Unsupported grant_type", status=400)
        )

    config = portal.config
    if (
        values.get("client_id") != config.client_id
        or values.get("client_secret") != config.client_secret
    ):
        logger.info("token request rejected: invalid client")
        return _oauth_error(RestError("invalid_client", "Invalid client", status=401))

    try:
        if grant_type == "refresh_token":
            pair = portal.tokens.refresh(values.get("refresh_token", ""))
        else:
            if not portal.app_present:
                raise RestError(
                    "invalid_client", "Application not installed", status=401
                )
            pair = portal.tokens.exchange_code(values.get("code", ""))
    except RestError as error:
        logger.info("token request rejected: %s", error.error)
        return _oauth_error(error)

    logger.info("tokens issued by %s for user %s", grant_type, pair.access.user_id)
    return jsonify(token_response(portal, pair))


@bp.route("/oauth/authorize/", methods=["GET"])
@bp.route("/oauth/authorize", methods=["GET"])
def authorize_endpoint():
    """Redirect to the app handler with a code, as if the owner approved access.

    The emulator has no login page: the portal owner is the signed-in user.
    """
    portal: Portal = current_app.extensions["emulator"]
    if request.args.get("client_id") != portal.config.client_id:
        return _oauth_error(RestError("invalid_client", "Invalid client", status=401))
    target = portal.app.handler_url or portal.config.app_handler_url
    if not target or not portal.app_present:
        return _oauth_error(
            RestError("invalid_client", "Application not installed", status=401)
        )

    code = portal.tokens.issue_code(portal.owner_id)
    query = {
        "code": code,
        "state": request.args.get("state", ""),
        "domain": portal.domain,
        "member_id": portal.config.member_id,
        "scope": ",".join(portal.config.scopes),
        "server_domain": portal.domain,
    }
    separator = "&" if "?" in target else "?"
    return redirect(f"{target}{separator}{urlencode(query)}", code=302)

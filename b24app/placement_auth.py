"""Who opened a placement: the portal, the user, and a short-lived API token.

A placement POST carries the viewing user's access token (AUTH_ID). The app
asks the stored portal (never the host named in the request) who owns that
token with ``profile``; only then does it render the page and sign an API
token for the page's later requests. The page keeps that token in memory
and sends it as a Bearer header, so nothing depends on third-party cookies.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from b24pysdk.api.callers import call_method
from b24pysdk.errors import BitrixSDKException
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from b24app.crypto import fingerprint, same_secret
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)

API_TOKEN_MAX_AGE = 3600
PROFILE_CACHE_SECONDS = 300
_profile_cache: dict[str, tuple[float, dict[str, Any]]] = {}


class PlacementDenied(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Viewer:
    portal_id: int
    member_id: str
    user_id: int
    is_admin: bool
    language: str


def identify(
    services: Services, form: dict[str, str], args: dict[str, str]
) -> tuple[Portal, Viewer, dict]:
    """Check a placement POST and return the portal, the viewer and the options."""
    member_id = (form.get("member_id") or "").strip()
    auth_id = (form.get("AUTH_ID") or "").strip()
    if not member_id or not auth_id:
        raise PlacementDenied("Откройте приложение из Битрикс24.", 400)

    with services.db.session() as session:
        portal = session.scalar(select(Portal).where(Portal.member_id == member_id))
    if portal is None or portal.status not in ("active", "installing"):
        raise PlacementDenied("Приложение не установлено на этом портале.", 404)

    app_token = (form.get("APPLICATION_TOKEN") or "").strip()
    stored = services.application_token(portal)
    if app_token and stored and not same_secret(app_token, stored):
        raise PlacementDenied("Запрос пришёл не от вашего портала.", 401)

    profile = _profile(services, portal, auth_id)
    viewer = Viewer(
        portal_id=portal.id,
        member_id=portal.member_id,
        user_id=int(profile["ID"]),
        is_admin=bool(profile.get("ADMIN")),
        language=((args.get("LANG") or portal.language or "ru")[:2]).lower(),
    )
    return portal, viewer, _options(form.get("PLACEMENT_OPTIONS"))


def _profile(services: Services, portal: Portal, auth_id: str) -> dict[str, Any]:
    key = f"{portal.id}:{fingerprint(auth_id)}"
    cached = _profile_cache.get(key)
    if cached and time.monotonic() - cached[0] < PROFILE_CACHE_SECONDS:
        return cached[1]

    services.limiter.acquire(
        portal.id,
        rate=portal.rate_limit or services.config["RATE_LIMIT"],
        burst=portal.rate_burst or services.config["RATE_BURST"],
    )
    try:
        response = call_method(
            domain=portal.domain,
            auth_token=auth_id,
            is_webhook=False,
            api_method="profile",
            params={},
            timeout=services.timeout,
            max_retries=1,
        )
    except BitrixSDKException as err:
        logger.warning(
            "placement token rejected by the portal",
            extra={"member_id": portal.member_id, "error": type(err).__name__},
        )
        raise PlacementDenied(
            "Портал не подтвердил пользователя. Обновите страницу.", 401
        ) from err

    profile = response.get("result") or {}
    if not profile.get("ID"):
        raise PlacementDenied(
            "Портал не подтвердил пользователя. Обновите страницу.", 401
        )
    _profile_cache[key] = (time.monotonic(), profile)
    return profile


def _options(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _serializer(services: Services) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services.config["SECRET_KEY"], salt="otklik-api")


def sign_api_token(services: Services, viewer: Viewer) -> str:
    return _serializer(services).dumps(
        {
            "p": viewer.portal_id,
            "m": viewer.member_id,
            "u": viewer.user_id,
            "a": viewer.is_admin,
            "l": viewer.language,
        }
    )


def read_api_token(services: Services, token: str) -> Viewer:
    try:
        data = _serializer(services).loads(token, max_age=API_TOKEN_MAX_AGE)
    except SignatureExpired as err:
        raise PlacementDenied("session expired: reopen the tab", 401) from err
    except BadSignature as err:
        raise PlacementDenied("invalid API token", 401) from err
    return Viewer(
        portal_id=data["p"],
        member_id=data["m"],
        user_id=data["u"],
        is_admin=data["a"],
        language=data.get("l", "ru"),
    )

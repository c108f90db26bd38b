"""The app's single way to call a portal's REST API.

Calls go through b24pysdk's low-level callers (plain synchronous requests,
typed errors). Around them the client owns what the SDK leaves to the app:

* a per-portal token store with a refresh lock (``tokens.py``);
* the shared per-portal rate limiter (``limiter.py``), a batch counting as one;
* explicit connect/read timeouts on every call;
* a list reader that raises when any page fails;
* the error policy: QUERY_LIMIT_EXCEEDED backs off and is retried later by
  the caller, OPERATION_TIME_LIMIT defers that method, and NO_AUTH_FOUND,
  invalid_grant, PORTAL_DELETED or APPLICATION_NOT_FOUND mark the portal
  inactive so nothing calls it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from b24pysdk.api.callers import call_batch, call_method
from b24pysdk.errors import (
    BitrixAPIError,
    BitrixRequestError,
    BitrixRequestTimeout,
    BitrixSDKException,
)
from sqlalchemy import select

from b24app.bitrix.errors import (
    BitrixCallError,
    MethodDeferred,
    PortalInactive,
    RateLimited,
)
from b24app.bitrix.limiter import PortalRateLimiter
from b24app.bitrix.tokens import TokenStore
from b24app.db import Database
from b24app.models import MethodDeferral, Portal

logger = logging.getLogger(__name__)

# Errors after which the app's access to the portal is gone for good.
INACTIVE_CODES = frozenset(
    {"NO_AUTH_FOUND", "PORTAL_DELETED", "APPLICATION_NOT_FOUND", "INVALID_GRANT"}
)
PAGE_SIZE = 50
BATCH_MAX = 50
QUERY_LIMIT_BACKOFF_SECONDS = 5.0
OPERATION_LIMIT_DEFAULT_SECONDS = 60.0


class PortalClient:
    """Calls one portal's REST API on behalf of the app."""

    def __init__(
        self,
        db: Database,
        portal: Portal,
        *,
        tokens: TokenStore,
        limiter: PortalRateLimiter,
        timeout: tuple[float, float],
        default_rate: float,
        default_burst: int,
    ) -> None:
        self.db = db
        self.portal = portal
        self._tokens = tokens
        self._limiter = limiter
        self._timeout = timeout
        self._rate = portal.rate_limit or default_rate
        self._burst = portal.rate_burst or default_burst

    @property
    def member_id(self) -> str:
        return self.portal.member_id

    # Single calls

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``method`` and return its ``result``."""
        return self.call_raw(method, params)["result"]

    def call_raw(self, method: str, params: Mapping[str, Any] | None = None) -> dict:
        """Call ``method`` and return the whole response (result, next, total)."""
        self._check_deferrals([method])

        def send(token: str) -> dict:
            return call_method(
                domain=self.portal.domain,
                auth_token=token,
                is_webhook=False,
                api_method=method,
                params=dict(params or {}),
                timeout=self._timeout,
                max_retries=1,
            )

        return self._send(method, send)

    # Batches

    def batch(
        self,
        commands: Mapping[str, tuple[str, Mapping[str, Any]]],
        *,
        halt: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run up to 50 commands in one request; return (results, errors)."""
        if len(commands) > BATCH_MAX:
            raise ValueError(
                f"a batch holds at most {BATCH_MAX} commands, got {len(commands)}"
            )
        self._check_deferrals([method for method, _ in commands.values()])

        def send(token: str) -> Any:
            return call_batch(
                domain=self.portal.domain,
                auth_token=token,
                is_webhook=False,
                methods={key: (m, dict(p)) for key, (m, p) in commands.items()},
                halt=halt,
                timeout=self._timeout,
                max_retries=1,
            )

        response = self._send("batch", send)
        body = response.get("result", {}) if isinstance(response, dict) else {}
        results = body.get("result") or {}
        errors = body.get("result_error") or {}
        # PHP serialises an empty map as [].
        return (
            results if isinstance(results, dict) else {},
            errors if isinstance(errors, dict) else {},
        )

    # Lists

    def iter_list(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        id_field: str = "ID",
        result_key: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every row of a list method with ID-cursor paging (``start=-1``).

        Any failed page raises, so a caller never mistakes a truncated list
        for a complete one.
        """
        params = dict(params or {})
        base_filter = dict(params.pop("filter", {}) or {})
        last_id = 0
        while True:
            page_filter = dict(base_filter)
            page_filter[f">{id_field}"] = last_id
            page_params = params | {
                "filter": page_filter,
                "order": {id_field: "ASC"},
                "start": -1,
            }
            result = self.call(method, page_params)
            rows = result.get(result_key, []) if result_key else result
            if not isinstance(rows, list):
                raise BitrixCallError(
                    method, "UNEXPECTED_ANSWER", "list result is not an array", 200
                )
            yield from rows
            if len(rows) < PAGE_SIZE:
                return
            last_id = int(rows[-1][id_field])

    # Internals

    def _send(self, method: str, send) -> Any:
        if not self.portal.is_active and self.portal.status != "installing":
            raise PortalInactive(
                method, "PORTAL_INACTIVE", self.portal.inactive_reason or ""
            )

        token, version = self._tokens.access_token(self.portal)
        refreshed = False
        while True:
            self._limiter.acquire(self.portal.id, rate=self._rate, burst=self._burst)
            try:
                return send(token)
            except BitrixRequestTimeout as err:
                logger.warning(
                    "bitrix call timed out",
                    extra={"member_id": self.member_id, "method": method},
                )
                raise BitrixCallError(method, "TIMEOUT", str(err), None) from err
            except BitrixRequestError as err:
                logger.warning(
                    "bitrix call failed to connect",
                    extra={"member_id": self.member_id, "method": method},
                )
                raise BitrixCallError(
                    method, "CONNECTION_ERROR", str(err), None
                ) from err
            except BitrixAPIError as err:
                code = _error_code(err)
                if code == "EXPIRED_TOKEN" and not refreshed:
                    token, version = self._tokens.refresh(
                        self.portal, seen_version=version
                    )
                    refreshed = True
                    continue
                raise self._translate(method, err, code) from err
            except BitrixSDKException as err:
                raise BitrixCallError(method, "SDK_ERROR", str(err), None) from err

    def _translate(
        self, method: str, err: BitrixAPIError, code: str
    ) -> BitrixCallError:
        status = getattr(getattr(err, "response", None), "status_code", None)
        description = str((err.json_response or {}).get("error_description") or err)
        extra = {"member_id": self.member_id, "method": method, "code": code}

        if code == "QUERY_LIMIT_EXCEEDED":
            self._limiter.penalise(
                self.portal.id,
                QUERY_LIMIT_BACKOFF_SECONDS,
                rate=self._rate,
                burst=self._burst,
            )
            logger.warning("portal rate limit hit", extra=extra)
            return RateLimited(method, QUERY_LIMIT_BACKOFF_SECONDS)

        if code == "OPERATION_TIME_LIMIT":
            until = _operating_reset(err)
            self._defer(method, until)
            logger.warning("method deferred by operation time limit", extra=extra)
            return MethodDeferred(method, until)

        if code in INACTIVE_CODES:
            self._tokens.mark_inactive(self.portal, f"{code}: {description}"[:255])
            return PortalInactive(method, code, description)

        logger.info("bitrix call error", extra=extra | {"status": status})
        return BitrixCallError(
            method, (err.json_response or {}).get("error", ""), description, status
        )

    def _check_deferrals(self, methods: Sequence[str]) -> None:
        """Raise MethodDeferred for the first of ``methods`` still deferred.

        One query covers every method, so a batch costs one look-up whatever
        its number of commands.
        """
        names = {method.lower() for method in methods}
        if not names:
            return

        with self.db.session() as session:
            rows = session.execute(
                select(MethodDeferral.method, MethodDeferral.until).where(
                    MethodDeferral.portal_id == self.portal.id,
                    MethodDeferral.method.in_(sorted(names)),
                )
            ).all()
        if not rows:
            return

        deferred = {name: until for name, until in rows}
        now = datetime.now(UTC)
        for method in methods:
            until = deferred.get(method.lower())
            if until is not None and until > now:
                raise MethodDeferred(method, until)

    def _defer(self, method: str, until: datetime) -> None:
        with self.db.session() as session:
            row = session.get(MethodDeferral, (self.portal.id, method.lower()))
            if row is None:
                session.add(
                    MethodDeferral(
                        portal_id=self.portal.id, method=method.lower(), until=until
                    )
                )
            else:
                row.until = until


def _error_code(err: BitrixAPIError) -> str:
    body = err.json_response or {}
    code = body.get("error")
    if isinstance(code, dict):
        code = code.get("code")
    return str(code or "").upper()


def _operating_reset(err: BitrixAPIError) -> datetime:
    now = datetime.now(UTC)
    reset = ((err.json_response or {}).get("time") or {}).get("operating_reset_at")
    if reset:
        try:
            return max(now, datetime.fromtimestamp(float(reset), UTC))
        except (TypeError, ValueError):
            pass
    return now + timedelta(seconds=OPERATION_LIMIT_DEFAULT_SECONDS)

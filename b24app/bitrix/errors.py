"""Errors raised by the portal client, grouped by what the caller should do."""

from __future__ import annotations

from datetime import datetime


class BitrixCallError(Exception):
    """A REST call failed; ``code`` is the Bitrix24 error string (may be "")."""

    def __init__(self, method: str, code: str, description: str, status: int | None):
        self.method = method
        self.code = code
        self.description = description
        self.status = status
        super().__init__(
            f"{method} failed: {code or 'error'} ({status}): {description}"
        )

    @property
    def retryable(self) -> bool:
        """Whether calling again later may succeed (timeouts, 5xx)."""
        return self.status is None or self.status >= 500


class RateLimited(BitrixCallError):
    """The portal answered 503 QUERY_LIMIT_EXCEEDED: back off and retry later."""

    def __init__(self, method: str, retry_after: float):
        super().__init__(method, "QUERY_LIMIT_EXCEEDED", "Too many requests", 503)
        self.retry_after = retry_after


class MethodDeferred(BitrixCallError):
    """The method is blocked by OPERATION_TIME_LIMIT until ``until``."""

    def __init__(self, method: str, until: datetime):
        super().__init__(method, "OPERATION_TIME_LIMIT", f"deferred until {until}", 429)
        self.until = until


class PortalInactive(BitrixCallError):
    """The portal revoked the app or was deleted; no more calls are made to it."""

    def __init__(self, method: str, code: str, description: str):
        super().__init__(method, code, description, 401)

    @property
    def retryable(self) -> bool:
        return False

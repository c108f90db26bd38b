"""Settings of one emulated portal and its OAuth server."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

# Leaky bucket per plan: (leak rate in requests per second, bucket size).
PLAN_LIMITS: dict[str, tuple[float, int]] = {
    "standard": (2.0, 50),
    "enterprise": (5.0, 250),
}

DEFAULT_SCOPES: tuple[str, ...] = (
    "crm",
    "task",
    "im",
    "imopenlines",
    "placement",
    "user",
    "department",
    "booking",
    "imbot",
)


def _new_member_id() -> str:
    return secrets.token_hex(16)


@dataclass
class EmulatorConfig:
    """Settings of the emulated portal; defaults match a standard cloud plan."""

    client_id: str = "local.otklik0000000.00000001"
    client_secret: str = "otklikLocalSecret0000000000000000000000000000000"
    member_id: str = field(default_factory=_new_member_id)
    plan: str = "standard"
    rate: float | None = None
    burst: int | None = None
    token_ttl: int = 3600
    latency_ms: int = 0
    timezone: str = "Europe/Moscow"
    seed: bool = True
    app_handler_url: str | None = None
    app_install_url: str | None = None
    app_install_event_url: str | None = None
    language: str = "ru"
    event_timeout: float = 5.0
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    app_version: int = 1

    def __post_init__(self) -> None:
        if self.plan not in PLAN_LIMITS:
            known = ", ".join(sorted(PLAN_LIMITS))
            raise ValueError(f"Unknown plan {self.plan!r}; use one of: {known}.")
        if len(self.member_id) != 32:
            raise ValueError("member_id must be 32 hex characters.")

    @property
    def effective_rate(self) -> float:
        """Leak rate of the request bucket in requests per second."""
        return float(self.rate) if self.rate is not None else PLAN_LIMITS[self.plan][0]

    @property
    def effective_burst(self) -> int:
        """Bucket size: requests beyond it are rejected with 503."""
        return int(self.burst) if self.burst is not None else PLAN_LIMITS[self.plan][1]

    @property
    def app_status(self) -> str:
        """App status letter: `L` for a local app, `P` (paid) for a market one."""
        return "L" if self.client_id.startswith("local.") else "P"

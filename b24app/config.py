"""Settings read from the environment, with small typed parsers.

Every setting has an ``OTKLIK_`` environment variable. Tests and the CLI pass
their own values through ``create_app(config)``, which override the
environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

DEFAULT_OAUTH_URL = "https://oauth.bitrix.info"


class ConfigError(RuntimeError):
    """A required setting is missing or has an invalid value."""


def _env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _env_float(name: str, default: float) -> float:
    raw = _env_str(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as err:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from err


def _env_int(name: str, default: int) -> int:
    raw = _env_str(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from err


def _env_bool(name: str, default: bool) -> bool:
    raw = _env_str(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _instance_secret(instance_path: Path) -> str:
    """Return the development secret key kept in the instance folder.

    Used only when OTKLIK_SECRET_KEY is unset and OTKLIK_ENV is not
    "production", so a fresh checkout runs without setup while tokens
    stay decryptable across restarts.
    """
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()

    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the settings dict from the environment and ``overrides``."""
    overrides = dict(overrides or {})
    instance_path = Path(
        overrides.get("INSTANCE_PATH")
        or _env_str("OTKLIK_INSTANCE_PATH", str(Path.cwd() / "instance"))
    )
    env = overrides.get("ENV") or _env_str("OTKLIK_ENV", "development")

    config: dict[str, Any] = {
        "ENV": env,
        "INSTANCE_PATH": str(instance_path),
        "DATABASE_URL": _env_str("OTKLIK_DATABASE_URL")
        or _env_str("DATABASE_URL")
        or f"sqlite:///{instance_path / 'otklik.db'}",
        "SECRET_KEY": _env_str("OTKLIK_SECRET_KEY"),
        # The app's keys from the vendor card or the local-app form.
        "CLIENT_ID": _env_str("OTKLIK_CLIENT_ID", ""),
        "CLIENT_SECRET": _env_str("OTKLIK_CLIENT_SECRET", ""),
        # Base URL of the Bitrix24 OAuth server, without a trailing slash.
        "OAUTH_URL": _env_str("OTKLIK_OAUTH_URL", DEFAULT_OAUTH_URL),
        # A CA bundle trusted for calls to portals (the emulator's test CA).
        "CA_BUNDLE": _env_str("OTKLIK_CA_BUNDLE"),
        # The URL under which portals reach this app; handlers are bound to it.
        "PUBLIC_URL": _env_str("OTKLIK_PUBLIC_URL", "http://127.0.0.1:5000"),
        "REST_CONNECT_TIMEOUT": _env_float("OTKLIK_REST_CONNECT_TIMEOUT", 3.05),
        "REST_READ_TIMEOUT": _env_float("OTKLIK_REST_READ_TIMEOUT", 10.0),
        # Leaky-bucket limits per portal: 2 req/s with a burst of 50 on
        # ordinary plans, 5 req/s with 250 on Enterprise.
        "RATE_LIMIT": _env_float("OTKLIK_RATE_LIMIT", 2.0),
        "RATE_BURST": _env_int("OTKLIK_RATE_BURST", 50),
        # Chart.js: a pinned CDN copy with its integrity hash, unless a local
        # copy is configured (on-premise portals, closed networks, tests).
        "CHARTJS_URL": _env_str("OTKLIK_CHARTJS_URL"),
        "BX24_JS_URL": _env_str("OTKLIK_BX24_JS_URL", "//api.bitrix24.com/api/v1/"),
        "WORKER_POLL_SECONDS": _env_float("OTKLIK_WORKER_POLL_SECONDS", 0.2),
        "SLA_SWEEP_SECONDS": _env_float("OTKLIK_SLA_SWEEP_SECONDS", 2.0),
        "RECONCILE_SECONDS": _env_float("OTKLIK_RECONCILE_SECONDS", 600.0),
        "KPI_IMPORT_SECONDS": _env_float("OTKLIK_KPI_IMPORT_SECONDS", 30.0),
        "KPI_RECONCILE_SECONDS": _env_float("OTKLIK_KPI_RECONCILE_SECONDS", 3600.0),
        "KPI_ROLLUP_SECONDS": _env_float("OTKLIK_KPI_ROLLUP_SECONDS", 600.0),
        "RUN_MIGRATIONS": _env_bool("OTKLIK_RUN_MIGRATIONS", True),
        "LOG_LEVEL": _env_str("OTKLIK_LOG_LEVEL", "INFO"),
    }
    config.update(overrides)

    if not config["SECRET_KEY"]:
        if config["ENV"] == "production":
            raise ConfigError(
                "OTKLIK_SECRET_KEY is not set: production needs a stable secret "
                "to encrypt portal tokens; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        config["SECRET_KEY"] = _instance_secret(instance_path)

    config["OAUTH_URL"] = str(config["OAUTH_URL"]).rstrip("/")
    config["PUBLIC_URL"] = str(config["PUBLIC_URL"]).rstrip("/")
    return config

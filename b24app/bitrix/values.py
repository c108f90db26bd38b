"""Field values as Bitrix24 REST returns them: IDs and times as strings."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def optional_id(value: Any) -> int | None:
    """Return an ID field as an int, or None for an empty or zero ID."""
    try:
        return int(value) if value not in (None, "", "0", 0) else None
    except (TypeError, ValueError):
        return None


def aware_time(value: Any) -> datetime | None:
    """Parse an ISO time with an offset; return None for empty, invalid or naive."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None

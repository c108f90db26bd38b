"""Managers' names for the KPI charts, read from the portal's user list.

The list comes from ``b24app.sla.settings.portal_users``, which caches it per
portal for ``USERS_CACHE_SECONDS``. A failed read is remembered here for
``RETRY_SECONDS``, so an unreachable portal costs one REST call per minute
instead of one per report request. Until then the tab labels managers by
their ID.
"""

from __future__ import annotations

import logging
import threading
import time as monotonic_time
from collections.abc import Iterable

from b24app.bitrix.errors import BitrixCallError
from b24app.models import Portal
from b24app.services import Services
from b24app.sla import settings as sla_settings

logger = logging.getLogger(__name__)

RETRY_SECONDS = 60

_failed_at: dict[str, float] = {}
_lock = threading.Lock()


def manager_names(
    services: Services, portal: Portal, keys: Iterable[str]
) -> dict[str, str] | None:
    """Map the numeric user IDs among ``keys`` to names, or return None on failure.

    Users missing from the portal's active users (dismissed, or beyond the
    first ``sla_settings.MAX_USERS``) are left out of the map.
    """
    ids = {key for key in keys if str(key).isdigit()}
    if not ids:
        return {}

    with _lock:
        failed_at = _failed_at.get(portal.member_id)
    if failed_at is not None and monotonic_time.monotonic() - failed_at < RETRY_SECONDS:
        return None

    try:
        users = sla_settings.portal_users(services, portal)
    except BitrixCallError as err:
        logger.warning(
            "manager names not loaded: user.get failed for portal %s: %s",
            portal.member_id,
            err.code,
        )
        with _lock:
            _failed_at[portal.member_id] = monotonic_time.monotonic()
        return None

    with _lock:
        _failed_at.pop(portal.member_id, None)
    by_id = {str(user["id"]): user["name"] for user in users}
    return {
        key: by_id[key]
        for key in sorted(ids)
        if key in by_id and by_id[key] != f"#{key}"
    }

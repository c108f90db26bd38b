"""Managers' names for the KPI charts, read from the portal's user list.

Active users come from ``b24app.sla.settings.portal_users``, which caches
them per portal for ``USERS_CACHE_SECONDS``. A manager who left the portal
is not among them. The IDs still unknown are read with one more
``user.get`` call filtered to dismissed users (``ACTIVE`` "N"), cached here
for the same time. Their names carry a "left" mark in the viewer's language.

A failed read is remembered for ``RETRY_SECONDS``, so an unreachable portal
costs one REST call per minute instead of one per report request. Until
then the tab labels managers by their ID.
"""

from __future__ import annotations

import logging
import threading
import time as monotonic_time
from collections.abc import Iterable
from typing import Any

from b24app.bitrix.errors import BitrixCallError
from b24app.models import Portal
from b24app.services import Services
from b24app.sla import settings as sla_settings

logger = logging.getLogger(__name__)

RETRY_SECONDS = 60
# user.get returns at most 50 users per page.
PAGE_SIZE = 50

# The mark after the name of a user who left, by language and PERSONAL_GENDER.
LEFT_MARKS = {
    "ru": {"F": "уволена", "M": "уволен", "": "уволен(а)"},
    "en": {"F": "left", "M": "left", "": "left"},
}

_failed_at: dict[str, float] = {}
# Per portal: when read, and the dismissed users found by ID. An ID read
# and not found maps to None, so it is not requested again until expiry.
_inactive_cache: dict[str, tuple[float, dict[int, dict[str, str] | None]]] = {}
_lock = threading.Lock()


def manager_names(
    services: Services, portal: Portal, keys: Iterable[str], lang: str = "ru"
) -> dict[str, str] | None:
    """Map the numeric user IDs among ``keys`` to names, or return None on failure.

    A dismissed user's name ends with the mark of ``LEFT_MARKS`` in ``lang``
    ("Анна Петрова (уволена)"). Users the portal does not return (deleted,
    or beyond the first ``sla_settings.MAX_USERS`` active users) are left
    out of the map.
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
        by_id = {str(user["id"]): user["name"] for user in users}
        unknown = sorted(int(key) for key in ids if key not in by_id)
        inactive = inactive_users(services, portal, unknown) if unknown else {}
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

    marks = LEFT_MARKS["en" if lang == "en" else "ru"]
    for user_id, user in inactive.items():
        mark = marks.get(user["gender"], marks[""])
        by_id[str(user_id)] = f"{user['name']} ({mark})"
    return {
        key: by_id[key]
        for key in sorted(ids)
        if key in by_id and not by_id[key].startswith(f"#{key}")
    }


def inactive_users(
    services: Services, portal: Portal, user_ids: list[int]
) -> dict[int, dict[str, str]]:
    """Return the dismissed users among ``user_ids``: name and gender by ID.

    Reads only the IDs not cached in the last ``USERS_CACHE_SECONDS``, with
    one ``user.get`` call per 50 IDs. Raises BitrixCallError when a call fails.
    """
    now = monotonic_time.monotonic()
    with _lock:
        cached_at, cached = _inactive_cache.get(portal.member_id, (now, {}))
    if now - cached_at >= sla_settings.USERS_CACHE_SECONDS:
        cached_at, cached = now, {}
    missing = [user_id for user_id in user_ids if user_id not in cached]

    if missing:
        found = _read_inactive(services, portal, missing)
        cached = dict(cached)
        for user_id in missing:
            cached[user_id] = found.get(user_id)
        with _lock:
            _inactive_cache[portal.member_id] = (cached_at, cached)
        logger.info(
            "dismissed users read for portal %s: %d of %d IDs found",
            portal.member_id,
            len(found),
            len(missing),
        )

    return {
        user_id: cached[user_id]
        for user_id in user_ids
        if cached.get(user_id) is not None
    }


def _read_inactive(
    services: Services, portal: Portal, user_ids: list[int]
) -> dict[int, dict[str, str]]:
    client = services.client(portal)
    found: dict[int, dict[str, str]] = {}
    for first in range(0, len(user_ids), PAGE_SIZE):
        chunk = user_ids[first : first + PAGE_SIZE]
        # NOTE: the user.get docs (b24restdocs api-reference/user/user-get.md)
        # describe only ACTIVE=true, which excludes dismissed users. "N" for
        # the dismissed ones follows the Y/N user field and was checked
        # against the emulator only, not a live portal.
        response = client.call_raw(
            "user.get", {"filter": {"@ID": chunk, "ACTIVE": "N"}}
        )
        for row in response.get("result") or []:
            found[int(row["ID"])] = _user_entry(row)
    return found


def _user_entry(row: dict[str, Any]) -> dict[str, str]:
    gender = str(row.get("PERSONAL_GENDER") or "").upper()
    return {
        "name": sla_settings.user_name(row),
        "gender": gender if gender in ("F", "M") else "",
    }

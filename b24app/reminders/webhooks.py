"""Authentication of SMS provider callbacks (replies and delivery reports).

The owner pastes a callback URL with HTTP Basic credentials,
``https://otklik:<secret>@host/bot/sms/<portal id>/reply``. HTTP clients
send the user and password of such a URL as an ``Authorization`` header,
so the secret appears neither in the request line nor in web server access
logs. A generic provider may instead sign the raw request body:
``X-Otklik-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the
secret>``. A request passes when either credential matches; both are
compared in constant time.

Earlier versions put the Telegram secret token in the path
(``/bot/sms/<portal id>/<secret>/reply``). Such URLs are accepted until
LEGACY_URLS_UNTIL, and for each callback only until the provider first
calls the new URL, because access logs may hold that secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select

from b24app.crypto import same_secret
from b24app.models import Portal
from b24app.reminders import config
from b24app.services import Services

logger = logging.getLogger(__name__)

CALLBACKS = ("reply", "status")
BASIC_USER = "otklik"
SIGNATURE_HEADER = "X-Otklik-Signature"
SIGNATURE_PREFIX = "sha256="
# Old URLs with the secret in the path stop working at this time.
LEGACY_URLS_UNTIL = datetime(2027, 1, 4, tzinfo=UTC)
# Portal setting with the state of each callback:
# {"reply": {"migrated": bool, "legacy_at": ISO time of the last old-URL call}}.
STATE_KEY = "sms_callbacks"
# The time of an old-URL call is stored at most this often per callback.
LEGACY_NOTE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    status: int = 200
    error: str = ""
    # Which credential matched: "basic" or "signature".
    method: str = ""


def callback_url(base: str, portal_id: int, secret: str, callback: str) -> str:
    """Build the callback URL to paste into the provider, credentials included."""
    parts = urlsplit(base.rstrip("/"))
    netloc = f"{BASIC_USER}:{secret}@{parts.netloc}"
    path = f"{parts.path}/bot/sms/{portal_id}/{callback}"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def signature(secret: str, body: bytes) -> str:
    """Return the ``X-Otklik-Signature`` value for a request body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def check_request(
    secret: str | None,
    *,
    basic_password: str | None,
    has_authorization: bool,
    signature_header: str | None,
    body: bytes,
) -> AuthResult:
    """Decide whether a callback request carries the portal's SMS secret."""
    if not secret:
        return AuthResult(
            False,
            401,
            "SMS callbacks are not set up for this portal: copy the callback "
            "URL from the reminder settings into the provider",
        )
    if basic_password is not None and same_secret(basic_password, secret):
        return AuthResult(True, method="basic")
    if signature_header is not None:
        if same_secret(signature_header.strip(), signature(secret, body)):
            return AuthResult(True, method="signature")
        return AuthResult(
            False,
            403,
            f"{SIGNATURE_HEADER} does not match: expected sha256=<hex HMAC-SHA256 "
            "of the raw body keyed with the callback secret>",
        )
    if has_authorization:
        return AuthResult(
            False,
            401,
            "wrong callback credentials: copy the callback URL with its user "
            "and password from the reminder settings",
        )
    return AuthResult(
        False,
        401,
        "missing credentials: use the callback URL with user and password from "
        f"the reminder settings or sign the body in {SIGNATURE_HEADER}",
    )


def legacy_open(settings: dict[str, Any], callback: str, now: datetime) -> bool:
    """Return whether the old path-secret URL of a callback is still accepted."""
    if now >= LEGACY_URLS_UNTIL:
        return False
    state = (settings.get(STATE_KEY) or {}).get(callback) or {}
    return not state.get("migrated")


def record_call(
    services: Services, portal: Portal, callback: str, *, legacy: bool
) -> None:
    """Store that a callback used the new URL, or when it last used the old one.

    A first call to the new URL closes the old one for that callback. The
    settings row is written only when the stored state changes, or once per
    LEGACY_NOTE_EVERY for old-URL calls, so a busy provider does not lock it.
    """
    now = datetime.now(UTC)
    state = (config.settings(portal).get(STATE_KEY) or {}).get(callback) or {}
    if not legacy and state.get("migrated"):
        return
    if legacy and not _note_due(state.get("legacy_at"), now):
        return

    with services.db.session() as session:
        row = session.scalars(
            select(Portal).where(Portal.id == portal.id).with_for_update()
        ).one()
        stored = dict(row.settings or {})
        reminders = dict(stored.get("reminders") or {})
        callbacks = dict(reminders.get(STATE_KEY) or {})
        current = dict(callbacks.get(callback) or {})
        if legacy:
            current["legacy_at"] = now.isoformat()
        else:
            current["migrated"] = True
        callbacks[callback] = current
        reminders[STATE_KEY] = callbacks
        stored["reminders"] = reminders
        row.settings = stored
    if not legacy:
        logger.info(
            "SMS %s callback moved to the new URL, so its old URL is closed",
            callback,
            extra={"portal_id": portal.id},
        )


def legacy_notes(settings: dict[str, Any]) -> list[str]:
    """Warn the owner about callbacks that still use an old URL."""
    notes = []
    callbacks = settings.get(STATE_KEY) or {}
    for callback in CALLBACKS:
        state = callbacks.get(callback) or {}
        if state.get("legacy_at") and not state.get("migrated"):
            notes.append(
                f"SMS-провайдер присылает {_LABELS[callback]} на старый адрес с "
                "секретом в пути. Вставьте в кабинет провайдера новый адрес из "
                f"настроек: старый перестанет работать "
                f"{LEGACY_URLS_UNTIL:%d.%m.%Y}. / The SMS provider still calls "
                f"the old {callback} URL with the secret in its path. Paste the new "
                "URL from the settings into the provider: the old one stops "
                f"working on {LEGACY_URLS_UNTIL:%Y-%m-%d}."
            )
    return notes


_LABELS = {"reply": "ответы клиентов", "status": "отчёты о доставке"}


def _note_due(last: Any, now: datetime) -> bool:
    if not isinstance(last, str):
        return True
    try:
        stamp = datetime.fromisoformat(last)
    except ValueError:
        return True
    return now - stamp >= LEGACY_NOTE_EVERY

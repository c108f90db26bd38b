"""Outgoing event delivery: one form-encoded POST per bound handler.

Bodies are built like PHP `http_build_query` (upper-case event name, strings
only, nulls left out). A single background thread sends them in order, with a
timeout and no retries. Events raised before the install is finished are
dropped, as a portal does not send events to a half-installed app.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from .params import http_build_query

if TYPE_CHECKING:
    from .oauth import AccessToken
    from .state import Portal

logger = logging.getLogger(__name__)

# Observed on Bitrix24 callbacks; whether event POSTs use it is not documented.
USER_AGENT = "Bitrix24 Webhook Engine"

# Events whose `auth` carries a refresh token.
EVENTS_WITH_REFRESH_TOKEN = frozenset(
    {"ONAPPINSTALL", "ONAPPUPDATE", "ONAPPTEST", "ONOFFLINEEVENT"}
)


@dataclass(frozen=True)
class Actor:
    """Author of a change: a user (with the token used, if any) or automation."""

    user_id: int | None
    access_token: str | None = None

    @property
    def is_automation(self) -> bool:
        return self.user_id is None


AUTOMATION = Actor(user_id=None)


@dataclass
class Delivery:
    """One queued POST."""

    event: str
    url: str
    body: str
    handler_id: int | None


def is_loopback_url(url: str) -> bool:
    """Tell whether a URL points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_session() -> requests.Session:
    """Build a session that ignores proxy settings, so loopback traffic stays local.

    TLS verification still honours REQUESTS_CA_BUNDLE / SSL_CERT_FILE.
    """
    session = requests.Session()
    session.trust_env = False
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True
    )
    return session


class EventDispatcher:
    """Builds event payloads and posts them from a background thread."""

    def __init__(self, portal: Portal) -> None:
        self._portal = portal
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._session = loopback_session()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="emulator-events", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=self._portal.config.event_timeout + 2)
        self._thread = None

    # ------------------------------------------------------------ payloads

    def auth_block(
        self,
        *,
        access: AccessToken | None,
        refresh_token: str | None = None,
    ) -> dict[str, Any]:
        """Build `auth[...]`. Without a token only the portal keys are present."""
        portal = self._portal
        config = portal.config
        block: dict[str, Any] = {}
        if access is not None:
            block.update(
                {
                    "access_token": access.value,
                    "expires": int(access.expires_at),
                    "expires_in": config.token_ttl,
                    "scope": ",".join(config.scopes),
                }
            )
        block.update(
            {
                "domain": portal.domain,
                "server_endpoint": portal.server_endpoint,
                "status": config.app_status,
                "client_endpoint": portal.client_endpoint,
                "member_id": config.member_id,
            }
        )
        if access is not None:
            block["user_id"] = access.user_id
            if refresh_token:
                block["refresh_token"] = refresh_token
        block["application_token"] = portal.app.application_token
        return block

    def _access_for(self, binding: dict, actor: Actor) -> AccessToken | None:
        tokens = self._portal.tokens
        bound_user = int(binding.get("auth_type") or 0)
        if bound_user:
            return tokens.token_for_user(bound_user)
        if actor.is_automation:
            return None
        if actor.access_token:
            access = tokens.lookup(actor.access_token)
            if access is not None:
                return access
        return tokens.token_for_user(actor.user_id)

    def _payload(
        self,
        event: str,
        data: Any,
        auth: dict[str, Any],
        handler_id: int | None,
    ) -> str:
        body: dict[str, Any] = {"event": event}
        if handler_id is not None:
            body["event_handler_id"] = handler_id
        body["data"] = data
        body["ts"] = int(self._portal.time())
        body["auth"] = auth
        return http_build_query(body)

    # ------------------------------------------------------------ sending

    def fire(self, event: str, data: Any, actor: Actor) -> int:
        """Queue the event for every online handler bound to it; return the count."""
        event = event.upper()
        portal = self._portal
        if not portal.installed:
            logger.debug("event %s dropped: install not finished", event)
            return 0

        with portal.lock:
            bindings = [
                binding
                for binding in portal.event_bindings.data.values()
                if binding["event"] == event and not binding["offline"]
            ]
        for binding in bindings:
            access = self._access_for(binding, actor)
            body = self._payload(
                event, data, self.auth_block(access=access), binding["id"]
            )
            self._queue.put(Delivery(event, binding["handler"], body, binding["id"]))
        return len(bindings)

    def send(
        self,
        event: str,
        url: str,
        data: Any,
        auth: dict[str, Any],
        handler_id: int | None = None,
    ) -> None:
        """Queue one event for one URL with a ready `auth` block."""
        body = self._payload(event.upper(), data, auth, handler_id)
        self._queue.put(Delivery(event.upper(), url, body, handler_id))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery was attempted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                if delivery is None:
                    return
                self._deliver(delivery)
            finally:
                self._queue.task_done()

    def _deliver(self, delivery: Delivery) -> None:
        if not is_loopback_url(delivery.url):
            logger.warning(
                "event %s not sent: handler is not on loopback", delivery.event
            )
            self._portal.record_delivery(
                delivery.event, delivery.url, "refused: handler is not on loopback"
            )
            return
        try:
            response = self._session.post(
                delivery.url,
                data=delivery.body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "User-Agent": USER_AGENT,
                },
                timeout=self._portal.config.event_timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            logger.warning("event %s delivery timed out", delivery.event)
            self._portal.record_delivery(delivery.event, delivery.url, "timeout")
            return
        except requests.RequestException as error:
            logger.warning("event %s delivery failed: %s", delivery.event, error)
            self._portal.record_delivery(
                delivery.event, delivery.url, f"error: {type(error).__name__}"
            )
            return
        logger.debug(
            "event %s delivered: HTTP %s", delivery.event, response.status_code
        )
        self._portal.record_delivery(delivery.event, delivery.url, response.status_code)

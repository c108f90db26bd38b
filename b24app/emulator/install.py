"""App install, uninstall and iframe openings, as a user's browser does them.

The install wizard and every placement get one POST. DOMAIN, PROTOCOL, LANG
and APP_SID are in the query string. Tokens, endpoints, PLACEMENT and
PLACEMENT_OPTIONS are in the form body. A 200 page that calls
`BX24.installFinish()` counts as a browser that ran that script.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

import requests

from .events import is_loopback_url, loopback_session

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

# The installer runs the app's REST calls inside the request, so allow time.
FRAME_TIMEOUT_SECONDS = 30.0
MAX_REDIRECTS = 5
_INSTALL_FINISH = re.compile(r"(?:BX24|\$b24)\.installFinish\(\s*\)")


@dataclass
class InstallResult:
    """Installer page response and whether the install finished."""

    status_code: int | None
    body: str
    installed: bool


def _require_loopback(url: str) -> None:
    if not is_loopback_url(url):
        raise ValueError(
            f"The emulator only opens app pages on loopback addresses, not {url!r}."
        )


def _with_query(url: str, query: Mapping[str, str]) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(query)}"


def frame_fields(
    portal: Portal,
    *,
    user_id: int,
    placement: str,
    options: Mapping[str, Any] | None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Return the query string and form body of an iframe POST for ``user_id``."""
    pair = portal.tokens.issue(user_id)
    config = portal.config
    query = {
        "DOMAIN": portal.domain or "",
        "PROTOCOL": "1",
        "LANG": config.language,
        "APP_SID": secrets.token_hex(16),
    }
    form = {
        "AUTH_ID": pair.access.value,
        "AUTH_EXPIRES": str(config.token_ttl),
        "REFRESH_ID": pair.refresh_token,
        "SERVER_ENDPOINT": portal.server_endpoint,
        "APPLICATION_TOKEN": portal.app.application_token,
        "APPLICATION_SCOPE": ",".join(config.scopes),
        "member_id": config.member_id,
        "status": config.app_status,
        "PLACEMENT": placement,
        "PLACEMENT_OPTIONS": _options_json(options),
    }
    return query, form


def frame_post(
    portal: Portal,
    url: str,
    *,
    user_id: int,
    placement: str,
    options: Mapping[str, Any] | None,
) -> requests.Response:
    """POST an app page the way the portal's iframe does; follow loopback redirects."""
    _require_loopback(url)
    query, form = frame_fields(
        portal, user_id=user_id, placement=placement, options=options
    )

    session = loopback_session()
    response = session.post(
        _with_query(url, query),
        data=form,
        timeout=FRAME_TIMEOUT_SECONDS,
        allow_redirects=False,
    )
    for _ in range(MAX_REDIRECTS):
        location = response.headers.get("Location")
        if not response.is_redirect or not location:
            break
        target = urljoin(response.url, location)
        _require_loopback(target)
        response = session.get(
            target, timeout=FRAME_TIMEOUT_SECONDS, allow_redirects=False
        )
    return response


def _options_json(options: Mapping[str, Any] | None) -> str:
    """Encode PLACEMENT_OPTIONS as a JSON string whose scalar values are strings."""
    if not options:
        return ""
    encoded = {
        str(key): value if isinstance(value, dict | list) else str(value)
        for key, value in options.items()
    }
    return json.dumps(encoded)


def install_app(
    portal: Portal,
    handler_url: str | None = None,
    install_url: str | None = None,
) -> InstallResult:
    """Install the app as the portal owner.

    With an installer URL the portal opens it in the frame and waits for
    `BX24.installFinish()`. Without one (an app with no UI) the install
    finishes at once. Then ONAPPINSTALL goes to the install event URL from
    the config and to the ONAPPINSTALL handlers bound during the install.
    """
    target = begin_install(portal, handler_url, install_url)
    if target is None:
        logger.info("app without installer page: install finished at once")
        finish_install(portal)
        return InstallResult(status_code=None, body="", installed=True)

    response = frame_post(
        portal, target, user_id=portal.owner_id, placement="DEFAULT", options=None
    )
    finished = response.status_code == 200 and bool(
        _INSTALL_FINISH.search(response.text)
    )
    logger.info(
        "installer page responded with HTTP %s, install finished: %s",
        response.status_code,
        finished,
    )
    if finished:
        finish_install(portal)
    return InstallResult(
        status_code=response.status_code, body=response.text, installed=finished
    )


def begin_install(
    portal: Portal, handler_url: str | None, install_url: str | None
) -> str | None:
    """Add the app to the portal as not yet installed; return its installer URL.

    URLs left out come from the emulator config. None means the app has no
    installer page, so nothing has to call `BX24.installFinish()`.
    """
    config = portal.config
    for url in (handler_url, install_url):
        if url:
            _require_loopback(url)
    with portal.lock:
        if not portal.app.present:
            portal.app.application_token = secrets.token_hex(16)
        portal.app.present = True
        portal.app.installed = False
        portal.app.handler_url = handler_url or config.app_handler_url
        portal.app.install_url = install_url or config.app_install_url
        target = portal.app.install_url
        portal.touch()
    return target


def finish_install(portal: Portal) -> None:
    """Mark the app installed and send ONAPPINSTALL, as `installFinish` does."""
    config = portal.config
    with portal.lock:
        portal.app.installed = True
        portal.touch()
        bound = [
            (binding["handler"], binding["id"])
            for binding in portal.event_bindings.data.values()
            if binding["event"] == "ONAPPINSTALL" and not binding["offline"]
        ]

    targets: list[tuple[str, int]] = []
    if config.app_install_event_url:
        targets.append((config.app_install_event_url, portal.next_id("event_binding")))
    targets.extend(item for item in bound if item[0] != config.app_install_event_url)

    data = {
        "VERSION": config.app_version,
        "ACTIVE": "Y",
        "INSTALLED": "Y",
        "LANGUAGE_ID": config.language,
    }
    for url, handler_id in targets:
        pair = portal.tokens.issue(portal.owner_id)
        auth = portal.events.auth_block(
            access=pair.access, refresh_token=pair.refresh_token
        )
        portal.events.send("ONAPPINSTALL", url, data, auth, handler_id)


def uninstall_app(portal: Portal, clean: bool) -> None:
    """Remove the app: ONAPPUNINSTALL without tokens, then drop its handlers.

    With `clean` the app options are deleted as well; without it they
    survive a later reinstall.
    """
    with portal.lock:
        if not portal.app.present:
            return
        was_installed = portal.app.installed
        bound = [
            (binding["handler"], binding["id"])
            for binding in portal.event_bindings.data.values()
            if binding["event"] == "ONAPPUNINSTALL" and not binding["offline"]
        ]

    if was_installed:
        data = {"LANGUAGE_ID": portal.config.language, "CLEAN": 1 if clean else 0}
        auth = portal.events.auth_block(access=None)
        for url, handler_id in bound:
            portal.events.send("ONAPPUNINSTALL", url, data, auth, handler_id)

    with portal.lock:
        portal.event_bindings.data.clear()
        portal.placements.data.clear()
        if clean:
            portal.app_options.data.clear()
            portal.user_options.data.clear()
        portal.app.installed = False
        portal.app.present = False
        portal.touch()
    portal.tokens.revoke_all()
    logger.info("app uninstalled (clean=%s)", clean)


def open_placement(
    portal: Portal,
    code: str,
    options: Mapping[str, Any] | None,
    user_id: int | None,
    handler: str | None,
) -> requests.Response:
    """Open a bound placement (or DEFAULT, the main app page) for a user."""
    code = code.upper()
    user = int(user_id) if user_id is not None else portal.owner_id
    if not portal.installed:
        raise RuntimeError("The app install is not finished; placements are hidden.")

    if code == "DEFAULT":
        url = handler or portal.app.handler_url
        if not url:
            raise LookupError("The app has no handler URL for its main page.")
    else:
        with portal.lock:
            candidates = [
                item
                for item in sorted(
                    portal.placements.data.values(), key=lambda p: p["id"]
                )
                if item["placement"] == code
                and item["userId"] in (0, user)
                and (handler is None or item["handler"] == handler)
            ]
        if not candidates:
            raise LookupError(f"No handler is bound to placement {code}.")
        url = candidates[0]["handler"]

    return frame_post(portal, url, user_id=user, placement=code, options=options)

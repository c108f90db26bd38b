"""Portal pages for people: the app's install page and placements in an iframe.

``/_emulator/ui/placement/<CODE>`` renders a portal-like page whose iframe
receives the same POST a real portal sends (query string DOMAIN, PROTOCOL,
LANG, APP_SID; form body AUTH_ID, REFRESH_ID, member_id, PLACEMENT,
PLACEMENT_OPTIONS ...), submitted by the browser itself through a hidden
form. The frame's origin is the app's, the page's origin is the portal's,
so the app's frame-ancestors policy is exercised for real.

``/_emulator/ui/install`` starts an install as the portal owner and shows
the app's installer page the same way, with PLACEMENT=DEFAULT. The install
finishes only when that page calls ``BX24.installFinish()``. Then the portal
page opens the app's main page in place of the installer.

App pages that load ``/_emulator/ui/bx24.js`` get a BX24 library stub whose
commands (installFinish, resizeWindow, fitWindow) reach the portal page
through ``postMessage``; see `bx24js`.
"""

from __future__ import annotations

import json
import logging
from html import escape
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from .bx24js import HOST_BRIDGE_JS, STUB_JS
from .install import _with_query, begin_install, finish_install, frame_fields
from .state import Portal

logger = logging.getLogger(__name__)

bp = Blueprint("emulator_ui", __name__, url_prefix="/_emulator/ui")

MAIN_PAGE_PATH = "/_emulator/ui/placement/DEFAULT"
FINISH_PATH = "/_emulator/ui/install/finish"

_PAGE = """<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>{title} — эмулятор портала Битрикс24</title>
<style>
 body {{ margin: 0; font: 14px Arial, sans-serif; background: #eef2f4; }}
 header {{ background: #2fc6f6; color: #fff; padding: 10px 16px; font-weight: 600; }}
 nav {{ padding: 6px 16px; }} nav a {{ margin-right: 12px; color: #1f6ab0; }}
 #frame-status {{ padding: 0 16px 6px; color: #525c69; }}
 #frame-status:empty {{ display: none; }}
 iframe {{ display: block; width: calc(100% - 32px); height: 900px; margin: 0 16px;
          border: 1px solid #d5dbe0; background: #fff; }}
</style></head>
<body>
<header>Эмулятор портала {domain} · {title}</header>
<nav>{links}</nav>
<div id="frame-status">{status}</div>
<form id="frame-post" method="post" target="app-frame" action="{action}">{fields}</form>
<iframe name="app-frame" id="app-frame" title="{title}"></iframe>
<script type="application/json" id="frame-data">{frame_data}</script>
<script>{bridge}</script>
<script>document.getElementById("frame-post").submit();</script>
</body></html>
"""


def _portal() -> Portal:
    return current_app.extensions["emulator"]


@bp.get("/bx24.js")
def bx24_js():
    """Serve the BX24 library stub that app pages load inside the iframe."""
    return Response(STUB_JS, mimetype="text/javascript")


@bp.get("/placement/<code>")
def placement(code: str):
    """Show the app's handler for placement ``code`` the way the portal does."""
    portal = _portal()
    code = code.upper()
    try:
        user_id = int(request.args.get("user_id") or portal.owner_id)
        options = json.loads(request.args.get("options") or "{}")
    except ValueError as err:
        logger.info("placement page %s rejected: %s", code, err)
        return f"Invalid user_id or options (options must be JSON): {err}", 400
    if not portal.installed:
        return "The app is not installed on this portal yet.", 409

    handler = _handler_for(portal, code, user_id)
    if handler is None:
        return f"No handler is bound to placement {escape(code)}.", 404

    return _frame_page(
        portal,
        title=code,
        url=handler,
        user_id=user_id,
        placement=code,
        options=options,
        installing=False,
    )


@bp.get("/install")
def install():
    """Install the app as the portal owner through its installer page.

    ``handler_url`` and ``install_url`` in the query string override the
    emulator config. An app without an installer page is installed at once
    and its main page opens.
    """
    portal = _portal()
    try:
        target = begin_install(
            portal, request.args.get("handler_url"), request.args.get("install_url")
        )
    except ValueError as err:
        logger.warning("install page rejected on %s: %s", portal.domain, err)
        return escape(str(err)), 400

    if target is None:
        logger.info("app without installer page on %s: installed", portal.domain)
        finish_install(portal)
        return redirect(MAIN_PAGE_PATH)

    logger.info("installer page opened in the portal frame on %s", portal.domain)
    return _frame_page(
        portal,
        title="Установка приложения",
        url=target,
        user_id=portal.owner_id,
        placement="DEFAULT",
        options=None,
        installing=True,
    )


@bp.post("/install/finish")
def install_finish():
    """Finish a pending install. The install page posts here on installFinish."""
    portal = _portal()
    if not portal.app_present:
        logger.info("installFinish on %s without an install", portal.domain)
        description = "No install is in progress. Open /_emulator/ui/install first."
        return jsonify(error="not_found", error_description=description), 404
    if portal.installed:
        logger.info("installFinish on %s after the install", portal.domain)
        description = "The app is already installed, so installFinish has no effect."
        return jsonify(error="conflict", error_description=description), 409

    finish_install(portal)
    logger.info("install finished from the installer page on %s", portal.domain)
    return jsonify(installed=True)


def _frame_page(
    portal: Portal,
    *,
    title: str,
    url: str,
    user_id: int,
    placement: str,
    options: dict[str, Any] | None,
    installing: bool,
) -> str:
    """Render the portal page that POSTs the frame fields to ``url`` in an iframe."""
    query, form = frame_fields(
        portal, user_id=user_id, placement=placement, options=options
    )
    fields = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in form.items()
    )
    links = " ".join(
        f'<a href="/_emulator/ui/placement/{escape(item["placement"])}">'
        f"{escape(item.get('title') or item['placement'])}</a>"
        for item in portal.placements.snapshot()
    )
    frame_data = {
        "INSTALL": installing,
        "FINISH_URL": FINISH_PATH,
        "MAIN_PAGE_URL": MAIN_PAGE_PATH,
        "FRAME": {
            "DOMAIN": query["DOMAIN"],
            "LANG": query["LANG"],
            "AUTH_ID": form["AUTH_ID"],
            "AUTH_EXPIRES": form["AUTH_EXPIRES"],
            "REFRESH_ID": form["REFRESH_ID"],
            "member_id": form["member_id"],
            "PLACEMENT": placement,
            "OPTIONS": options or {},
            "IS_ADMIN": portal.is_admin(user_id),
        },
    }
    # "<" is escaped so that no value can close the script element.
    frame_json = json.dumps(frame_data, ensure_ascii=False).replace("<", "\\u003c")
    status = "Ждём BX24.installFinish() от страницы установки…" if installing else ""
    return _PAGE.format(
        lang=escape(portal.config.language),
        title=escape(title),
        domain=escape(portal.domain or ""),
        status=status,
        action=escape(_with_query(url, query)),
        fields=fields,
        links=links,
        frame_data=frame_json,
        bridge=HOST_BRIDGE_JS,
    )


def _handler_for(portal: Portal, code: str, user_id: int) -> str | None:
    if code == "DEFAULT":
        return portal.app.handler_url
    for item in sorted(portal.placements.snapshot(), key=lambda p: p["id"]):
        if item["placement"] == code and item["userId"] in (0, user_id):
            return item["handler"]
    return None

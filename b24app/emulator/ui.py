"""Portal pages for people: a placement shown in an iframe as Bitrix24 does.

``/_emulator/ui/placement/<CODE>`` renders a portal-like page whose iframe
receives the same POST a real portal sends (query string DOMAIN, PROTOCOL,
LANG, APP_SID; form body AUTH_ID, REFRESH_ID, member_id, PLACEMENT,
PLACEMENT_OPTIONS ...), submitted by the browser itself through a hidden
form. The frame's origin is the app's, the page's origin is the portal's,
so the app's frame-ancestors policy is exercised for real.
"""

from __future__ import annotations

import json
from html import escape

from flask import Blueprint, current_app, request

from .install import _with_query, frame_fields
from .state import Portal

bp = Blueprint("emulator_ui", __name__, url_prefix="/_emulator/ui")

_PAGE = """<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>{title} — эмулятор портала Битрикс24</title>
<style>
 body {{ margin: 0; font: 14px Arial, sans-serif; background: #eef2f4; }}
 header {{ background: #2fc6f6; color: #fff; padding: 10px 16px; font-weight: 600; }}
 nav {{ padding: 6px 16px; }} nav a {{ margin-right: 12px; color: #1f6ab0; }}
 iframe {{ display: block; width: calc(100% - 32px); height: 900px; margin: 0 16px;
          border: 1px solid #d5dbe0; background: #fff; }}
</style></head>
<body>
<header>Эмулятор портала {domain} · {title}</header>
<nav>{links}</nav>
<form id="frame-post" method="post" target="app-frame" action="{action}">{fields}</form>
<iframe name="app-frame" id="app-frame" title="{title}"></iframe>
<script>document.getElementById("frame-post").submit();</script>
</body></html>
"""


def _portal() -> Portal:
    return current_app.extensions["emulator"]


@bp.get("/placement/<code>")
def placement(code: str):
    """Show the app's handler for placement ``code`` the way the portal does."""
    portal = _portal()
    code = code.upper()
    user_id = int(request.args.get("user_id") or portal.owner_id)
    options = json.loads(request.args.get("options") or "{}")
    if not portal.installed:
        return "The app is not installed on this portal yet.", 409

    handler = _handler_for(portal, code, user_id)
    if handler is None:
        return f"No handler is bound to placement {escape(code)}.", 404

    query, form = frame_fields(portal, user_id=user_id, placement=code, options=options)
    fields = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in form.items()
    )
    links = " ".join(
        f'<a href="/_emulator/ui/placement/{escape(item["placement"])}">'
        f"{escape(item.get('title') or item['placement'])}</a>"
        for item in portal.placements.snapshot()
    )
    return _PAGE.format(
        lang=escape(portal.config.language),
        title=escape(code),
        domain=escape(portal.domain or ""),
        action=escape(_with_query(handler, query)),
        fields=fields,
        links=links,
    )


def _handler_for(portal: Portal, code: str, user_id: int) -> str | None:
    if code == "DEFAULT":
        return portal.app.handler_url
    for item in sorted(portal.placements.snapshot(), key=lambda p: p["id"]):
        if item["placement"] == code and item["userId"] in (0, user_id):
            return item["handler"]
    return None

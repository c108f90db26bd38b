"""`event.*` and `placement.*`: what the app registers during its install."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ..errors import RestError, argument_error
from ..params import as_dict, get_param
from ..registry import CallContext, rest_method

HANDLER_MAX_LENGTH = 255

# Event name -> scope the app needs to bind it ("basic": always).
EVENT_SCOPES: dict[str, str] = {
    **{
        f"ONCRM{entity}{action}": "crm"
        for entity in ("LEAD", "DEAL", "CONTACT", "COMPANY", "ACTIVITY")
        for action in ("ADD", "UPDATE", "DELETE")
    },
    **{
        f"ONCRM{entity}USERFIELD{action}": "crm"
        for entity in ("LEAD", "DEAL")
        for action in ("ADD", "UPDATE", "DELETE", "SETENUMVALUES")
    },
    "ONCRMDEALMOVETOCATEGORY": "crm",
    "ONCRMTIMELINECOMMENTADD": "crm",
    "ONCRMTIMELINECOMMENTUPDATE": "crm",
    "ONCRMTIMELINECOMMENTDELETE": "crm",
    **{f"ONTASK{action}": "task" for action in ("ADD", "UPDATE", "DELETE")},
    **{f"ONTASKCOMMENT{action}": "task" for action in ("ADD", "UPDATE", "DELETE")},
    **{f"ONBOOKING{action}": "booking" for action in ("ADD", "UPDATE", "DELETE")},
    "ONUSERADD": "user",
    "ONAPPINSTALL": "basic",
    "ONAPPUPDATE": "basic",
    "ONAPPUNINSTALL": "basic",
    "ONAPPPAYMENT": "basic",
    "ONAPPTEST": "basic",
    "ONAPPMETHODCONFIRM": "basic",
    "ONOFFLINEEVENT": "basic",
}

_CRM_PLACEMENT_ENTITIES = (
    "LEAD",
    "DEAL",
    "CONTACT",
    "COMPANY",
    "QUOTE",
    "SMART_INVOICE",
    "ORDER",
)
_CRM_PLACEMENT_KINDS = (
    "DETAIL_TAB",
    "LIST_MENU",
    "LIST_TOOLBAR",
    "DETAIL_TOOLBAR",
    "DETAIL_ACTIVITY",
    "ACTIVITY_TIMELINE_MENU",
)

# Placement code -> tool scope it needs besides `placement` ("basic": none).
PLACEMENT_SCOPES: dict[str, str] = {
    **{
        f"CRM_{entity}_{kind}": "crm"
        for entity in _CRM_PLACEMENT_ENTITIES
        for kind in _CRM_PLACEMENT_KINDS
    },
    "CRM_ACTIVITY_LIST_MENU": "crm",
    "CRM_ANALYTICS_MENU": "crm",
    "CRM_ANALYTICS_TOOLBAR": "crm",
    "LEFT_MENU": "basic",
    "REST_APP_URI": "basic",
    "PAGE_BACKGROUND_WORKER": "basic",
    "USER_PROFILE_MENU": "basic",
    "USER_PROFILE_TOOLBAR": "basic",
    "BI_ANALYTICS_MENU": "basic",
    "IM_TEXTAREA": "im",
    "IM_SIDEBAR": "im",
    "IM_CONTEXT_MENU": "im",
    "IM_NAVIGATION": "im",
    "IM_SMILES_SELECTOR": "im",
    "TASK_VIEW_TAB": "task",
    "TASK_VIEW_SIDEBAR": "task",
    "TASK_VIEW_TOP_PANEL": "task",
    "TASK_LIST_CONTEXT_MENU": "task",
    "CALENDAR_GRIDVIEW": "calendar",
    "CONTACT_CENTER": "contact_center",
}
_DYNAMIC_PLACEMENT = re.compile(
    r"^CRM_DYNAMIC_\d+_(DETAIL_TAB|LIST_MENU|LIST_TOOLBAR|DETAIL_TOOLBAR|DETAIL_ACTIVITY)$"
)
SINGLE_INSTANCE_PLACEMENTS = ("REST_APP_URI", "PAGE_BACKGROUND_WORKER")
USER_MODE_PLACEMENTS = ("PAGE_BACKGROUND_WORKER",)


def validate_handler(handler: Any) -> str:
    """Check a handler URL as the portal does: http(s) and a host with a dot."""
    url = str(handler or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RestError("ERROR_UNSUPPORTED_PROTOCOL")
    if not parts.hostname or "." not in parts.hostname or len(url) > HANDLER_MAX_LENGTH:
        raise RestError("ERROR_WRONG_HANDLER_URL")
    return url


def _lower_params(params: dict) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in params.items()}


# ---------------------------------------------------------------- events


@rest_method("event.bind")
def event_bind(ctx: CallContext, params: dict) -> bool:
    ctx.require_app()
    values = _lower_params(params)
    event = str(values.get("event") or "").strip().upper()
    if not event:
        raise argument_error("EVENT")
    scope = EVENT_SCOPES.get(event)
    if scope is None or (scope != "basic" and scope not in ctx.scopes):
        raise RestError("ERROR_EVENT_NOT_FOUND")

    offline = str(values.get("event_type") or "online").lower() == "offline"
    auth_type = int(str(values.get("auth_type") or 0) or 0)
    connector = str(values.get("auth_connector") or "")
    if offline:
        ctx.require_admin("Offline events binding requires administrator access rights")
        # NOTE: offline bindings are stored and listed, but no offline queue
        # (event.offline.get) is emulated, so changes are not recorded for them.
        handler = ""
    else:
        if not values.get("handler"):
            raise argument_error("HANDLER")
        handler = validate_handler(values.get("handler"))
    if not ctx.is_admin:
        if auth_type not in (0, ctx.user_id):
            ctx.require_admin(
                "Event binding with AUTH_TYPE requires administrator access rights"
            )
        auth_type = ctx.user_id

    portal = ctx.portal
    with portal.lock:
        for binding in portal.event_bindings.data.values():
            same = (
                binding["event"] == event
                and binding["handler"] == handler
                and binding["auth_type"] == auth_type
                and binding["connector"] == connector
                and bool(binding["offline"]) == offline
            )
            if same:
                raise RestError(
                    "ERROR_CORE", "Unable to set event handler: Handler already binded"
                )
        binding_id = portal.next_id("event_binding")
        portal.event_bindings.data[binding_id] = {
            "id": binding_id,
            "event": event,
            "handler": handler,
            "auth_type": auth_type,
            "user_id": ctx.user_id,
            "offline": 1 if offline else 0,
            "connector": connector,
            "options": as_dict(values.get("options")),
        }
        portal.touch()
    return True


@rest_method("event.get")
def event_get(ctx: CallContext, params: dict) -> list[dict]:
    ctx.require_app()
    portal = ctx.portal
    result = []
    with portal.lock:
        bindings = sorted(portal.event_bindings.data.values(), key=lambda b: b["id"])
    for binding in bindings:
        if not ctx.is_admin and binding["user_id"] != ctx.user_id:
            continue
        if binding["offline"]:
            result.append(
                {
                    "event": binding["event"],
                    "connector_id": binding["connector"],
                    "offline": 1,
                }
            )
        else:
            result.append(
                {
                    "event": binding["event"],
                    "handler": binding["handler"],
                    "auth_type": str(binding["auth_type"]),
                    "offline": 0,
                }
            )
    return result


@rest_method("event.unbind")
def event_unbind(ctx: CallContext, params: dict) -> dict:
    ctx.require_app()
    values = _lower_params(params)
    event = str(values.get("event") or "").strip().upper()
    if not event:
        raise argument_error("EVENT")
    offline = str(values.get("event_type") or "online").lower() == "offline"
    handler = str(values.get("handler") or "")
    if not offline and not handler:
        raise argument_error("HANDLER")
    auth_type = int(str(values.get("auth_type") or 0) or 0)
    if not ctx.is_admin:
        auth_type = ctx.user_id

    portal = ctx.portal
    with portal.lock:
        doomed = [
            key
            for key, binding in portal.event_bindings.data.items()
            if binding["event"] == event
            and bool(binding["offline"]) == offline
            and (offline or binding["handler"] == handler)
            and binding["auth_type"] == auth_type
        ]
        for key in doomed:
            del portal.event_bindings.data[key]
        portal.touch()
    return {"count": len(doomed)}


@rest_method("events")
def events(ctx: CallContext, params: dict) -> list[str]:
    ctx.require_app()
    full = str(get_param(params, "full", "")).lower() in ("1", "true", "y")
    return sorted(
        name
        for name, scope in EVENT_SCOPES.items()
        if full or scope == "basic" or scope in ctx.scopes
    )


@rest_method("event.test")
def event_test(ctx: CallContext, params: dict) -> int:
    ctx.require_app()
    ctx.portal.events.fire("ONAPPTEST", {"QUERY": dict(params)}, ctx.actor)
    return 1


# ---------------------------------------------------------------- placements


def _placement_scope(code: str) -> str | None:
    if _DYNAMIC_PLACEMENT.match(code):
        return "crm"
    return PLACEMENT_SCOPES.get(code)


def placement_available(ctx: CallContext, code: str) -> bool:
    scope = _placement_scope(code)
    return scope is not None and (scope == "basic" or scope in ctx.scopes)


@rest_method("placement.bind", "placement")
def placement_bind(ctx: CallContext, params: dict) -> bool:
    ctx.require_app()
    ctx.require_admin()
    values = {str(key).upper(): value for key, value in params.items()}
    code = str(values.get("PLACEMENT") or "").strip().upper()
    if not code:
        raise argument_error("PLACEMENT")
    if code == "DEFAULT":
        raise argument_error("PLACEMENT", "Wrong value")
    if not placement_available(ctx, code):
        raise RestError("ERROR_PLACEMENT_NOT_FOUND")
    if not values.get("HANDLER"):
        raise argument_error("HANDLER")
    handler = validate_handler(values.get("HANDLER"))
    user_id = int(str(values.get("USER_ID") or 0) or 0)
    if user_id and code not in USER_MODE_PLACEMENTS:
        raise RestError("ERROR_PLACEMENT_USER_MODE")

    portal = ctx.portal
    with portal.lock:
        existing = [
            item
            for item in portal.placements.data.values()
            if item["placement"] == code
        ]
        if code in SINGLE_INSTANCE_PLACEMENTS and existing:
            raise RestError("ERROR_PLACEMENT_MAX_COUNT")
        for item in existing:
            if item["handler"] == handler and item["userId"] == user_id:
                raise RestError(
                    "ERROR_CORE",
                    "Unable to set placement handler: Handler already binded",
                )
        placement_id = portal.next_id("placement")
        portal.placements.data[placement_id] = {
            "id": placement_id,
            "placement": code,
            "userId": user_id,
            "handler": handler,
            "title": str(values.get("TITLE") or ""),
            "description": str(values.get("DESCRIPTION") or ""),
            "groupName": str(values.get("GROUP_NAME") or ""),
            "options": as_dict(values.get("OPTIONS")),
            "langAll": as_dict(values.get("LANG_ALL")),
        }
        portal.touch()
    return True


@rest_method("placement.get", "placement")
def placement_get(ctx: CallContext, params: dict) -> list[dict]:
    ctx.require_app()
    ctx.require_admin()
    with ctx.portal.lock:
        items = sorted(ctx.portal.placements.data.values(), key=lambda p: p["id"])
        return [
            {
                "placement": item["placement"],
                "userId": item["userId"],
                "handler": item["handler"],
                "options": item["options"] or [],
                "title": item["title"],
                "description": item["description"],
                "langAll": item["langAll"] or [],
            }
            for item in items
        ]


@rest_method("placement.unbind", "placement")
def placement_unbind(ctx: CallContext, params: dict) -> dict:
    ctx.require_app()
    ctx.require_admin()
    values = {str(key).upper(): value for key, value in params.items()}
    code = str(values.get("PLACEMENT") or "").strip().upper()
    if not code:
        raise argument_error("PLACEMENT")
    handler = str(values.get("HANDLER") or "")
    user_id = values.get("USER_ID")

    portal = ctx.portal
    with portal.lock:
        doomed = [
            key
            for key, item in portal.placements.data.items()
            if item["placement"] == code
            and (not handler or item["handler"] == handler)
            and (user_id in (None, "") or item["userId"] == int(str(user_id)))
        ]
        for key in doomed:
            del portal.placements.data[key]
        portal.touch()
    # The portal counts each found row and each deletion, so 2 per handler.
    return {"count": 2 * len(doomed)}


@rest_method("placement.list", "placement")
def placement_list(ctx: CallContext, params: dict) -> list[str]:
    ctx.require_app()
    full = str(get_param(params, "full", "")).lower() in ("1", "true", "y")
    codes = [
        code for code in PLACEMENT_SCOPES if full or placement_available(ctx, code)
    ]
    return sorted(codes)

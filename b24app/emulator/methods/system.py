"""Basic methods: app and portal info, users, departments, options, scopes."""

from __future__ import annotations

from typing import Any

from ..errors import RestError, argument_error
from ..listing import Page, list_records
from ..params import as_dict, get_param, to_php_json
from ..registry import ALL_SCOPES, METHODS, CallContext, rest_method

_LICENSES = {
    "standard": ("ru_std", "std", "std"),
    "enterprise": ("ru_ent250", "ent250", "ent"),
}

# user.get parameters that are not filter keys.
_USER_GET_CONTROL = {"sort", "order", "filter", "admin_mode", "start", "select"}


def _public_user(user: dict) -> dict:
    return {key: value for key, value in user.items() if key != "IS_ADMIN"}


@rest_method("app.info")
def app_info(ctx: CallContext, params: dict) -> dict:
    portal = ctx.portal
    config = portal.config
    license_code, license_type, license_family = _LICENSES[config.plan]
    if ctx.is_webhook:
        return {"SCOPE": list(ctx.scopes), "LICENSE": license_code}
    return {
        "ID": 1,
        "CODE": config.client_id,
        "VERSION": config.app_version,
        "STATUS": config.app_status,
        "INSTALLED": portal.installed,
        "PAYMENT_EXPIRED": "N",
        "DAYS": None,
        "LANGUAGE_ID": config.language,
        "LICENSE": license_code,
        "LICENSE_TYPE": license_type,
        "LICENSE_FAMILY": license_family,
    }


@rest_method("scope")
def scope(ctx: CallContext, params: dict) -> list[str]:
    full = str(get_param(params, "full", "")).lower() in ("1", "true", "y")
    return list(ALL_SCOPES) if full else sorted(ctx.scopes)


@rest_method("server.time")
def server_time(ctx: CallContext, params: dict) -> str:
    return ctx.portal.now_iso()


@rest_method("method.get")
def method_get(ctx: CallContext, params: dict) -> dict:
    name = str(get_param(params, "name") or "").lower()
    spec = METHODS.get(name)
    available = spec is not None and (
        "basic" in spec.scopes or bool(ctx.scopes.intersection(spec.scopes))
    )
    return {"isExisting": spec is not None, "isAvailable": available}


@rest_method("methods")
def methods(ctx: CallContext, params: dict) -> list[str]:
    return sorted(
        name
        for name, spec in METHODS.items()
        if "basic" in spec.scopes or ctx.scopes.intersection(spec.scopes)
    )


@rest_method("profile")
def profile(ctx: CallContext, params: dict) -> dict:
    user = ctx.portal.users[ctx.user_id]
    return {
        "ID": user["ID"],
        "ADMIN": bool(user["IS_ADMIN"]),
        "NAME": user["NAME"],
        "LAST_NAME": user["LAST_NAME"],
        "PERSONAL_GENDER": user["PERSONAL_GENDER"],
        "TIME_ZONE": user["TIME_ZONE"],
        "TIME_ZONE_OFFSET": int(user["TIME_ZONE_OFFSET"]),
    }


@rest_method("user.current", ("user", "user_brief", "user_basic"))
def user_current(ctx: CallContext, params: dict) -> dict:
    return _public_user(ctx.portal.users[ctx.user_id])


@rest_method("user.get", ("user", "user_brief", "user_basic"))
def user_get(ctx: CallContext, params: dict) -> Page:
    portal = ctx.portal
    filter_param = as_dict(get_param(params, "filter"))
    for key, value in params.items():
        if str(key).lower() not in _USER_GET_CONTROL:
            filter_param[key] = value

    name_search = None
    for key in list(filter_param):
        if str(key).upper() == "NAME_SEARCH":
            name_search = str(filter_param.pop(key)).lower()

    users = [_public_user(user) for user in portal.users.snapshot()]
    if name_search:
        users = [
            user
            for user in users
            if name_search in f"{user['NAME']} {user['LAST_NAME']}".lower()
        ]
    sort = get_param(params, "sort")
    order = {str(sort): get_param(params, "order", "ASC")} if sort else {"ID": "ASC"}
    rows, total, following = list_records(
        users,
        {"filter": filter_param, "order": order, "start": get_param(params, "start")},
        field_types={"ID": "integer", "UF_DEPARTMENT": "integer"},
        tz=portal.tz,
    )
    return Page(rows, total, following)


@rest_method("department.get", "department")
def department_get(ctx: CallContext, params: dict) -> Page:
    portal = ctx.portal
    filter_param = {
        key: value
        for key, value in params.items()
        if str(key).lower() not in ("sort", "order", "start")
    }
    sort = get_param(params, "sort")
    order = {str(sort): get_param(params, "order", "ASC")} if sort else {"ID": "ASC"}
    records = [
        {key: value for key, value in record.items() if value is not None}
        for record in portal.departments.snapshot()
    ]
    rows, total, following = list_records(
        records,
        {"filter": filter_param, "order": order, "start": get_param(params, "start")},
        field_types={"ID": "integer", "SORT": "integer", "PARENT": "integer"},
        tz=portal.tz,
    )
    return Page(rows, total, following)


# ---------------------------------------------------------------- options


def _options_to_write(params: dict) -> dict:
    options = get_param(params, "options")
    if options is None:
        # Without `options`, every parameter is treated as an option.
        options = params
    options = as_dict(options)
    if not options:
        raise argument_error("options", "options is empty")
    return options


@rest_method("app.option.set")
def app_option_set(ctx: CallContext, params: dict) -> bool:
    ctx.require_app()
    ctx.require_admin()
    options = _options_to_write(params)
    with ctx.portal.lock:
        ctx.portal.app_options.data.update({str(k): v for k, v in options.items()})
        ctx.portal.touch()
    return True


@rest_method("app.option.get")
def app_option_get(ctx: CallContext, params: dict) -> Any:
    ctx.require_app()
    name = get_param(params, "option")
    with ctx.portal.lock:
        options = dict(ctx.portal.app_options.data)
    if name not in (None, ""):
        return options.get(str(name))
    return to_php_json(options)


@rest_method("user.option.set")
def user_option_set(ctx: CallContext, params: dict) -> bool:
    ctx.require_app()
    options = _options_to_write(params)
    with ctx.portal.lock:
        stored = ctx.portal.user_options.data.setdefault(ctx.user_id, {})
        stored.update({str(k): v for k, v in options.items()})
        ctx.portal.touch()
    return True


@rest_method("user.option.get")
def user_option_get(ctx: CallContext, params: dict) -> Any:
    ctx.require_app()
    name = get_param(params, "option")
    with ctx.portal.lock:
        options = dict(ctx.portal.user_options.data.get(ctx.user_id, {}))
    if name not in (None, ""):
        return options.get(str(name))
    return to_php_json(options)


def require_known_user(ctx: CallContext, user_id: Any) -> int:
    """Return an existing user's id or raise a 400 error naming it."""
    try:
        value = int(str(user_id))
    except ValueError:
        raise RestError("ERROR_ARGUMENT", f"Invalid user id: {user_id!r}") from None
    if value not in ctx.portal.users:
        raise RestError("ERROR_ARGUMENT", f"User {value} not found")
    return value

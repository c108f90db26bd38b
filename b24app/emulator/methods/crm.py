"""Legacy `crm.*` methods: leads, deals, activities, directories, user fields."""

from __future__ import annotations

from typing import Any

from .. import crm
from ..errors import RestError, crm_error
from ..fields import (
    ACTIVITY_FIELDS,
    ACTIVITY_SELECT_ONLY,
    DEAL_FIELDS,
    LEAD_FIELDS,
    MULTIFIELD_TYPES,
)
from ..history import cursor_window
from ..listing import Page, list_records, project, select_fields
from ..params import as_dict, as_list, get_param
from ..registry import CallContext, rest_method


def _fields_param(params: dict) -> dict:
    fields = get_param(params, "fields")
    if not isinstance(fields, dict | list) or not as_dict(fields):
        raise crm_error("The parameter 'fields' must be array.")
    return as_dict(fields)


def _field_types(specs: dict, ufs: dict[str, dict]) -> dict[str, str]:
    types = {name: spec.type for name, spec in specs.items()}
    types.update({name: record["USER_TYPE_ID"] for name, record in ufs.items()})
    return types


# ---------------------------------------------------------------- leads


@rest_method("crm.lead.fields", "crm")
def lead_fields(ctx: CallContext, params: dict) -> dict:
    described = {name: spec.describe() for name, spec in LEAD_FIELDS.items()}
    described.update(crm.describe_user_fields(ctx.portal, "CRM_LEAD"))
    return described


@rest_method("crm.lead.get", "crm")
def lead_get(ctx: CallContext, params: dict) -> dict:
    lead_id = crm.parse_entity_id(get_param(params, "id"))
    return crm.lead_view(ctx.portal, lead_id)


@rest_method("crm.lead.list", "crm")
def lead_list(ctx: CallContext, params: dict) -> Page:
    portal = ctx.portal
    ufs = crm.user_fields(portal, "CRM_LEAD")
    standard = [name for name in LEAD_FIELDS if name not in MULTIFIELD_TYPES]
    names = select_fields(
        get_param(params, "select"),
        standard=standard,
        user_fields=sorted(ufs),
        on_request_only=MULTIFIELD_TYPES,
    )
    defaults = crm.user_field_defaults(portal, "CRM_LEAD")

    def render(record: dict) -> dict:
        view = {**defaults, **record}
        for name in MULTIFIELD_TYPES:
            if name in names:
                view.setdefault(name, [])
        return project(view, names)

    def page(keys) -> Page:
        with portal.lock:
            records = [crm.lead_view(portal, key) for key in keys]
        return Page(
            *list_records(
                records,
                params,
                field_types=_field_types(LEAD_FIELDS, ufs),
                tz=portal.tz,
                transform=render,
            )
        )

    with portal.lock:
        keys = list(portal.leads.data)
    return cursor_window(params, keys, page) or page(keys)


@rest_method("crm.lead.add", "crm")
def lead_add(ctx: CallContext, params: dict) -> int:
    return crm.add_lead(ctx.portal, _fields_param(params), ctx.actor)


@rest_method("crm.lead.update", "crm")
def lead_update(ctx: CallContext, params: dict) -> bool:
    lead_id = crm.parse_entity_id(get_param(params, "id"))
    crm.update_lead(
        ctx.portal, lead_id, as_dict(get_param(params, "fields")), ctx.actor
    )
    return True


@rest_method("crm.lead.delete", "crm")
def lead_delete(ctx: CallContext, params: dict) -> bool:
    lead_id = crm.parse_entity_id(get_param(params, "id"))
    crm.delete_lead(ctx.portal, lead_id, ctx.actor)
    return True


# ---------------------------------------------------------------- user fields


def _userfield_add(ctx: CallContext, params: dict, entity: str) -> int:
    ctx.require_admin()
    fields = as_dict(get_param(params, "fields"))
    return crm.add_userfield(ctx.portal, entity, fields, ctx.actor)


def _userfield_list(ctx: CallContext, params: dict, entity: str) -> list[dict]:
    portal = ctx.portal
    with portal.lock:
        records = [
            record
            for record in portal.userfields.data.values()
            if record["ENTITY_ID"] == entity
        ]
    rows, _total, _next = list_records(
        records,
        params,
        field_types={"ID": "integer", "SORT": "integer"},
        tz=portal.tz,
        default_order={"SORT": "ASC", "ID": "ASC"},
    )
    return [crm.copy_record(row) for row in rows]


def _userfield_get(ctx: CallContext, params: dict, entity: str) -> dict:
    field_id = crm.parse_entity_id(get_param(params, "id"))
    with ctx.portal.lock:
        record = ctx.portal.userfields.data.get(field_id)
        if record is None or record["ENTITY_ID"] != entity:
            raise crm_error("Not found")
        return crm.copy_record(record)


def _userfield_update(ctx: CallContext, params: dict, entity: str) -> bool:
    ctx.require_admin()
    field_id = crm.parse_entity_id(get_param(params, "id"))
    _userfield_get(ctx, {"id": field_id}, entity)
    fields = as_dict(get_param(params, "fields"))
    crm.update_userfield(ctx.portal, field_id, fields, ctx.actor)
    return True


for _entity_name, _entity in crm.UF_ENTITY.items():
    _prefix = f"crm.{_entity_name}.userfield"
    rest_method(f"{_prefix}.add", "crm")(
        lambda ctx, params, e=_entity: _userfield_add(ctx, params, e)
    )
    rest_method(f"{_prefix}.list", "crm")(
        lambda ctx, params, e=_entity: _userfield_list(ctx, params, e)
    )
    rest_method(f"{_prefix}.get", "crm")(
        lambda ctx, params, e=_entity: _userfield_get(ctx, params, e)
    )
    rest_method(f"{_prefix}.update", "crm")(
        lambda ctx, params, e=_entity: _userfield_update(ctx, params, e)
    )


# ---------------------------------------------------------------- deals


@rest_method("crm.deal.fields", "crm")
def deal_fields(ctx: CallContext, params: dict) -> dict:
    described = {name: spec.describe() for name, spec in DEAL_FIELDS.items()}
    described.update(crm.describe_user_fields(ctx.portal, "CRM_DEAL"))
    return described


@rest_method("crm.deal.get", "crm")
def deal_get(ctx: CallContext, params: dict) -> dict:
    return crm.deal_view(ctx.portal, crm.parse_entity_id(get_param(params, "id")))


@rest_method("crm.deal.list", "crm")
def deal_list(ctx: CallContext, params: dict) -> Page:
    portal = ctx.portal
    ufs = crm.user_fields(portal, "CRM_DEAL")
    names = select_fields(
        get_param(params, "select"), standard=list(DEAL_FIELDS), user_fields=sorted(ufs)
    )

    def page(keys) -> Page:
        with portal.lock:
            records = [crm.deal_view(portal, key) for key in keys]
        return Page(
            *list_records(
                records,
                params,
                field_types=_field_types(DEAL_FIELDS, ufs),
                tz=portal.tz,
                transform=lambda record: project(record, names),
            )
        )

    with portal.lock:
        keys = list(portal.deals.data)
    return cursor_window(params, keys, page) or page(keys)


@rest_method("crm.deal.add", "crm")
def deal_add(ctx: CallContext, params: dict) -> int:
    return crm.add_deal(ctx.portal, _fields_param(params), ctx.actor)


@rest_method("crm.deal.update", "crm")
def deal_update(ctx: CallContext, params: dict) -> bool:
    deal_id = crm.parse_entity_id(get_param(params, "id"))
    crm.update_deal(
        ctx.portal, deal_id, as_dict(get_param(params, "fields")), ctx.actor
    )
    return True


@rest_method("crm.deal.delete", "crm")
def deal_delete(ctx: CallContext, params: dict) -> bool:
    deal_id = crm.parse_entity_id(get_param(params, "id"))
    crm.delete_deal(ctx.portal, deal_id, ctx.actor)
    return True


@rest_method("crm.category.list", "crm")
def category_list(ctx: CallContext, params: dict) -> Page:
    entity_type = str(get_param(params, "entityTypeId") or "")
    if entity_type != "2":
        raise RestError("NOT_FOUND", "Categories are available for deals only here.")
    with ctx.portal.lock:
        categories = [dict(item) for item in ctx.portal.categories.data.values()]
    categories.sort(key=lambda item: item["sort"])
    return Page({"categories": categories}, len(categories), None)


# ---------------------------------------------------------------- statuses


@rest_method("crm.status.list", "crm")
def status_list(ctx: CallContext, params: dict) -> Page:
    portal = ctx.portal
    with portal.lock:
        records = [crm.copy_record(record) for record in portal.statuses.data.values()]
    rows, total, following = list_records(
        records,
        params,
        field_types={"ID": "integer", "SORT": "integer", "CATEGORY_ID": "integer"},
        tz=portal.tz,
        default_order={"SORT": "ASC"},
    )
    return Page(rows, total, following)


@rest_method("crm.stagehistory.list", "crm")
def stagehistory_list(ctx: CallContext, params: dict) -> Page:
    portal = ctx.portal
    entity_type = str(get_param(params, "entityTypeId") or "").strip()
    if entity_type not in ("1", "2"):
        raise RestError(
            "ERROR_ARGUMENT",
            "entityTypeId must be 1 (lead) or 2 (deal).",
            argument="entityTypeId",
        )
    select = [str(name).upper() for name in as_list(get_param(params, "select"))]

    def page(keys) -> Page:
        with portal.lock:
            records = [
                dict(row)
                for row in (portal.stage_history.data[key] for key in keys)
                if str(row["ENTITY_TYPE_ID"]) == entity_type
            ]
        for row in records:
            row.pop("ENTITY_TYPE_ID", None)
        rows, total, following = list_records(
            records,
            params,
            field_types={
                "ID": "integer",
                "TYPE_ID": "integer",
                "OWNER_ID": "integer",
                "CATEGORY_ID": "integer",
                "CREATED_TIME": "datetime",
            },
            tz=portal.tz,
            transform=(lambda row: project(row, ["ID", *select])) if select else None,
        )
        return Page({"items": rows}, total, following)

    with portal.lock:
        keys = list(portal.stage_history.data)
    return cursor_window(params, keys, page) or page(keys)


# ---------------------------------------------------------------- activities


def _activity_matches_bindings(record: dict, bindings: Any) -> bool:
    wanted = {
        (str(get_param(item, "OWNER_TYPE_ID")), str(get_param(item, "OWNER_ID")))
        for item in as_list(bindings)
        if isinstance(item, dict)
    }
    return any(
        (binding["OWNER_TYPE_ID"], binding["OWNER_ID"]) in wanted
        for binding in record["BINDINGS"]
    )


@rest_method("crm.activity.fields", "crm")
def activity_fields(ctx: CallContext, params: dict) -> dict:
    return {name: spec.describe() for name, spec in ACTIVITY_FIELDS.items()}


@rest_method("crm.activity.get", "crm")
def activity_get(ctx: CallContext, params: dict) -> dict:
    activity_id = crm.parse_entity_id(get_param(params, "id"))
    with ctx.portal.lock:
        record = ctx.portal.activities.data.get(activity_id)
        if record is None:
            raise crm_error("Not found")
        return crm.copy_record(record)


@rest_method("crm.activity.list", "crm")
def activity_list(ctx: CallContext, params: dict) -> Page:
    portal = ctx.portal
    filter_param = as_dict(get_param(params, "filter"))
    bindings = None
    for key in list(filter_param):
        if str(key).upper() == "BINDINGS":
            bindings = filter_param.pop(key)
    names = select_fields(
        get_param(params, "select"),
        standard=[name for name in ACTIVITY_FIELDS if name not in ACTIVITY_SELECT_ONLY],
        on_request_only=ACTIVITY_SELECT_ONLY,
    )

    def page(keys) -> Page:
        with portal.lock:
            records = [crm.copy_record(portal.activities.data[key]) for key in keys]
        if bindings is not None:
            records = [r for r in records if _activity_matches_bindings(r, bindings)]
        return Page(
            *list_records(
                records,
                {**params, "filter": filter_param},
                field_types={name: spec.type for name, spec in ACTIVITY_FIELDS.items()}
                | {
                    "OWNER_TYPE_ID": "integer",
                    "TYPE_ID": "integer",
                    "DIRECTION": "integer",
                    "STATUS": "integer",
                    "PRIORITY": "integer",
                },
                tz=portal.tz,
                default_order={"START_TIME": "ASC"},
                transform=lambda record: project(record, names),
            )
        )

    with portal.lock:
        keys = list(portal.activities.data)
    return cursor_window(params, keys, page) or page(keys)


@rest_method("crm.activity.add", "crm")
def activity_add(ctx: CallContext, params: dict) -> int:
    return crm.add_activity(ctx.portal, _fields_param(params), ctx.actor)


@rest_method("crm.activity.update", "crm")
def activity_update(ctx: CallContext, params: dict) -> bool:
    activity_id = crm.parse_entity_id(get_param(params, "id"))
    crm.update_activity(
        ctx.portal, activity_id, as_dict(get_param(params, "fields")), ctx.actor
    )
    return True


# ---------------------------------------------------------------- timeline


@rest_method("crm.timeline.comment.add", "crm")
def timeline_comment_add(ctx: CallContext, params: dict) -> int:
    # Since crm 23.100.0 the key must be exactly lower-case `fields`.
    fields = params.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise RestError("100", "Could not find value for parameter {fields}")
    return crm.add_timeline_comment(ctx.portal, fields, ctx.actor)

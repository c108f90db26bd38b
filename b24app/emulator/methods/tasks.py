"""`tasks.task.*` methods (REST v2: UPPER_CASE input, camelCase output)."""

from __future__ import annotations

from .. import tasks
from ..errors import RestError
from ..fields import to_id_string
from ..listing import Page, list_records
from ..params import as_dict, as_list, get_param
from ..registry import CallContext, rest_method


def _task_id(params: dict) -> int:
    value = to_id_string(get_param(params, "taskId", get_param(params, "id")))
    if value is None:
        raise RestError("100", "Could not find value for parameter {taskId}")
    return int(value)


def _fields(params: dict) -> dict:
    fields = get_param(params, "fields")
    if not isinstance(fields, dict) or not fields:
        raise RestError("100", "Could not find value for parameter {fields}")
    return fields


def _render(ctx: CallContext, task_id: int, select=()) -> dict:
    with ctx.portal.lock:
        record = ctx.portal.tasks.data.get(task_id)
        if record is None:
            raise RestError("ERROR_CORE", "Task not found or not accessible")
        return tasks.task_view(ctx.portal, record, select)


@rest_method("tasks.task.add", "task")
def task_add(ctx: CallContext, params: dict) -> dict:
    task_id = tasks.add_task(ctx.portal, _fields(params), ctx.actor)
    return {"task": _render(ctx, task_id)}


@rest_method("tasks.task.get", "task")
def task_get(ctx: CallContext, params: dict) -> dict:
    select = as_list(get_param(params, "select"))
    return {"task": _render(ctx, _task_id(params), select)}


@rest_method("tasks.task.update", "task")
def task_update(ctx: CallContext, params: dict) -> dict:
    task_id = _task_id(params)
    tasks.update_task(ctx.portal, task_id, _fields(params), ctx.actor)
    return {"task": _render(ctx, task_id)}


@rest_method("tasks.task.complete", "task")
def task_complete(ctx: CallContext, params: dict) -> dict:
    task_id = _task_id(params)
    tasks.complete_task(ctx.portal, task_id, ctx.actor)
    return {"task": _render(ctx, task_id)}


@rest_method("tasks.task.list", "task")
def task_list(ctx: CallContext, params: dict) -> Page:
    portal = ctx.portal
    select = as_list(get_param(params, "select"))
    filter_param = {
        _filter_key(key): value
        for key, value in as_dict(get_param(params, "filter")).items()
    }
    order = {
        tasks.to_upper_key(str(key)): value
        for key, value in as_dict(get_param(params, "order")).items()
    }
    with portal.lock:
        records = [dict(record) for record in portal.tasks.data.values()]
    for record in records:
        record["REAL_STATUS"] = record["STATUS"]
    rows, total, following = list_records(
        records,
        {**params, "filter": filter_param, "order": order},
        field_types=tasks.TASK_FIELD_TYPES,
        tz=portal.tz,
        transform=lambda record: tasks.task_view(portal, record, select),
    )
    return Page({"tasks": rows}, total, following)


def _filter_key(key: object) -> str:
    """Upper-case the field part of a filter key, keeping its operator prefix."""
    text = str(key)
    prefix_length = len(text) - len(text.lstrip("!<>=%@"))
    return text[:prefix_length] + tasks.to_upper_key(text[prefix_length:])

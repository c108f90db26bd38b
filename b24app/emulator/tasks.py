"""Tasks: stored with UPPER_CASE keys, returned by `tasks.task.*` in camelCase."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import RestError
from .events import Actor
from .fields import format_datetime, parse_datetime, to_id_string
from .params import as_list

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

STATUS_PENDING = "2"
STATUS_IN_PROGRESS = "3"
STATUS_COMPLETED = "5"

# Field types for filtering and sorting `tasks.task.list`.
TASK_FIELD_TYPES = {
    "ID": "integer",
    "PARENT_ID": "integer",
    "RESPONSIBLE_ID": "user",
    "CREATED_BY": "user",
    "CHANGED_BY": "user",
    "CLOSED_BY": "user",
    "GROUP_ID": "integer",
    "STATUS": "integer",
    "REAL_STATUS": "integer",
    "PRIORITY": "integer",
    "DEADLINE": "datetime",
    "CREATED_DATE": "datetime",
    "CHANGED_DATE": "datetime",
    "CLOSED_DATE": "datetime",
    "START_DATE_PLAN": "datetime",
    "END_DATE_PLAN": "datetime",
    "UF_CRM_TASK": "string",
}

_DATE_KEYS = ("DEADLINE", "START_DATE_PLAN", "END_DATE_PLAN")
_LIST_KEYS = ("AUDITORS", "ACCOMPLICES")
_WRITABLE = (
    "TITLE",
    "DESCRIPTION",
    "PRIORITY",
    "RESPONSIBLE_ID",
    "CREATED_BY",
    "GROUP_ID",
    "PARENT_ID",
    "STATUS",
    *_DATE_KEYS,
    *_LIST_KEYS,
    "UF_CRM_TASK",
    "TAGS",
    "SE_PARAMETER",
    "ALLOW_CHANGE_DEADLINE",
    "TASK_CONTROL",
)


def to_upper_key(key: str) -> str:
    """Convert camelCase input keys (`responsibleId`) to RESPONSIBLE_ID."""
    if key.upper() == key:
        return key
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).upper()


def to_camel_key(key: str) -> str:
    """Convert RESPONSIBLE_ID to responsibleId."""
    head, *rest = key.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _normalize(fields: Mapping) -> dict[str, Any]:
    return {to_upper_key(str(key)): value for key, value in fields.items()}


def _user_brief(portal: Portal, user_id: str | None) -> dict[str, Any]:
    user = portal.users.data.get(int(user_id)) if user_id else None
    if user is None:
        return {}
    return {
        "id": user["ID"],
        "name": f"{user['NAME']} {user['LAST_NAME']}".strip(),
        "link": f"/company/personal/user/{user['ID']}/",
        "icon": "/bitrix/images/tasks/default_avatar.png",
        "workPosition": user.get("WORK_POSITION") or "",
    }


def _write(portal: Portal, record: dict, fields: Mapping[str, Any]) -> None:
    for key in _WRITABLE:
        if key not in fields:
            continue
        value = fields[key]
        if key in _DATE_KEYS:
            moment = parse_datetime(value, portal.tz)
            record[key] = format_datetime(moment) if moment else None
        elif key in _LIST_KEYS:
            record[key] = [str(item) for item in as_list(value) if to_id_string(item)]
        elif key == "UF_CRM_TASK":
            record[key] = [
                str(item) for item in as_list(value) if item not in (None, "")
            ]
        elif key in ("TAGS", "SE_PARAMETER"):
            record[key] = as_list(value)
        elif key in ("RESPONSIBLE_ID", "CREATED_BY", "GROUP_ID", "PARENT_ID"):
            record[key] = to_id_string(value) or ("0" if key == "GROUP_ID" else None)
        else:
            record[key] = None if value is None else str(value)


def add_task(portal: Portal, raw_fields: Mapping, actor: Actor) -> int:
    """Create a task with the checks `tasks.task.add` makes; fire ONTASKADD."""
    fields = _normalize(raw_fields)
    if not str(fields.get("TITLE") or "").strip():
        raise RestError("ERROR_CORE", "Task title is not specified")
    responsible = to_id_string(fields.get("RESPONSIBLE_ID"))
    if responsible is None:
        raise RestError("ERROR_CORE", "Responsible person not specified")
    if int(responsible) not in portal.users.data:
        raise RestError(
            "ERROR_CORE", "User specified in the 'Responsible' field not found"
        )
    if ("START_DATE_PLAN" in fields) != ("END_DATE_PLAN" in fields):
        raise RestError(
            "ERROR_CORE", "Planned start and end dates must be specified together"
        )

    creator = to_id_string(fields.get("CREATED_BY")) or str(
        actor.user_id or portal.owner_id
    )
    with portal.lock:
        task_id = portal.next_id("task")
        now = portal.now_iso()
        record: dict[str, Any] = {
            "ID": str(task_id),
            "PARENT_ID": None,
            "TITLE": "",
            "DESCRIPTION": "",
            "PRIORITY": "1",
            "STATUS": STATUS_PENDING,
            "RESPONSIBLE_ID": responsible,
            "CREATED_BY": creator,
            "CREATED_DATE": now,
            "CHANGED_BY": creator,
            "CHANGED_DATE": now,
            "STATUS_CHANGED_BY": creator,
            "STATUS_CHANGED_DATE": now,
            "CLOSED_BY": None,
            "CLOSED_DATE": None,
            "DEADLINE": None,
            "START_DATE_PLAN": None,
            "END_DATE_PLAN": None,
            "GROUP_ID": "0",
            "AUDITORS": [],
            "ACCOMPLICES": [],
            "UF_CRM_TASK": [],
            "TAGS": [],
            "SE_PARAMETER": [],
            "ALLOW_CHANGE_DEADLINE": "N",
            "TASK_CONTROL": "N",
        }
        _write(portal, record, {**fields, "CREATED_BY": creator})
        portal.tasks.data[task_id] = record
        portal.touch()

    logger.info("task %s created for user %s", task_id, responsible)
    portal.events.fire(
        "ONTASKADD",
        {
            "FIELDS_BEFORE": "undefined",
            "FIELDS_AFTER": {"ID": task_id},
            "IS_ACCESSIBLE_BEFORE": "N",
            "IS_ACCESSIBLE_AFTER": "undefined",
        },
        actor,
    )
    return task_id


def _task_not_found() -> RestError:
    return RestError("ERROR_CORE", "Task not found or not accessible")


def update_task(
    portal: Portal, task_id: int, raw_fields: Mapping, actor: Actor
) -> None:
    fields = _normalize(raw_fields)
    user_id = str(actor.user_id or portal.owner_id)
    with portal.lock:
        record = portal.tasks.data.get(task_id)
        if record is None:
            raise _task_not_found()
        if "RESPONSIBLE_ID" in fields:
            responsible = to_id_string(fields["RESPONSIBLE_ID"])
            if responsible is None or int(responsible) not in portal.users.data:
                raise RestError(
                    "ERROR_CORE", "User specified in the 'Responsible' field not found"
                )
        old_status = record["STATUS"]
        _write(portal, record, fields)
        now = portal.now_iso()
        record["CHANGED_BY"] = user_id
        record["CHANGED_DATE"] = now
        if record["STATUS"] != old_status:
            record["STATUS_CHANGED_BY"] = user_id
            record["STATUS_CHANGED_DATE"] = now
            if record["STATUS"] == STATUS_COMPLETED:
                record["CLOSED_BY"] = user_id
                record["CLOSED_DATE"] = now
        portal.touch()
    _fire_update(portal, task_id, actor)


def complete_task(portal: Portal, task_id: int, actor: Actor) -> None:
    update_task(portal, task_id, {"STATUS": STATUS_COMPLETED}, actor)


def _fire_update(portal: Portal, task_id: int, actor: Actor) -> None:
    portal.events.fire(
        "ONTASKUPDATE",
        {
            "FIELDS_BEFORE": {"ID": task_id},
            "FIELDS_AFTER": {"ID": task_id},
            "IS_ACCESSIBLE_BEFORE": "undefined",
            "IS_ACCESSIBLE_AFTER": "undefined",
        },
        actor,
    )


_DEFAULT_VIEW_KEYS = (
    "ID",
    "PARENT_ID",
    "TITLE",
    "DESCRIPTION",
    "PRIORITY",
    "STATUS",
    "GROUP_ID",
    "CREATED_BY",
    "CREATED_DATE",
    "RESPONSIBLE_ID",
    "CHANGED_BY",
    "CHANGED_DATE",
    "STATUS_CHANGED_BY",
    "STATUS_CHANGED_DATE",
    "CLOSED_BY",
    "CLOSED_DATE",
    "DEADLINE",
    "START_DATE_PLAN",
    "END_DATE_PLAN",
    "AUDITORS",
    "ACCOMPLICES",
    "ALLOW_CHANGE_DEADLINE",
    "TASK_CONTROL",
)


def task_view(portal: Portal, record: Mapping, select: Iterable[str] = ()) -> dict:
    """Render a stored task with camelCase keys; UF_CRM_TASK only when selected."""
    wanted = [to_upper_key(str(name)) for name in select]
    if not wanted or "*" in wanted:
        keys = list(_DEFAULT_VIEW_KEYS) + [key for key in wanted if key != "*"]
    else:
        keys = ["ID", *wanted]

    view: dict[str, Any] = {}
    for key in keys:
        if key == "REAL_STATUS":
            view["realStatus"] = record["STATUS"]
        elif key in record:
            view[to_camel_key(key)] = record[key]
    view["subStatus"] = record["STATUS"]
    view["creator"] = _user_brief(portal, record["CREATED_BY"])
    view["responsible"] = _user_brief(portal, record["RESPONSIBLE_ID"])
    view["group"] = []
    view["action"] = {
        "accept": False,
        "decline": False,
        "complete": record["STATUS"] != STATUS_COMPLETED,
        "approve": False,
        "disapprove": False,
        "start": record["STATUS"] == STATUS_PENDING,
        "pause": record["STATUS"] == STATUS_IN_PROGRESS,
        "delegate": True,
        "remove": True,
        "edit": True,
        "defer": True,
        "renew": record["STATUS"] == STATUS_COMPLETED,
        "create": True,
        "changeDeadline": True,
        "changeDirector": True,
        "changeResponsible": True,
        "addFavorite": True,
        "deleteFavorite": False,
        "rate": True,
    }
    return view

"""CRM data operations shared by REST methods and the people helpers.

Each write runs under the portal lock, then fires the matching event
(ONCRMLEADADD, ONCRMACTIVITYADD, ...) on behalf of the actor.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import RestError, crm_error
from .events import Actor
from .fields import (
    ACTIVITY_FIELDS,
    DEAL_FIELDS,
    LEAD_FIELDS,
    MULTIFIELD_TYPES,
    MULTIFIELD_VALUE_TYPES,
    FieldSpec,
    format_datetime,
    parse_datetime,
    to_flag,
    to_id_string,
    to_wire,
)
from .params import as_list, get_param

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

ENTITY_TYPE_IDS = {"lead": 1, "deal": 2, "contact": 3, "company": 4}
UF_ENTITY = {"lead": "CRM_LEAD", "deal": "CRM_DEAL"}
UF_TYPES = (
    "string",
    "integer",
    "double",
    "boolean",
    "datetime",
    "date",
    "money",
    "url",
    "address",
    "enumeration",
    "file",
    "employee",
    "crm_status",
    "iblock_section",
    "iblock_element",
    "crm",
)
_UF_NAME = re.compile(r"^UF_CRM_[A-Z0-9_]+$")
UF_NAME_MAX_LENGTH = 50

# Default provider of an activity created through crm.activity.add, by TYPE_ID.
_DEFAULT_PROVIDERS = {
    "1": ("CRM_MEETING", "MEETING"),
    "2": ("VOXIMPLANT_CALL", "CALL"),
    "3": ("CRM_TASK", "TASK"),
    "4": ("CRM_EMAIL", "EMAIL"),
}


def _actor_user(actor: Actor, portal: Portal) -> int:
    return actor.user_id if actor.user_id is not None else portal.owner_id


def parse_entity_id(value: Any) -> int:
    """Read a positive id parameter or raise the legacy CRM error."""
    parsed = to_id_string(value)
    if parsed is None or int(parsed) <= 0:
        raise crm_error("ID is not defined or invalid.")
    return int(parsed)


# ---------------------------------------------------------------- statuses


def status_record(portal: Portal, entity_id: str, status_id: str) -> dict | None:
    with portal.lock:
        for record in portal.statuses.data.values():
            if record["ENTITY_ID"] == entity_id and record["STATUS_ID"] == status_id:
                return record
    return None


def semantic_of(portal: Portal, entity_id: str, status_id: str | None) -> str:
    """Return the CRM semantic letter of a stage: P (in work), S (won), F (lost)."""
    record = status_record(portal, entity_id, status_id or "")
    if record is None:
        return "P"
    return record.get("SEMANTICS") or "P"


def deal_stage_entity(category_id: str | None) -> str:
    category = int(category_id or 0)
    return "DEAL_STAGE" if category == 0 else f"DEAL_STAGE_{category}"


# ---------------------------------------------------------------- user fields


def user_fields(portal: Portal, entity: str) -> dict[str, dict]:
    """Return user-field definitions of an entity ("CRM_LEAD") by FIELD_NAME."""
    with portal.lock:
        return {
            record["FIELD_NAME"]: record
            for record in portal.userfields.data.values()
            if record["ENTITY_ID"] == entity
        }


def normalize_uf_name(raw: Any) -> str:
    """Apply the `UF_CRM_` prefix rule: INTENT and UF_INTENT become UF_CRM_INTENT."""
    name = str(raw or "").strip().upper()
    if name.startswith("UF_CRM_"):
        return name
    if name.startswith("UF_"):
        return "UF_CRM_" + name[3:]
    return "UF_CRM_" + name


def _labels(fields: Mapping, key: str, fallback: Any) -> Any:
    value = get_param(fields, key)
    return value if value not in (None, "") else fallback


def _enum_items(portal: Portal, raw_items: Any, existing: list[dict]) -> list[dict]:
    """Apply LIST edits: ID items are kept or changed, DEL=Y removes, new are added."""
    by_id = {item["ID"]: item for item in existing}
    result = list(existing)
    for raw in as_list(raw_items):
        if not isinstance(raw, Mapping):
            raw = {"VALUE": raw}
        item_id = to_id_string(get_param(raw, "ID"))
        if item_id and item_id in by_id:
            item = by_id[item_id]
            if to_flag(get_param(raw, "DEL", "N")) == "Y":
                result.remove(item)
                continue
            for key in ("VALUE", "SORT", "DEF", "XML_ID"):
                value = get_param(raw, key)
                if value is not None:
                    item[key] = to_flag(value) if key == "DEF" else str(value)
            continue
        value = get_param(raw, "VALUE")
        if value in (None, ""):
            continue
        new_id = str(portal.next_id("enum"))
        result.append(
            {
                "ID": new_id,
                "SORT": str(get_param(raw, "SORT", 10 * (len(result) + 1))),
                "VALUE": str(value),
                "DEF": to_flag(get_param(raw, "DEF", "N")),
                "XML_ID": str(get_param(raw, "XML_ID") or f"{new_id}_xml"),
            }
        )
    xml_ids = [item["XML_ID"] for item in result]
    if len(xml_ids) != len(set(xml_ids)):
        raise RestError("ERROR_CORE", "Enumeration XML_ID values must be unique.")
    return result


def add_userfield(portal: Portal, entity: str, fields: Mapping, actor: Actor) -> int:
    """Create a CRM user field with the portal's naming and type rules."""
    raw_name = get_param(fields, "FIELD_NAME")
    if raw_name in (None, ""):
        raise crm_error("The 'FIELD_NAME' field is not found.")
    user_type = str(get_param(fields, "USER_TYPE_ID") or "").strip()
    if not user_type:
        raise crm_error("The 'USER_TYPE_ID' field is not found.")
    if user_type not in UF_TYPES:
        raise RestError("ERROR_CORE", f"User type '{user_type}' is not supported.")

    name = normalize_uf_name(raw_name)
    if not _UF_NAME.match(name) or len(name) > UF_NAME_MAX_LENGTH:
        raise RestError(
            "ERROR_CORE",
            "Invalid field code: use A-Z, 0-9 and _, at most 50 characters "
            "with the UF_CRM_ prefix.",
        )
    multiple = to_flag(get_param(fields, "MULTIPLE", "N"))
    if user_type == "boolean" and multiple == "Y":
        raise RestError("ERROR_CORE", "A boolean field cannot be multiple.")

    with portal.lock:
        if name in user_fields(portal, entity):
            raise RestError("ERROR_CORE", f"Field {name} already exists.")
        label = get_param(fields, "LABEL")
        field_id = portal.next_id("userfield")
        record = {
            "ID": str(field_id),
            "ENTITY_ID": entity,
            "FIELD_NAME": name,
            "USER_TYPE_ID": user_type,
            "XML_ID": get_param(fields, "XML_ID"),
            "SORT": str(get_param(fields, "SORT", 100)),
            "MULTIPLE": multiple,
            "MANDATORY": to_flag(get_param(fields, "MANDATORY", "N")),
            "SHOW_FILTER": str(get_param(fields, "SHOW_FILTER", "N")),
            "SHOW_IN_LIST": to_flag(get_param(fields, "SHOW_IN_LIST", "Y")),
            "EDIT_IN_LIST": to_flag(get_param(fields, "EDIT_IN_LIST", "Y")),
            "IS_SEARCHABLE": to_flag(get_param(fields, "IS_SEARCHABLE", "N")),
            "SETTINGS": get_param(fields, "SETTINGS") or {},
            "EDIT_FORM_LABEL": _labels(fields, "EDIT_FORM_LABEL", label or name),
            "LIST_COLUMN_LABEL": _labels(fields, "LIST_COLUMN_LABEL", label or name),
            "LIST_FILTER_LABEL": _labels(fields, "LIST_FILTER_LABEL", label or name),
            "ERROR_MESSAGE": _labels(fields, "ERROR_MESSAGE", label),
            "HELP_MESSAGE": _labels(fields, "HELP_MESSAGE", label),
        }
        if user_type == "enumeration":
            record["LIST"] = _enum_items(portal, get_param(fields, "LIST"), [])
        portal.userfields.data[field_id] = record
        portal.touch()

    logger.info("user field %s created on %s", name, entity)
    event = "ONCRMLEADUSERFIELDADD" if entity == "CRM_LEAD" else "ONCRMDEALUSERFIELDADD"
    portal.events.fire(
        event,
        {"FIELDS": {"ID": field_id, "ENTITY_ID": entity, "FIELD_NAME": name}},
        actor,
    )
    return field_id


def update_userfield(portal: Portal, field_id: int, fields: Mapping, actor: Actor):
    with portal.lock:
        record = portal.userfields.data.get(field_id)
        if record is None:
            raise crm_error("Not found")
        for key in ("SORT", "MANDATORY", "SHOW_FILTER", "SHOW_IN_LIST", "EDIT_IN_LIST"):
            value = get_param(fields, key)
            if value is not None:
                record[key] = str(value)
        for key in ("EDIT_FORM_LABEL", "LIST_COLUMN_LABEL", "LIST_FILTER_LABEL"):
            value = get_param(fields, key, get_param(fields, "LABEL"))
            if value is not None:
                record[key] = value
        if record["USER_TYPE_ID"] == "enumeration" and get_param(fields, "LIST"):
            record["LIST"] = _enum_items(
                portal, get_param(fields, "LIST"), record["LIST"]
            )
        portal.touch()
        entity = record["ENTITY_ID"]
    event = (
        "ONCRMLEADUSERFIELDUPDATE"
        if entity == "CRM_LEAD"
        else "ONCRMDEALUSERFIELDUPDATE"
    )
    portal.events.fire(event, {"FIELDS": {"ID": field_id}}, actor)


def describe_user_fields(portal: Portal, entity: str) -> dict[str, dict]:
    """Return `crm.*.fields` entries of the user fields, enumerations with items."""
    described = {}
    for name, record in sorted(user_fields(portal, entity).items()):
        info: dict[str, Any] = {
            "type": record["USER_TYPE_ID"],
            "isRequired": record["MANDATORY"] == "Y",
            "isReadOnly": False,
            "isImmutable": False,
            "isMultiple": record["MULTIPLE"] == "Y",
            "isDynamic": True,
            "title": name,
            "listLabel": record["LIST_COLUMN_LABEL"],
            "formLabel": record["EDIT_FORM_LABEL"],
            "filterLabel": record["LIST_FILTER_LABEL"],
            "settings": record["SETTINGS"],
        }
        if record["USER_TYPE_ID"] == "enumeration":
            info["items"] = [
                {"ID": item["ID"], "VALUE": item["VALUE"]} for item in record["LIST"]
            ]
        described[name] = info
    return described


def _uf_scalar(record: dict, value: Any, portal: Portal) -> str | None:
    user_type = record["USER_TYPE_ID"]
    if value is None or value == "" or (value is False and user_type != "boolean"):
        return None
    if user_type == "enumeration":
        # NOTE: how the portal treats a value that is not an option ID is not
        # documented. It is dropped here, so a wrong write shows on read-back.
        option = to_id_string(value)
        if option is None or option not in {item["ID"] for item in record["LIST"]}:
            logger.debug(
                "value for %s is not an option ID, dropped", record["FIELD_NAME"]
            )
            return None
        return option
    if user_type == "boolean":
        return "1" if to_flag(value) == "Y" else "0"
    if user_type in ("integer", "employee"):
        return to_id_string(value)
    if user_type == "double":
        try:
            return str(float(value))
        except (TypeError, ValueError):
            return None
    if user_type in ("datetime", "date"):
        return to_wire(user_type, value, portal.tz) or None
    return str(value)


def write_user_field(portal: Portal, target: dict, record: dict, value: Any) -> None:
    """Store a user-field value in wire form; invalid enumeration ids are dropped."""
    name = record["FIELD_NAME"]
    if record["MULTIPLE"] == "Y":
        values = [_uf_scalar(record, item, portal) for item in as_list(value)]
        target[name] = [item for item in values if item is not None]
    else:
        if isinstance(value, list | tuple) or isinstance(value, Mapping):
            value = as_list(value)[0] if as_list(value) else None
        target[name] = _uf_scalar(record, value, portal)


def user_field_defaults(portal: Portal, entity: str) -> dict[str, Any]:
    return {
        name: ([] if record["MULTIPLE"] == "Y" else None)
        for name, record in user_fields(portal, entity).items()
    }


# ---------------------------------------------------------------- multifields


def write_multifield(portal: Portal, record: dict, type_id: str, items: Any) -> None:
    """Apply multifield edits: new items are added, ID items changed or deleted."""
    current: list[dict] = list(record.get(type_id) or [])
    by_id = {item["ID"]: item for item in current}
    default_type = MULTIFIELD_VALUE_TYPES[type_id][0]

    for raw in as_list(items):
        if not isinstance(raw, Mapping):
            raw = {"VALUE": raw}
        item_id = to_id_string(get_param(raw, "ID"))
        value = get_param(raw, "VALUE")
        value_type = get_param(raw, "VALUE_TYPE")

        if item_id and item_id in by_id:
            item = by_id[item_id]
            deleting = to_flag(get_param(raw, "DELETE", "N")) == "Y"
            if deleting or value == "" or (value is None and value_type is None):
                current.remove(item)
                continue
            if value is not None:
                item["VALUE"] = str(value)
            if value_type:
                item["VALUE_TYPE"] = str(value_type).upper()
            continue

        if item_id or value in (None, ""):
            continue
        current.append(
            {
                "ID": str(portal.next_id("multifield")),
                "VALUE_TYPE": str(value_type or default_type).upper(),
                "VALUE": str(value),
                "TYPE_ID": type_id,
            }
        )

    if current:
        record[type_id] = current
    else:
        record.pop(type_id, None)


def _refresh_lead_flags(record: dict) -> None:
    record["HAS_PHONE"] = "Y" if record.get("PHONE") else "N"
    record["HAS_EMAIL"] = "Y" if record.get("EMAIL") else "N"
    record["HAS_IMOL"] = (
        "Y"
        if any(
            item["VALUE_TYPE"] in ("OPENLINE", "IMOL") for item in record.get("IM", [])
        )
        else "N"
    )


# ---------------------------------------------------------------- shared writes


def _apply_fields(
    portal: Portal,
    record: dict,
    fields: Mapping,
    specs: dict[str, FieldSpec],
    uf_entity: str,
    *,
    creating: bool,
) -> set[str]:
    """Write standard, multi and user fields; unknown and read-only keys are ignored."""
    changed: set[str] = set()
    ufs = user_fields(portal, uf_entity)
    for raw_key, value in fields.items():
        key = str(raw_key).upper()
        if key in ufs:
            write_user_field(portal, record, ufs[key], value)
            changed.add(key)
            continue
        spec = specs.get(key)
        if spec is None or spec.read_only or (spec.immutable and not creating):
            continue
        if key in MULTIFIELD_TYPES:
            write_multifield(portal, record, key, value)
            changed.add(key)
            continue
        if spec.multiple:
            record[key] = [
                str(item) for item in as_list(value) if item not in (None, "")
            ]
        elif spec.type == "crm_status":
            record[key] = None if value in (None, "") else str(value)
        else:
            record[key] = to_wire(spec.type, value, portal.tz)
        changed.add(key)
    return changed


def _record_stage_move(
    portal: Portal,
    *,
    entity_type_id: int,
    owner_id: int,
    status_id: str,
    semantic: str,
    created: bool,
    category_id: str | None = None,
) -> None:
    history_id = portal.next_id("stagehistory")
    if created:
        type_id = 1
    elif semantic in ("S", "F"):
        type_id = 3
    else:
        type_id = 2
    row = {
        "ID": history_id,
        "TYPE_ID": type_id,
        "OWNER_ID": owner_id,
        "CREATED_TIME": portal.now_iso(),
        "ENTITY_TYPE_ID": entity_type_id,
    }
    if entity_type_id == 1:
        row.update({"STATUS_ID": status_id, "STATUS_SEMANTIC_ID": semantic})
    else:
        row.update(
            {
                "STAGE_ID": status_id,
                "STAGE_SEMANTIC_ID": semantic,
                "CATEGORY_ID": int(category_id or 0),
            }
        )
    portal.stage_history.data[history_id] = row


# ---------------------------------------------------------------- leads


def _blank_lead(portal: Portal, lead_id: int, user_id: int) -> dict:
    now = portal.now_iso()
    record: dict[str, Any] = {name: None for name, spec in LEAD_FIELDS.items()}
    for name in MULTIFIELD_TYPES:
        record.pop(name, None)
    record.update(
        {
            "ID": str(lead_id),
            "STATUS_ID": "NEW",
            "BIRTHDATE": "",
            "CURRENCY_ID": "RUB",
            "OPPORTUNITY": "0.00",
            "IS_MANUAL_OPPORTUNITY": "N",
            "OPENED": "Y",
            "HAS_PHONE": "N",
            "HAS_EMAIL": "N",
            "HAS_IMOL": "N",
            "ASSIGNED_BY_ID": str(user_id),
            "CREATED_BY_ID": str(user_id),
            "MODIFY_BY_ID": str(user_id),
            "MOVED_BY_ID": str(user_id),
            "DATE_CREATE": now,
            "DATE_MODIFY": now,
            "MOVED_TIME": now,
            "DATE_CLOSED": "",
            "CONTACT_IDS": [],
            "IS_RETURN_CUSTOMER": "N",
            "LAST_ACTIVITY_TIME": now,
            "LAST_ACTIVITY_BY": str(user_id),
        }
    )
    return record


def add_lead(portal: Portal, fields: Mapping, actor: Actor) -> int:
    """Create a lead and fire ONCRMLEADADD."""
    user_id = _actor_user(actor, portal)
    with portal.lock:
        lead_id = portal.next_id("lead")
        record = _blank_lead(portal, lead_id, user_id)
        _apply_fields(portal, record, fields, LEAD_FIELDS, "CRM_LEAD", creating=True)

        if status_record(portal, "STATUS", record["STATUS_ID"] or "") is None:
            record["STATUS_ID"] = "NEW"
        if not record.get("TITLE"):
            record["TITLE"] = f"Лид #{lead_id}"
        if record.get("CONTACT_ID") or record.get("COMPANY_ID"):
            record["IS_RETURN_CUSTOMER"] = "Y"
        semantic = semantic_of(portal, "STATUS", record["STATUS_ID"])
        record["STATUS_SEMANTIC_ID"] = semantic
        if semantic in ("S", "F"):
            record["DATE_CLOSED"] = record["DATE_CREATE"]
        _refresh_lead_flags(record)

        portal.leads.data[lead_id] = record
        _record_stage_move(
            portal,
            entity_type_id=1,
            owner_id=lead_id,
            status_id=record["STATUS_ID"],
            semantic=semantic,
            created=True,
        )
        portal.touch()

    logger.info("lead %s created", lead_id)
    portal.events.fire("ONCRMLEADADD", {"FIELDS": {"ID": lead_id}}, actor)
    return lead_id


def update_lead(portal: Portal, lead_id: int, fields: Mapping, actor: Actor) -> None:
    """Change lead fields, record a stage move, fire ONCRMLEADUPDATE."""
    user_id = _actor_user(actor, portal)
    with portal.lock:
        record = portal.leads.data.get(lead_id)
        if record is None:
            raise crm_error("Not found")
        old_status = record["STATUS_ID"]
        requested = dict(fields)
        wanted_status = get_param(requested, "STATUS_ID")
        if (
            wanted_status is not None
            and status_record(portal, "STATUS", str(wanted_status)) is None
        ):
            logger.info("lead %s: unknown STATUS_ID ignored", lead_id)
            requested = {
                key: value
                for key, value in requested.items()
                if str(key).upper() != "STATUS_ID"
            }

        _apply_fields(
            portal, record, requested, LEAD_FIELDS, "CRM_LEAD", creating=False
        )
        now = portal.now_iso()
        record["DATE_MODIFY"] = now
        record["MODIFY_BY_ID"] = str(user_id)
        _refresh_lead_flags(record)

        if record["STATUS_ID"] != old_status:
            semantic = semantic_of(portal, "STATUS", record["STATUS_ID"])
            record["STATUS_SEMANTIC_ID"] = semantic
            record["MOVED_TIME"] = now
            record["MOVED_BY_ID"] = str(user_id)
            record["DATE_CLOSED"] = now if semantic in ("S", "F") else ""
            _record_stage_move(
                portal,
                entity_type_id=1,
                owner_id=lead_id,
                status_id=record["STATUS_ID"],
                semantic=semantic,
                created=False,
            )
        portal.touch()

    portal.events.fire("ONCRMLEADUPDATE", {"FIELDS": {"ID": lead_id}}, actor)


def delete_lead(portal: Portal, lead_id: int, actor: Actor) -> None:
    with portal.lock:
        if portal.leads.data.pop(lead_id, None) is None:
            raise crm_error("Not found")
        portal.touch()
    portal.events.fire("ONCRMLEADDELETE", {"FIELDS": {"ID": lead_id}}, actor)


def lead_view(portal: Portal, lead_id: int) -> dict:
    """Return a lead as `crm.lead.get` shows it: every field plus user fields."""
    with portal.lock:
        record = portal.leads.data.get(lead_id)
        if record is None:
            raise crm_error("Not found")
        view = user_field_defaults(portal, "CRM_LEAD")
        view = {**record, **{k: v for k, v in view.items() if k not in record}}
        return copy_record(view)


def copy_record(value: Any) -> Any:
    """Deep-copy nested dicts and lists of a stored record."""
    if isinstance(value, dict):
        return {key: copy_record(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_record(item) for item in value]
    return value


# ---------------------------------------------------------------- deals


def add_deal(portal: Portal, fields: Mapping, actor: Actor) -> int:
    """Create a deal in its pipeline and fire ONCRMDEALADD."""
    user_id = _actor_user(actor, portal)
    with portal.lock:
        deal_id = portal.next_id("deal")
        now = portal.now_iso()
        today = portal.now().date()
        record: dict[str, Any] = {name: None for name in DEAL_FIELDS}
        record.update(
            {
                "ID": str(deal_id),
                "CATEGORY_ID": "0",
                "PROBABILITY": None,
                "CURRENCY_ID": "RUB",
                "OPPORTUNITY": "0.00",
                "IS_MANUAL_OPPORTUNITY": "N",
                "TAX_VALUE": "0.00",
                "BEGINDATE": today.isoformat(),
                "CLOSEDATE": today.fromordinal(today.toordinal() + 7).isoformat(),
                "OPENED": "Y",
                "CLOSED": "N",
                "IS_NEW": "Y",
                "IS_RECURRING": "N",
                "CONTACT_IDS": [],
                "ASSIGNED_BY_ID": str(user_id),
                "CREATED_BY_ID": str(user_id),
                "MODIFY_BY_ID": str(user_id),
                "MOVED_BY_ID": str(user_id),
                "DATE_CREATE": now,
                "DATE_MODIFY": now,
                "MOVED_TIME": now,
                "LAST_ACTIVITY_TIME": now,
                "LAST_ACTIVITY_BY": str(user_id),
            }
        )
        _apply_fields(portal, record, fields, DEAL_FIELDS, "CRM_DEAL", creating=True)
        category = record["CATEGORY_ID"] or "0"
        entity = deal_stage_entity(category)
        default_stage = "NEW" if category == "0" else f"C{category}:NEW"
        if status_record(portal, entity, record.get("STAGE_ID") or "") is None:
            record["STAGE_ID"] = default_stage
        if not record.get("TITLE"):
            record["TITLE"] = f"Сделка #{deal_id}"
        semantic = semantic_of(portal, entity, record["STAGE_ID"])
        record["STAGE_SEMANTIC_ID"] = semantic
        record["CLOSED"] = "Y" if semantic in ("S", "F") else "N"
        portal.deals.data[deal_id] = record
        _record_stage_move(
            portal,
            entity_type_id=2,
            owner_id=deal_id,
            status_id=record["STAGE_ID"],
            semantic=semantic,
            created=True,
            category_id=category,
        )
        portal.touch()

    portal.events.fire("ONCRMDEALADD", {"FIELDS": {"ID": deal_id}}, actor)
    return deal_id


def update_deal(portal: Portal, deal_id: int, fields: Mapping, actor: Actor) -> None:
    """Change a deal; CATEGORY_ID stays (moving pipelines needs crm.item.update)."""
    user_id = _actor_user(actor, portal)
    with portal.lock:
        record = portal.deals.data.get(deal_id)
        if record is None:
            raise crm_error("Not found")
        old_stage = record["STAGE_ID"]
        entity = deal_stage_entity(record["CATEGORY_ID"])
        requested = dict(fields)
        wanted = get_param(requested, "STAGE_ID")
        if wanted is not None and status_record(portal, entity, str(wanted)) is None:
            requested = {
                key: value
                for key, value in requested.items()
                if str(key).upper() != "STAGE_ID"
            }
        _apply_fields(
            portal, record, requested, DEAL_FIELDS, "CRM_DEAL", creating=False
        )
        now = portal.now_iso()
        record["DATE_MODIFY"] = now
        record["MODIFY_BY_ID"] = str(user_id)
        record["IS_NEW"] = "N"
        if record["STAGE_ID"] != old_stage:
            semantic = semantic_of(portal, entity, record["STAGE_ID"])
            record["STAGE_SEMANTIC_ID"] = semantic
            record["CLOSED"] = "Y" if semantic in ("S", "F") else "N"
            record["MOVED_TIME"] = now
            record["MOVED_BY_ID"] = str(user_id)
            _record_stage_move(
                portal,
                entity_type_id=2,
                owner_id=deal_id,
                status_id=record["STAGE_ID"],
                semantic=semantic,
                created=False,
                category_id=record["CATEGORY_ID"],
            )
        portal.touch()
    portal.events.fire("ONCRMDEALUPDATE", {"FIELDS": {"ID": deal_id}}, actor)


def delete_deal(portal: Portal, deal_id: int, actor: Actor) -> None:
    with portal.lock:
        if portal.deals.data.pop(deal_id, None) is None:
            raise crm_error("Not found")
        portal.touch()
    portal.events.fire("ONCRMDEALDELETE", {"FIELDS": {"ID": deal_id}}, actor)


def deal_view(portal: Portal, deal_id: int) -> dict:
    with portal.lock:
        record = portal.deals.data.get(deal_id)
        if record is None:
            raise crm_error("Not found")
        defaults = user_field_defaults(portal, "CRM_DEAL")
        return copy_record(
            {**record, **{k: v for k, v in defaults.items() if k not in record}}
        )


# ---------------------------------------------------------------- activities


def _owner_exists(portal: Portal, owner_type_id: int, owner_id: int) -> bool:
    store = {1: portal.leads, 2: portal.deals}.get(owner_type_id)
    return store is not None and owner_id in store.data


def _communications(raw: Any, owner_type_id: int, owner_id: int) -> list[dict]:
    result = []
    for index, item in enumerate(as_list(raw), start=1):
        if not isinstance(item, Mapping):
            item = {"VALUE": item}
        result.append(
            {
                "ID": str(index),
                "TYPE": str(get_param(item, "TYPE") or ""),
                "VALUE": str(get_param(item, "VALUE") or ""),
                "ENTITY_ID": str(get_param(item, "ENTITY_ID") or owner_id),
                "ENTITY_TYPE_ID": str(
                    get_param(item, "ENTITY_TYPE_ID") or owner_type_id
                ),
            }
        )
    return result


def _validate_activity(portal: Portal, fields: Mapping) -> tuple[int, int]:
    owner_type = to_id_string(get_param(fields, "OWNER_TYPE_ID"))
    owner = to_id_string(get_param(fields, "OWNER_ID"))
    if not str(get_param(fields, "SUBJECT") or "").strip():
        raise crm_error("The field SUBJECT is not defined or empty.")
    responsible = to_id_string(get_param(fields, "RESPONSIBLE_ID"))
    if responsible is None or int(responsible) not in portal.users.data:
        raise crm_error("The field RESPONSIBLE_ID is not defined or invalid.")
    type_id = to_id_string(get_param(fields, "TYPE_ID"))
    if type_id is None or type_id not in ("1", "2", "3", "4", "5", "6"):
        raise crm_error("The field TYPE_ID is not defined or invalid.")
    if not as_list(get_param(fields, "COMMUNICATIONS")):
        raise crm_error("The field COMMUNICATIONS is not defined or invalid.")
    if (
        owner_type is None
        or owner is None
        or not _owner_exists(portal, int(owner_type), int(owner))
    ):
        raise crm_error(
            "Could not build binding. Please ensure that owner info and "
            "communications are defined correctly."
        )
    return int(owner_type), int(owner)


def store_activity(portal: Portal, fields: Mapping, actor: Actor) -> int:
    """Store an activity without REST validation and fire ONCRMACTIVITYADD."""
    user_id = _actor_user(actor, portal)
    with portal.lock:
        activity_id = portal.next_id("activity")
        owner_type = int(get_param(fields, "OWNER_TYPE_ID"))
        owner = int(get_param(fields, "OWNER_ID"))
        type_id = str(get_param(fields, "TYPE_ID"))
        provider, provider_type = _DEFAULT_PROVIDERS.get(type_id, ("CRM_TODO", "TODO"))
        provider = str(get_param(fields, "PROVIDER_ID") or provider)
        provider_type = str(get_param(fields, "PROVIDER_TYPE_ID") or provider_type)
        now = portal.now()
        start = parse_datetime(get_param(fields, "START_TIME"), portal.tz) or now
        end = parse_datetime(get_param(fields, "END_TIME"), portal.tz) or start
        completed = to_flag(get_param(fields, "COMPLETED", "N"))
        responsible = str(to_id_string(get_param(fields, "RESPONSIBLE_ID")) or user_id)
        deadline = end if type_id == "3" else start

        record = {
            "ID": str(activity_id),
            "OWNER_ID": str(owner),
            "OWNER_TYPE_ID": str(owner_type),
            "TYPE_ID": type_id,
            "PROVIDER_ID": provider,
            "PROVIDER_TYPE_ID": provider_type,
            "PROVIDER_GROUP_ID": None,
            "ASSOCIATED_ENTITY_ID": str(get_param(fields, "ASSOCIATED_ENTITY_ID") or 0),
            "SUBJECT": str(get_param(fields, "SUBJECT") or ""),
            "CREATED": format_datetime(now),
            "LAST_UPDATED": format_datetime(now),
            "START_TIME": format_datetime(start),
            "END_TIME": format_datetime(end),
            "DEADLINE": format_datetime(deadline),
            "COMPLETED": completed,
            "STATUS": "2" if completed == "Y" else "1",
            "RESPONSIBLE_ID": responsible,
            "PRIORITY": str(get_param(fields, "PRIORITY") or 2),
            "NOTIFY_TYPE": str(get_param(fields, "NOTIFY_TYPE") or 0),
            "NOTIFY_VALUE": str(get_param(fields, "NOTIFY_VALUE") or 0),
            "DESCRIPTION": str(get_param(fields, "DESCRIPTION") or ""),
            "DESCRIPTION_TYPE": str(get_param(fields, "DESCRIPTION_TYPE") or 1),
            "DIRECTION": str(get_param(fields, "DIRECTION") or 0),
            "LOCATION": str(get_param(fields, "LOCATION") or ""),
            "SETTINGS": get_param(fields, "SETTINGS") or [],
            "ORIGINATOR_ID": get_param(fields, "ORIGINATOR_ID"),
            "ORIGIN_ID": get_param(fields, "ORIGIN_ID"),
            "AUTHOR_ID": str(to_id_string(get_param(fields, "AUTHOR_ID")) or user_id),
            "EDITOR_ID": str(user_id),
            "PROVIDER_PARAMS": get_param(fields, "PROVIDER_PARAMS") or [],
            "PROVIDER_DATA": get_param(fields, "PROVIDER_DATA"),
            "IS_INCOMING_CHANNEL": "Y"
            if str(get_param(fields, "DIRECTION")) == "1"
            else "N",
            "BINDINGS": [{"OWNER_TYPE_ID": str(owner_type), "OWNER_ID": str(owner)}],
            "COMMUNICATIONS": _communications(
                get_param(fields, "COMMUNICATIONS"), owner_type, owner
            ),
            "FILES": [],
        }
        portal.activities.data[activity_id] = record

        lead = portal.leads.data.get(owner) if owner_type == 1 else None
        if lead is not None:
            lead["LAST_ACTIVITY_TIME"] = record["CREATED"]
            lead["LAST_ACTIVITY_BY"] = record["AUTHOR_ID"]
        portal.touch()

    logger.info("activity %s (type %s) added to owner %s", activity_id, type_id, owner)
    portal.events.fire("ONCRMACTIVITYADD", {"FIELDS": {"ID": activity_id}}, actor)
    return activity_id


def add_activity(portal: Portal, fields: Mapping, actor: Actor) -> int:
    """Create an activity through `crm.activity.add`, validating like the portal."""
    with portal.lock:
        _validate_activity(portal, fields)
    return store_activity(portal, fields, actor)


def update_activity(portal: Portal, activity_id: int, fields: Mapping, actor: Actor):
    with portal.lock:
        record = portal.activities.data.get(activity_id)
        if record is None:
            raise crm_error("Not found")
        for raw_key, value in fields.items():
            key = str(raw_key).upper()
            spec = ACTIVITY_FIELDS.get(key)
            if spec is None or spec.read_only or spec.immutable:
                continue
            if key == "COMMUNICATIONS":
                record[key] = _communications(
                    value, int(record["OWNER_TYPE_ID"]), int(record["OWNER_ID"])
                )
            elif spec.type in ("datetime", "char", "user"):
                record[key] = to_wire(spec.type, value, portal.tz)
            else:
                record[key] = value if isinstance(value, dict | list) else str(value)
        record["STATUS"] = "2" if record["COMPLETED"] == "Y" else "1"
        record["LAST_UPDATED"] = portal.now_iso()
        if actor.user_id is not None:
            record["EDITOR_ID"] = str(actor.user_id)
        portal.touch()
    portal.events.fire("ONCRMACTIVITYUPDATE", {"FIELDS": {"ID": activity_id}}, actor)


# ---------------------------------------------------------------- timeline


def add_timeline_comment(portal: Portal, fields: Mapping, actor: Actor) -> int:
    """Add a comment to a CRM item's timeline and fire ONCRMTIMELINECOMMENTADD."""
    entity_type = str(get_param(fields, "ENTITY_TYPE") or "").strip().lower()
    entity_id = to_id_string(get_param(fields, "ENTITY_ID"))
    comment = str(get_param(fields, "COMMENT") or "").strip()
    if not entity_type or entity_id is None:
        raise RestError("100", "Required fields ENTITY_ID and ENTITY_TYPE are missing.")
    if entity_type not in ENTITY_TYPE_IDS:
        raise RestError("NOT_FOUND")
    if not comment:
        raise RestError("INVALID_ARG_VALUE", "Comment text is empty.")

    with portal.lock:
        if not _owner_exists(portal, ENTITY_TYPE_IDS[entity_type], int(entity_id)):
            raise RestError("OWNER_NOT_FOUND")
        comment_id = portal.next_id("comment")
        portal.timeline_comments.data[comment_id] = {
            "ID": str(comment_id),
            "ENTITY_ID": entity_id,
            "ENTITY_TYPE": entity_type,
            "COMMENT": comment,
            "CREATED": portal.now_iso(),
            "AUTHOR_ID": str(_actor_user(actor, portal)),
            "FILES": [],
        }
        portal.touch()

    portal.events.fire("ONCRMTIMELINECOMMENTADD", {"ID": comment_id}, actor)
    return comment_id

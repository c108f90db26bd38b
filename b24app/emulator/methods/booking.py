"""Booking module (`booking.v1.*`): resources, their slots, bookings, clients.

Errors use the module's numeric codes (HTTP 400): 1021 booking not found,
1009 resource not found, 1018 empty resource collection, 422 invalid date
period, 100 missing parameter. Bookings fire ONBOOKINGADD/UPDATE/DELETE
with `data[ID]`.

A resource's working time is its slot settings, as the REST docs
(bitrix24/b24restdocs, booking/resource/slots) give them:
`booking.v1.resource.slots.list` returns `{"slots": [{"id", "from", "to",
"timezone", "weekDays": ["Mon", ...], "slotSize"}]}`, with `from` and `to`
in minutes of the day. The module has no free-time method; a client
computes free times from these settings and `booking.v1.booking.list`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import RestError
from ..events import Actor
from ..params import as_dict, as_list, get_param
from ..registry import CallContext, rest_method

if TYPE_CHECKING:
    from ..state import Portal

NOTIFICATION_DEFAULTS = {
    "isInfoNotificationOn": "N",
    "isConfirmationNotificationOn": "N",
    "confirmationDelay": 86400,
    "isReminderNotificationOn": "N",
    "reminderDelay": -1,
    "isFeedbackNotificationOn": "N",
    "isDelayedNotificationOn": "N",
}
WEEK = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
# booking.v1.booking.list returns one page of at most 50 rows; `start` pages.
PAGE_SIZE = 50


def _error(code: int, text: str) -> RestError:
    return RestError(str(code), text, status=400)


def _required(params: dict, name: str) -> Any:
    value = get_param(params, name)
    if value in (None, "", [], {}):
        raise _error(100, f"Missing required parameter: {name}")
    return value


def _int(value: Any, name: str) -> int:
    try:
        return int(str(value))
    except ValueError as err:
        raise _error(100, f"Invalid parameter: {name}") from err


# ---------------------------------------------------------------- store helpers


def add_resource(portal: Portal, fields: dict) -> int:
    with portal.lock:
        resource_id = portal.next_id("booking_resource")
        record = {
            "id": resource_id,
            "typeId": int(fields.get("typeId") or 1),
            "name": str(fields.get("name") or f"Ресурс {resource_id}"),
            "description": fields.get("description"),
            "isMain": str(fields.get("isMain") or "Y"),
            **NOTIFICATION_DEFAULTS,
        }
        for key in NOTIFICATION_DEFAULTS:
            if key in fields:
                record[key] = fields[key]
        record["slotRanges"] = [
            {
                "id": portal.next_id("booking_slot"),
                "from": 9 * 60,
                "to": 21 * 60,
                "weekDays": list(WEEK),
                "timezone": portal.config.timezone,
                "slotSize": 60,
            }
        ]
        portal.booking_resources.data[resource_id] = record
        portal.touch()
    return resource_id


def _period(raw: Any) -> tuple[int, int, str]:
    period = as_dict(raw)
    start = as_dict(period.get("from"))
    end = as_dict(period.get("to"))
    try:
        start_ts, end_ts = int(start["timestamp"]), int(end["timestamp"])
    except (KeyError, TypeError, ValueError) as err:
        raise _error(422, "Invalid date period") from err
    if end_ts <= start_ts:
        raise _error(422, "Invalid date period")
    return start_ts, end_ts, str(start.get("timezone") or "UTC")


def create_booking(
    portal: Portal,
    fields: dict,
    actor: Actor,
    *,
    deal_id: int | None = None,
    contact_id: int | None = None,
) -> int:
    resource_ids = [int(str(r)) for r in as_list(fields.get("resourceIds"))]
    if not resource_ids:
        raise _error(1018, "Empty resource collection")
    start_ts, end_ts, tz = _period(fields.get("datePeriod"))
    with portal.lock:
        for resource_id in resource_ids:
            if resource_id not in portal.booking_resources.data:
                raise _error(1018, "Empty resource collection")
        booking_id = portal.next_id("booking")
        portal.bookings.data[booking_id] = {
            "id": booking_id,
            "name": fields.get("name"),
            "description": fields.get("description"),
            "resourceIds": resource_ids,
            "datePeriod": {
                "from": {"timestamp": start_ts, "timezone": tz},
                "to": {"timestamp": end_ts, "timezone": tz},
            },
            "clients": [],
            "externalData": [],
        }
        if deal_id:
            portal.bookings.data[booking_id]["externalData"].append(
                {"moduleId": "crm", "entityTypeId": "DEAL", "value": str(deal_id)}
            )
        if contact_id:
            portal.bookings.data[booking_id]["clients"].append(
                {"id": int(contact_id), "type": {"module": "crm", "code": "CONTACT"}}
            )
        portal.touch()
    portal.events.fire("ONBOOKINGADD", {"ID": booking_id}, actor)
    return booking_id


def _booking(portal: Portal, raw_id: Any) -> dict:
    booking_id = _int(raw_id, "id")
    record = portal.bookings.data.get(booking_id)
    if record is None:
        raise _error(1021, "Booking not found")
    return record


def _view(record: dict) -> dict:
    return {
        "id": record["id"],
        "name": record["name"],
        "description": record["description"],
        "resourceIds": list(record["resourceIds"]),
        "datePeriod": {
            "from": dict(record["datePeriod"]["from"]),
            "to": dict(record["datePeriod"]["to"]),
        },
    }


def update_booking(portal: Portal, booking_id: int, fields: dict, actor: Actor) -> dict:
    with portal.lock:
        record = _booking(portal, booking_id)
        if "datePeriod" in fields:
            start_ts, end_ts, tz = _period(fields["datePeriod"])
            record["datePeriod"] = {
                "from": {"timestamp": start_ts, "timezone": tz},
                "to": {"timestamp": end_ts, "timezone": tz},
            }
        if "resourceIds" in fields:
            ids = [int(str(r)) for r in as_list(fields["resourceIds"])]
            if not ids:
                raise _error(1018, "Empty resource collection")
            record["resourceIds"] = ids
        for key in ("name", "description"):
            if key in fields:
                record[key] = fields[key]
        view = _view(record)
        portal.touch()
    portal.events.fire("ONBOOKINGUPDATE", {"ID": int(booking_id)}, actor)
    return view


def delete_booking(portal: Portal, booking_id: int, actor: Actor) -> None:
    with portal.lock:
        _booking(portal, booking_id)
        del portal.bookings.data[int(booking_id)]
        portal.touch()
    portal.events.fire("ONBOOKINGDELETE", {"ID": int(booking_id)}, actor)


# ---------------------------------------------------------------- resources


@rest_method("booking.v1.resource.add", "booking")
def resource_add(ctx: CallContext, params: dict) -> dict:
    fields = as_dict(_required(params, "fields"))
    if not fields.get("typeId"):
        raise _error(0, "Required fields: typeId")
    resource_id = add_resource(ctx.portal, fields)
    return {"resource": _resource_view(ctx.portal.booking_resources[resource_id])}


def _resource_view(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "slotRanges"}


def _resource(ctx: CallContext, raw_id: Any) -> dict:
    resource_id = _int(raw_id, "id")
    record = ctx.portal.booking_resources.data.get(resource_id)
    if record is None:
        raise _error(1009, "Resource not found")
    return record


@rest_method("booking.v1.resource.get", "booking")
def resource_get(ctx: CallContext, params: dict) -> dict:
    with ctx.portal.lock:
        return {"resource": _resource_view(_resource(ctx, _required(params, "id")))}


@rest_method("booking.v1.resource.list", "booking")
def resource_list(ctx: CallContext, params: dict) -> dict:
    with ctx.portal.lock:
        return {
            "resource": [
                _resource_view(r) for r in ctx.portal.booking_resources.data.values()
            ]
        }


@rest_method("booking.v1.resource.update", "booking")
def resource_update(ctx: CallContext, params: dict) -> dict:
    fields = as_dict(_required(params, "fields"))
    with ctx.portal.lock:
        record = _resource(ctx, _required(params, "id"))
        for key, value in fields.items():
            if key != "id":
                record[key] = value
        return {"resource": _resource_view(record)}


@rest_method("booking.v1.resource.delete", "booking")
def resource_delete(ctx: CallContext, params: dict) -> bool:
    with ctx.portal.lock:
        record = _resource(ctx, _required(params, "id"))
        del ctx.portal.booking_resources.data[record["id"]]
    return True


@rest_method("booking.v1.resource.slots.list", "booking")
def slots_list(ctx: CallContext, params: dict) -> dict:
    with ctx.portal.lock:
        record = _resource(ctx, _required(params, "resourceId"))
        return {"slots": [dict(r) for r in record["slotRanges"]]}


SLOT_FIELDS = ("from", "to", "timezone", "weekDays", "slotSize")


def _slot(portal: Portal, item: dict) -> dict:
    """Validate one item of `slots`; every field is required, as documented."""
    missing = [name for name in SLOT_FIELDS if item.get(name) in (None, "", [])]
    if missing:
        raise _error(0, "Required fields: " + ", ".join(missing))
    start, end = _int(item["from"], "from"), _int(item["to"], "to")
    days = [str(day) for day in as_list(item["weekDays"])]
    if not 0 <= start <= end <= 1440 or any(day not in WEEK for day in days):
        raise _error(100, "Invalid parameter: slots")
    return {
        "id": portal.next_id("booking_slot"),
        "from": start,
        "to": end,
        "weekDays": days,
        "timezone": str(item["timezone"]),
        "slotSize": _int(item["slotSize"], "slotSize"),
    }


@rest_method("booking.v1.resource.slots.set", "booking")
def slots_set(ctx: CallContext, params: dict) -> bool:
    items = [as_dict(item) for item in as_list(_required(params, "slots"))]
    with ctx.portal.lock:
        record = _resource(ctx, _required(params, "resourceId"))
        record["slotRanges"] = [_slot(ctx.portal, item) for item in items]
    return True


@rest_method("booking.v1.resource.slots.unset", "booking")
def slots_unset(ctx: CallContext, params: dict) -> bool:
    with ctx.portal.lock:
        _resource(ctx, _required(params, "resourceId"))["slotRanges"] = []
    return True


# ---------------------------------------------------------------- bookings


@rest_method("booking.v1.booking.add", "booking")
def booking_add(ctx: CallContext, params: dict) -> dict:
    fields = as_dict(_required(params, "fields"))
    missing = [k for k in ("resourceIds", "datePeriod") if not fields.get(k)]
    if missing:
        raise _error(0, "Required fields: " + ", ".join(missing))
    return {"id": create_booking(ctx.portal, fields, ctx.actor)}


@rest_method("booking.v1.booking.get", "booking")
def booking_get(ctx: CallContext, params: dict) -> dict:
    with ctx.portal.lock:
        return {"booking": _view(_booking(ctx.portal, _required(params, "id")))}


@rest_method("booking.v1.booking.list", "booking")
def booking_list(ctx: CallContext, params: dict) -> dict:
    flt = as_dict(get_param(params, "filter"))
    within = as_dict(flt.get("within"))
    date_from = int(within["dateFrom"]) if within.get("dateFrom") else None
    date_to = int(within["dateTo"]) if within.get("dateTo") else None
    wanted_clients = {
        (str(as_dict(e).get("code")), int(as_dict(e).get("id") or 0))
        for e in as_list(as_dict(flt.get("client")).get("entities"))
    }
    order = as_dict(get_param(params, "order"))
    rows = []
    with ctx.portal.lock:
        for record in ctx.portal.bookings.data.values():
            start = record["datePeriod"]["from"]["timestamp"]
            end = record["datePeriod"]["to"]["timestamp"]
            if date_from is not None and end <= date_from:
                continue
            if date_to is not None and start >= date_to:
                continue
            if wanted_clients and not any(
                (c["type"]["code"], c["id"]) in wanted_clients
                for c in record["clients"]
            ):
                continue
            rows.append(_view(record))
    key, direction = next(iter(order.items()), ("id", "asc"))
    sort_key = {
        "dateFrom": lambda r: r["datePeriod"]["from"]["timestamp"],
        "dateTo": lambda r: r["datePeriod"]["to"]["timestamp"],
    }.get(key, lambda r: r["id"])
    rows.sort(key=sort_key, reverse=str(direction).lower() == "desc")
    start = max(0, int(str(get_param(params, "start") or 0)))
    return {"booking": rows[start : start + PAGE_SIZE]}


@rest_method("booking.v1.booking.update", "booking")
def booking_update(ctx: CallContext, params: dict) -> dict:
    fields = as_dict(_required(params, "fields"))
    booking_id = _int(_required(params, "id"), "id")
    return {"booking": update_booking(ctx.portal, booking_id, fields, ctx.actor)}


@rest_method("booking.v1.booking.delete", "booking")
def booking_delete(ctx: CallContext, params: dict) -> bool:
    delete_booking(ctx.portal, _int(_required(params, "id"), "id"), ctx.actor)
    return True


@rest_method("booking.v1.booking.client.set", "booking")
def client_set(ctx: CallContext, params: dict) -> bool:
    clients = [as_dict(c) for c in as_list(_required(params, "clients"))]
    with ctx.portal.lock:
        record = _booking(ctx.portal, _required(params, "bookingId"))
        record["clients"] = [
            {
                "id": int(c["id"]),
                "type": {
                    "module": as_dict(c.get("type")).get("module", "crm"),
                    "code": as_dict(c.get("type")).get("code", "CONTACT"),
                },
            }
            for c in clients
        ]
    return True


@rest_method("booking.v1.booking.client.list", "booking")
def client_list(ctx: CallContext, params: dict) -> dict:
    with ctx.portal.lock:
        record = _booking(ctx.portal, _required(params, "bookingId"))
        return {
            "bookingClient": [dict(c, type=dict(c["type"])) for c in record["clients"]]
        }


@rest_method("booking.v1.booking.client.unset", "booking")
def client_unset(ctx: CallContext, params: dict) -> bool:
    with ctx.portal.lock:
        _booking(ctx.portal, _required(params, "bookingId"))["clients"] = []
    return True


@rest_method("booking.v1.booking.externalData.set", "booking")
def external_set(ctx: CallContext, params: dict) -> bool:
    items = [as_dict(i) for i in as_list(_required(params, "externalData"))]
    with ctx.portal.lock:
        record = _booking(ctx.portal, _required(params, "bookingId"))
        record["externalData"] = [
            {
                "moduleId": str(i.get("moduleId") or ""),
                "entityTypeId": str(i.get("entityTypeId") or ""),
                "value": str(i.get("value") or ""),
            }
            for i in items
        ]
    return True


@rest_method("booking.v1.booking.externalData.list", "booking")
def external_list(ctx: CallContext, params: dict) -> dict:
    with ctx.portal.lock:
        record = _booking(ctx.portal, _required(params, "bookingId"))
        return {"externalData": [dict(i) for i in record["externalData"]]}


@rest_method("booking.v1.booking.externalData.unset", "booking")
def external_unset(ctx: CallContext, params: dict) -> bool:
    with ctx.portal.lock:
        _booking(ctx.portal, _required(params, "bookingId"))["externalData"] = []
    return True

"""Control API under `/_emulator/`: JSON, no auth, for the demo and other processes.

Each endpoint acts like a person on the portal or like the platform, through
the same `Portal` helpers the Python tests call.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, jsonify, request

from . import crm
from .errors import RestError
from .methods import currency

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

bp = Blueprint("emulator_control", __name__, url_prefix="/_emulator")


def _portal() -> Portal:
    return current_app.extensions["emulator"]


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


@bp.errorhandler(ValueError)
@bp.errorhandler(TypeError)
def _bad_request(error: Exception):
    return jsonify({"error": "invalid_request", "error_description": str(error)}), 400


@bp.errorhandler(KeyError)
def _missing_field(error: KeyError):
    description = f"Missing field in the request body: {error}"
    return jsonify({"error": "invalid_request", "error_description": description}), 400


@bp.errorhandler(LookupError)
def _not_found(error: Exception):
    return jsonify({"error": "not_found", "error_description": str(error)}), 404


@bp.errorhandler(RuntimeError)
def _conflict(error: Exception):
    return jsonify({"error": "conflict", "error_description": str(error)}), 409


@bp.errorhandler(RestError)
def _rest_error(error: RestError):
    return jsonify(error.to_body()), error.status


@bp.post("/install")
def install():
    body = _body()
    result = _portal().install_app(body.get("handler_url"), body.get("install_url"))
    return jsonify({"installed": result.installed, "status_code": result.status_code})


@bp.post("/uninstall")
def uninstall():
    _portal().uninstall_app(bool(_body().get("clean", False)))
    return jsonify({"installed": False})


@bp.post("/leads")
def create_lead():
    body = _body()
    lead_id = _portal().create_lead(
        body.get("fields") or {},
        kind=body.get("kind", "form"),
        message=body.get("message"),
        actor_id=body.get("actor_id"),
    )
    return jsonify({"id": lead_id}), 201


@bp.post("/leads/<int:lead_id>")
def update_lead(lead_id: int):
    body = _body()
    _portal().update_lead(
        lead_id, body.get("fields") or {}, actor_id=body.get("actor_id", "automation")
    )
    return jsonify({"id": lead_id})


@bp.post("/leads/<int:lead_id>/activities")
def add_activity(lead_id: int):
    body = _body()
    activity_id = _portal().add_activity(
        lead_id,
        type_id=int(body.get("type_id", 2)),
        direction=int(body.get("direction", 2)),
        author_id=int(body["author_id"]),
        provider_id=body.get("provider_id"),
        subject=body.get("subject", ""),
        description=body.get("description", ""),
        completed=body.get("completed"),
    )
    return jsonify({"id": activity_id}), 201


@bp.post("/leads/<int:lead_id>/status")
def change_status(lead_id: int):
    body = _body()
    _portal().change_lead_status(
        lead_id, str(body["status_id"]), actor_id=body.get("actor_id", "automation")
    )
    return jsonify({"id": lead_id, "status_id": body["status_id"]})


@bp.post("/tasks/<int:task_id>/complete")
def complete_task(task_id: int):
    _portal().complete_task(task_id, actor_id=int(_body()["actor_id"]))
    return jsonify({"id": task_id})


@bp.post("/faults")
def set_fault():
    body = _body()
    options = {
        key: body[key]
        for key in ("latency_ms", "description", "status", "hang_seconds")
        if key in body
    }
    _portal().set_fault(
        str(body["method"]), str(body["error"]), int(body.get("times", 1)), **options
    )
    return jsonify({"method": body["method"], "error": body["error"]}), 201


@bp.delete("/faults")
def clear_faults():
    _portal().clear_faults()
    return jsonify({"cleared": True})


@bp.post("/expire-tokens")
def expire_tokens():
    return jsonify({"expired": _portal().expire_tokens()})


@bp.post("/tokens")
def issue_tokens():
    """Issue tokens for a user without the install flow (for dry runs)."""
    return jsonify(_portal().issue_tokens(_body().get("user_id")))


@bp.post("/rate-limit")
def rate_limit():
    body = _body()
    _portal().set_rate_limit(body.get("rate"), body.get("burst"))
    return jsonify({"rate": _portal().bucket.rate, "burst": _portal().bucket.burst})


@bp.post("/operating-limit")
def operating_limit():
    body = _body()
    _portal().set_operating_limit(
        body.get("limit_seconds"), enabled=bool(body.get("enabled", True))
    )
    return jsonify({"enabled": _portal().operating.enabled})


@bp.post("/clock")
def advance_clock():
    _portal().advance_clock(float(_body().get("advance_seconds", 0)))
    return jsonify({"now": _portal().now_iso()})


@bp.post("/placements/open")
def open_placement():
    body = _body()
    response = _portal().open_placement(
        str(body.get("code", "DEFAULT")),
        body.get("options"),
        body.get("user_id"),
        body.get("handler"),
    )
    return jsonify(
        {
            "status_code": response.status_code,
            "content_type": response.headers.get("Content-Type"),
            "body": response.text,
        }
    )


@bp.get("/currencies")
def list_currencies():
    """Return the base currency and every currency row as `crm.currency.list` has it."""
    return jsonify(currency.currency_state(_portal()))


@bp.post("/currencies")
def update_currencies():
    """Set the base currency and rates: `{"base": "USD", "rates": {"EUR": 1.08}}`.

    Rates are in units of the base currency after the switch. A rate is a
    number per 1 unit or `{"amount": 1.2, "amount_cnt": 100}`.
    """
    body = _body()
    unknown = set(body) - {"base", "rates"}
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ValueError(f"Unknown keys in the request body: {names}; use base, rates.")
    if "base" not in body and "rates" not in body:
        raise ValueError("Send base, rates or both.")
    return jsonify(_portal().set_currencies(body.get("base"), body.get("rates")))


@bp.get("/users")
def users():
    portal = _portal()
    return jsonify(
        [
            {
                "ID": user["ID"],
                "NAME": user["NAME"],
                "LAST_NAME": user["LAST_NAME"],
                "WORK_POSITION": user["WORK_POSITION"],
                "UF_DEPARTMENT": user["UF_DEPARTMENT"],
                "IS_ADMIN": user["IS_ADMIN"],
                "EMAIL": user["EMAIL"],
            }
            for user in portal.users.snapshot()
        ]
    )


@bp.get("/events")
def delivered_events():
    return jsonify(
        [
            {"event": event, "handler": url, "outcome": outcome}
            for event, url, outcome in _portal().delivered_events
        ]
    )


@bp.get("/state")
def state():
    """Counts and the app's visible effects: tasks, notifications, comments, leads."""
    portal = _portal()
    with portal.lock:
        leads = [crm.lead_view(portal, key) for key in sorted(portal.leads.data)]
    stores = (
        "leads",
        "deals",
        "activities",
        "timeline_comments",
        "tasks",
        "notifications",
        "users",
        "departments",
        "event_bindings",
        "placements",
        "userfields",
        "app_options",
    )
    return jsonify(
        {
            "domain": portal.domain,
            "installed": portal.installed,
            "counts": {name: len(getattr(portal, name)) for name in stores},
            "leads": leads,
            "tasks": portal.tasks.snapshot(),
            "notifications": portal.notifications.snapshot(),
            "timeline_comments": portal.timeline_comments.snapshot(),
            "event_bindings": portal.event_bindings.snapshot(),
            "placements": portal.placements.snapshot(),
            "app_options": dict(portal.app_options.items()),
            "delivered_events": len(portal.delivered_events),
        }
    )

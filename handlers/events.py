"""Event handler: Bitrix24 POSTs form-encoded events here."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from b24app import get_services
from b24app.install import InstallError, handle_app_install_event
from b24app.intake import EventRejected, accept, parse_event

logger = logging.getLogger(__name__)

bp = Blueprint("events", __name__)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@bp.post("/events")
def receive():
    """Verify and store an event; the worker does the rest."""
    services = get_services()
    if request.mimetype not in FORM_TYPES:
        return _reject("events must be form-encoded", 415)

    try:
        event = parse_event(list(request.form.items(multi=True)))
        if event.event == "ONAPPINSTALL":
            handle_app_install_event(services, event.auth)
            return jsonify(status="installed")
        portal, outcome = accept(services, event)
    except EventRejected as err:
        return _reject(str(err), err.status)
    except InstallError as err:
        return _reject(str(err), err.status)

    logger.info(
        "event received",
        extra={"member_id": portal.member_id, "event": event.event, "outcome": outcome},
    )
    if outcome == "ignored":
        return jsonify(status="ignored", reason="portal is not active")
    return jsonify(status=outcome)


def _reject(message: str, status: int):
    # The reason goes back to the sender; tokens never reach the log.
    logger.warning(
        "event rejected",
        extra={"status": status, "reason": message, "remote": request.remote_addr},
    )
    return jsonify(error=message), status

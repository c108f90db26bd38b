"""Event handler: Bitrix24 POSTs form-encoded events here."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from b24app import get_services
from b24app.install import InstallError, handle_app_install_event, mark_uninstalled
from b24app.intake import (
    EventRejected,
    find_portal,
    parse_event,
    store_event,
    verify,
)

logger = logging.getLogger(__name__)

bp = Blueprint("events", __name__)


@bp.post("/events")
def receive():
    """Verify and store an event; the worker does the rest."""
    services = get_services()
    if request.mimetype not in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        return _reject("events must be form-encoded", 415)

    try:
        event = parse_event(list(request.form.items(multi=True)))
        if event.event == "ONAPPINSTALL":
            portal = handle_app_install_event(services, event.auth)
            return jsonify(status="installed")
        portal = find_portal(services, event.member_id)
        verify(services, portal, event)
    except EventRejected as err:
        return _reject(str(err), err.status)
    except InstallError as err:
        return _reject(str(err), err.status)

    if event.event == "ONAPPUNINSTALL":
        mark_uninstalled(services, portal.id)
        return jsonify(status="uninstalled")

    if not portal.is_active:
        logger.info(
            "event for an inactive portal ignored",
            extra={"member_id": portal.member_id, "event": event.event},
        )
        return jsonify(status="ignored", reason="portal is not active")

    stored = store_event(services, portal, event)
    logger.info(
        "event received",
        extra={
            "member_id": portal.member_id,
            "event": event.event,
            "duplicate": not stored,
        },
    )
    return jsonify(status="queued" if stored else "duplicate")


def _reject(message: str, status: int):
    # The body is echoed to the sender only; tokens never reach the log.
    logger.warning(
        "event rejected",
        extra={"status": status, "reason": message, "remote": request.remote_addr},
    )
    return jsonify(error=message), status

"""The secret CSV feed for spreadsheets (=IMPORTDATA), authorised by its token."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response

from b24app import get_services, portal_settings
from b24app.kpi import exports

logger = logging.getLogger(__name__)

bp = Blueprint("reports", __name__)


@bp.get("/feed/kpi/<token>.csv")
def feed(token: str):
    """Daily KPI rows of the last 90 days; 404 for an unknown or revoked token."""
    services = get_services()
    portal = exports.portal_for_feed(services, token)
    if portal is None:
        return Response("unknown or revoked feed\n", status=404, mimetype="text/plain")
    today = datetime.now(UTC).astimezone(ZoneInfo(portal_settings.timezone(portal)))
    body = exports.feed_csv(services, portal, today.date())
    return Response(
        body,
        mimetype="text/csv",
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
    )

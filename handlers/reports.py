"""The KPI pages opened without a placement request.

* ``/feed/kpi/<token>.csv``: the secret CSV feed for spreadsheets
  (=IMPORTDATA), authorised by its feed token.
* ``/kpi``: the KPI tab again, for the way back from the SLA settings and
  reminders pages, authorised by the signed API token those pages carry.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, render_template, request

from b24app import get_services, portal_settings
from b24app.kpi import exports
from b24app.models import Portal
from b24app.placement_auth import PlacementDenied, read_api_token
from handlers.placements import _chartjs, _frameable

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


@bp.post("/kpi")
def kpi_page():
    """Render the KPI tab for the viewer of the signed token in the form."""
    services = get_services()
    token = (request.form.get("token") or "").strip()
    try:
        viewer = read_api_token(services, token)
    except PlacementDenied as err:
        return render_template("error.html", message=str(err)), err.status
    with services.db.session() as session:
        portal = session.get(Portal, viewer.portal_id)
    if portal is None or portal.member_id != viewer.member_id or not portal.is_active:
        logger.info("KPI tab rejected: portal %s is not active", viewer.member_id)
        return render_template(
            "error.html", message="Приложение не установлено на этом портале."
        ), 403

    response = current_app.make_response(
        render_template(
            "kpi.html",
            lang=viewer.language,
            api_token=token,
            is_admin=viewer.is_admin,
            chartjs=_chartjs(),
            timezone=portal_settings.timezone(portal),
            bx24_js_url=current_app.config["BX24_JS_URL"],
        )
    )
    return _frameable(response, portal.domain)

"""Placement handlers: pages Bitrix24 shows in iframes (KPI tab, lead tab)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, render_template, request
from sqlalchemy import select

from b24app import get_services, portal_settings
from b24app.models import Escalation, Lead, SlaClock
from b24app.placement_auth import PlacementDenied, identify, sign_api_token
from b24app.sla.clocks import clock_view
from b24app.tagging.types import RU_LABELS

logger = logging.getLogger(__name__)

bp = Blueprint("placements", __name__)

CHARTJS_CDN = "https://cdn.jsdelivr.net/npm/chart.js@4.4.7/dist/chart.umd.js"
CHARTJS_INTEGRITY = (
    "sha384-zYPBGXwO4633CABX/5Spf6emCKUJCfoOkhOMYyxMsatqQZPnDblmmOewfjsIVWCM"
)


@bp.post("/app")
@bp.post("/placements/kpi")
def kpi_tab():
    """The KPI tab (also the app's main page)."""
    services = get_services()
    try:
        portal, viewer, _ = identify(services, request.form, request.args)
    except PlacementDenied as err:
        return render_template("error.html", message=str(err)), err.status

    response = current_app.make_response(
        render_template(
            "kpi.html",
            lang=viewer.language,
            api_token=sign_api_token(services, viewer),
            is_admin=viewer.is_admin,
            chartjs=_chartjs(),
            timezone=portal_settings.timezone(portal),
            bx24_js_url=current_app.config["BX24_JS_URL"],
        )
    )
    return _frameable(response, portal.domain)


@bp.post("/placements/lead")
def lead_tab():
    """Render the lead tab: clock state, time left or overdue, tags, escalations."""
    services = get_services()
    try:
        portal, viewer, options = identify(services, request.form, request.args)
    except PlacementDenied as err:
        return render_template("error.html", message=str(err)), err.status

    try:
        bitrix_id = int(options.get("ID") or 0)
    except (TypeError, ValueError):
        bitrix_id = 0
    with services.db.session() as session:
        lead = session.scalar(
            select(Lead).where(Lead.portal_id == portal.id, Lead.bitrix_id == bitrix_id)
        )
        clocks = (
            session.scalars(
                select(SlaClock)
                .where(SlaClock.lead_id == lead.id)
                .order_by(SlaClock.tier.desc())
            ).all()
            if lead
            else []
        )
        escalations = (
            session.scalars(
                select(Escalation)
                .where(Escalation.lead_id == lead.id)
                .order_by(Escalation.claimed_at)
            ).all()
            if lead
            else []
        )

    now = datetime.now(UTC)
    response = current_app.make_response(
        render_template(
            "lead_tab.html",
            lang=viewer.language,
            lead=lead,
            bitrix_id=bitrix_id,
            clocks=[
                clock_view(c, portal, now, first_touch_at=lead.first_touch_at)
                for c in clocks
            ],
            escalations=escalations,
            labels=RU_LABELS,
            timezone=portal_settings.timezone(portal),
            desired=_local_time(lead, "desired_time", portal_settings.timezone(portal)),
            booked=_local_time(
                lead, "appointment_time", portal_settings.timezone(portal)
            ),
            bx24_js_url=current_app.config["BX24_JS_URL"],
        )
    )
    return _frameable(response, portal.domain)


def _local_time(lead: Lead | None, key: str, tz: str) -> str | None:
    """Return a time the tagging found (requested or booked visit) in the portal's zone.

    ``desired_time`` is the visit the client asks for; ``appointment_time`` is
    the booked visit a cancellation or a move refers to.
    """
    data = (lead.classification or {}) if lead is not None else {}
    try:
        moment = datetime.fromisoformat(data[key])
    except (KeyError, TypeError, ValueError):
        return None
    local = moment.astimezone(ZoneInfo(tz))
    if data.get(f"{key}_precision") == "day":
        return local.strftime("%d.%m.%Y")
    return local.strftime("%d.%m.%Y %H:%M")


def _chartjs() -> dict[str, str | None]:
    local = current_app.config.get("CHARTJS_URL")
    if local:
        return {"src": local, "integrity": None}
    return {"src": CHARTJS_CDN, "integrity": CHARTJS_INTEGRITY}


def _frameable(response, domain: str):
    """Allow framing by the portal's own origin only."""
    response.headers["Content-Security-Policy"] = f"frame-ancestors https://{domain}"
    response.headers.pop("X-Frame-Options", None)
    response.headers["Cache-Control"] = "no-store"
    return response

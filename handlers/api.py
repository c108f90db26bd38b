"""JSON API for the embedded pages, authenticated by the signed placement token."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import wraps
from zoneinfo import ZoneInfo

from flask import Blueprint, g, jsonify, request

from b24app import get_services, portal_settings
from b24app.kpi.first_response import first_response_report
from b24app.models import Portal
from b24app.placement_auth import PlacementDenied, read_api_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PERIOD_DAYS = {"day": 1, "week": 7, "month": 30}
MAX_RANGE_DAYS = 366


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return jsonify(error=str(err)), err.status


def portal_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError("missing Authorization: Bearer token", 401)
        services = get_services()
        try:
            viewer = read_api_token(services, header.removeprefix("Bearer ").strip())
        except PlacementDenied as err:
            raise ApiError(str(err), err.status) from err
        with services.db.session() as session:
            portal = session.get(Portal, viewer.portal_id)
        if (
            portal is None
            or portal.member_id != viewer.member_id
            or not portal.is_active
        ):
            raise ApiError("portal is not active", 403)
        g.viewer, g.portal = viewer, portal
        return view(*args, **kwargs)

    return wrapper


@bp.get("/kpi")
@portal_required
def kpi():
    """First-response KPIs.

    Query: ``period`` (day, week or month: the last N local days up to
    today), or ``from`` and ``to`` (YYYY-MM-DD, inclusive, at most 366
    days). Response fields: see ``b24app.kpi.first_response``; times in
    business minutes, shares as fractions 0..1.
    """
    start, end = _period(portal_settings.timezone(g.portal))
    return jsonify(first_response_report(get_services(), g.portal, start, end))


def _period(tz: str) -> tuple[date, date]:
    today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    raw_from, raw_to = request.args.get("from"), request.args.get("to")
    if raw_from or raw_to:
        try:
            start = date.fromisoformat(raw_from or "")
            end = date.fromisoformat(raw_to or "")
        except ValueError as err:
            raise ApiError("from and to must both be dates as YYYY-MM-DD") from err
        if end < start:
            raise ApiError("to must not be before from")
        if (end - start).days >= MAX_RANGE_DAYS:
            raise ApiError(f"a range spans at most {MAX_RANGE_DAYS} days")
        return start, end

    period = request.args.get("period", "week")
    if period not in PERIOD_DAYS:
        raise ApiError(
            f"period must be one of {', '.join(PERIOD_DAYS)}, got {period!r}"
        )
    return today - timedelta(days=PERIOD_DAYS[period] - 1), today

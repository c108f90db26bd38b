"""JSON API for the embedded pages, authenticated by the signed placement token."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import delete, select

from b24app import get_services, portal_settings
from b24app.dbutil import insert_ignore
from b24app.kpi import exports, history, names, report, rollup
from b24app.kpi import settings as kpi_settings
from b24app.kpi.forecast import forecast
from b24app.kpi.models import KpiSpend
from b24app.models import Portal
from b24app.placement_auth import PlacementDenied, read_api_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PERIOD_DAYS = {"day": 1, "week": 7, "month": 30}
MAX_RANGE_DAYS = 366


class ApiError(Exception):
    """A rejected request; ``field`` names the invalid input field, if one."""

    def __init__(self, message: str, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.field = field


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    body = {"error": str(err)}
    if err.field:
        body["field"] = err.field
    return jsonify(body), err.status


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


def admin_required(view):
    """Settings that change what every user sees are for portal admins only."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not g.viewer.is_admin:
            raise ApiError("only a portal administrator may change this", 403)
        return view(*args, **kwargs)

    return wrapper


@bp.get("/kpi")
@portal_required
def kpi():
    """Return all KPIs of a period.

    Query: ``period`` (day, week or month: the last N local days up to
    today), or ``from`` and ``to`` (YYYY-MM-DD, inclusive, at most 366
    days). Fields: see docs/kpi.md; times in business minutes, shares as
    fractions 0..1, money in the currency named by ``currency.code``.
    """
    services = get_services()
    start, end = _period(portal_settings.timezone(g.portal))
    body = report.kpi_report(services, g.portal, start, end)
    managers = names.manager_names(
        services,
        g.portal,
        (row["key"] for row in body["by_manager"]),
        lang=g.viewer.language,
    )
    body["names"] = {"managers": managers or {}, "loaded": managers is not None}
    return jsonify(body)


REPORT_KINDS = ("kpi", "daily", "weekly", "monthly")


def _report(kind: str) -> dict:
    services, portal = get_services(), g.portal
    if kind == "kpi":
        start, end = _period(portal_settings.timezone(portal))
        return report.kpi_report(services, portal, start, end)
    day = _day_param(portal_settings.timezone(portal))
    if kind == "daily":
        return report.daily_report(services, portal, day)
    if kind == "weekly":
        return report.weekly_report(services, portal, day)
    return report.monthly_report(services, portal, day)


@bp.get("/reports/<kind>")
@portal_required
def report_json(kind: str):
    """Return the daily, weekly or monthly report that contains ``date``."""
    if kind not in REPORT_KINDS[1:]:
        raise ApiError(f"report must be one of {', '.join(REPORT_KINDS[1:])}", 404)
    return jsonify(_report(kind))


@bp.get("/reports/<kind>.<fmt>")
@portal_required
def report_download(kind: str, fmt: str):
    """CSV or XLSX of a report (same query as the JSON form)."""
    if kind not in REPORT_KINDS:
        raise ApiError(f"report must be one of {', '.join(REPORT_KINDS)}", 404)
    if fmt not in ("csv", "xlsx"):
        raise ApiError("format must be csv or xlsx", 404)
    data = _report(kind)
    tz = ZoneInfo(portal_settings.timezone(g.portal))
    name = f"otklik-{kind}-{datetime.now(tz).date().isoformat()}.{fmt}"
    if fmt == "csv":
        body = exports.to_csv(data).encode("utf-8-sig")
        mimetype = "text/csv; charset=utf-8"
    else:
        body = exports.to_xlsx(data, lang=g.viewer.language)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/kpi/forecast")
@portal_required
def kpi_forecast():
    return jsonify(forecast(get_services(), g.portal))


@bp.get("/kpi/import")
@portal_required
def import_progress():
    services = get_services()
    rate = g.portal.rate_limit or services.config.get("RATE_LIMIT") or 2.0
    return jsonify(history.progress(services, g.portal, float(rate)))


@bp.post("/kpi/import")
@portal_required
@admin_required
def import_start():
    """Queue the history import; ``{"restart": true}`` reads everything again."""
    body = _json_body()
    history.start_import(get_services(), g.portal, restart=bool(body.get("restart")))
    return import_progress()


@bp.get("/kpi/settings")
@portal_required
def settings_get():
    cfg = kpi_settings.load(get_services(), g.portal)
    return jsonify(
        {
            "mapping": cfg.mapping,
            "targets": cfg.targets,
            "daily_capacity": cfg.daily_capacity,
            "owner_email": cfg.owner_email,
            "presets": kpi_settings.PRESETS,
            "is_admin": g.viewer.is_admin,
        }
    )


@bp.put("/kpi/settings")
@portal_required
@admin_required
def settings_put():
    """Save the funnel mapping, targets, daily capacity and owner e-mail."""
    body = _json_body()
    values: dict = {}
    if "mapping" in body:
        try:
            values["mapping"] = kpi_settings.validate_mapping(body["mapping"])
        except kpi_settings.MappingError as err:
            raise ApiError(_text(err.ru, err.en), field=err.field) from err
    if "targets" in body:
        targets = body["targets"]
        if not isinstance(targets, dict) or not all(
            isinstance(v, int | float) and 0 <= v <= 1e6 for v in targets.values()
        ):
            raise ApiError(
                _text(
                    "Цели должны быть неотрицательными числами.",
                    "targets must be an object of non-negative numbers",
                ),
                field="targets",
            )
        values["targets"] = targets
    if "daily_capacity" in body:
        capacity = body["daily_capacity"]
        if capacity is not None and (
            not isinstance(capacity, int)
            or isinstance(capacity, bool)
            or not 0 <= capacity <= 10000
        ):
            raise ApiError(
                _text(
                    "Мест в день: укажите целое число от 0 до 10000 "
                    "или оставьте поле пустым.",
                    "daily_capacity must be an integer 0..10000 or null",
                ),
                field="daily_capacity",
            )
        values["daily_capacity"] = capacity
    if "owner_email" in body:
        email = body["owner_email"]
        if email is not None and (
            not isinstance(email, str) or "@" not in email or len(email) > 255
        ):
            raise ApiError(
                _text(
                    "E-mail владельца: укажите адрес вида name@example.com "
                    "или оставьте поле пустым.",
                    "owner_email must be an e-mail address or null",
                ),
                field="owner_email",
            )
        values["owner_email"] = email
    if not values:
        raise ApiError(
            _text(
                "Нечего сохранять: передайте mapping, targets, daily_capacity "
                "или owner_email.",
                "nothing to save: send mapping, targets, daily_capacity or owner_email",
            )
        )
    kpi_settings.save(get_services(), g.portal, **values)
    if "mapping" in values:
        rollup.invalidate(get_services(), g.portal.id)
    return settings_get()


MONTH_PATTERN = re.compile(r"\d{4}-\d{2}")
MAX_SPEND = 1e12


@bp.get("/kpi/spend")
@portal_required
def spend_list():
    """Return the entered spend, newest month first, and the channels allowed."""
    services = get_services()
    with services.db.session() as session:
        rows = session.scalars(
            select(KpiSpend)
            .where(KpiSpend.portal_id == g.portal.id)
            .order_by(KpiSpend.month.desc(), KpiSpend.channel)
        ).all()
        items = [
            {"month": r.month.isoformat()[:7], "channel": r.channel, "amount": r.amount}
            for r in rows
        ]
    return jsonify(
        {"items": items, "channels": kpi_settings.known_channels(services, g.portal)}
    )


def _spend_key(source, *, known_only: bool = True) -> tuple[date, str]:
    """Validate the month (YYYY-MM) and the channel of a spend request.

    Deleting accepts any stored channel name, so a row whose channel no
    longer appears in the portal's leads can still be removed.
    """
    raw_month = source.get("month")
    try:
        if not isinstance(raw_month, str) or not MONTH_PATTERN.fullmatch(raw_month):
            raise ValueError(raw_month)
        month = date.fromisoformat(f"{raw_month}-01")
    except ValueError as err:
        raise ApiError(
            f"month must be YYYY-MM, got {raw_month!r}", field="month"
        ) from err
    if not 2000 <= month.year <= 2100:
        raise ApiError(
            f"month must be within 2000..2100, got {raw_month!r}", field="month"
        )

    channel = source.get("channel")
    if not known_only and isinstance(channel, str) and 0 < len(channel) <= 32:
        return month, channel
    known = kpi_settings.known_channels(get_services(), g.portal)
    if not isinstance(channel, str) or channel not in known:
        raise ApiError(
            f"unknown channel {channel!r}; use one of {', '.join(known)}",
            field="channel",
        )
    return month, channel


@bp.put("/kpi/spend")
@portal_required
@admin_required
def spend_put():
    """Set one channel's spend in a month: ``{month: YYYY-MM, channel, amount}``."""
    body = _json_body()
    month, channel = _spend_key(body)
    amount = body.get("amount")
    # "not >= 0" also rejects NaN, which Python's JSON parser accepts.
    if (
        not isinstance(amount, int | float)
        or isinstance(amount, bool)
        or not amount >= 0
    ):
        raise ApiError(
            f"amount must be a number from 0 to {MAX_SPEND:.0f}, got {amount!r}",
            field="amount",
        )
    if amount > MAX_SPEND:
        raise ApiError(
            f"amount is too large: at most {MAX_SPEND:.0f}, got {amount!r}",
            field="amount",
        )
    with get_services().db.session() as session:
        values = {"portal_id": g.portal.id, "month": month, "channel": channel}
        if (
            insert_ignore(
                session, KpiSpend, values | {"amount": float(amount)}, list(values)
            )
            is None
        ):
            row = session.scalar(
                select(KpiSpend).where(
                    KpiSpend.portal_id == g.portal.id,
                    KpiSpend.month == month,
                    KpiSpend.channel == channel,
                )
            )
            row.amount = float(amount)
    return spend_list()


@bp.delete("/kpi/spend")
@portal_required
@admin_required
def spend_delete():
    """Delete one channel's spend in a month (query ``month`` and ``channel``)."""
    month, channel = _spend_key(request.args, known_only=False)
    with get_services().db.session() as session:
        deleted = session.execute(
            delete(KpiSpend).where(
                KpiSpend.portal_id == g.portal.id,
                KpiSpend.month == month,
                KpiSpend.channel == channel,
            )
        ).rowcount
    if not deleted:
        raise ApiError(
            f"no spend entered for {channel} in {month.isoformat()[:7]}", 404
        )
    return spend_list()


@bp.post("/kpi/feed")
@portal_required
@admin_required
def feed_rotate():
    """Issue a new secret feed URL; the previous one stops working."""
    token = exports.rotate_feed(get_services(), g.portal)
    return jsonify({"url": request.host_url.rstrip("/") + f"/feed/kpi/{token}.csv"})


@bp.delete("/kpi/feed")
@portal_required
@admin_required
def feed_revoke():
    exports.revoke_feed(get_services(), g.portal)
    return jsonify({"url": None})


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if body is None and request.data:
        raise ApiError("the body must be JSON")
    if body is not None and not isinstance(body, dict):
        raise ApiError("the body must be a JSON object")
    return body or {}


def _text(ru: str, en: str) -> str:
    """Pick the message in the viewer's language; Russian unless it is English."""
    return en if g.viewer.language == "en" else ru


def _day_param(tz: str) -> date:
    raw = request.args.get("date")
    if not raw:
        return datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    try:
        return date.fromisoformat(raw)
    except ValueError as err:
        raise ApiError(
            _text(
                f"Параметр date: укажите дату как ГГГГ-ММ-ДД, получено «{raw}».",
                f"Parameter date: enter a date as YYYY-MM-DD, got '{raw}'.",
            ),
            field="date",
        ) from err


def _date_param(name: str) -> date:
    raw = request.args.get(name) or ""
    try:
        return date.fromisoformat(raw)
    except ValueError as err:
        raise ApiError(
            _text(
                f"Параметр {name}: укажите дату как ГГГГ-ММ-ДД, получено «{raw}».",
                f"Parameter {name}: enter a date as YYYY-MM-DD, got '{raw}'.",
            ),
            field=name,
        ) from err


def _period(tz: str) -> tuple[date, date]:
    today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    if request.args.get("from") or request.args.get("to"):
        start, end = _date_param("from"), _date_param("to")
        if end < start:
            raise ApiError(
                _text(
                    f"Параметр to: дата окончания {end.isoformat()} раньше "
                    f"даты начала {start.isoformat()}.",
                    f"Parameter to: the end date {end.isoformat()} is before "
                    f"the start date {start.isoformat()}.",
                ),
                field="to",
            )
        if (end - start).days >= MAX_RANGE_DAYS:
            raise ApiError(
                _text(
                    f"Параметр to: период длиннее {MAX_RANGE_DAYS} дней, "
                    "выберите более короткий.",
                    f"Parameter to: the range is longer than {MAX_RANGE_DAYS} "
                    "days; pick a shorter one.",
                ),
                field="to",
            )
        return start, end

    period = request.args.get("period", "week")
    if period not in PERIOD_DAYS:
        raise ApiError(
            _text(
                f"Параметр period: неизвестное значение «{period}», "
                f"возможны {', '.join(PERIOD_DAYS)}.",
                f"Parameter period: unknown value '{period}'; "
                f"use one of {', '.join(PERIOD_DAYS)}.",
            ),
            field="period",
        )
    return today - timedelta(days=PERIOD_DAYS[period] - 1), today

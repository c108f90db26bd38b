"""Four-week forecast of bookings and revenue with an 80 % interval.

Method: day-of-week factors (mean of each weekday over the overall mean),
a least-squares linear trend on the seasonally adjusted daily values of the
last 12 weeks, and the residual spread for the interval. Weekly sums are
forecast; the interval is the sum ± 1.2816 · σ · √7 (normal 80 %). The
error is measured on the portal's own data: fit on all but the last four
weeks, forecast them, compare (mean absolute percentage error of the weekly
sums). Shown only with at least 28 days of history.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from b24app import portal_settings
from b24app.kpi import currency
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import KpiDeal
from b24app.kpi.report import deal_series
from b24app.models import Portal
from b24app.services import Services

MIN_DAYS = 28
WINDOW_DAYS = 84
HORIZON_DAYS = 28
Z80 = 1.2816


def fit(values: list[float], first_weekday: int) -> dict[str, Any]:
    """Weekday factors, trend line and residual σ of a daily series."""
    n = len(values)
    mean = sum(values) / n if n else 0.0
    factors = [1.0] * 7
    if mean > 0:
        for weekday in range(7):
            picked = [
                v for i, v in enumerate(values) if (first_weekday + i) % 7 == weekday
            ]
            if picked:
                factors[weekday] = max(sum(picked) / len(picked) / mean, 0.05)
    adjusted = [v / factors[(first_weekday + i) % 7] for i, v in enumerate(values)]
    xs = list(range(n))
    x_mean = (n - 1) / 2 if n else 0.0
    y_mean = sum(adjusted) / n if n else 0.0
    spread = sum((x - x_mean) ** 2 for x in xs)
    slope = (
        sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, adjusted, strict=True))
        / spread
        if spread
        else 0.0
    )
    intercept = y_mean - slope * x_mean
    residuals = [y - (intercept + slope * x) for x, y in zip(xs, adjusted, strict=True)]
    sigma = math.sqrt(sum(r * r for r in residuals) / max(n - 2, 1)) if n else 0.0
    return {
        "factors": factors,
        "slope": slope,
        "intercept": intercept,
        "sigma": sigma,
        "n": n,
        "first_weekday": first_weekday,
    }


def project(model: dict[str, Any], days: int) -> list[float]:
    n, first = model["n"], model["first_weekday"]
    return [
        max(
            (model["intercept"] + model["slope"] * (n + i))
            * model["factors"][(first + n + i) % 7],
            0.0,
        )
        for i in range(days)
    ]


def weekly(values: list[float]) -> list[float]:
    return [sum(values[i : i + 7]) for i in range(0, len(values) - 6, 7)]


def backtest(values: list[float], first_weekday: int) -> dict[str, Any] | None:
    """Fit without the last 4 weeks, forecast them, report the weekly error."""
    if len(values) < MIN_DAYS + HORIZON_DAYS:
        return None
    train, test = values[:-HORIZON_DAYS], values[-HORIZON_DAYS:]
    model = fit(
        train[-WINDOW_DAYS:], (first_weekday + max(len(train) - WINDOW_DAYS, 0)) % 7
    )
    predicted = weekly(project(model, HORIZON_DAYS))
    actual = weekly(test)
    half = Z80 * model["sigma"] * math.sqrt(7)
    errors = [abs(p - a) / a for p, a in zip(predicted, actual, strict=True) if a > 0]
    inside = sum(
        1 for p, a in zip(predicted, actual, strict=True) if p - half <= a <= p + half
    )
    return {
        "mape": round(sum(errors) / len(errors), 4) if errors else None,
        "interval_hits": f"{inside}/{len(actual)}",
        "weeks": len(actual),
    }


def forecast_series(values: list[float], last_day: date) -> dict[str, Any]:
    """Forecast the four weeks after ``last_day`` from the daily ``values``."""
    window = values[-WINDOW_DAYS:]
    first_day = last_day - timedelta(days=len(window) - 1)
    model = fit(window, first_day.weekday())
    days = project(model, HORIZON_DAYS)
    half = Z80 * model["sigma"] * math.sqrt(7)
    weeks = []
    for index, total in enumerate(weekly(days)):
        week_start = last_day + timedelta(days=1 + 7 * index)
        weeks.append(
            {
                "from": week_start.isoformat(),
                "to": (week_start + timedelta(days=6)).isoformat(),
                "value": round(total, 1),
                "low": round(max(total - half, 0.0), 1),
                "high": round(total + half, 1),
            }
        )
    first_all = last_day - timedelta(days=len(values) - 1)
    return {"weeks": weeks, "backtest": backtest(values, first_all.weekday())}


def forecast(
    services: Services, portal: Portal, now: datetime | None = None
) -> dict[str, Any]:
    """Bookings and revenue for the next four weeks, or how much history is missing."""
    now = now or datetime.now(UTC)
    tz = portal_settings.timezone(portal)
    cfg = kpi_settings.load(services, portal)
    today = now.astimezone(ZoneInfo(tz)).date()
    yesterday = today - timedelta(days=1)
    with services.db.session() as session:
        first = session.scalar(
            select(func.min(KpiDeal.created_at)).where(
                KpiDeal.portal_id == portal.id,
                KpiDeal.category_id.in_(cfg.categories or [-1]),
                KpiDeal.deleted.is_(False),
            )
        )
        if first is None:
            return {"available": False, "history_days": 0, "missing_days": MIN_DAYS}
        first_day = first.astimezone(ZoneInfo(tz)).date()
        history_days = (yesterday - first_day).days + 1
        if history_days < MIN_DAYS:
            return {
                "available": False,
                "history_days": max(history_days, 0),
                "missing_days": MIN_DAYS - max(history_days, 0),
            }
        start = max(
            first_day, yesterday - timedelta(days=WINDOW_DAYS + HORIZON_DAYS - 1)
        )
        series = deal_series(session, portal.id, cfg, tz, start, yesterday)
        money = currency.code_of(session, portal.id, cfg)
    return {
        "available": True,
        "history_days": history_days,
        # The currency of the revenue figures.
        "currency": money,
        "method": "weekday factors + linear trend, 80 % normal interval",
        "bookings": forecast_series([d["bookings"] for d in series], yesterday),
        "revenue": forecast_series([d["revenue"] for d in series], yesterday),
    }

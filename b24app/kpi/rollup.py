"""Per-day lead counts (first response, answered, booked), live or from rollups.

Today (local) is always computed from the lead and clock rows. Earlier days
are computed once, stored in ``kpi_lead_days`` and read from there; the
periodic job rebuilds the last ``REFRESH_DAYS`` days every few minutes,
because clocks and bookings of recent leads still change, and changing the
funnel mapping or finishing a history import drops the stored days so they
are built again. Both paths use ``scan``, so a stored day holds exactly
what a live computation gave at its build time.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session, aliased

from b24app import portal_settings
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import KpiLeadDay, KpiRollupDay
from b24app.models import Lead, Portal, SlaClock
from b24app.services import Services
from b24app.sla.calendar import BusinessCalendar

logger = logging.getLogger(__name__)

REFRESH_DAYS = 35
COUNTS = (
    "leads",
    "spam",
    "urgent",
    "answered",
    "judged",
    "within",
    "breached",
    "open",
    "booked",
)

Key = tuple[str, str, str]  # local day (ISO), channel, manager ("" for none)


@dataclass
class Cell:
    """Counts of the leads of one day, channel and manager."""

    counts: Counter[str] = field(default_factory=Counter)
    tags: Counter[str] = field(default_factory=Counter)
    human: Counter[int] = field(default_factory=Counter)
    bot: Counter[int] = field(default_factory=Counter)

    def add(self, other: Cell) -> None:
        self.counts.update(other.counts)
        self.tags.update(other.tags)
        self.human.update(other.human)
        self.bot.update(other.bot)


def tenths(seconds: float) -> int:
    """Business seconds as whole tenths of a minute (rounded half up)."""
    return int(seconds / 6 + 0.5)


def scan(
    session: Session,
    portal_id: int,
    cfg: kpi_settings.KpiConfig,
    calendar: BusinessCalendar,
    zone: ZoneInfo,
    lower: datetime,
    upper: datetime,
    now: datetime,
) -> dict[Key, Cell]:
    """Compute the cells of the leads created in ``[lower, upper)`` from raw rows."""
    from b24app.kpi.metrics import _booked_condition

    bot = aliased(SlaClock)
    booked = case((_booked_condition(portal_id, cfg), 1), else_=0)
    rows = session.execute(
        select(
            Lead.created_at,
            Lead.tags,
            Lead.manual_tags,
            Lead.urgent,
            Lead.first_touch_at,
            Lead.channel,
            Lead.assigned_by_id,
            booked,
            SlaClock.state,
            SlaClock.starts_at,
            SlaClock.stopped_at,
            SlaClock.due_at,
            bot.state,
            bot.starts_at,
            bot.stopped_at,
        )
        .outerjoin(SlaClock, (SlaClock.lead_id == Lead.id) & (SlaClock.tier == "human"))
        .outerjoin(bot, (bot.lead_id == Lead.id) & (bot.tier == "bot"))
        .where(
            Lead.portal_id == portal_id,
            Lead.created_at >= lower,
            Lead.created_at < upper,
            Lead.deleted.is_(False),
        )
    ).all()

    cells: dict[Key, Cell] = {}
    for row in rows:
        created, auto_tags, manual, is_urgent, touched, channel, manager, hit = row[:8]
        state, starts, stopped, due, bot_state, bot_starts, bot_stopped = row[8:]
        key = (
            created.astimezone(zone).date().isoformat(),
            channel or "",
            str(manager) if manager else "",
        )
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        counts = cell.counts
        lead_tags = manual if manual is not None else auto_tags
        cell.tags.update(lead_tags or [])
        if is_urgent:
            cell.tags["urgent"] += 1
            counts["urgent"] += 1
        if "spam" in (lead_tags or []):
            counts["spam"] += 1
            continue
        counts["leads"] += 1
        counts["booked"] += int(hit or 0)
        if touched is not None:
            counts["answered"] += 1
        if bot_state not in (None, "cancelled") and bot_stopped is not None:
            seconds = calendar.business_seconds_between(bot_starts, bot_stopped)
            cell.bot[tenths(seconds)] += 1
        if state is None or state == "cancelled":
            continue
        if stopped is not None:
            counts["judged"] += 1
            seconds = calendar.business_seconds_between(starts, stopped)
            cell.human[tenths(seconds)] += 1
            counts["within"] += int(stopped <= due)
        elif now >= due:
            counts["judged"] += 1
            counts["breached"] += 1
        else:
            counts["open"] += 1
    return cells


def cells(
    services: Services,
    portal: Portal,
    start: date,
    end: date,
    now: datetime | None = None,
) -> tuple[dict[Key, Cell], dict[str, int]]:
    """Return the cells of local days ``start``..``end`` and the leads per day.

    Whole months that ended before the refresh window are read as one row
    per channel and manager. The cell keys of those rows carry the month's
    first day, so per-day figures come from the second value only.
    """
    from b24app.kpi.first_response import period_bounds

    now = now or datetime.now(UTC)
    tz = portal_settings.timezone(portal)
    zone = ZoneInfo(tz)
    calendar = portal_settings.calendar(portal)
    cfg = kpi_settings.load(services, portal)
    today = now.astimezone(zone).date()

    result: dict[Key, Cell] = {}
    per_day: dict[str, int] = {}
    with services.db.session() as session:
        stored_end = min(end, today - timedelta(days=1))
        if start <= stored_end:
            missing = _missing(session, portal.id, "day", _days(start, stored_end))
            if missing:
                _build(session, portal.id, cfg, calendar, zone, tz, missing, now)
            months = _whole_months(start, stored_end, today)
            if months:
                built = _missing(session, portal.id, "month", months)
                for month in built:
                    _build_month(session, portal.id, month, now)
            result.update(_read(session, portal.id, "month", months))
            month_days = {d for m in months for d in _days(m, _month_end(m))}
            rest = [d for d in _days(start, stored_end) if d not in month_days]
            result.update(_read(session, portal.id, "day", rest))
            per_day.update(_leads_per_day(session, portal.id, start, stored_end))
        live_start = max(start, today)
        if live_start <= end:
            lower, upper = period_bounds(tz, live_start, end)
            live = scan(session, portal.id, cfg, calendar, zone, lower, upper, now)
            result.update(live)
            for key, cell in live.items():
                per_day[key[0]] = per_day.get(key[0], 0) + cell.counts["leads"]
    return result, per_day


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _month_end(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def _whole_months(start: date, end: date, today: date) -> list[date]:
    """First days of the months inside ``start``..``end`` that no refresh touches."""
    frozen = today - timedelta(days=REFRESH_DAYS)
    months = []
    month = start if start.day == 1 else _month_end(start) + timedelta(days=1)
    while _month_end(month) <= end and _month_end(month) < frozen:
        months.append(month)
        month = _month_end(month) + timedelta(days=1)
    return months


def _missing(session, portal_id: int, grain: str, days: list[date]) -> list[date]:
    if not days:
        return []
    built = set(
        session.scalars(
            select(KpiRollupDay.day).where(
                KpiRollupDay.portal_id == portal_id,
                KpiRollupDay.grain == grain,
                KpiRollupDay.day >= days[0],
                KpiRollupDay.day <= days[-1],
            )
        )
    )
    return [d for d in days if d not in built]


def _store(session, portal_id, grain, computed, now) -> None:
    session.add_all(
        KpiLeadDay(
            portal_id=portal_id,
            grain=grain,
            day=date.fromisoformat(key[0]),
            leads=cell.counts.get("leads", 0),
            channel=key[1],
            manager=int(key[2] or 0),
            counts=dict(cell.counts),
            tags=dict(cell.tags),
            human={str(k): v for k, v in cell.human.items()},
            bot={str(k): v for k, v in cell.bot.items()},
        )
        for key, cell in computed.items()
    )


def _build(session, portal_id, cfg, calendar, zone, tz, days, now) -> None:
    """Compute and store the days in ``days`` (one scan over their whole span)."""
    from b24app.kpi.first_response import period_bounds

    lower, upper = period_bounds(tz, days[0], days[-1])
    computed = scan(session, portal_id, cfg, calendar, zone, lower, upper, now)
    wanted = {d.isoformat() for d in days}
    session.execute(
        delete(KpiLeadDay).where(
            KpiLeadDay.portal_id == portal_id,
            KpiLeadDay.grain == "day",
            KpiLeadDay.day.in_(days),
        )
    )
    _store(
        session,
        portal_id,
        "day",
        {key: cell for key, cell in computed.items() if key[0] in wanted},
        now,
    )
    session.add_all(
        KpiRollupDay(portal_id=portal_id, grain="day", day=d, built_at=now)
        for d in days
    )
    session.flush()
    logger.info("kpi rollup built", extra={"portal_id": portal_id, "days": len(days)})


def _build_month(session, portal_id: int, month: date, now: datetime) -> None:
    """Sum the stored days of a past month into one row per channel and manager."""
    merged: dict[Key, Cell] = {}
    for (_, channel, manager), cell in _read(
        session, portal_id, "day", _days(month, _month_end(month))
    ).items():
        target = merged.setdefault((month.isoformat(), channel, manager), Cell())
        _into(target.counts, cell.counts)
        _into(target.tags, cell.tags)
        _into(target.human, cell.human)
        _into(target.bot, cell.bot)
    session.execute(
        delete(KpiLeadDay).where(
            KpiLeadDay.portal_id == portal_id,
            KpiLeadDay.grain == "month",
            KpiLeadDay.day == month,
        )
    )
    _store(session, portal_id, "month", merged, now)
    session.add(
        KpiRollupDay(portal_id=portal_id, grain="month", day=month, built_at=now)
    )
    session.flush()


def _read(session, portal_id: int, grain: str, days: list[date]) -> dict[Key, Cell]:
    if not days:
        return {}
    wanted = set(days)
    rows = session.execute(
        select(
            KpiLeadDay.day,
            KpiLeadDay.channel,
            KpiLeadDay.manager,
            KpiLeadDay.counts,
            KpiLeadDay.tags,
            KpiLeadDay.human,
            KpiLeadDay.bot,
        ).where(
            KpiLeadDay.portal_id == portal_id,
            KpiLeadDay.grain == grain,
            KpiLeadDay.day >= min(days),
            KpiLeadDay.day <= max(days),
        )
    ).all()
    found: dict[Key, Cell] = {}
    for day, channel, manager, counts, tags, human, bot in rows:
        if day not in wanted:
            continue
        # Histogram keys stay strings here; percentile_of reads them as ints.
        found[(day.isoformat(), channel, str(manager) if manager else "")] = Cell(
            counts=Counter(counts), tags=tags, human=human, bot=bot
        )
    return found


def _leads_per_day(session, portal_id: int, start: date, end: date) -> dict[str, int]:
    rows = session.execute(
        select(KpiLeadDay.day, func.sum(KpiLeadDay.leads))
        .where(
            KpiLeadDay.portal_id == portal_id,
            KpiLeadDay.grain == "day",
            KpiLeadDay.day >= start,
            KpiLeadDay.day <= end,
        )
        .group_by(KpiLeadDay.day)
    ).all()
    return {day.isoformat(): int(total or 0) for day, total in rows}


def refresh(services: Services, portal: Portal, now: datetime | None = None) -> None:
    """Rebuild the recent stored days, whose leads may still have changed."""
    now = now or datetime.now(UTC)
    today = now.astimezone(ZoneInfo(portal_settings.timezone(portal))).date()
    first = today - timedelta(days=REFRESH_DAYS)
    with services.db.session() as session:
        session.execute(
            delete(KpiRollupDay).where(
                KpiRollupDay.portal_id == portal.id,
                KpiRollupDay.grain == "day",
                KpiRollupDay.day >= first,
            )
        )
    cells(services, portal, first, today - timedelta(days=1), now)


def invalidate(services: Services, portal_id: int) -> None:
    """Drop the stored days, e.g. after the mapping changed or history arrived."""
    with services.db.session() as session:
        session.execute(delete(KpiRollupDay).where(KpiRollupDay.portal_id == portal_id))
        session.execute(delete(KpiLeadDay).where(KpiLeadDay.portal_id == portal_id))


def percentile_of(histogram: Counter[int], share: float) -> float | None:
    """Nearest-rank percentile of a tenths-of-a-minute histogram, in minutes."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for value, count in sorted((int(k), v) for k, v in histogram.items()):
        seen += count
        if seen >= rank:
            return value / 10
    return None


def _into(target: dict, source: dict) -> None:
    get = target.get
    for key, value in source.items():
        target[key] = get(key, 0) + value


def summarize(
    cells_: dict[Key, Cell],
) -> tuple[Cell, dict[str, int], dict[str, Cell], dict[str, Cell]]:
    """Sum the cells in one pass: total, leads per day, by channel, by manager.

    The per-group cells carry counts and the human histogram only.
    """
    whole = Cell()
    per_day: dict[str, int] = {}
    channels: dict[str, Cell] = {}
    managers: dict[str, Cell] = {}
    for (day, channel, manager), cell in cells_.items():
        _into(whole.counts, cell.counts)
        _into(whole.tags, cell.tags)
        _into(whole.human, cell.human)
        _into(whole.bot, cell.bot)
        per_day[day] = per_day.get(day, 0) + cell.counts.get("leads", 0)
        for groups, key in ((channels, channel), (managers, manager)):
            group = groups.get(key)
            if group is None:
                group = groups[key] = Cell()
            _into(group.counts, cell.counts)
            _into(group.human, cell.human)
    return whole, per_day, channels, managers


def merge(cells_: dict[Key, Cell], part: int) -> dict[str, Cell]:
    """Sum cells by one key part: 0 day, 1 channel, 2 manager."""
    merged: dict[str, Cell] = {}
    for key, cell in cells_.items():
        merged.setdefault(key[part], Cell()).add(cell)
    return merged


def total(cells_: dict[Key, Cell]) -> Cell:
    whole = Cell()
    for cell in cells_.values():
        whole.add(cell)
    return whole


def as_dict(cell: Cell) -> dict[str, Any]:
    return {name: cell.counts.get(name, 0) for name in COUNTS}

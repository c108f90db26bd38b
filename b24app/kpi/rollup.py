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

from sqlalchemy import JSON, case, delete, func, insert, or_, select, text
from sqlalchemy.orm import Session, aliased

from b24app import portal_settings
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import (
    KpiDeal,
    KpiDealDay,
    KpiLeadDay,
    KpiRollupDay,
    KpiVisit,
    KpiVisitDay,
)
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

# Local day (ISO), channel, manager ("" for none). Whole-month rows are kept
# per channel and per manager: their key has None in the other place.
Key = tuple[str, str | None, str | None]
MONTH_CHANNELS = "mchan"
MONTH_MANAGERS = "mman"


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
        if state is None and touched is not None:
            # A lead from before the install (history import) has no clock:
            # its response time runs from creation to the first touch.
            seconds = calendar.business_seconds_between(created, touched)
            cell.human[tenths(seconds)] += 1
            continue
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
    cfg: kpi_settings.KpiConfig | None = None,
) -> tuple[dict[Key, Cell], dict[str, int]]:
    """Return the cells of local days ``start``..``end`` and the leads per day.

    Whole past months are read as one row per channel and one per manager
    (keys ``(month, channel, None)`` and ``(month, None, manager)``, see
    ``summarize``). Their keys carry the month's first day, so per-day
    figures come from the second value only. ``cfg`` is the portal's KPI
    settings when the caller has loaded them already.
    """
    from b24app.kpi.first_response import period_bounds

    now = now or datetime.now(UTC)
    tz = portal_settings.timezone(portal)
    zone = ZoneInfo(tz)
    calendar = portal_settings.calendar(portal)
    if cfg is None:
        cfg = kpi_settings.load(services, portal)
    today = now.astimezone(zone).date()

    result: dict[Key, Cell] = {}
    per_day: dict[str, int] = {}
    with services.db.session() as session:
        stored_end = min(end, today - timedelta(days=1))
        if start <= stored_end:
            missing = _missing_locked(
                session, portal.id, "day", _days(start, stored_end)
            )
            if missing:
                _build(session, portal.id, cfg, calendar, zone, tz, missing, now)
            months = _whole_months(start, stored_end, today)
            if months:
                built = _missing_locked(session, portal.id, "month", months)
                for month in built:
                    _build_month(session, portal.id, month, now)
            result.update(_read(session, portal.id, MONTH_CHANNELS, months))
            result.update(_read(session, portal.id, MONTH_MANAGERS, months))
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
    """First days of the months that lie wholly inside ``start``..``end``."""
    months = []
    month = start if start.day == 1 else _month_end(start) + timedelta(days=1)
    while _month_end(month) <= end and _month_end(month) < today:
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


# First key of the PostgreSQL advisory lock that serialises the builds of
# one portal's stored counts (the second key is the portal id).
BUILD_LOCK = 2417


def lock_builds(session: Session, portal_id: int) -> None:
    """Wait until no other transaction builds or drops this portal's counts.

    The rollup job and KPI requests build the same days at times. Without
    the lock one of them would fail on the unique keys. The lock lasts until
    the transaction ends. SQLite needs none, because its writers already take
    turns (every transaction begins IMMEDIATE).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_advisory_xact_lock(:kind, :portal)"),
        {"kind": BUILD_LOCK, "portal": portal_id},
    )


def _missing_locked(
    session: Session, portal_id: int, grain: str, days: list[date]
) -> list[date]:
    """Like ``_missing``, but holding the build lock when something is missing."""
    missing = _missing(session, portal_id, grain, days)
    if missing and session.get_bind().dialect.name == "postgresql":
        lock_builds(session, portal_id)
        # Another transaction may have built them while this one waited.
        missing = _missing(session, portal_id, grain, days)
    return missing


def _store(session, portal_id, grain, computed, now) -> None:
    session.add_all(
        KpiLeadDay(
            portal_id=portal_id,
            grain=grain,
            day=date.fromisoformat(key[0]),
            leads=cell.counts.get("leads", 0),
            channel=key[1] or "",
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
    """Sum the stored days of a past month into rows per channel and per manager."""
    first = month.isoformat()
    by_channel: dict[Key, Cell] = {}
    by_manager: dict[Key, Cell] = {}
    for (_, channel, manager), cell in _read(
        session, portal_id, "day", _days(month, _month_end(month))
    ).items():
        target = by_channel.setdefault((first, channel, None), Cell())
        _into(target.counts, cell.counts)
        _into(target.tags, cell.tags)
        _into(target.human, cell.human)
        _into(target.bot, cell.bot)
        target = by_manager.setdefault((first, None, manager), Cell())
        _into(target.counts, cell.counts)
        _into(target.human, cell.human)
    session.execute(
        delete(KpiLeadDay).where(
            KpiLeadDay.portal_id == portal_id,
            KpiLeadDay.grain.in_(("month", MONTH_CHANNELS, MONTH_MANAGERS)),
            KpiLeadDay.day == month,
        )
    )
    _store(session, portal_id, MONTH_CHANNELS, by_channel, now)
    _store(session, portal_id, MONTH_MANAGERS, by_manager, now)
    session.execute(
        delete(KpiRollupDay).where(
            KpiRollupDay.portal_id == portal_id,
            KpiRollupDay.grain == "month",
            KpiRollupDay.day == month,
        )
    )
    session.add(
        KpiRollupDay(portal_id=portal_id, grain="month", day=month, built_at=now)
    )
    session.flush()


def _read(session, portal_id: int, grain: str, days: list[date]) -> dict[Key, Cell]:
    if not days:
        return {}
    # Only the wanted runs of days: rows outside them are never decoded.
    spans = [
        (KpiLeadDay.day >= first) & (KpiLeadDay.day <= last)
        for first, last in _runs(sorted(days))
    ]
    parts = (KpiLeadDay.counts, KpiLeadDay.tags, KpiLeadDay.human, KpiLeadDay.bot)
    if session.get_bind().dialect.name == "postgresql":
        # One JSON value per row: decoding is paid per value, not per byte.
        parts = (func.json_build_array(*parts, type_=JSON),)
    rows = session.execute(
        select(KpiLeadDay.day, KpiLeadDay.channel, KpiLeadDay.manager, *parts).where(
            KpiLeadDay.portal_id == portal_id,
            KpiLeadDay.grain == grain,
            or_(*spans),
        )
    ).all()
    found: dict[Key, Cell] = {}
    for day, channel, manager, *values in rows:
        counts, tags, human, bot = values[0] if len(values) == 1 else values
        manager_key = str(manager) if manager else ""
        if grain == MONTH_CHANNELS:
            key: Key = (day.isoformat(), channel, None)
        elif grain == MONTH_MANAGERS:
            key = (day.isoformat(), None, manager_key)
        else:
            key = (day.isoformat(), channel, manager_key)
        # Histogram keys stay strings here; percentile_of reads them as ints.
        found[key] = Cell(counts=Counter(counts), tags=tags, human=human, bot=bot)
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
        lock_builds(session, portal.id)
        session.execute(
            delete(KpiRollupDay).where(
                KpiRollupDay.portal_id == portal.id,
                KpiRollupDay.grain == "day",
                KpiRollupDay.day >= first,
            )
        )
        # The months holding those days are summed again from them.
        session.execute(
            delete(KpiRollupDay).where(
                KpiRollupDay.portal_id == portal.id,
                KpiRollupDay.grain == "month",
                KpiRollupDay.day >= first.replace(day=1),
            )
        )
    cells(services, portal, first.replace(day=1), today - timedelta(days=1), now)


def invalidate(services: Services, portal_id: int) -> None:
    """Drop every stored lead day, deal day and visit of the portal.

    Called after the funnel mapping changed or a history import stored rows.
    The next report builds them again.
    """
    with services.db.session() as session:
        lock_builds(session, portal_id)
        session.execute(delete(KpiRollupDay).where(KpiRollupDay.portal_id == portal_id))
        session.execute(delete(KpiLeadDay).where(KpiLeadDay.portal_id == portal_id))
        session.execute(delete(KpiDealDay).where(KpiDealDay.portal_id == portal_id))
        session.execute(delete(KpiVisit).where(KpiVisit.portal_id == portal_id))
        session.execute(delete(KpiVisitDay).where(KpiVisitDay.portal_id == portal_id))
    logger.info("kpi stored days dropped", extra={"portal_id": portal_id})


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

    A cell with both key parts counts for its channel, its manager and the
    total; a month row per channel (manager None) for its channel and the
    total; a month row per manager (channel None) for its manager only. The
    per-group cells carry counts and the human histogram only. The total's
    human histogram is the sum of the channels'.
    """
    whole = Cell()
    per_day: dict[str, int] = {}
    channels: dict[str, Cell] = {}
    managers: dict[str, Cell] = {}
    for (day, channel, manager), cell in cells_.items():
        if manager is not None:
            group = managers.get(manager)
            if group is None:
                group = managers[manager] = Cell()
            _into(group.counts, cell.counts)
            _into(group.human, cell.human)
        if channel is None:
            continue
        group = channels.get(channel)
        if group is None:
            group = channels[channel] = Cell()
        _into(group.counts, cell.counts)
        _into(group.human, cell.human)
        _into(whole.tags, cell.tags)
        _into(whole.bot, cell.bot)
        per_day[day] = per_day.get(day, 0) + cell.counts.get("leads", 0)
    for group in channels.values():
        _into(whole.counts, group.counts)
        _into(whole.human, group.human)
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


# Deal side: per-day deal counts and the visit table.

DEAL_GRAIN = "deal"
VISITS_GRAIN = "visits"
VISITS_DAY = date(2000, 1, 1)
DEFAULT_LATE_HOURS = 24
# Rows per IN list, within SQLite's limit of bound parameters per statement.
IN_CHUNK = 500


def day_bounds(zone: ZoneInfo, first: date, last: date) -> tuple[datetime, datetime]:
    """Return the UTC bounds ``[first 00:00, last+1 00:00)`` of local days."""
    return (
        datetime.combine(first, datetime.min.time(), zone).astimezone(UTC),
        datetime.combine(
            last + timedelta(days=1), datetime.min.time(), zone
        ).astimezone(UTC),
    )


def local_days(
    zone: ZoneInfo, lower: datetime, upper: datetime
) -> tuple[date, date] | None:
    """Return the local days whose UTC bounds are exactly ``[lower, upper)``."""
    start = lower.astimezone(zone).date()
    end = (upper.astimezone(zone) - timedelta(microseconds=1)).date()
    if end < start or day_bounds(zone, start, end) != (lower, upper):
        return None
    return start, end


def late_hours(cfg: kpi_settings.KpiConfig) -> int:
    return int(cfg.mapping.get("late_cancel_hours") or DEFAULT_LATE_HOURS)


def _chunks(values: list) -> list[list]:
    return [values[i : i + IN_CHUNK] for i in range(0, len(values), IN_CHUNK)]


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Split sorted days into runs of consecutive days (first, last)."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def ensure_deal_days(
    session: Session,
    portal_id: int,
    cfg: kpi_settings.KpiConfig,
    zone: ZoneInfo,
    start: date,
    end: date,
) -> None:
    """Build the ``kpi_deal_days`` rows of the local days that are not built yet."""
    checked = session.info.setdefault("kpi_deal_days_checked", set())
    if (portal_id, start, end) in checked:
        return
    missing = _missing_locked(session, portal_id, DEAL_GRAIN, _days(start, end))
    for first, last in _runs(missing):
        _build_deal_days(session, portal_id, cfg, zone, first, last)
    checked.add((portal_id, start, end))


def _build_deal_days(session, portal_id, cfg, zone, first: date, last: date) -> None:
    """Count the deals due and the deals made on each local day of a run."""
    lower, upper = day_bounds(zone, first, last)
    hours = timedelta(hours=late_hours(cfg))
    cells: dict[tuple, list] = {}

    def cell(kind, moment, category, stage, manager) -> list:
        key = (
            kind,
            moment.astimezone(zone).date(),
            category,
            stage or "",
            manager or 0,
        )
        found = cells.get(key)
        if found is None:
            # deals, priced, amount, amount_all, contacts, timed, linked, late
            found = cells[key] = [0, 0, 0.0, 0.0, 0, 0, 0, 0]
        return found

    due = session.execute(
        select(
            KpiDeal.appointment_at,
            KpiDeal.category_id,
            KpiDeal.stage_id,
            KpiDeal.assigned_by_id,
            KpiDeal.amount,
            KpiDeal.contact_id,
            KpiDeal.moved_at,
        ).where(
            KpiDeal.portal_id == portal_id,
            KpiDeal.deleted.is_(False),
            KpiDeal.appointment_at >= lower,
            KpiDeal.appointment_at < upper,
        )
    )
    for at, category, stage, manager, amount, contact, moved in due:
        counts = cell("due", at, category, stage, manager)
        _count_deal(counts, amount, contact)
        if moved is not None and moved >= at - hours:
            counts[7] += 1

    created_rows = session.execute(
        select(
            KpiDeal.created_at,
            KpiDeal.category_id,
            KpiDeal.stage_id,
            KpiDeal.assigned_by_id,
            KpiDeal.amount,
            KpiDeal.contact_id,
            KpiDeal.appointment_at,
            KpiDeal.lead_id,
        ).where(
            KpiDeal.portal_id == portal_id,
            KpiDeal.deleted.is_(False),
            KpiDeal.created_at >= lower,
            KpiDeal.created_at < upper,
        )
    )
    for at, category, stage, manager, amount, contact, due_at, lead in created_rows:
        counts = cell("made", at, category, stage, manager)
        _count_deal(counts, amount, contact)
        counts[5] += due_at is not None
        counts[6] += lead is not None

    session.execute(
        delete(KpiDealDay).where(
            KpiDealDay.portal_id == portal_id,
            KpiDealDay.day >= first,
            KpiDealDay.day <= last,
        )
    )
    session.execute(
        delete(KpiRollupDay).where(
            KpiRollupDay.portal_id == portal_id,
            KpiRollupDay.grain == DEAL_GRAIN,
            KpiRollupDay.day >= first,
            KpiRollupDay.day <= last,
        )
    )
    rows = [
        {
            "portal_id": portal_id,
            "kind": kind,
            "day": day,
            "category_id": category,
            "stage_id": stage,
            "manager": manager,
            "deals": c[0],
            "priced": c[1],
            "amount": c[2],
            "amount_all": c[3],
            "contacts": c[4],
            "timed": c[5],
            "linked": c[6],
            "late": c[7],
        }
        for (kind, day, category, stage, manager), c in cells.items()
        if first <= day <= last
    ]
    if rows:
        session.execute(insert(KpiDealDay), rows)
    session.execute(
        insert(KpiRollupDay),
        [
            {"portal_id": portal_id, "grain": DEAL_GRAIN, "day": d, "built_at": _now()}
            for d in _days(first, last)
        ],
    )
    logger.info(
        "kpi deal days built",
        extra={"portal_id": portal_id, "first": first.isoformat(), "rows": len(rows)},
    )


def _count_deal(counts: list, amount: float | None, contact: int | None) -> None:
    counts[0] += 1
    if amount is not None:
        counts[3] += amount
        if amount > 0:
            counts[1] += 1
            counts[2] += amount
    counts[4] += contact is not None


def _now() -> datetime:
    return datetime.now(UTC)


def zone_of(session: Session, portal_id: int) -> ZoneInfo:
    return ZoneInfo(portal_settings.timezone(session.get(Portal, portal_id)))


def ensure_visits(session: Session, portal_id: int, cfg: kpi_settings.KpiConfig):
    """Build the portal's ``kpi_visits`` and ``kpi_visit_days`` unless built."""
    if _visits_built(session, portal_id):
        return
    lock_builds(session, portal_id)
    if _visits_built(session, portal_id):
        return
    session.execute(delete(KpiVisit).where(KpiVisit.portal_id == portal_id))
    session.execute(delete(KpiVisitDay).where(KpiVisitDay.portal_id == portal_id))
    rows = _store_visits(session, portal_id, cfg, zone_of(session, portal_id), None)
    _store_visit_days(session, portal_id, rows, rows, None)
    session.add(
        KpiRollupDay(
            portal_id=portal_id, grain=VISITS_GRAIN, day=VISITS_DAY, built_at=_now()
        )
    )
    session.flush()
    logger.info("kpi visits built", extra={"portal_id": portal_id, "visits": len(rows)})


def _visits_built(session: Session, portal_id: int) -> bool:
    built = session.scalar(
        select(KpiRollupDay.day).where(
            KpiRollupDay.portal_id == portal_id,
            KpiRollupDay.grain == VISITS_GRAIN,
        )
    )
    return built is not None


def _store_visits(
    session: Session,
    portal_id: int,
    cfg: kpi_settings.KpiConfig,
    zone: ZoneInfo,
    contacts: list[int] | None,
) -> list[dict[str, Any]]:
    """Write and return the visit rows of ``contacts`` (every contact for None)."""
    from b24app.kpi.metrics import RETENTION_DAYS

    window = timedelta(days=RETENTION_DAYS)
    query = (
        select(
            KpiDeal.bitrix_id,
            KpiDeal.contact_id,
            KpiDeal.appointment_at,
            KpiDeal.channel,
            KpiDeal.amount,
        )
        .where(
            KpiDeal.portal_id == portal_id,
            KpiDeal.category_id.in_(cfg.categories or [-1]),
            KpiDeal.deleted.is_(False),
            KpiDeal.stage_id.in_(cfg.stages("visited") or ["-"]),
            KpiDeal.contact_id.is_not(None),
            KpiDeal.appointment_at.is_not(None),
        )
        .order_by(KpiDeal.contact_id, KpiDeal.appointment_at, KpiDeal.bitrix_id)
    )
    found = []
    for part in [None] if contacts is None else _chunks(contacts):
        selected = query if part is None else query.where(KpiDeal.contact_id.in_(part))
        found.extend(session.execute(selected).all())

    rows: list[dict[str, Any]] = []
    following: datetime | None = None
    for i in range(len(found) - 1, -1, -1):
        deal_id, contact, at, channel, amount = found[i]
        later = found[i + 1] if i + 1 < len(found) else None
        if later is None or later[1] != contact:
            following = None
        elif later[2] > at:
            following = later[2]
        earlier = found[i - 1][2] if i > 0 and found[i - 1][1] == contact else None
        rows.append(
            {
                "portal_id": portal_id,
                "deal_id": deal_id,
                "contact_id": contact,
                "appointment_at": at,
                "day": at.astimezone(zone).date(),
                "channel": channel,
                "amount": amount,
                "prev_at": earlier,
                "prev_day": earlier.astimezone(zone).date() if earlier else None,
                "returned": following is not None and following <= at + window,
            }
        )
    rows.reverse()
    if rows:
        session.execute(insert(KpiVisit), rows)
    return rows


def _store_visit_days(
    session: Session,
    portal_id: int,
    by_day: list,
    by_prev_day: list,
    days: set[date] | None,
) -> None:
    """Sum visits into ``kpi_visit_days`` rows of ``days`` (every day for None).

    ``by_day`` contains the visits on those days, ``by_prev_day`` the visits
    whose previous visit is on one of them (mappings of ``KpiVisit`` columns).
    """
    cells: dict[tuple[date, str], list] = {}

    def cell(day: date, channel: str | None) -> list:
        key = (day, channel or "")
        found = cells.get(key)
        if found is None:
            # visits, amount, first, first_returned, starts, starts_returned,
            # ends, ends_returned
            found = cells[key] = [0, 0.0, 0, 0, 0, 0, 0, 0]
        return found

    for visit in by_day:
        if days is not None and visit["day"] not in days:
            continue
        counts = cell(visit["day"], visit["channel"])
        counts[0] += 1
        counts[1] += visit["amount"] or 0.0
        returned = int(bool(visit["returned"]))
        if visit["prev_day"] is None:
            counts[2] += 1
            counts[3] += returned
        else:
            counts[6] += 1
            counts[7] += returned
    for visit in by_prev_day:
        day = visit["prev_day"]
        if day is None or (days is not None and day not in days):
            continue
        counts = cell(day, visit["channel"])
        counts[4] += 1
        counts[5] += int(bool(visit["returned"]))

    if days is not None:
        for part in _chunks(sorted(days)):
            session.execute(
                delete(KpiVisitDay).where(
                    KpiVisitDay.portal_id == portal_id, KpiVisitDay.day.in_(part)
                )
            )
    names = (
        "visits",
        "amount",
        "first",
        "first_returned",
        "starts",
        "starts_returned",
        "ends",
        "ends_returned",
    )
    rows = [
        {"portal_id": portal_id, "day": day, "channel": channel}
        | dict(zip(names, counts, strict=True))
        for (day, channel), counts in cells.items()
    ]
    if rows:
        session.execute(insert(KpiVisitDay), rows)


def _refresh_visits(
    session: Session, portal_id: int, cfg: kpi_settings.KpiConfig, ids: list[int]
) -> None:
    """Rewrite the visits of some contacts and the visit days they touch."""
    columns = (KpiVisit.day, KpiVisit.channel, KpiVisit.prev_day, KpiVisit.returned)
    days: set[date] = set()
    for part in _chunks(ids):
        for row in session.execute(
            select(KpiVisit.day, KpiVisit.prev_day).where(
                KpiVisit.portal_id == portal_id, KpiVisit.contact_id.in_(part)
            )
        ):
            days.update(d for d in row if d is not None)
        session.execute(
            delete(KpiVisit).where(
                KpiVisit.portal_id == portal_id, KpiVisit.contact_id.in_(part)
            )
        )
    rows = _store_visits(session, portal_id, cfg, zone_of(session, portal_id), ids)
    for row in rows:
        days.update(d for d in (row["day"], row["prev_day"]) if d is not None)
    if not days:
        return
    by_day, by_prev_day = [], []
    for part in _chunks(sorted(days)):
        by_day += session.execute(
            select(*columns, KpiVisit.amount).where(
                KpiVisit.portal_id == portal_id, KpiVisit.day.in_(part)
            )
        ).mappings()
        by_prev_day += session.execute(
            select(*columns).where(
                KpiVisit.portal_id == portal_id, KpiVisit.prev_day.in_(part)
            )
        ).mappings()
    _store_visit_days(session, portal_id, by_day, by_prev_day, days)


def deals_changed(
    session: Session,
    portal_id: int,
    cfg: kpi_settings.KpiConfig,
    days: set[date],
    contacts: set[int],
) -> None:
    """Drop the stored deal days and refresh the visits a deal change touched."""
    # Waits for a build in progress, so it cannot store counts of the old deal.
    lock_builds(session, portal_id)
    for part in _chunks(sorted(days)):
        session.execute(
            delete(KpiRollupDay).where(
                KpiRollupDay.portal_id == portal_id,
                KpiRollupDay.grain == DEAL_GRAIN,
                KpiRollupDay.day.in_(part),
            )
        )
    session.info.pop("kpi_deal_days_checked", None)
    session.info.pop("kpi_visit_counts", None)
    if contacts and _visits_built(session, portal_id):
        _refresh_visits(session, portal_id, cfg, sorted(contacts))


def warm_deals(services: Services, portal: Portal, start: date, end: date) -> None:
    """Build the stored deal days of ``start``..``end`` and the visit table."""
    zone = ZoneInfo(portal_settings.timezone(portal))
    cfg = kpi_settings.load(services, portal)
    with services.db.session() as session:
        ensure_deal_days(session, portal.id, cfg, zone, start, end)
        ensure_visits(session, portal.id, cfg)

"""Stored deal days and visits give the same KPIs as the deal rows themselves.

A seeded set of deals (ties, deleted deals, other pipelines, deals without a
contact) is checked against a plain Python reading of the definitions in
docs/kpi.md, before and after deals change through the sync functions.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import func, inspect, select

from b24app.db import Database, alembic_config
from b24app.kpi import metrics, rollup, sync
from b24app.kpi import settings as kpi_settings
from b24app.kpi.first_response import period_bounds
from b24app.kpi.models import KpiDeal, KpiDealDay, KpiRollupDay, KpiVisit
from b24app.kpi.report import deal_series
from tests.kpi.fixtures import deal

TZ = "Europe/Moscow"
MSK = timedelta(hours=3)
STAGES = ["C1:WON"] * 5 + ["C1:LOSE", "C1:APOLOGY", "C1:NEW", "C1:PREPARATION"]
PERIODS = [
    (date(2026, 11, 1), date(2026, 11, 30)),
    (date(2026, 11, 15), date(2026, 11, 15)),
    (date(2026, 10, 1), date(2026, 12, 31)),
]


def _moment(rng: random.Random) -> str:
    # Hours on a coarse grid, so some visits of a contact share a time.
    day = datetime(2026, 9, 1) + timedelta(days=rng.randrange(150))
    return (day + timedelta(hours=rng.choice((6, 9, 12, 20, 22)))).isoformat()


def _seed(services, portal_id: int, count: int = 160) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(1, count + 1):
        due = _moment(rng)
        moved = datetime.fromisoformat(due) - timedelta(hours=rng.choice((2, 30)))
        row = deal(
            portal_id,
            i,
            rng.choice(STAGES),
            due if rng.random() < 0.95 else None,
            amount=rng.choice((None, 1500.0, 2500.5)),
            manager=rng.choice((4, 5, None)),
            contact=rng.randrange(1, 30) if rng.random() < 0.85 else None,
            category=1 if rng.random() < 0.9 else 0,
            moved=moved.isoformat(),
            channel=rng.choice(("site", "phone", None)),
            lead_id=i if rng.random() < 0.5 else None,
            created=_moment(rng),
        )
        row.deleted = rng.random() < 0.05
        rows.append(row)
    with services.db.session() as session:
        session.add_all(rows)


def _local(moment: datetime) -> date:
    return (moment + MSK).date()


def _expected(services, portal_id, cfg, start: date, end: date) -> dict:
    """The deal KPIs of ``start``..``end`` straight from the stored deals."""
    with services.db.session() as session:
        deals = [
            d
            for d in session.scalars(
                select(KpiDeal).where(KpiDeal.portal_id == portal_id)
            )
            if not d.deleted and d.category_id in cfg.categories
        ]
        session.expunge_all()
    lower, upper = period_bounds(TZ, start, end)
    outcome = {s: o for o in kpi_settings.OUTCOMES for s in cfg.stages(o)}
    due = [d for d in deals if d.appointment_at and lower <= d.appointment_at < upper]
    created = [d for d in deals if lower <= d.created_at < upper]
    visits = sorted(
        (
            d
            for d in deals
            if outcome.get(d.stage_id) == "visited"
            and d.contact_id is not None
            and d.appointment_at is not None
        ),
        key=lambda d: (d.appointment_at, d.bitrix_id),
    )
    hours = timedelta(hours=rollup.late_hours(cfg))
    visited = [d for d in due if outcome.get(d.stage_id) == "visited"]

    first: dict[int, KpiDeal] = {}
    ever: dict[int, KpiDeal] = {}
    for v in visits:
        ever.setdefault(v.contact_id, v)
        if lower <= v.appointment_at < upper:
            first.setdefault(v.contact_id, v)
    returned = sum(
        any(
            w.contact_id == c
            and v.appointment_at
            < w.appointment_at
            <= v.appointment_at + timedelta(days=91)
            for w in visits
        )
        for c, v in first.items()
    )
    new = defaultdict(int)
    for c, v in first.items():
        if ever[c] is v:
            new[v.channel or "other"] += 1
    year = [
        v for v in visits if upper - timedelta(days=365) <= v.appointment_at < upper
    ]

    series = defaultdict(lambda: defaultdict(float))
    for d in created:
        series[_local(d.created_at)]["bookings"] += 1
    for d in due:
        kind = outcome.get(d.stage_id)
        if kind in ("visited", "no_show", "cancelled"):
            series[_local(d.appointment_at)][kind] += 1
        if kind == "visited":
            series[_local(d.appointment_at)]["revenue"] += d.amount or 0
    return {
        "visited": len(visited),
        "no_show": sum(outcome.get(d.stage_id) == "no_show" for d in due),
        "cancelled": sum(outcome.get(d.stage_id) == "cancelled" for d in due),
        "late_cancelled": sum(
            outcome.get(d.stage_id) == "cancelled"
            and d.moved_at is not None
            and d.moved_at >= d.appointment_at - hours
            for d in due
        ),
        "due": len(due),
        "revenue": round(sum(d.amount for d in visited if d.amount), 2),
        "priced": sum(1 for d in visited if d.amount),
        "clients": len(first),
        "returned": returned,
        "new": dict(new),
        "ltv_revenue": sum(v.amount or 0 for v in year),
        "ltv_clients": len({v.contact_id for v in year}),
        "deals": len(created),
        "timed": sum(d.appointment_at is not None for d in created),
        "linked": sum(d.lead_id is not None for d in created),
        "series": {
            day.isoformat(): {k: round(v, 2) for k, v in values.items() if v}
            for day, values in series.items()
            if start <= day <= end and any(values.values())
        },
    }


def _actual(services, installed, cfg, start: date, end: date) -> dict:
    lower, upper = period_bounds(TZ, start, end)
    with services.db.session() as session:
        visits = metrics.appointments(session, installed.id, cfg, lower, upper)
        retention = metrics.retention(session, installed.id, cfg, lower, upper)
        gained = metrics.acquisition(
            session, installed.id, cfg, start, end, lower, upper
        )
        covered = metrics.coverage(session, installed.id, cfg, lower, upper)
        series = deal_series(session, installed.id, cfg, TZ, start, end)
    return {
        "visited": visits["visited"],
        "no_show": visits["no_show"],
        "cancelled": visits["cancelled"],
        "late_cancelled": visits["late_cancelled"],
        "due": visits["due"],
        "revenue": visits["revenue"],
        "average_check": visits["average_check"],
        "clients": retention["clients"],
        "returned": retention["returned"],
        "new": {r["key"]: r["new_clients"] for r in gained["by_channel"]},
        "ltv": gained["ltv_12m"],
        "deals": covered["deals"],
        "series": {
            row["date"]: {k: v for k, v in row.items() if k != "date" and v}
            for row in series
            if any(row[k] for k in row if k != "date")
        },
    }


def _check(services, installed, cfg) -> None:
    for start, end in PERIODS:
        want = _expected(services, installed.id, cfg, start, end)
        got = _actual(services, installed, cfg, start, end)
        for key in ("visited", "no_show", "cancelled", "late_cancelled", "due"):
            assert got[key] == want[key], (key, start)
        assert got["revenue"] == want["revenue"]
        check = want["revenue"] / want["priced"] if want["priced"] else None
        assert got["average_check"] == (None if check is None else round(check, 2))
        assert got["clients"] == want["clients"]
        assert got["returned"] == want["returned"]
        assert got["new"] == want["new"]
        ltv = want["ltv_revenue"] / want["ltv_clients"] if want["ltv_clients"] else None
        assert got["ltv"] == (None if ltv is None else round(ltv, 2))
        assert got["deals"] == want["deals"]
        assert got["series"] == want["series"], start


@pytest.fixture
def seeded(services, installed):
    _seed(services, installed.id)
    return kpi_settings.load(services, installed)


def test_stored_deal_kpis_match_rows(services, installed, seeded):
    november = _expected(services, installed.id, seeded, *PERIODS[0])

    _check(services, installed, seeded)

    # The seeded data exercises every branch of the definitions.
    assert november["returned"]
    assert november["clients"] > november["returned"]
    assert november["late_cancelled"]
    assert november["new"]

    with services.db.session() as session:
        built = session.scalar(
            select(func.count()).where(KpiRollupDay.grain == rollup.DEAL_GRAIN)
        )
        visits = session.scalar(select(func.count()).select_from(KpiVisit))
    assert built == 92
    assert visits > 50


def _record(bitrix_id: int, stage: str, due: str, contact: int | None) -> dict:
    return {
        "ID": str(bitrix_id),
        "CATEGORY_ID": "1",
        "STAGE_ID": stage,
        "OPPORTUNITY": "3100.00",
        "ASSIGNED_BY_ID": "4",
        "CONTACT_ID": str(contact) if contact else "",
        "SOURCE_ID": "WEB",
        "DATE_CREATE": "2026-11-02T12:00:00+03:00",
        "MOVED_TIME": "2026-11-03T12:00:00+03:00",
        "BEGINDATE": due,
    }


def test_changed_deals_refresh_stored_days(services, installed, seeded):
    cfg = seeded
    _check(services, installed, cfg)
    records = [
        # A visit moves to another day and another client.
        _record(3, "C1:WON", "2026-11-16T10:00:00+03:00", 2),
        # A new deal visits on the period's last local day.
        _record(500, "C1:WON", "2026-11-30T23:30:00+03:00", 5),
        # A no-show becomes a visit of a client with earlier visits.
        _record(501, "C1:LOSE", "2026-11-20T10:00:00+03:00", 9),
    ]

    with services.db.session() as session:
        sync.upsert_deals(session, installed.id, records, cfg, TZ)
        sync.upsert_deals(
            session,
            installed.id,
            [_record(501, "C1:WON", "2026-11-20T10:00:00+03:00", 9)],
            cfg,
            TZ,
        )
        sync.delete_deal(session, installed.id, 10, cfg, TZ)
    _check(services, installed, cfg)

    rollup.invalidate(services, installed.id)
    _check(services, installed, cfg)


def test_mapping_change_rebuilds_deal_days(services, installed, seeded):
    lower, upper = period_bounds(TZ, *PERIODS[0])
    with services.db.session() as session:
        before = metrics.appointments(session, installed.id, seeded, lower, upper)
    kpi_settings.save(
        services,
        installed,
        mapping={"deal_stages": {"visited": ["C1:WON", "C1:PREPARATION"]}},
    )
    rollup.invalidate(services, installed.id)
    cfg = kpi_settings.load(services, installed)

    with services.db.session() as session:
        after = metrics.appointments(session, installed.id, cfg, lower, upper)
        stored = session.scalar(select(func.count()).select_from(KpiDealDay))

    assert after["visited"] > before["visited"]
    assert stored > 0
    _check(services, installed, cfg)


def test_period_must_be_whole_days(services, installed, seeded):
    lower = datetime(2026, 11, 1, 12, tzinfo=UTC)

    with (
        services.db.session() as session,
        pytest.raises(ValueError, match="whole local days"),
    ):
        metrics.appointments(
            session, installed.id, seeded, lower, lower + timedelta(days=1)
        )


def _migrate(database: Database, revision: str, down: bool = False) -> None:
    config = alembic_config(database.engine)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def test_migration_down_and_up(database_url):
    database = Database(database_url)
    try:
        database.upgrade()
        _migrate(database, "0004", down=True)
        tables = inspect(database.engine).get_table_names()
        moves = {
            c["name"]: c["nullable"]
            for c in inspect(database.engine).get_columns("kpi_stage_moves")
        }
        _migrate(database, "head")
        restored = inspect(database.engine).get_table_names()
        live = {
            c["name"]: c["nullable"]
            for c in inspect(database.engine).get_columns("kpi_stage_moves")
        }
        indexes = {
            i["name"] for i in inspect(database.engine).get_indexes("kpi_stage_moves")
        }
    finally:
        database.dispose()
    assert "kpi_deal_days" not in tables
    assert "kpi_visits" not in tables
    assert moves["bitrix_id"] is False
    assert {"kpi_deal_days", "kpi_visits"} <= set(restored)
    assert live["bitrix_id"] is True
    assert "uq_kpi_stage_moves_live" in indexes


def test_visit_days_match_visit_rows(services, installed, seeded):
    with services.db.session() as session:
        rollup.ensure_visits(session, installed.id, seeded)
        for start, end in [*PERIODS, (date(2026, 9, 1), date(2027, 1, 31))]:
            lower, upper = period_bounds(TZ, start, end)
            year_start = end - timedelta(days=364)

            by_day = metrics._visit_counts_by_day(
                session, installed.id, (start, end), year_start
            )
            by_row = metrics._visit_counts_by_row(session, installed.id, lower, upper)

            assert by_day["revenue_12m"] == pytest.approx(by_row["revenue_12m"])
            by_day.pop("revenue_12m"), by_row.pop("revenue_12m")
            assert by_day == by_row, start


def _seed_leads(services, portal_id: int, count: int = 400) -> None:
    from b24app.models import SlaClock
    from tests.kpi.fixtures import lead

    rng = random.Random(11)
    with services.db.session() as session:
        for i in range(1, count + 1):
            created = datetime(2026, 8, 1, 6) + timedelta(
                minutes=rng.randrange(150_000)
            )
            row = lead(
                portal_id,
                i,
                created.isoformat(),
                rng.choice(("site", "phone", "ads", "")),
                rng.choice((4, 5, None)),
                rng.choice(("NEW", "CONVERTED")),
                ["spam"] if rng.random() < 0.05 else ["booking"],
            )
            session.add(row)
            session.flush()
            start = row.created_at
            stopped = start + timedelta(minutes=rng.expovariate(1 / 30))
            session.add(
                SlaClock(
                    portal_id=portal_id,
                    lead_id=row.id,
                    tier="human",
                    target_seconds=900,
                    created_at=start,
                    starts_at=start,
                    due_at=start + timedelta(minutes=15),
                    state="met",
                    stopped_at=stopped if rng.random() < 0.9 else None,
                )
            )


def test_stored_months_match_live_leads(services, installed):
    from zoneinfo import ZoneInfo

    from b24app import portal_settings

    _seed_leads(services, installed.id)
    cfg = kpi_settings.load(services, installed)
    now = datetime(2027, 3, 1, tzinfo=UTC)
    start, end = date(2026, 8, 15), date(2026, 12, 20)
    lower, upper = period_bounds(TZ, start, end)
    with services.db.session() as session:
        live = rollup.scan(
            session,
            installed.id,
            cfg,
            portal_settings.calendar(installed),
            ZoneInfo(TZ),
            lower,
            upper,
            now,
        )

    stored, _ = rollup.cells(services, installed, start, end, now)
    whole, _, channels, managers = rollup.summarize(stored)
    live_whole, _, live_channels, live_managers = rollup.summarize(live)

    assert any(key[2] is None for key in stored), "no whole month was read"
    assert whole.counts == live_whole.counts
    assert dict(whole.tags) == dict(live_whole.tags)
    for share in (0.5, 0.9):
        assert rollup.percentile_of(whole.human, share) == rollup.percentile_of(
            live_whole.human, share
        )
    for groups, live_groups in ((channels, live_channels), (managers, live_managers)):
        assert set(groups) == set(live_groups)
        for key, group in groups.items():
            assert group.counts == live_groups[key].counts, key
            assert rollup.percentile_of(group.human, 0.9) == rollup.percentile_of(
                live_groups[key].human, 0.9
            ), key

"""KPI benchmark: report time on a big portal, and the history import rate.

Part 1 (``query``) fills a fresh PostgreSQL database with one portal's leads
(each with a human SLA clock) and booking deals over two years, loaded with
COPY. It then times the KPI report (the body of ``/api/v1/kpi``, serialised
to JSON) for the last month and the last year. The first call of each
builds the stored counts (lead days and months, deal days, visits) and is
reported apart. A naive single aggregate query over the raw tables for the
same period is timed next to it.

Part 2 (``import``) starts the portal emulator at the cloud limit of
2 requests/s, fills it with past leads and runs the app's history import,
reporting leads/s as a share of the ceiling 2 x 2,500 rows/s.

    python bench/kpi.py query  [--leads 1000000] [--deals 300000] [--runs 15]
                               [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
    python bench/kpi.py import [--leads 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHANNELS = ("site", "phone", "openline", "ads", "referral")
STAGES = ("C1:WON",) * 7 + ("C1:LOSE", "C1:APOLOGY", "C1:NEW")
END = datetime.now(UTC)
SPAN = timedelta(days=730)


def create_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"otklik_kpi_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def generate(url: str, leads: int, deals: int, seed: int = 1) -> int:
    """Create the portal and bulk-load leads, clocks and deals; return its id."""
    import psycopg
    from sqlalchemy.engine import make_url

    from b24app.db import Database

    Database(url).upgrade()
    rng = random.Random(seed)
    plain = make_url(url).set(drivername="postgresql").render_as_string(False)
    start = END - SPAN
    with psycopg.connect(plain) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO portals (member_id, domain, client_endpoint, "
            "server_endpoint, access_token_enc, refresh_token_enc, "
            "token_expires_at, token_refreshed_at, token_version, scope, status, "
            "language, tag_options, settings, created_at, updated_at) VALUES "
            "(%s, 'bench.example.ru', 'https://bench.example.ru/rest/', "
            "'https://oauth.example.ru/rest/', 'x', 'x', now(), now(), 0, 'crm', "
            "'active', 'ru', '{}', '{}', now(), now()) RETURNING id",
            (uuid.uuid4().hex,),
        )
        portal_id = cursor.fetchone()[0]

        def lead_rows():
            for i in range(1, leads + 1):
                created = start + SPAN * rng.random()
                touched = created + timedelta(minutes=rng.expovariate(1 / 20))
                spam = rng.random() < 0.03
                yield (
                    portal_id,
                    i,
                    CHANNELS[i % len(CHANNELS)],
                    "CONVERTED" if rng.random() < 0.12 else "NEW",
                    3 + i % 4,
                    created,
                    '["spam"]' if spam else '["booking"]',
                    False,
                    False,
                    "{}",
                    touched if rng.random() < 0.93 else None,
                    False,
                )

        _copy(
            cursor,
            "leads",
            [
                "portal_id",
                "bitrix_id",
                "channel",
                "status_id",
                "assigned_by_id",
                "created_at",
                "tags",
                "urgent",
                "needs_review",
                "classification",
                "first_touch_at",
                "deleted",
            ],
            lead_rows(),
        )
        cursor.execute(
            "INSERT INTO sla_clocks (portal_id, lead_id, tier, target_seconds, "
            "target_rule, created_at, starts_at, due_at, state, stopped_at, "
            "clock_round) SELECT portal_id, id, 'human', 900, 'default', "
            "created_at, created_at, created_at + interval '15 minutes', "
            "CASE WHEN first_touch_at IS NULL THEN 'breached' ELSE 'met' END, "
            "first_touch_at, 0 FROM leads WHERE portal_id = %s",
            (portal_id,),
        )

        def deal_rows():
            clients = max(deals // 3, 1)
            for i in range(1, deals + 1):
                created = start + SPAN * rng.random()
                due = created + timedelta(days=rng.randint(0, 14))
                stage = rng.choice(STAGES)
                yield (
                    portal_id,
                    i,
                    1,
                    stage,
                    rng.choice((1800.0, 2500.0, 4200.0))
                    if rng.random() < 0.9
                    else None,
                    3 + i % 4,
                    rng.randint(1, clients),
                    rng.randint(1, leads) if rng.random() < 0.5 else None,
                    CHANNELS[i % len(CHANNELS)],
                    created,
                    due - timedelta(hours=rng.randint(1, 72)),
                    due,
                    "{}",
                    False,
                    created,
                )

        _copy(
            cursor,
            "kpi_deals",
            [
                "portal_id",
                "bitrix_id",
                "category_id",
                "stage_id",
                "amount",
                "assigned_by_id",
                "contact_id",
                "lead_id",
                "channel",
                "created_at",
                "moved_at",
                "appointment_at",
                "extra",
                "deleted",
                "synced_at",
            ],
            deal_rows(),
        )
        for month in range(24):
            day = (END - timedelta(days=30 * month)).date().replace(day=1)
            for channel in CHANNELS:
                cursor.execute(
                    "INSERT INTO kpi_spend (portal_id, month, channel, amount) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (portal_id, day, channel, 20000.0),
                )
        connection.commit()
        cursor.execute("ANALYZE")
    return portal_id


NAIVE = """
SELECT count(*) FILTER (WHERE NOT l.tags::text LIKE '%%"spam"%%'),
       count(l.first_touch_at),
       (SELECT count(*) FROM kpi_deals d WHERE d.portal_id = %(p)s
          AND d.appointment_at >= %(lo)s AND d.appointment_at < %(hi)s
          AND d.stage_id = 'C1:WON'),
       (SELECT sum(d.amount) FROM kpi_deals d WHERE d.portal_id = %(p)s
          AND d.appointment_at >= %(lo)s AND d.appointment_at < %(hi)s
          AND d.stage_id = 'C1:WON')
FROM leads l WHERE l.portal_id = %(p)s AND l.created_at >= %(lo)s
  AND l.created_at < %(hi)s
"""


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * len(ordered))) - 1)]
    return f"median {statistics.median(ordered):8.1f} ms   p95 {p95:8.1f} ms"


def measure(url: str, portal_id: int, runs: int) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from b24app.kpi.report import kpi_report
    from b24app.models import Portal
    from b24app.services import Services

    services = Services({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with services.db.session() as session:
        portal = session.get(Portal, portal_id)
    end_day = END.date()
    plain = make_url(url).set(drivername="postgresql").render_as_string(False)
    for label, days in (("month", 30), ("year", 365)):
        start_day = end_day - timedelta(days=days - 1)
        app_times, naive_times = [], []
        began = time.perf_counter()
        json.dumps(kpi_report(services, portal, start_day, end_day))
        cold = (time.perf_counter() - began) * 1000
        print(f"{label:5}  first call (builds stored counts): {cold:8.1f} ms")
        for _ in range(runs):
            began = time.perf_counter()
            json.dumps(kpi_report(services, portal, start_day, end_day))
            app_times.append((time.perf_counter() - began) * 1000)
        lo = datetime.combine(start_day, datetime.min.time(), UTC)
        hi = datetime.combine(end_day + timedelta(days=1), datetime.min.time(), UTC)
        with psycopg.connect(plain) as connection, connection.cursor() as cursor:
            for _ in range(runs):
                began = time.perf_counter()
                cursor.execute(NAIVE, {"p": portal_id, "lo": lo, "hi": hi})
                cursor.fetchall()
                naive_times.append((time.perf_counter() - began) * 1000)
        print(f"{label:5}  KPI JSON     {_stats(app_times)}")
        print(f"{label:5}  naive query  {_stats(naive_times)}")


def run_query(args) -> None:
    url = create_database(args.database_url)
    try:
        began = time.perf_counter()
        portal_id = generate(url, args.leads, args.deals)
        print(
            f"generated {args.leads} leads, {args.deals} deals in "
            f"{time.perf_counter() - began:.1f} s"
        )
        measure(url, portal_id, args.runs)
    finally:
        if not args.keep:
            drop_database(args.database_url, url)


def run_import(args) -> None:
    import threading

    from sqlalchemy import select
    from werkzeug.serving import make_server

    from b24app import create_app
    from b24app.emulator import EmulatorConfig
    from b24app.emulator.history import generate_history
    from b24app.emulator.server import start_emulator
    from b24app.kpi import history
    from b24app.models import Portal

    workdir = Path(tempfile.mkdtemp(prefix="otklik-kpi-bench-"))
    emulator = start_emulator(
        EmulatorConfig(rate=2.0, burst=2, seed=True), cert_dir=workdir / "certs"
    )
    sock_port = _free_port()
    app = create_app(
        {
            "ENV": "test",
            "INSTANCE_PATH": str(workdir / "instance"),
            "DATABASE_URL": f"sqlite:///{workdir / 'otklik.db'}",
            "SECRET_KEY": "bench-secret",
            "CLIENT_ID": emulator.config.client_id,
            "CLIENT_SECRET": emulator.config.client_secret,
            "OAUTH_URL": emulator.base_url,
            "CA_BUNDLE": str(emulator.ca_path),
            "PUBLIC_URL": f"http://127.0.0.1:{sock_port}",
            "RATE_LIMIT": 2.0,
            "RATE_BURST": 2,
            "LOG_LEVEL": "WARNING",
        }
    )
    server = make_server("127.0.0.1", sock_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        services = app.extensions["otklik"]
        emulator.portal.install_app(
            handler_url=f"http://127.0.0.1:{sock_port}/app",
            install_url=f"http://127.0.0.1:{sock_port}/install",
        )
        generate_history(emulator.portal, leads=args.leads, deals=0, days=365)
        with services.db.session() as session:
            portal = session.scalar(select(Portal))
        history.start_import(services, portal, restart=True)
        began = time.perf_counter()
        # Leads only: the other entities are marked done for this measurement.
        _only_leads(services, portal)
        requests = history.run_import(services, portal)
        elapsed = time.perf_counter() - began
        rate = args.leads / elapsed
        print(
            f"imported {args.leads} leads in {elapsed:.1f} s with {requests} "
            f"requests: {rate:.0f} leads/s = {rate / 5000:.0%} of 2 x 2,500 rows/s"
        )
    finally:
        server.shutdown()
        app.extensions["otklik"].close()
        emulator.stop()


def _only_leads(services, portal) -> None:
    from sqlalchemy import update

    from b24app.kpi.models import KpiImport

    with services.db.session() as session:
        session.execute(
            update(KpiImport)
            .where(KpiImport.portal_id == portal.id, KpiImport.entity != "leads")
            .values(status="done")
        )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    query = sub.add_parser("query")
    query.add_argument("--leads", type=int, default=1_000_000)
    query.add_argument("--deals", type=int, default=300_000)
    query.add_argument("--runs", type=int, default=15)
    query.add_argument("--database-url", default=ADMIN_URL)
    query.add_argument("--keep", action="store_true")
    imp = sub.add_parser("import")
    imp.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    run_query(args) if args.part == "query" else run_import(args)


if __name__ == "__main__":
    main()

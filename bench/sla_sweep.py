"""SLA sweep benchmark on PostgreSQL (prints figures and ratios; not a test).

1. Idle: 100,000 open clocks across 1,000 portals, none due. Times repeated
   runs of ``escalation.sweep`` (median, p95) next to a naive sweep that loads
   every open clock with its lead and portal and filters in Python.
2. Due: one clock per portal (1,000) lapses within the same second, then
   another 1,000 spread over a minute, while a worker loop sweeps every
   ``--interval`` seconds, as ``b24app worker`` does with
   ``OTKLIK_SLA_SWEEP_SECONDS``. The portal calls go to one emulated portal
   (``start_emulator`` in a child process, so that it does not share the
   interpreter lock with the app) over HTTPS on loopback. It answers for
   every portal in the database: each stored portal has its own tokens and
   its own rate-limiter row (2 requests/s, burst 50, as a standard plan),
   while the emulator's own bucket is opened wide because it serves all
   1,000 portals. Reports, per escalation, the delay from its due time to the
   recorded creation of the task (``sent_at`` is stored right after the
   portal answered, so it is an upper bound), and how many calls each portal
   received.
3. Cluster: ten clocks on each of the first 100 portals lapse within the
   same second (1,000 lapses), as when leads that arrived overnight lapse
   together after opening. This is where a portal's lapses share batch calls.

    python bench/sla_sweep.py [--portals 1000] [--clocks 100] [--repeats 50]
                              [--interval 1.0] [--spread 60]
                              [--cluster-portals 100] [--cluster-lapses 10]
                              [--phases idle,burst,spread,cluster]
                              [--database-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, insert, select, text, update
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b24app.bitrix import client as client_module  # noqa: E402
from b24app.models import Escalation, Lead, Portal, SlaClock  # noqa: E402
from b24app.services import Services  # noqa: E402
from b24app.sla import escalation  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ALWAYS_OPEN = {
    "tz": "Europe/Moscow",
    "country": None,
    "weekly": {str(day): [["00:00", "24:00"]] for day in range(7)},
}
MANAGER = 4
TARGET_SECONDS = 1800
# Clocks that stay open through the run: their first check is hours away.
BACKGROUND_SECONDS = 8 * 3600


class RemoteEmulator:
    """An emulated portal served by a child process, driven over HTTP."""

    def __init__(self, cert_dir: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=serve_emulator, args=(child, str(cert_dir)), daemon=True
        )
        self._process.start()
        info = self._conn.recv()
        self.base_url = info["base_url"]
        self.domain = info["domain"]
        self.ca_path = Path(info["ca_path"])
        self.client_id = info["client_id"]
        self.client_secret = info["client_secret"]
        self.client_endpoint = f"{self.base_url}/rest/"
        self.server_endpoint = f"{self.base_url}/rest/"
        self._http = requests.Session()
        self._http.trust_env = False
        self._http.verify = str(self.ca_path)

    def issue_tokens(self) -> dict:
        return self._http.post(f"{self.base_url}/_emulator/tokens", json={}).json()

    def task_count(self) -> int:
        state = self._http.get(f"{self.base_url}/_emulator/state").json()
        return state["counts"]["tasks"]

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=30)
        self._http.close()


def serve_emulator(conn, cert_dir: str) -> None:
    from b24app.emulator import EmulatorConfig
    from b24app.emulator.server import start_emulator

    handle = start_emulator(
        EmulatorConfig(rate=100_000.0, burst=1_000_000, seed=True),
        cert_dir=Path(cert_dir),
    )
    conn.send(
        {
            "base_url": handle.base_url,
            "domain": handle.domain,
            "ca_path": str(handle.ca_path),
            "client_id": handle.config.client_id,
            "client_secret": handle.config.client_secret,
        }
    )
    conn.recv()
    handle.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def create_database(admin_url: str) -> tuple[str, object]:
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"otklik_bench_sla_{os.getpid()}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, (admin, name)


def drop_database(handle) -> None:
    admin, name = handle
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def load(services: Services, emulator, portals: int, per_portal: int) -> None:
    """Portals with their own tokens, and open clocks due hours from now."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    box = services.box
    portal_rows = []
    for portal_id in range(1, portals + 1):
        grant = emulator.issue_tokens()
        portal_rows.append(
            {
                "id": portal_id,
                "member_id": secrets.token_hex(16),
                "domain": emulator.domain,
                "client_endpoint": emulator.client_endpoint,
                "server_endpoint": emulator.server_endpoint,
                "access_token_enc": box.encrypt(grant["access_token"]),
                "refresh_token_enc": box.encrypt(grant["refresh_token"]),
                "application_token_enc": None,
                "token_expires_at": now + timedelta(hours=1),
                "token_refreshed_at": now,
                "token_version": 1,
                "token_user_id": 1,
                "scope": "crm,task,im,user,department",
                "status": "active",
                "language": "ru",
                "tag_options": {},
                "settings": {
                    "calendar": ALWAYS_OPEN,
                    "policy": {"human_seconds": TARGET_SECONDS},
                },
                "installed_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )

    lead_rows, clock_rows = [], []
    lead_id = 0
    for portal_id in range(1, portals + 1):
        for number in range(1, per_portal + 1):
            lead_id += 1
            # Started up to an hour ago with an 8-hour target: the next check
            # (the warning at 0.8 of it) is 5.4 to 6.4 hours ahead.
            starts = now - timedelta(seconds=rng.uniform(0, 3600))
            due = starts + timedelta(seconds=BACKGROUND_SECONDS)
            lead_rows.append(
                {
                    "id": lead_id,
                    "portal_id": portal_id,
                    "bitrix_id": number,
                    "title": f"Заявка {number}",
                    "assigned_by_id": MANAGER,
                    "created_at": starts,
                    "tags": ["booking"],
                    "urgent": False,
                    "needs_review": False,
                    "classification": {},
                    "deleted": False,
                    "tagged_at": starts,
                }
            )
            clock_rows.append(
                {
                    "portal_id": portal_id,
                    "lead_id": lead_id,
                    "tier": "human",
                    "target_seconds": BACKGROUND_SECONDS,
                    "target_rule": "default",
                    "created_at": starts,
                    "starts_at": starts,
                    "due_at": due,
                    "state": "running",
                    "next_check_at": starts
                    + timedelta(seconds=0.8 * BACKGROUND_SECONDS),
                    "responsible_id": MANAGER,
                    "clock_round": 0,
                }
            )

    with services.db.session() as session:
        session.execute(insert(Portal), portal_rows)
        for start in range(0, len(lead_rows), 10_000):
            session.execute(insert(Lead), lead_rows[start : start + 10_000])
        for start in range(0, len(clock_rows), 10_000):
            session.execute(insert(SlaClock), clock_rows[start : start + 10_000])
        for table in ("portals", "leads"):
            session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
    with services.db.engine.connect().execution_options(
        isolation_level="AUTOCOMMIT"
    ) as connection:
        connection.execute(text("ANALYZE"))


def naive_sweep(services: Services, now: datetime) -> int:
    """Load every open clock with its lead and portal, and filter in Python."""
    with services.db.session() as session:
        rows = session.execute(
            select(SlaClock, Lead, Portal)
            .join(Lead, SlaClock.lead_id == Lead.id)
            .join(Portal, SlaClock.portal_id == Portal.id)
            .where(SlaClock.stopped_at.is_(None))
        ).all()
    return sum(
        1
        for clock, _, _ in rows
        if clock.next_check_at is not None and clock.next_check_at <= now
    )


def time_runs(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def idle_phase(services: Services, repeats: int) -> dict:
    escalation.sweep(services)  # warm the caches and the connection pool
    with services.db.session() as session:
        plan = session.execute(
            text(
                "EXPLAIN SELECT id FROM sla_clocks WHERE next_check_at <= now() "
                "ORDER BY next_check_at LIMIT 500"
            )
        ).scalars()
        plan_text = " | ".join(line.strip() for line in plan)
    sweep_ms = time_runs(lambda: escalation.sweep(services), repeats)
    unindexed_ms = time_runs(lambda: unindexed_due_query(services), repeats)
    naive_ms = time_runs(
        lambda: naive_sweep(services, datetime.now(UTC)), max(3, repeats // 20)
    )
    return {
        "sweep": sweep_ms,
        "naive": naive_ms,
        "unindexed": unindexed_ms,
        "plan": plan_text,
    }


def unindexed_due_query(services: Services) -> None:
    """Run the sweep's due-clock query alone with index scans switched off."""
    with services.db.engine.begin() as connection:
        connection.execute(text("SET LOCAL enable_indexscan = off"))
        connection.execute(text("SET LOCAL enable_bitmapscan = off"))
        connection.execute(
            text(
                "SELECT id FROM sla_clocks WHERE next_check_at <= now() "
                "ORDER BY next_check_at LIMIT 500"
            )
        ).all()


def make_due(
    services: Services,
    portals: int,
    per_portal: int,
    numbers: range,
    spread: float,
) -> None:
    """Clocks ``numbers`` of portals 1 to ``portals`` fall due within ``spread`` s.

    The first due time is five seconds ahead. The level before the task (the
    warning at 0.8 of the target) is stored as sent, as it would have been.
    """
    due_from = datetime.now(UTC) + timedelta(seconds=5)
    earlier = timedelta(seconds=0.2 * TARGET_SECONDS)
    total = portals * len(numbers)
    pairs = [(p, n) for p in range(1, portals + 1) for n in numbers]
    with services.db.session() as session:
        for position, (portal_id, number) in enumerate(pairs):
            lead_id = (portal_id - 1) * per_portal + number
            due = due_from + timedelta(seconds=spread * position / total)
            session.execute(
                update(SlaClock)
                .where(SlaClock.lead_id == lead_id)
                .values(
                    target_seconds=TARGET_SECONDS,
                    starts_at=due - timedelta(seconds=TARGET_SECONDS),
                    due_at=due,
                    next_check_at=due,
                )
            )
            session.add(
                Escalation(
                    portal_id=portal_id,
                    lead_id=lead_id,
                    level="warn",
                    action="warn_responsible",
                    status="sent",
                    attempts=1,
                    due_at=due - earlier,
                    claimed_at=due - earlier,
                    sent_at=due - earlier,
                    recipient_id=MANAGER,
                    task_closed=False,
                )
            )


def due_phase(
    services: Services,
    emulator,
    *,
    portals: int,
    per_portal: int,
    numbers: range,
    spread: float,
    interval: float,
) -> dict:
    """Lapse clocks ``numbers`` of each portal and sweep until all tasks exist."""
    calls: Counter[int] = Counter()
    lock = threading.Lock()
    original_send = client_module.PortalClient._send

    def counting_send(self, method, send):
        with lock:
            calls[self.portal.id] += 1
        return original_send(self, method, send)

    # Every portal starts cold: no cached department structure.
    escalation._senior_cache.clear()
    escalation._user_cache.clear()
    tasks_before = emulator.task_count()
    client_module.PortalClient._send = counting_send
    stop = threading.Event()
    sweeps: list[float] = []

    def worker_loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            escalation.sweep(services)
            sweeps.append(time.monotonic() - started)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def sent_tasks() -> int:
        with services.db.session() as session:
            return session.scalar(
                select(func.count())
                .select_from(Escalation)
                .where(Escalation.level == "task", Escalation.status == "sent")
            )

    try:
        done_before = sent_tasks()
        make_due(services, portals, per_portal, numbers, spread)
        thread = threading.Thread(target=worker_loop, daemon=True)
        thread.start()
        deadline = time.monotonic() + 300
        expected = done_before + portals * len(numbers)
        while time.monotonic() < deadline and sent_tasks() < expected:
            time.sleep(0.5)
        stop.set()
        thread.join(timeout=120)
    finally:
        client_module.PortalClient._send = original_send

    with services.db.session() as session:
        rows = session.execute(
            select(Escalation.due_at, Escalation.sent_at)
            .join(Lead, Escalation.lead_id == Lead.id)
            .where(
                Escalation.level == "task",
                Lead.bitrix_id.in_(list(numbers)),
                Lead.portal_id <= portals,
            )
        ).all()
    delays = [(sent_at - due).total_seconds() for due, sent_at in rows if sent_at]
    return {
        "delays": delays,
        "escalations": len(rows),
        "tasks_on_portal": emulator.task_count() - tasks_before,
        "calls_per_portal": calls,
        "sweeps": sweeps,
    }


def emulator_capacity(emulator, threads: int = 32, requests_total: int = 600) -> float:
    """Measure plain HTTPS calls per second that the emulated portal serves."""
    token = emulator.issue_tokens()["access_token"]
    url = f"{emulator.base_url}/rest/server.time.json"

    def one(_):
        requests.post(url, data={"auth": token}, verify=str(emulator.ca_path))

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(requests_total)))
    return requests_total / (time.perf_counter() - started)


def report_due(title: str, due: dict) -> None:
    delays = due["delays"]
    calls = due["calls_per_portal"]
    print(f"\n{title}")
    print(
        f"  escalation rows {due['escalations']}, tasks sent {len(delays)}, "
        f"tasks on the portal {due['tasks_on_portal']}"
    )
    if delays:
        within = sum(1 for delay in delays if delay <= 5.0)
        print(
            f"  due -> task: median {statistics.median(delays):.2f} s, "
            f"p95 {percentile(delays, 0.95):.2f} s, max {max(delays):.2f} s, "
            f"within 5 s: {within}/{len(delays)}"
        )
    print(
        f"  portal calls: {sum(calls.values())} in all, per portal "
        f"max {max(calls.values(), default=0)}, "
        f"min {min(calls.values(), default=0)} (limit: 2/s, burst 50)"
    )
    busy = sorted(due["sweeps"], reverse=True)[:3]
    print(f"  longest sweeps: {', '.join(f'{s:.2f} s' for s in busy)}")


def report_idle(idle: dict) -> None:
    sweep_median = statistics.median(idle["sweep"])
    naive_median = statistics.median(idle["naive"])
    print("\nidle sweep (none due)")
    print(f"  plan: {idle['plan']}")
    print(
        f"  sweep: median {sweep_median:.2f} ms, "
        f"p95 {percentile(idle['sweep'], 0.95):.2f} ms ({len(idle['sweep'])} runs)"
    )
    print(
        f"  naive full scan: median {naive_median:.0f} ms, "
        f"p95 {percentile(idle['naive'], 0.95):.0f} ms ({len(idle['naive'])} runs)"
    )
    print(f"  ratio naive/sweep (median): {naive_median / sweep_median:.0f}x")
    print(
        f"  due-clock query alone without its index: median "
        f"{statistics.median(idle['unindexed']):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portals", type=int, default=1000)
    parser.add_argument("--clocks", type=int, default=100, help="per portal")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument(
        "--cluster-portals",
        type=int,
        default=100,
        help="portals in the cluster phase (at most --portals)",
    )
    parser.add_argument(
        "--cluster-lapses",
        type=int,
        default=10,
        help="clocks per portal that lapse in the cluster phase",
    )
    parser.add_argument(
        "--phases",
        default="idle,burst,spread,cluster",
        help="comma-separated phases to run: idle, burst, spread, cluster",
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("TEST_DATABASE_URL", DEFAULT_URL)
    )
    args = parser.parse_args()
    phases = {phase.strip() for phase in args.phases.split(",") if phase.strip()}
    unknown = phases - {"idle", "burst", "spread", "cluster"}
    if unknown:
        parser.error(f"--phases: unknown phase {sorted(unknown)[0]!r}")
    if args.cluster_portals > args.portals:
        parser.error("--cluster-portals must not exceed --portals")
    if args.cluster_lapses + 2 > args.clocks:
        parser.error("--cluster-lapses must leave two clocks: raise --clocks")

    workdir = Path(tempfile.mkdtemp(prefix="otklik-bench-sla-"))
    emulator = RemoteEmulator(workdir / "certs")
    url, handle = create_database(args.database_url)
    services = Services(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "CLIENT_ID": emulator.client_id,
            "CLIENT_SECRET": emulator.client_secret,
            "OAUTH_URL": emulator.base_url,
            "CA_BUNDLE": str(emulator.ca_path),
            "REST_CONNECT_TIMEOUT": 3.05,
            "REST_READ_TIMEOUT": 10.0,
            "RATE_LIMIT": 2.0,
            "RATE_BURST": 50,
        }
    )
    try:
        services.db.upgrade()
        started = time.perf_counter()
        load(services, emulator, args.portals, args.clocks)
        total = args.portals * args.clocks
        print(
            f"loaded {args.portals} portals, {total} open clocks "
            f"in {time.perf_counter() - started:.1f} s"
        )

        if "idle" in phases:
            report_idle(idle_phase(services, args.repeats))

        common = {"per_portal": args.clocks, "interval": args.interval}
        if "burst" in phases:
            burst = due_phase(
                services,
                emulator,
                portals=args.portals,
                numbers=range(1, 2),
                spread=1.0,
                **common,
            )
            report_due(
                f"burst: {args.portals} clocks lapse within 1 s, "
                f"sweep every {args.interval} s",
                burst,
            )
        if "spread" in phases:
            spread = due_phase(
                services,
                emulator,
                portals=args.portals,
                numbers=range(2, 3),
                spread=args.spread,
                **common,
            )
            report_due(
                f"spread: {args.portals} clocks lapse over {args.spread:.0f} s, "
                f"sweep every {args.interval} s",
                spread,
            )
        if "cluster" in phases:
            lapses = args.cluster_lapses
            cluster = due_phase(
                services,
                emulator,
                portals=args.cluster_portals,
                numbers=range(3, 3 + lapses),
                spread=1.0,
                **common,
            )
            report_due(
                f"cluster: {lapses} clocks on each of {args.cluster_portals} "
                f"portals lapse within 1 s, sweep every {args.interval} s",
                cluster,
            )
        capacity = emulator_capacity(emulator)
        print(f"\nemulated portal alone: {capacity:.0f} HTTPS calls/s from 32 threads")
    finally:
        services.close()
        emulator.stop()
        drop_database(handle)


if __name__ == "__main__":
    main()

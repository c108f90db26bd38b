"""Event intake benchmark: the app's /events under gunicorn versus a bare insert.

Starts two gunicorn servers on loopback, one with the app (``app:app``) and
one with ``bench/baseline_app.py``, posts the same form-encoded ONCRMLEADADD
bodies to each from a thread pool, and prints requests per second, latency
percentiles and the app/baseline ratio. Each request carries a new lead id,
so every one is stored (no de-duplication shortcut).

    python bench/ingest.py [--requests 3000] [--concurrency 8] [--workers 2]
                           [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEMBER_ID = "b" * 32
APP_TOKEN = "bench-application-token"  # noqa: S105


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_app_database(url: str, secret: str) -> None:
    """Migrate and add one active portal whose events the app accepts."""
    from b24app.crypto import SecretBox
    from b24app.db import Database
    from b24app.models import Portal

    db = Database(url)
    db.upgrade()
    box = SecretBox(secret)
    now = datetime.now(UTC)
    with db.session() as session:
        session.add(
            Portal(
                member_id=MEMBER_ID,
                domain="bench.example.ru",
                client_endpoint="https://bench.example.ru/rest/",
                server_endpoint="https://oauth.example.ru/rest/",
                access_token_enc=box.encrypt("a"),
                refresh_token_enc=box.encrypt("r"),
                application_token_enc=box.encrypt(APP_TOKEN),
                token_expires_at=now + timedelta(hours=1),
                token_refreshed_at=now,
                token_version=1,
                status="active",
                settings={},
                tag_options={},
            )
        )
    db.dispose()


def start_gunicorn(target: str, port: int, workers: int, env: dict, cwd: Path):
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        target,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError as err:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode()[-2000:]) from err
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{target} did not start on port {port}")


def body(lead_id: int) -> dict[str, str]:
    return {
        "event": "ONCRMLEADADD",
        "event_handler_id": "7",
        "data[FIELDS][ID]": str(lead_id),
        "ts": str(int(time.time())),
        "auth[domain]": "bench.example.ru",
        "auth[member_id]": MEMBER_ID,
        "auth[application_token]": APP_TOKEN,
        "auth[user_id]": "3",
    }


def load(url: str, count: int, concurrency: int, first_id: int) -> dict[str, float]:
    local = threading.local()
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def one(lead_id: int) -> None:
        nonlocal failures
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        response = session.post(url, data=body(lead_id), timeout=10)
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            if response.status_code != 200:
                failures += 1

    # Warm-up: the first requests pay for imports and connections.
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(first_id - 200, first_id)))
    latencies.clear()
    failures = 0

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(first_id, first_id + count)))
    wall = time.perf_counter() - started

    ordered = sorted(latencies)
    return {
        "rps": count / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "failures": failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers each")
    parser.add_argument("--database-url", help="default: SQLite files in a temp folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        secret = secrets.token_urlsafe(32)
        app_url = args.database_url or f"sqlite:///{tmp}/app.db"
        base_url = args.database_url or f"sqlite:///{tmp}/baseline.db"
        prepare_app_database(app_url, secret)

        app_port, base_port = free_port(), free_port()
        app_env = {
            "OTKLIK_DATABASE_URL": app_url,
            "OTKLIK_SECRET_KEY": secret,
            "OTKLIK_INSTANCE_PATH": tmp,
            "OTKLIK_LOG_LEVEL": "WARNING",
            "OTKLIK_RUN_MIGRATIONS": "false",
        }
        servers = [
            start_gunicorn("app:app", app_port, args.workers, app_env, ROOT),
            start_gunicorn(
                "baseline_app:app",
                base_port,
                args.workers,
                {"BENCH_DATABASE_URL": base_url},
                ROOT / "bench",
            ),
        ]
        try:
            app = load(
                f"http://127.0.0.1:{app_port}/events",
                args.requests,
                args.concurrency,
                1_000_000,
            )
            base = load(
                f"http://127.0.0.1:{base_port}/events",
                args.requests,
                args.concurrency,
                1_000_000,
            )
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)

    backend = "postgresql" if args.database_url else "sqlite"
    print(
        f"event intake, {args.requests} requests, concurrency {args.concurrency}, "
        f"{args.workers} gunicorn workers each, {backend}"
    )
    print(
        f"{'':10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'failed':>7}"
    )
    for name, row in (("app", app), ("baseline", base)):
        print(
            f"{name:10} {row['rps']:8.0f} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} "
            f"{row['p99_ms']:8.2f} {row['failures']:7.0f}"
        )
    print(
        f"ratio app/baseline: throughput {app['rps'] / base['rps']:.2f}, "
        f"p50 latency {app['p50_ms'] / base['p50_ms']:.2f}"
    )
    return 0 if not app["failures"] and not base["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())

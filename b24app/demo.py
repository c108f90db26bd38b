"""`b24app demo`: the emulated portal, the app and the worker on loopback.

Starts the portal emulator (HTTPS with its own test CA), the app on a real
HTTP server and the worker in this process; installs the app on the portal
the way an admin would; configures a short first-response target so that
escalations happen within minutes; then feeds realistic Russian leads into
the portal, with managers answering some of them in time, some late and some
never.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from werkzeug.serving import make_server

from b24app.models import Escalation, Lead, Portal, SlaClock

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_CHARTJS = REPO_ROOT / "static" / "vendor" / "chart.umd.js"
FINITE_DEMO_TIMEOUT = 240.0


@dataclass
class DemoOptions:
    leads: int | None = None
    exit_after: bool = False
    port: int = 5000
    rate_per_minute: float = 6.0
    human_seconds: int = 90
    seed: int = 7


def demo_settings(human_seconds: int) -> dict[str, Any]:
    """Portal settings for the demo: open around the clock, a short target."""
    return {
        "segment": "salon",
        "calendar": {
            "tz": "Europe/Moscow",
            "country": None,
            "weekly": {str(d): [["00:00", "00:00"]] for d in range(7)},
        },
        "policy": {
            "human_seconds": human_seconds,
            "intent_human_seconds": {"urgent": max(30, human_seconds // 2)},
            "ladder": [
                {"code": "warn", "at_ratio": 0.5, "action": "warn_responsible"},
                {"code": "task", "at_ratio": 1.0, "action": "task_senior"},
                {"code": "owner", "at_ratio": 2.0, "action": "notify_owner"},
            ],
        },
    }


def run_demo(options: DemoOptions) -> dict[str, Any] | None:
    from b24app import create_app
    from b24app.emulator import EmulatorConfig
    from b24app.emulator.scenario import AnswerPolicy, ScenarioRunner
    from b24app.emulator.server import start_emulator
    from b24app.worker import Worker

    workdir = Path(tempfile.mkdtemp(prefix="otklik-demo-"))
    emulator = start_emulator(EmulatorConfig(seed=True), cert_dir=workdir / "certs")
    public_url = f"http://127.0.0.1:{options.port}"
    app = create_app(
        {
            "ENV": "demo",
            "INSTANCE_PATH": str(workdir / "instance"),
            "DATABASE_URL": f"sqlite:///{workdir / 'instance' / 'otklik.db'}",
            "CLIENT_ID": emulator.config.client_id,
            "CLIENT_SECRET": emulator.config.client_secret,
            "OAUTH_URL": emulator.base_url,
            "CA_BUNDLE": str(emulator.ca_path),
            "PUBLIC_URL": public_url,
            "CHARTJS_URL": "/static/vendor/chart.umd.js"
            if LOCAL_CHARTJS.exists()
            else None,
            "SLA_SWEEP_SECONDS": 2.0,
            "RECONCILE_SECONDS": 60.0,
            "LOG_LEVEL": "WARNING" if options.exit_after else "INFO",
        }
    )
    services = app.extensions["otklik"]
    # One line per HTTP request would drown the demo's own output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", options.port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    worker = Worker(services)
    worker.start()

    runner = None
    try:
        emulator.portal.install_app(
            handler_url=f"{public_url}/app", install_url=f"{public_url}/install"
        )
        with services.db.session() as session:
            portal = session.scalar(select(Portal))
            portal.settings = demo_settings(options.human_seconds)

        runner = ScenarioRunner(
            emulator.portal,
            rate_per_minute=options.rate_per_minute,
            answer_policy=AnswerPolicy(
                on_time_share=0.55, late_share=0.25, sla_seconds=options.human_seconds
            ),
            seed=options.seed,
            max_leads=options.leads,
        )
        runner.start()
        _announce(emulator, public_url)

        if options.exit_after:
            return _finish(services, emulator, runner, options)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return None
    finally:
        if runner is not None:
            runner.stop()
        worker.stop()
        server.shutdown()
        emulator.stop()
        services.close()


def _announce(emulator, public_url: str) -> None:
    host_page = f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU"
    print("Otklik demo is running.", flush=True)
    print(f"  KPI tab inside the emulated portal: {host_page}", flush=True)
    print(
        f"  (accept the emulator's test certificate; CA: {emulator.ca_path})",
        flush=True,
    )
    print(f"  portal state: {emulator.base_url}/_emulator/state", flush=True)
    print(f"  app: {public_url}  — stop with Ctrl+C", flush=True)


def _finish(services, emulator, runner, options: DemoOptions) -> dict[str, Any]:
    """Wait until every lead is tagged and every lapse escalated, then summarise."""
    deadline = time.monotonic() + FINITE_DEMO_TIMEOUT
    while time.monotonic() < deadline:
        summary = summarise(services, emulator)
        settled = (
            runner.finished
            and summary["leads_seen"] >= options.leads
            and summary["tagged"] >= summary["leads_seen"]
            and summary["open_clocks_due"] == 0
        )
        if settled:
            break
        time.sleep(1)
    return summarise(services, emulator)


def summarise(services, emulator) -> dict[str, Any]:
    with services.db.session() as session:
        leads = session.scalars(select(Lead)).all()
        tasks = session.scalar(
            select(func.count())
            .select_from(Escalation)
            .where(Escalation.action == "task_senior", Escalation.status == "sent")
        )
        warnings = session.scalar(
            select(func.count())
            .select_from(Escalation)
            .where(Escalation.action == "warn_responsible", Escalation.status == "sent")
        )
        due_open = session.scalar(
            select(func.count())
            .select_from(SlaClock)
            .where(
                SlaClock.next_check_at.is_not(None),
                SlaClock.tier == "human",
                SlaClock.next_check_at <= datetime.now(UTC),
            )
        )
    latencies = [
        lead.tag_latency_ms for lead in leads if lead.tag_latency_ms is not None
    ]
    return {
        "leads_seen": len(emulator.portal.leads),
        "tagged": sum(1 for lead in leads if lead.tagged_at),
        "answered": sum(1 for lead in leads if lead.first_touch_at),
        "warned": warnings or 0,
        "escalated": tasks or 0,
        "escalation_tasks_on_portal": sum(
            1
            for t in emulator.portal.tasks.snapshot()
            if str(t.get("TITLE", "")).startswith("Нет ответа клиенту")
        ),
        "mean_event_to_tags_ms": round(statistics.fmean(latencies), 1)
        if latencies
        else None,
        "open_clocks_due": due_open or 0,
    }

"""`b24app demo`: the emulated portal, the app and the worker on loopback.

Starts the portal emulator (HTTPS with its own test CA) with eleven weeks of
a beauty studio's past leads and deals, the app on a real HTTP server and
the worker in this process, and installs the app the way an admin would.
Then, through the app's own API, as an integrator would, it sets the KPI
funnel mapping and the monthly ad spend, re-reads the history, sets a
reminder schedule with short offsets and no quiet hours, imports the
clients' consent to open-line messages and starts an A/B test of the
reminder texts.

What happens next: realistic Russian leads arrive, and managers reply to
some in time, to some late and to some never, so escalations happen. Visits
booked for the next hour get their confirmation request and reminder in the
open-line chat, and the clients confirm, cancel, ask to move or stay silent.
Managers mark past visits as visited or no-show, and the demo visits two
minutes after their time. A short log of these steps is printed (no phone
numbers), with the A/B test's per-variant rates once a minute when they
change. Every 15 minutes the next visits are booked. `--exit-after` runs the
same story compressed: leads arrive at 40 a minute or more, the
first-response target is at most 30 seconds, and only past visits are
marked. It returns a summary with the lead, reminder and KPI figures.
"""

from __future__ import annotations

import logging
import os
import random
import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from b24app.models import Escalation, InboundEvent, Lead, Portal, SlaClock
from b24app.reminders.models import Appointment, ReminderJob, Reply

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_CHARTJS = REPO_ROOT / "static" / "vendor" / "chart.umd.js"
FINITE_DEMO_TIMEOUT = 170.0
HISTORY_WAIT_SECONDS = 30.0
AB_REPORT_SECONDS = 60.0
# The running demo books the next visits this often.
BOOKING_WAVE_SECONDS = 900.0
# The finite demo compresses the lead story into about a minute.
FINITE_MIN_RATE = 40.0
FINITE_MAX_HUMAN_SECONDS = 30

# Reminders: the product sends nothing in the last 30 minutes before a visit
# and accepts offsets from 30 minutes, so the demo books visits 32+ minutes
# ahead. The confirmation request goes at once, the reminder a minute later.
SCHEDULE = [
    {"kind": "confirm", "minutes_before": 45},
    {"kind": "remind", "minutes_before": 31},
]
VARIANT_TEMPLATES = {
    "confirm": (
        "{name}, здравствуйте! Ждём вас {date} в {time}: {service}. "
        "Если планы поменялись, скажите нам: время отдадим другому клиенту. "
        "Ответьте 1 — приду, 2 — перенести, 3 — отменить."
    ),
    "remind": "{name}, скоро ждём вас: {service} в {time}. Адрес: {address}.",
}
STUDIO_ADDRESS = "Москва, ул. Садовая, 12"
# Monthly ad spend per channel (the KPI channel names of the deal sources).
AD_SPEND = {"ads": 45000.0, "site": 15000.0}
FUNNEL_MAPPING = {
    "segment": "salon",
    "lead_statuses": {"booked": ["CONVERTED"]},
    "deal_categories": [1],
    "deal_stages": {
        "booked": ["C1:NEW"],
        "confirmed": ["C1:PREPARATION"],
        "visited": ["C1:WON"],
        "no_show": ["C1:LOSE"],
        "cancelled": ["C1:APOLOGY"],
    },
    # The visit's date and time, as the reminders read it too.
    "appointment_field": "UF_CRM_APPOINTMENT_AT",
    "late_cancel_hours": 24,
}


@dataclass
class DemoOptions:
    """Options of a demo run. `leads` None keeps leads coming until Ctrl+C.

    `history_weeks` of past data are seeded. `upcoming` visits are booked per
    wave, and `backlog` past visits wait for their managers' marks.
    """

    leads: int | None = None
    exit_after: bool = False
    port: int = 5000
    rate_per_minute: float = 6.0
    human_seconds: int = 90
    seed: int = 7
    history_weeks: int = 11
    upcoming: int = 6
    backlog: int = 24


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
    from b24app.emulator.demo_history import seed_history
    from b24app.emulator.scenario import AnswerPolicy, AppointmentRunner, ScenarioRunner
    from b24app.emulator.server import start_emulator
    from b24app.worker import Worker

    rate, human_seconds = options.rate_per_minute, options.human_seconds
    if options.exit_after:
        rate = max(rate, FINITE_MIN_RATE)
        human_seconds = min(human_seconds, FINITE_MAX_HUMAN_SECONDS)

    workdir = Path(tempfile.mkdtemp(prefix="otklik-demo-"))
    emulator = start_emulator(
        EmulatorConfig(seed=True, plan="enterprise"), cert_dir=workdir / "certs"
    )
    history = seed_history(
        emulator.portal, weeks=options.history_weeks, seed=options.seed
    )
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
            # The emulator's BX24 stub fits the tab's frame in the emulated
            # portal page; the demo loads nothing from api.bitrix24.com.
            "BX24_JS_URL": f"{emulator.base_url}/_emulator/ui/bx24.js",
            # The emulated portal is on an Enterprise plan: 5 requests/s.
            "RATE_LIMIT": 5.0,
            "RATE_BURST": 250,
            "SLA_SWEEP_SECONDS": 2.0,
            "RECONCILE_SECONDS": 60.0,
            "KPI_IMPORT_SECONDS": 2.0,
            "REMINDER_DISPATCH_SECONDS": 2.0,
            # The demo prints its own story, and the app's routine log lines
            # would bury it (OTKLIK_LOG_LEVEL=INFO shows them).
            "LOG_LEVEL": os.environ.get("OTKLIK_LOG_LEVEL", "WARNING"),
        }
    )
    services = app.extensions["otklik"]
    # One line per HTTP request would drown the demo's own output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # A sweep that overlaps the next one is skipped, which is no news here.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", options.port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    worker = Worker(services)
    worker.start()

    log = DemoLog(services)
    leads_runner = appointments = None
    try:
        emulator.portal.install_app(
            handler_url=f"{public_url}/app", install_url=f"{public_url}/install"
        )
        with services.db.session() as session:
            portal = session.scalar(select(Portal))
            # Keep what the install stored (the chat bot, webhook secret).
            portal.settings = {
                **(portal.settings or {}),
                **demo_settings(human_seconds),
            }

        rng = random.Random(options.seed)
        now = emulator.portal.now()
        returning = [c for c in history.clients if rng.random() < 0.5]
        upcoming = _upcoming(rng, now, returning, options)
        backlog = _backlog(rng, now, history.clients, options)

        admin = AdminApi(public_url, emulator.portal)
        configure_kpi(admin, now.date())
        experiment_id = configure_reminders(
            admin, [plan.contact_id for plan in upcoming]
        )
        _announce(emulator, public_url, history.as_dict())
        log.start()

        appointments = AppointmentRunner(emulator.portal, notify=log.line)
        appointments.book(backlog)
        appointments.book(upcoming)
        appointments.start()
        # Leads start once the history is in and the bookings are read, so
        # their tagging latency is not spent waiting behind that backlog.
        _wait_until_quiet(services, HISTORY_WAIT_SECONDS)

        leads_runner = ScenarioRunner(
            emulator.portal,
            rate_per_minute=rate,
            answer_policy=AnswerPolicy(
                on_time_share=0.55, late_share=0.25, sla_seconds=human_seconds
            ),
            seed=options.seed,
            max_leads=options.leads,
        )
        leads_runner.start()

        if options.exit_after:
            return _finish(
                services, emulator, leads_runner, appointments, admin, experiment_id
            )
        printed_rates = None
        waves = 1
        next_wave = time.monotonic() + BOOKING_WAVE_SECONDS
        while True:
            time.sleep(AB_REPORT_SECONDS)
            try:
                printed_rates = log.ab_report(
                    ab_test(admin, experiment_id), printed_rates
                )
                if time.monotonic() >= next_wave:
                    # Fresh clients each wave, so each has one visit at a time.
                    offset = (waves * options.upcoming) % max(len(returning), 1)
                    clients = returning[offset:] + returning[:offset]
                    wave = _upcoming(rng, emulator.portal.now(), clients, options)
                    import_consent(admin, [plan.contact_id for plan in wave])
                    appointments.book(wave)
                    log.line(f"{len(wave)} more visits booked for the next hour")
                    waves += 1
                    next_wave = time.monotonic() + BOOKING_WAVE_SECONDS
            except (RuntimeError, requests.RequestException):
                logger.warning("the demo's admin call failed", exc_info=True)
    except KeyboardInterrupt:
        return None
    finally:
        for runner in (leads_runner, appointments):
            if runner is not None:
                runner.stop()
        log.stop()
        worker.stop()
        server.shutdown()
        emulator.stop()
        services.close()


def _upcoming(rng, now, returning, options: DemoOptions):
    from b24app.emulator.scenario import upcoming_plans

    spacing = timedelta(seconds=20) if options.exit_after else timedelta(minutes=4)
    return upcoming_plans(rng, now, returning, count=options.upcoming, spacing=spacing)


def _backlog(rng, now, clients, options: DemoOptions):
    from b24app.emulator.scenario import backlog_plans

    within = 30.0 if options.exit_after else 90.0
    return backlog_plans(rng, now, clients, count=options.backlog, mark_within=within)


# ---------------------------------------------------------------- set-up


class AdminApi:
    """The app's JSON API as the portal owner sees it from the KPI tab."""

    def __init__(self, public_url: str, portal) -> None:
        self.base = public_url
        self.portal = portal
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            page = self.portal.open_placement(
                "CRM_ANALYTICS_MENU", user_id=self.portal.owner_id
            )
            found = re.search(r'data-api-token="([^"]+)"', page.text)
            if found is None:
                raise RuntimeError("the KPI tab gave no API token")
            self._token = found.group(1)
        return self._token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in (1, 2):
            response = requests.request(
                method,
                f"{self.base}/api/v1{path}",
                json=body,
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=30,
            )
            if response.status_code == 401 and attempt == 1:
                # The tab's token expired: open the tab again for a new one.
                self._token = None
                continue
            if response.status_code >= 400:
                raise RuntimeError(
                    f"{method} {path}: HTTP {response.status_code} "
                    f"{response.text[:300]}"
                )
            return response.json()
        raise RuntimeError(f"{method} {path}: the token was rejected twice")


def configure_kpi(admin: AdminApi, today: date) -> None:
    """Save the funnel mapping, owner e-mail and ad spend, then re-read history."""
    admin.call(
        "PUT",
        "/kpi/settings",
        {
            "mapping": FUNNEL_MAPPING,
            "daily_capacity": 24,
            "owner_email": "olga.sokolova@lotos-studio.example",
        },
    )
    for month in _months_back(today, 4):
        for channel, amount in AD_SPEND.items():
            admin.call(
                "PUT",
                "/kpi/spend",
                {"month": month, "channel": channel, "amount": amount},
            )
    # The install queued the import with the preset mapping, so read it again.
    admin.call("POST", "/kpi/import", {"restart": True})


def configure_reminders(admin: AdminApi, contact_ids: list[int]) -> int:
    """Set a short schedule without quiet hours, import consent, start an A/B test.

    Returns the id of the A/B test.
    """
    admin.call(
        "PUT",
        "/reminders/settings",
        {
            "enabled": True,
            "schedule": SCHEDULE,
            "quiet_hours": {"start": "00:00", "end": "00:00"},
            "channels": ["openline"],
            "address": STUDIO_ADDRESS,
            "grace_minutes": 15,
        },
    )
    import_consent(admin, contact_ids)
    created = admin.call(
        "POST",
        "/reminders/experiments",
        {
            "name": "Текст подтверждения: сухой или с просьбой предупредить",
            "metric": "no_show",
            "min_per_variant": 30,
            "variants": [
                {"code": "A", "control": True},
                {"code": "B", "templates": VARIANT_TEMPLATES},
            ],
        },
    )
    return int(created["id"])


def import_consent(admin: AdminApi, contact_ids: list[int]) -> None:
    """Import the clients' consent to open-line messages, as from a CRM export."""
    admin.call(
        "POST",
        "/reminders/consents",
        {
            "items": [
                {
                    "contact_key": f"contact:{contact_id}",
                    "channel": "openline",
                    "source": "import",
                }
                for contact_id in sorted(set(contact_ids))
            ]
        },
    )


def _months_back(today: date, count: int) -> list[str]:
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def _announce(emulator, public_url: str, history: dict[str, int]) -> None:
    host_page = f"{emulator.base_url}/_emulator/ui/placement/CRM_ANALYTICS_MENU"
    print("Otklik demo is running.", flush=True)
    print(f"  KPI tab inside the emulated portal: {host_page}", flush=True)
    print(
        "  (the tab's «Напоминания» button opens the reminder settings "
        "and the A/B test)",
        flush=True,
    )
    print(
        f"  (accept the emulator's test certificate; CA: {emulator.ca_path})",
        flush=True,
    )
    print(f"  portal state: {emulator.base_url}/_emulator/state", flush=True)
    print(f"  app: {public_url}  — stop with Ctrl+C", flush=True)
    print(
        f"  history: {history['leads']} leads, {history['deals']} deals, "
        f"{history['contacts']} clients over the past weeks",
        flush=True,
    )


# ---------------------------------------------------------------- live log


class DemoLog:
    """Prints what the app did, read from its database once a second.

    Lines name leads and deals by their portal ids and never show phone
    numbers or message texts the app sent.
    """

    def __init__(self, services, poll_seconds: float = 1.0) -> None:
        self.services = services
        self.poll_seconds = poll_seconds
        self._seen: dict[str, set[int]] = {
            "tagged": set(),
            "escalation": set(),
            "reminder": set(),
            "reply": set(),
        }
        self._import_done = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._print_lock = threading.Lock()

    def line(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self._print_lock:
            print(f"[{stamp}] {text}", flush=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                logger.exception("demo log could not read the app's database")
            self._stop.wait(self.poll_seconds)

    def poll(self) -> None:
        with self.services.db.session() as session:
            tagged = session.execute(
                select(Lead.id, Lead.bitrix_id, Lead.tags, Lead.urgent)
                .where(Lead.tagged_at.is_not(None))
                .order_by(Lead.tagged_at)
            ).all()
            escalations = session.execute(
                select(Escalation.id, Lead.bitrix_id, Escalation.action)
                .join(Lead, Lead.id == Escalation.lead_id)
                .where(Escalation.status == "sent")
                .order_by(Escalation.id)
            ).all()
            reminders = session.execute(
                select(
                    ReminderJob.id,
                    Appointment.deal_id,
                    Appointment.variant,
                    ReminderJob.kind,
                    ReminderJob.channel,
                )
                .join(Appointment, Appointment.id == ReminderJob.appointment_id)
                .where(ReminderJob.status == "sent")
                .order_by(ReminderJob.id)
            ).all()
            replies = session.execute(
                select(Reply.id, Appointment.deal_id, Reply.intent, Reply.action)
                .join(Appointment, Appointment.id == Reply.appointment_id)
                .order_by(Reply.id)
            ).all()

        for lead_id, bitrix_id, tags, urgent in tagged:
            if self._new("tagged", lead_id):
                flag = ", urgent" if urgent else ""
                self.line(f"lead {bitrix_id} tagged: {', '.join(tags)}{flag}")
        for row_id, bitrix_id, action in escalations:
            if self._new("escalation", row_id):
                self.line(f"lead {bitrix_id} escalated: {ESCALATIONS[action]}")
        for row_id, deal_id, variant, kind, channel in reminders:
            if self._new("reminder", row_id):
                message = MESSAGE_KINDS.get(kind, kind)
                self.line(
                    f"{message} sent to the client of deal {deal_id} "
                    f"({channel}, text variant {variant or '-'})"
                )
        for row_id, deal_id, intent, action in replies:
            if self._new("reply", row_id):
                self.line(f"deal {deal_id}: {REPLY_OUTCOMES.get(intent, intent)}")
                if action == "callback task":
                    self.line(f"deal {deal_id}: task for the manager to call back")
        self._report_import()

    def ab_report(self, report: dict[str, Any], printed_rates: Any) -> Any:
        """Print the A/B test's per-variant rates when they changed."""
        rows = [
            (v["code"], v["appointments"], v["visits_known"], v["no_show_rate"])
            for v in report["variants"]
        ]
        if rows == printed_rates:
            return printed_rates
        parts = [
            f"{code}: {known} of {total} visits marked, no-show "
            + ("—" if rate is None else f"{rate:.0%}")
            for code, total, known, rate in rows
        ]
        self.line(
            f"A/B test of reminder texts ({report['verdict']}): " + "; ".join(parts)
        )
        return rows

    def _new(self, kind: str, row_id: int) -> bool:
        if row_id in self._seen[kind]:
            return False
        self._seen[kind].add(row_id)
        return True

    def _report_import(self) -> None:
        from b24app.kpi import history

        if self._import_done:
            return
        with self.services.db.session() as session:
            portal = session.scalar(select(Portal))
        if portal is None:
            return
        progress = history.progress(self.services, portal, 5.0)
        if progress["status"] == "done":
            self._import_done = True
            self.line(
                f"KPI history import finished: {progress['rows_done']} rows "
                "(leads, calls, deals, stage moves)"
            )


MESSAGE_KINDS = {
    "confirm": "confirmation request",
    "remind": "reminder",
    "thanks": "thank-you",
}
ESCALATIONS = {
    "warn_responsible": "the manager was warned",
    "task_senior": "a task for the senior manager",
    "notify_owner": "the owner was notified",
}
REPLY_OUTCOMES = {
    "confirm": "the client confirmed, deal moved to «Подтвердил запись»",
    "cancel": "the client cancelled, deal moved to «Отменил запись»",
    "reschedule": "the client asked to move the visit",
    "opt_out": "the client unsubscribed from reminders",
    "unclear": "an unclear answer went to the manager",
}


# ---------------------------------------------------------------- summary


def _finish(
    services, emulator, leads_runner, appointments, admin, experiment_id: int
) -> dict[str, Any]:
    """Wait until leads, reminders, replies and marks have run their course."""
    planned_replies = sum(1 for plan in appointments.plans if plan.reply)
    deadline = time.monotonic() + FINITE_DEMO_TIMEOUT
    while time.monotonic() < deadline:
        summary = summarise(services, emulator, leads_runner.created)
        reminders = reminder_figures(services)
        settled = (
            leads_runner.finished
            and summary["leads_seen"] >= (leads_runner.max_leads or 0)
            and summary["tagged"] >= summary["leads_seen"]
            and summary["open_clocks_due"] == 0
            and _import_done(services)
            and reminders["replies_handled"] >= planned_replies
            and reminders["by_kind"].get("remind", 0) >= 1
            and appointments.pending_marks(emulator.portal.now()) == 0
            and reminders["outcomes_known"] >= appointments.marks_total
        )
        if settled:
            break
        time.sleep(1)
    summary = summarise(services, emulator, leads_runner.created)
    reminders = reminder_figures(services)
    summary.update(
        {
            "reminders_sent": reminders["sent"],
            "confirmed": reminders["confirmed"],
            "cancelled": reminders["cancelled"],
            "reschedule_requests": reminders["reschedule_requests"],
            "visits_marked": appointments.marks_total,
            "ab_test": ab_test(admin, experiment_id),
        }
    )
    summary.update(kpi_figures(admin))
    return summary


def _wait_until_quiet(services, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with services.db.session() as session:
            pending = session.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(InboundEvent.status.in_(("pending", "processing")))
            )
        if not pending and _import_done(services):
            return
        time.sleep(0.5)


def _import_done(services) -> bool:
    from b24app.kpi import history

    with services.db.session() as session:
        portal = session.scalar(select(Portal))
    return history.progress(services, portal, 5.0)["status"] == "done"


def summarise(services, emulator, live_leads: list[int]) -> dict[str, Any]:
    """Count the figures of the leads created during the demo (not the history)."""
    with services.db.session() as session:
        leads = session.scalars(
            select(Lead).where(Lead.bitrix_id.in_(live_leads or [-1]))
        ).all()
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
        "leads_seen": len(live_leads),
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


def reminder_figures(services) -> dict[str, Any]:
    """Count the messages sent, the replies handled and the visits marked."""
    with services.db.session() as session:
        sent = session.execute(
            select(ReminderJob.kind, func.count())
            .where(ReminderJob.status == "sent")
            .group_by(ReminderJob.kind)
        ).all()
        replies = session.execute(
            select(Reply.intent, Reply.action, func.count()).group_by(
                Reply.intent, Reply.action
            )
        ).all()
        outcomes = session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(Appointment.status.in_(("visited", "no_show")))
        )
    by_kind = {kind: count for kind, count in sent}
    return {
        "sent": sum(by_kind.values()),
        "by_kind": by_kind,
        "replies_handled": sum(count for _, _, count in replies),
        "confirmed": sum(c for i, a, c in replies if a == "confirmed"),
        "cancelled": sum(c for i, a, c in replies if a == "cancelled"),
        "reschedule_requests": sum(c for i, a, c in replies if i == "reschedule"),
        "outcomes_known": outcomes or 0,
    }


def ab_test(admin: AdminApi, experiment_id: int) -> dict[str, Any]:
    """Read the A/B test's per-variant rates and verdict from the app."""
    report = admin.call("GET", f"/reminders/experiments/{experiment_id}")
    return {
        "verdict": report["verdict"],
        "variants": [
            {
                "code": row["code"],
                "appointments": row["appointments"],
                "visits_known": row["n"],
                "no_show_rate": _rounded(row["no_show_rate"]),
                "no_show_ci95": [_rounded(bound) for bound in row["ci95"]],
                "confirmation_rate": _rounded(row["confirmation_rate"]),
            }
            for row in report["variants"]
        ],
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def kpi_figures(admin: AdminApi) -> dict[str, Any]:
    """Read the last 30 days' KPIs and the forecast as the KPI tab does."""
    report = admin.call("GET", "/kpi?period=month")
    forecast = admin.call("GET", "/kpi/forecast")
    visits = report.get("appointments") or {}
    acquisition = report.get("acquisition") or {}
    retention = report.get("retention") or {}
    conversion = report.get("conversion") or {}
    return {
        "no_show_rate": visits.get("no_show_rate"),
        "revenue_30d": visits.get("revenue"),
        "average_check": visits.get("average_check"),
        "retention_3m": retention.get("rate"),
        "conversion": conversion.get("rate"),
        "cac": acquisition.get("cac"),
        "ltv": acquisition.get("ltv_12m"),
        "revenue_per_employee": visits.get("revenue_per_employee"),
        "forecast_available": bool(forecast.get("available")),
    }

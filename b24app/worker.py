"""The worker process: processes stored events and runs the periodic jobs.

Run it as ``b24app worker``. Several worker processes may run at once: an
event is claimed by one UPDATE before it is processed, and every escalation
is claimed by a unique row. APScheduler runs here only, never inside the
gunicorn web workers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select, update

from b24app import features, pipeline
from b24app.bitrix.errors import (
    BitrixCallError,
    MethodDeferred,
    PortalInactive,
    RateLimited,
)
from b24app.models import InboundEvent, Portal
from b24app.pipeline import RetryLater
from b24app.services import Services
from b24app.sla import escalation, reconcile

logger = logging.getLogger(__name__)

EVENT_LEASE = timedelta(minutes=2)
MAX_EVENT_ATTEMPTS = 8
CLAIM_BATCH = 20


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[[Services], object]
    seconds: float


class Worker:
    def __init__(self, services: Services) -> None:
        features.load_features()
        self.services = services
        self.config = services.config
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._scheduler: BackgroundScheduler | None = None
        self._thread: threading.Thread | None = None

    # Events

    def process_pending(self, limit: int = CLAIM_BATCH) -> int:
        """Claim and process up to ``limit`` due events; return how many ran."""
        now = datetime.now(UTC)
        with self.services.db.session() as session:
            ids = session.scalars(
                select(InboundEvent.id)
                .where(
                    InboundEvent.status == "pending",
                    InboundEvent.next_attempt_at <= now,
                )
                .order_by(InboundEvent.id)
                .limit(limit)
            ).all()

        done = 0
        for event_id in ids:
            if self._claim(event_id, now):
                self._process(event_id)
                done += 1
        return done

    def _claim(self, event_id: int, now: datetime) -> bool:
        with self.services.db.session() as session:
            return bool(
                session.execute(
                    update(InboundEvent)
                    .where(
                        InboundEvent.id == event_id, InboundEvent.status == "pending"
                    )
                    .values(
                        status="processing",
                        locked_until=now + EVENT_LEASE,
                        attempts=InboundEvent.attempts + 1,
                    )
                ).rowcount
            )

    def _process(self, event_id: int) -> None:
        with self.services.db.session() as session:
            event = session.get(InboundEvent, event_id)
            portal = session.get(Portal, event.portal_id)
            session.expunge_all()

        extra = {
            "member_id": portal.member_id,
            "event": event.event,
            "event_id": event_id,
        }
        try:
            if portal.status != "active":
                outcome = "skipped: portal not active"
            else:
                outcome = pipeline.process_event(self.services, portal, event)
        except PortalInactive as err:
            self._finish(event_id, "skipped", str(err))
            logger.warning("event skipped, portal inactive", extra=extra)
            return
        except (RateLimited, MethodDeferred, RetryLater) as err:
            self._reschedule(event, err, extra)
            return
        except BitrixCallError as err:
            if err.retryable:
                self._reschedule(event, err, extra)
            else:
                self._finish(event_id, "failed", str(err))
                logger.warning("event failed", extra=extra | {"error": str(err)[:200]})
            return
        except Exception as err:
            # One bad event must not stop the worker; keep the reason.
            logger.exception("event processing crashed", extra=extra)
            self._finish(event_id, "failed", f"{type(err).__name__}: {err}")
            return

        self._finish(event_id, "done", None, outcome)
        logger.info("event processed", extra=extra | {"outcome": outcome})

    def _finish(
        self, event_id: int, status: str, error: str | None, outcome: str | None = None
    ) -> None:
        with self.services.db.session() as session:
            row = session.get(InboundEvent, event_id)
            row.status = status
            row.outcome = outcome[:120] if outcome else None
            row.error = error[:500] if error else None
            row.processed_at = datetime.now(UTC)
            row.locked_until = None

    def _reschedule(self, event: InboundEvent, err: Exception, extra: dict) -> None:
        attempts = event.attempts + 1
        if attempts >= MAX_EVENT_ATTEMPTS:
            self._finish(
                event.id, "failed", f"gave up after {attempts} attempts: {err}"
            )
            logger.warning("event gave up", extra=extra)
            return
        if isinstance(err, RateLimited):
            delay = err.retry_after
        elif isinstance(err, MethodDeferred):
            delay = max(1.0, (err.until - datetime.now(UTC)).total_seconds())
        else:
            delay = min(300.0, 2.0 * 2**attempts)
        with self.services.db.session() as session:
            row = session.get(InboundEvent, event.id)
            row.status = "pending"
            row.error = str(err)[:500]
            row.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
            row.locked_until = None
        logger.info("event rescheduled", extra=extra | {"delay": round(delay, 1)})

    # Loop and jobs

    def jobs(self) -> list[Job]:
        """Return the periodic jobs: the app's own, then those features registered."""
        own = [
            Job("sla_sweep", run_sweep, self.config["SLA_SWEEP_SECONDS"]),
            Job("requeue_stale_events", requeue_stale_events, 60.0),
            Job(
                "reconcile_touches",
                reconcile.reconcile_all,
                self.config["RECONCILE_SECONDS"],
            ),
        ]
        extra = [
            Job(spec.id, spec.func, self.config.get(spec.setting or "") or spec.seconds)
            for spec in features.jobs()
        ]
        return own + extra

    def start(self) -> None:
        """Start the event loop thread and the scheduler (non-blocking)."""
        self._scheduler = BackgroundScheduler(timezone="UTC")
        for job in self.jobs():
            self._scheduler.add_job(
                _logged(job, self.services),
                "interval",
                seconds=job.seconds,
                id=job.id,
                name=job.id,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                next_run_time=datetime.now(UTC),
            )
        self._scheduler.start()
        self._thread = threading.Thread(
            target=self._loop, name="otklik-events", daemon=True
        )
        self._thread.start()
        logger.info("worker started", extra={"worker": self.name})

    def _loop(self) -> None:
        poll = self.config["WORKER_POLL_SECONDS"]
        while not self._stop.is_set():
            try:
                ran = self.process_pending()
            except Exception:
                logger.exception("event loop iteration failed")
                ran = 0
            if not ran:
                self._stop.wait(poll)

    def stop(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._thread is not None:
            self._thread.join(timeout=10)
        logger.info("worker stopped", extra={"worker": self.name})

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()


def _logged(job: Job, services: Services) -> Callable[[], None]:
    def run() -> None:
        try:
            result = job.func(services)
        except Exception:
            logger.exception("job failed", extra={"job": job.id})
            return
        if result:
            logger.debug("job finished", extra={"job": job.id, "result": result})

    return run


def run_sweep(services: Services) -> dict[str, int]:
    counts = escalation.sweep(services)
    if counts["claimed"] or counts["failed"] or counts.get("retried"):
        logger.info("sla sweep", extra=counts)
    return counts


def requeue_stale_events(services: Services) -> int:
    """Return events to the queue whose worker died while processing them."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        count = session.execute(
            update(InboundEvent)
            .where(InboundEvent.status == "processing", InboundEvent.locked_until < now)
            .values(status="pending", locked_until=None, next_attempt_at=now)
        ).rowcount
    if count:
        logger.warning("stale events requeued", extra={"count": count})
    return count

"""The escalation ladder: a periodic sweep fires each level once per lead.

Exactly once, with several workers, restarts and repeated events:

* A level is claimed by inserting its (lead, level) row; the unique key lets
  one process win. The row carries a lease (``locked_until``); only the
  holder of an unexpired lease sends it.
* A claim whose call failed, or whose process died mid-way, is taken again
  by a later sweep once its lease has expired. Before creating a task, such
  a retry looks for a task that the earlier attempt may already have created:
  every task carries the marker ``#otklik-<row id>`` in its description.
  Notices carry a tag unique to the row, and a repeated tag replaces the
  earlier notice on the portal instead of adding one.
* A notice or task whose recipient is off work (per their shift, or the
  business hours) waits until their next opening, unless the lead is urgent.
  The row keeps its claim with status "postponed" and ``locked_until`` at
  that opening, and the sweep sends it then.
* When the lead is answered, waiting steps are cancelled and tasks already
  created are completed (``close_after``).

Sends run in a thread pool, one portal per thread at a time, so one slow
portal does not hold up the others and each portal's rate limit is kept by
the shared limiter. A portal's fresh claims go out together in ``batch``
calls of up to 50 commands, so a burst of lapses on one portal costs a few
requests instead of one or two per lapse.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from b24app import portal_settings
from b24app.bitrix.errors import BitrixCallError, PortalInactive
from b24app.models import Escalation, Lead, Portal, SlaClock
from b24app.services import Services
from b24app.sla import settings as sla_settings
from b24app.sla.calendar import NoOpenTimeError
from b24app.sla.clocks import (
    PENDING_STATUSES,
    has_no_clock,
    ladder_fire_times,
    level_key,
    split_level,
)

logger = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
SWEEP_BATCH = 500
SWEEP_BUDGET_SECONDS = 30.0
RETRY_BATCH = 200
CLOSE_BATCH = 100
SEND_THREADS = 32
BATCH_COMMANDS = 50
"""Commands per batch call: the Bitrix24 maximum for one ``batch`` request."""
TASK_DEADLINE_SECONDS = 30 * 60
SENIOR_CACHE_SECONDS = 1800
INACTIVE_RECHECK = timedelta(hours=1)
ERROR_RECHECK = timedelta(minutes=10)
TASK_MARKER = "#otklik-{id}"

_user_cache: dict[tuple[str, int], tuple[float, dict[str, Any] | None]] = {}
_senior_cache: dict[tuple[str, int], tuple[float, int | None]] = {}
_cache_lock = threading.Lock()


# The sweep


def sweep(services: Services, now: datetime | None = None) -> dict[str, int]:
    """Handle every clock whose next check is due; return counts for the log.

    Counts: clocks looked at, levels claimed, and the outcomes of this run's
    sends (sent, postponed, cancelled, failed), then retried and closed.
    """
    now = now or datetime.now(UTC)
    started = time.monotonic()
    counts: Counter[str] = Counter(clocks=0, claimed=0, sent=0, failed=0)

    seen: set[int] = set()
    while True:
        batch = _due_clocks(services, now)
        # Clocks another worker holds stay due until it is done with them;
        # they are its work, not a reason to go round again.
        clock_ids = [clock_id for clock_id in batch if clock_id not in seen]
        seen.update(clock_ids)
        claims = _advance_many(services, clock_ids, now) if clock_ids else []
        counts["clocks"] += len(clock_ids)
        counts["claimed"] += len(claims)
        counts.update(_deliver(services, claims, now, retry=False))
        if len(batch) < SWEEP_BATCH or not clock_ids:
            break
        if time.monotonic() - started > SWEEP_BUDGET_SECONDS:
            break

    retried = retry_pending(services, now)
    counts["retried"] = sum(retried.values())
    for outcome, number in retried.items():
        counts[f"retry_{outcome}"] += number
    counts["closed"] = close_due_tasks(services, now)
    return dict(counts)


def _due_clocks(services: Services, now: datetime) -> list[int]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(SlaClock.id)
                .where(SlaClock.next_check_at <= now)
                .order_by(SlaClock.next_check_at)
                .limit(SWEEP_BATCH)
            )
        )


def _advance(services: Services, clock_id: int, now: datetime) -> list[tuple[int, int]]:
    """Run ``_advance_many`` for one clock."""
    return _advance_many(services, [clock_id], now)


def _advance_many(
    services: Services, clock_ids: list[int], now: datetime
) -> list[tuple[int, int]]:
    """Mark lapses, claim the levels now due and set the next check times.

    One transaction for the whole batch: the clocks are locked (rows another
    worker holds are skipped), the due levels inserted with one statement
    whose unique key lets one worker win, and the clocks moved on. Returns
    the claimed (escalation id, portal id) pairs, earliest level first.
    """
    with services.db.session() as session:
        rows = session.execute(
            select(SlaClock, Lead, Portal)
            .join(Lead, SlaClock.lead_id == Lead.id)
            .join(Portal, SlaClock.portal_id == Portal.id)
            .where(SlaClock.id.in_(clock_ids), SlaClock.next_check_at <= now)
            .with_for_update(of=SlaClock, skip_locked=True)
        ).all()

        levels: list[dict[str, Any]] = []
        for clock, lead, portal in rows:
            try:
                levels.extend(_check_clock(clock, lead, portal, now))
            except Exception:
                # One broken clock (settings that no longer load, say) must
                # not stop the others; look at it again later.
                logger.exception("sla clock check failed", extra={"clock_id": clock.id})
                clock.next_check_at = now + ERROR_RECHECK
        session.flush()
        claimed = _claim(session, levels)
    return claimed


def _check_clock(
    clock: SlaClock, lead: Lead, portal: Portal, now: datetime
) -> list[dict[str, Any]]:
    """Update one locked clock; return the escalation rows to claim."""
    if clock.stopped_at is not None or clock.state == "cancelled":
        clock.next_check_at = None
        return []
    if portal.status != "active":
        clock.next_check_at = now + INACTIVE_RECHECK
        return []

    policy = sla_settings.policy(portal)
    if lead.deleted or has_no_clock(lead, policy):
        # Deleted, or a manager marked it spam: no deadline any more.
        clock.state = "cancelled"
        clock.next_check_at = None
        return []

    if clock.tier == "bot" and not policy.has_bot_clock(lead.channel):
        # A clock from before the per-channel rule, or from a channel taken
        # off the bot channels since. No bot replies in such a channel.
        clock.state = "cancelled"
        clock.next_check_at = None
        logger.info(
            "bot clock outside the bot channels cancelled",
            extra={"member_id": portal.member_id, "lead_id": lead.bitrix_id},
        )
        return []

    if now >= clock.due_at and clock.state == "running":
        clock.state = "breached"
        clock.breached_at = clock.due_at
        logger.info(
            "first response overdue",
            extra={
                "member_id": portal.member_id,
                "lead_id": lead.bitrix_id,
                "tier": clock.tier,
            },
        )
    if clock.tier != "human":
        clock.next_check_at = None
        return []

    calendar = sla_settings.calendar(portal)
    upcoming = [clock.due_at] if clock.due_at > now else []
    levels = []
    for level, fire_at in ladder_fire_times(clock, policy, calendar):
        if fire_at > now:
            upcoming.append(fire_at)
            continue
        levels.append(
            {
                "portal_id": portal.id,
                "lead_id": lead.id,
                "level": level_key(level.code, clock.clock_round or 0),
                "action": level.action,
                "status": "claimed",
                "attempts": 0,
                "due_at": fire_at,
                "claimed_at": now,
                "locked_until": now + CLAIM_LEASE,
                "task_closed": False,
            }
        )
    clock.next_check_at = min(upcoming) if upcoming else None
    return levels


def _claim(session, levels: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Insert the levels; the ones already claimed by anyone are left out."""
    if not levels:
        return []
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = (
        module.insert(Escalation)
        .values(levels)
        .on_conflict_do_nothing(index_elements=["lead_id", "level"])
        .returning(Escalation.id, Escalation.portal_id, Escalation.due_at)
    )
    rows = session.execute(statement).all()
    rows.sort(key=lambda row: (row.due_at, row.id))
    return [(row.id, row.portal_id) for row in rows]


def retry_pending(services: Services, now: datetime) -> Counter[str]:
    """Send claims that failed, waited for working time, or lost their process."""
    with services.db.session() as session:
        rows = session.execute(
            select(Escalation.id, Escalation.portal_id)
            .join(Portal, Escalation.portal_id == Portal.id)
            .where(
                Escalation.status.in_(PENDING_STATUSES),
                Escalation.locked_until <= now,
                Portal.status == "active",
            )
            .order_by(Escalation.locked_until)
            .limit(RETRY_BATCH)
        ).all()

    taken = []
    for escalation_id, portal_id in rows:
        with services.db.session() as session:
            won = session.execute(
                update(Escalation)
                .where(
                    Escalation.id == escalation_id,
                    Escalation.status.in_(PENDING_STATUSES),
                    Escalation.locked_until <= now,
                )
                .values(locked_until=now + CLAIM_LEASE)
            ).rowcount
        if won:
            taken.append((escalation_id, portal_id))
    return _deliver(services, taken, now, retry=True)


# Sending


def _deliver(
    services: Services, claims: list[tuple[int, int]], now: datetime, *, retry: bool
) -> Counter[str]:
    """Send claims, portals in parallel and each portal's claims in order.

    Fresh claims are read in one query and sent per portal in batch calls
    (``_send_fresh``). Retries go one by one through ``send``, which looks
    for a task an earlier attempt may have created.
    """
    by_portal: dict[int, list[int]] = defaultdict(list)
    for escalation_id, portal_id in claims:
        by_portal[portal_id].append(escalation_id)
    rows = {} if retry else _load_claims(services, [c[0] for c in claims])

    def run(ids: list[int]) -> Counter[str]:
        if not retry:
            return _send_fresh(services, [rows.get(i) or i for i in ids], now)
        outcomes: Counter[str] = Counter()
        for escalation_id in ids:
            try:
                outcomes[send(services, escalation_id, now, retry=retry)] += 1
            except Exception:
                # The claim keeps its lease and is retried when it runs out.
                logger.exception(
                    "escalation send crashed", extra={"escalation_id": escalation_id}
                )
                outcomes["failed"] += 1
        return outcomes

    total: Counter[str] = Counter()
    if len(by_portal) <= 1:
        for ids in by_portal.values():
            total.update(run(ids))
        return total
    with ThreadPoolExecutor(
        max_workers=min(SEND_THREADS, len(by_portal)), thread_name_prefix="sla-send"
    ) as pool:
        for outcomes in pool.map(run, by_portal.values()):
            total.update(outcomes)
    return total


def _load_claims(services: Services, escalation_ids: list[int]) -> dict[int, tuple]:
    """Read claimed rows with their lead, portal and human clock, detached."""
    if not escalation_ids:
        return {}
    with services.db.session() as session:
        rows = session.execute(
            select(Escalation, Lead, Portal, SlaClock)
            .join(Lead, Escalation.lead_id == Lead.id)
            .join(Portal, Escalation.portal_id == Portal.id)
            .outerjoin(
                SlaClock, (SlaClock.lead_id == Lead.id) & (SlaClock.tier == "human")
            )
            .where(Escalation.id.in_(escalation_ids))
        ).all()
        session.expunge_all()
    return {row[0].id: tuple(row) for row in rows}


def send(
    services: Services,
    escalation_id: int,
    now: datetime | None = None,
    *,
    retry: bool = False,
) -> str:
    """Carry out one claimed level; return sent, postponed, cancelled or failed.

    The caller holds the row's lease. ``retry`` means an earlier attempt may
    have reached the portal, so a task is looked up before one is created.
    """
    now = now or datetime.now(UTC)
    row = _load_claims(services, [escalation_id]).get(escalation_id)
    if row is None or row[0].status not in PENDING_STATUSES:
        return "skipped"
    escalation, lead, portal, clock = row

    client = services.client(portal)
    plan = _plan(services, client, row, now)
    if isinstance(plan, str):
        return plan
    recipient, rerouted = plan

    extra = _log_extra(portal, lead, escalation)
    lang = _language(portal)
    try:
        if escalation.action == "task_senior":
            result = _create_task(
                client, portal, lead, clock, escalation, recipient, now, lang, retry
            )
        else:
            command = _notice_command(
                client, portal, lead, clock, escalation, recipient, now, lang, rerouted
            )
            result = _notify(client, *command)
    except (BitrixCallError, LookupError) as err:
        _fail(services, row, now, err)
        return "failed"

    _record(services, escalation_id, now, attempts_before=escalation.attempts, **result)
    logger.info("escalation sent", extra=extra | {"action": escalation.action})
    return "sent"


def _send_fresh(services: Services, rows: list, now: datetime) -> Counter[str]:
    """Send one portal's fresh claims, several per batch call, in claim order.

    A task takes two commands (the task and the senior's notice) and a notice
    one, so a call carries up to ``BATCH_COMMANDS // 2`` tasks. Each call's
    results are stored in one transaction right after the portal responded.
    ``rows`` contains ``_load_claims`` rows, or bare ids of rows not found.
    """
    outcomes: Counter[str] = Counter()
    ready: list[tuple[tuple, int, bool]] = []
    client = None
    for row in rows:
        if not isinstance(row, tuple) or row[0].status not in PENDING_STATUSES:
            outcomes["skipped"] += 1
            continue
        client = client or services.client(row[2])
        try:
            plan = _plan(services, client, row, now)
        except Exception:
            # The claim keeps its lease and is retried when it runs out.
            logger.exception(
                "escalation send crashed", extra={"escalation_id": row[0].id}
            )
            outcomes["failed"] += 1
            continue
        if isinstance(plan, str):
            outcomes[plan] += 1
        else:
            ready.append((row, *plan))

    batch: list[tuple[tuple, dict[str, tuple[str, dict]]]] = []
    size = 0
    for row, recipient, rerouted in ready:
        try:
            commands = _commands(client, row, recipient, rerouted, now)
        except Exception:
            logger.exception(
                "escalation send crashed", extra={"escalation_id": row[0].id}
            )
            outcomes["failed"] += 1
            continue
        if size + len(commands) > BATCH_COMMANDS:
            outcomes.update(_send_batch_safely(services, client, batch, now))
            batch, size = [], 0
        batch.append((row, commands))
        size += len(commands)
    if batch:
        outcomes.update(_send_batch_safely(services, client, batch, now))
    return outcomes


def _send_batch_safely(services: Services, client, batch: list, now: datetime):
    try:
        return _send_batch(services, client, batch, now)
    except Exception:
        # The claims keep their leases and are retried when they run out.
        logger.exception(
            "escalation batch crashed",
            extra={"escalation_ids": [row[0].id for row, _ in batch]},
        )
        return Counter(failed=len(batch))


def _commands(
    client, row: tuple, recipient: int, rerouted: bool, now: datetime
) -> dict[str, tuple[str, dict]]:
    """Build the batch commands of one claim, keyed by its escalation id."""
    escalation, lead, portal, clock = row
    lang = _language(portal)
    if escalation.action == "task_senior":
        commands = _task_commands(
            client, portal, lead, clock, escalation, recipient, now, lang
        )
        return {f"{key}{escalation.id}": value for key, value in commands.items()}
    user_id, message, escalation_id = _notice_command(
        client, portal, lead, clock, escalation, recipient, now, lang, rerouted
    )
    return {
        f"notify{escalation.id}": (
            "im.notify.system.add",
            {"USER_ID": user_id, "MESSAGE": message, "TAG": _notice_tag(escalation_id)},
        )
    }


def _send_batch(
    services: Services,
    client,
    batch: list[tuple[tuple, dict[str, tuple[str, dict]]]],
    now: datetime,
) -> Counter[str]:
    """Make one batch call for several claims of a portal and store the results.

    The batch runs with ``halt``, so a rejected task never gets its senior's
    notice. Claims whose commands did not run after a rejection fail, as do
    all claims of a failed call. Each is retried when its lease runs out, and
    a retried task is looked up by its marker before a new one is created.
    """
    outcomes: Counter[str] = Counter()
    commands = {key: value for _, part in batch for key, value in part.items()}
    try:
        results, errors = client.batch(commands, halt=True)
    except BitrixCallError as err:
        for row, _ in batch:
            _fail(services, row, now, err)
        outcomes["failed"] += len(batch)
        return outcomes

    records: list[tuple[Escalation, dict[str, Any]]] = []
    for row, part in batch:
        escalation, lead, portal, _ = row
        try:
            result = _batch_result(escalation, part, results, errors)
        except (BitrixCallError, LookupError) as err:
            _fail(services, row, now, err)
            outcomes["failed"] += 1
            continue
        records.append((escalation, result))
        logger.info(
            "escalation sent",
            extra=_log_extra(portal, lead, escalation) | {"action": escalation.action},
        )
    if records:
        _record_many(services, records, now)
        outcomes["sent"] += len(records)
    return outcomes


def _batch_result(
    escalation: Escalation,
    part: dict[str, tuple[str, dict]],
    results: dict[str, Any],
    errors: dict[str, Any],
) -> dict[str, Any]:
    """Return one claim's record values from a batch response, or raise its error."""
    recipient = part[f"notify{escalation.id}"][1]["USER_ID"]
    if escalation.action == "task_senior":
        key = f"task{escalation.id}"
        if key in errors:
            raise _command_error("tasks.task.add", errors[key])
        if key not in results:
            raise LookupError("task not created: the batch stopped at an error")
        task = (results.get(key) or {}).get("task") or {}
        task_id = int(task.get("id") or task.get("ID") or 0) or None
        return {"status": "sent", "recipient_id": recipient, "task_bitrix_id": task_id}

    key = f"notify{escalation.id}"
    if key in errors:
        raise _command_error("im.notify.system.add", errors[key])
    if key not in results:
        raise LookupError("notice not sent: the batch stopped at an error")
    if results.get(key) is False:
        raise LookupError(f"user {recipient} cannot receive notifications")
    return {"status": "sent", "recipient_id": recipient}


def _command_error(method: str, err: Any) -> BitrixCallError:
    err = err if isinstance(err, dict) else {}
    return BitrixCallError(
        method,
        str(err.get("error", "")),
        str(err.get("error_description", "")),
        400,
    )


def _plan(
    services: Services, client, row: tuple, now: datetime
) -> str | tuple[int, bool]:
    """Settle a claim that needs no portal call, else return its recipient.

    Returns "cancelled", "postponed" or "failed" when the claim is settled,
    or (recipient, rerouted) when it is to be sent now.
    """
    escalation, lead, portal, clock = row
    _, level_round = split_level(escalation.level)
    answered = clock is None or clock.stopped_at is not None
    over = answered or clock.state == "cancelled" or lead.deleted
    # A round that differs means the clock restarted after a reassignment.
    if over or level_round != (clock.clock_round or 0):
        _record(
            services,
            escalation.id,
            now,
            status="cancelled",
            attempt=False,
            attempts_before=escalation.attempts,
        )
        return "cancelled"

    try:
        recipient, rerouted = _recipient(client, portal, lead, clock, escalation)
        if recipient is None:
            raise LookupError("no recipient: set a senior or an owner in the settings")
    except (BitrixCallError, LookupError) as err:
        _fail(services, row, now, err)
        return "failed"

    if not lead.urgent:
        opening = sla_settings.next_working_time(portal, recipient, now)
        if opening > now:
            _postpone(services, escalation.id, recipient, opening)
            logger.info(
                "escalation postponed to working time",
                extra=_log_extra(portal, lead, escalation),
            )
            return "postponed"
    return recipient, rerouted


def _fail(services: Services, row: tuple, now: datetime, err: Exception) -> None:
    escalation, lead, portal, _ = row
    _record(
        services,
        escalation.id,
        now,
        status="failed",
        error=str(err)[:500],
        give_up=isinstance(err, PortalInactive),
        attempts_before=escalation.attempts,
    )
    logger.warning(
        "escalation failed",
        extra=_log_extra(portal, lead, escalation) | {"error": str(err)[:200]},
    )


def _log_extra(portal: Portal, lead: Lead, escalation: Escalation) -> dict[str, Any]:
    return {
        "member_id": portal.member_id,
        "lead_id": lead.bitrix_id,
        "level": escalation.level,
    }


def _language(portal: Portal) -> str:
    return "en" if (portal.language or "ru").startswith("en") else "ru"


def _recipient(
    client, portal: Portal, lead: Lead, clock: SlaClock, escalation: Escalation
) -> tuple[int | None, bool]:
    """Choose who gets the step, and tell whether a warning skipped the manager.

    The responsible is warned unless their shift starts only after the due
    time: then nobody would answer in time, so the senior is warned instead.
    """
    responsible = clock.responsible_id or lead.assigned_by_id
    if escalation.action == "notify_owner":
        return portal_settings.owner_user_id(portal), False
    if escalation.action == "task_senior":
        return find_senior(client, portal, responsible), False

    if responsible is None:
        return find_senior(client, portal, None), True
    if str(responsible) in sla_settings.manager_schedules(portal):
        # Judged at the step's own time, so a late retry sees the same case.
        at = escalation.due_at
        back = sla_settings.next_working_time(portal, responsible, at)
        if back > at and back >= clock.due_at:
            return find_senior(client, portal, responsible), True
    return responsible, False


def _postpone(
    services: Services, escalation_id: int, recipient: int, until: datetime
) -> None:
    with services.db.session() as session:
        row = session.get(Escalation, escalation_id)
        row.status = "postponed"
        row.recipient_id = recipient
        row.locked_until = until
        row.postponed_until = until


def _record(
    services: Services,
    escalation_id: int,
    now: datetime,
    *,
    status: str,
    error: str | None = None,
    recipient_id: int | None = None,
    task_bitrix_id: int | None = None,
    give_up: bool = False,
    attempt: bool = True,
    attempts_before: int = 0,
) -> None:
    attempts = attempts_before + (1 if attempt else 0)
    values: dict[str, Any] = {"status": status, "error": error, "attempts": attempts}
    if recipient_id:
        values["recipient_id"] = recipient_id
    if status in ("sent", "cancelled"):
        values["sent_at"] = datetime.now(UTC) if status == "sent" else None
        values["locked_until"] = None
    elif give_up or attempts >= MAX_ATTEMPTS:
        values["locked_until"] = None
    else:
        values["locked_until"] = now + timedelta(seconds=15 * 2 ** min(attempts, 6))

    with services.db.session() as session:
        session.execute(_record_statement(escalation_id, values, task_bitrix_id, now))


def _record_many(
    services: Services,
    records: list[tuple[Escalation, dict[str, Any]]],
    now: datetime,
) -> None:
    """Store the sent claims of one batch call in one transaction."""
    sent_at = datetime.now(UTC)
    with services.db.session() as session:
        for escalation, result in records:
            values = {
                "status": "sent",
                "error": None,
                "attempts": escalation.attempts + 1,
                "sent_at": sent_at,
                "locked_until": None,
                "recipient_id": result["recipient_id"],
            }
            statement = _record_statement(
                escalation.id, values, result.get("task_bitrix_id"), now
            )
            session.execute(statement)


def _record_statement(
    escalation_id: int,
    values: dict[str, Any],
    task_bitrix_id: int | None,
    now: datetime,
):
    """Build the UPDATE that stores an outcome, in one statement.

    A new task of a lead answered while the task was being made is marked
    for completing (``close_after``) in the same statement.
    """
    if task_bitrix_id:
        answered = exists().where(
            SlaClock.lead_id == Escalation.lead_id,
            SlaClock.tier == "human",
            SlaClock.stopped_at.is_not(None),
        )
        values = values | {
            "task_bitrix_id": task_bitrix_id,
            "close_after": case(
                (answered, literal(now, Escalation.close_after.type)),
                else_=Escalation.close_after,
            ),
        }
    return update(Escalation).where(Escalation.id == escalation_id).values(**values)


# Portal calls


def _create_task(
    client,
    portal: Portal,
    lead: Lead,
    clock: SlaClock,
    escalation: Escalation,
    senior: int,
    now: datetime,
    lang: str,
    retry: bool,
) -> dict[str, Any]:
    if retry:
        existing = _find_task(client, lead, escalation.id)
        if existing is not None:
            logger.info(
                "escalation task found from an earlier attempt",
                extra={"member_id": portal.member_id, "lead_id": lead.bitrix_id},
            )
            return {
                "status": "sent",
                "recipient_id": senior,
                "task_bitrix_id": existing,
            }

    results, errors = client.batch(
        _task_commands(client, portal, lead, clock, escalation, senior, now, lang),
        halt=True,
    )
    if "task" in errors:
        err = errors["task"]
        raise BitrixCallError(
            "tasks.task.add",
            str(err.get("error", "")),
            str(err.get("error_description", "")),
            400,
        )
    task = (results.get("task") or {}).get("task") or {}
    return {
        "status": "sent",
        "recipient_id": senior,
        "task_bitrix_id": int(task.get("id") or task.get("ID") or 0) or None,
    }


def _task_commands(
    client,
    portal: Portal,
    lead: Lead,
    clock: SlaClock,
    escalation: Escalation,
    senior: int,
    now: datetime,
    lang: str,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Build the batch commands that create the task and notify the senior."""
    tz = sla_settings.calendar(portal).tz
    try:
        deadline = sla_settings.working_calendar(portal, senior).add_business_seconds(
            now, TASK_DEADLINE_SECONDS
        )
    except NoOpenTimeError:
        deadline = now + timedelta(seconds=TASK_DEADLINE_SECONDS)
    title = _task_title(lead, lang)
    return {
        "task": (
            "tasks.task.add",
            {
                "fields": {
                    "TITLE": title,
                    "DESCRIPTION": _task_description(
                        client, portal, lead, clock, escalation, now, lang
                    ),
                    "RESPONSIBLE_ID": senior,
                    "DEADLINE": deadline.astimezone(tz).isoformat(timespec="seconds"),
                    "PRIORITY": 2 if lead.urgent else 1,
                    "UF_CRM_TASK": [f"L_{lead.bitrix_id}"],
                    "AUDITORS": [clock.responsible_id]
                    if clock.responsible_id and clock.responsible_id != senior
                    else [],
                }
            },
        ),
        "notify": (
            "im.notify.system.add",
            {
                "USER_ID": senior,
                "MESSAGE": _senior_text(portal, lead, clock, now, lang),
                "TAG": _notice_tag(escalation.id),
            },
        ),
    }


def _find_task(client, lead: Lead, escalation_id: int) -> int | None:
    """Find the task an earlier attempt created for this row, if the portal has one."""
    marker = re.compile(re.escape(TASK_MARKER.format(id=escalation_id)) + r"(?!\d)")
    response = client.call(
        "tasks.task.list",
        {
            "filter": {"UF_CRM_TASK": f"L_{lead.bitrix_id}"},
            "select": ["ID", "DESCRIPTION"],
        },
    )
    tasks = response.get("tasks", []) if isinstance(response, dict) else response
    for task in tasks or []:
        text = str(task.get("description") or task.get("DESCRIPTION") or "")
        if marker.search(text):
            return int(task.get("id") or task.get("ID"))
    return None


def _notice_command(
    client,
    portal: Portal,
    lead: Lead,
    clock: SlaClock,
    escalation: Escalation,
    recipient: int,
    now: datetime,
    lang: str,
    rerouted: bool,
) -> tuple[int, str, int]:
    """Return the user, text and escalation id of a warning or owner notice."""
    if escalation.action == "warn_responsible":
        text = _warn_text(client, portal, lead, clock, now, lang, rerouted)
    else:
        text = _owner_text(portal, lead, clock, now, lang)
    return recipient, text, escalation.id


def _notify(client, user_id: int, message: str, escalation_id: int) -> dict[str, Any]:
    delivered = client.call(
        "im.notify.system.add",
        {"USER_ID": user_id, "MESSAGE": message, "TAG": _notice_tag(escalation_id)},
    )
    if delivered is False:
        raise LookupError(f"user {user_id} cannot receive notifications")
    return {"status": "sent", "recipient_id": user_id}


def _notice_tag(escalation_id: int) -> str:
    # A repeated tag replaces the earlier notice, so a retry never doubles it.
    return f"otklik-esc-{escalation_id}"


def find_senior(client, portal: Portal, manager_id: int | None) -> int | None:
    """Return the configured senior, else the head of the manager's department.

    Walks up through parent departments when the manager heads their own
    one, and falls back to the owner.
    """
    configured = portal_settings.senior_user_id(portal)
    if configured:
        return configured
    if not manager_id:
        return portal_settings.owner_user_id(portal)

    key = (portal.member_id, manager_id)
    with _cache_lock:
        cached = _senior_cache.get(key)
    if cached and time.monotonic() - cached[0] < SENIOR_CACHE_SECONDS:
        return cached[1]

    # One batch call reads the manager and the structure; departments the
    # first page missed are read one by one while walking up.
    results, _ = client.batch(
        {
            "user": ("user.get", {"ID": manager_id}),
            "departments": ("department.get", {}),
        }
    )
    users = results.get("user") or []
    user = users[0] if users else None
    with _cache_lock:
        _user_cache[key] = (time.monotonic(), user)
    structure = {str(row.get("ID")): row for row in results.get("departments") or []}

    departments = (user or {}).get("UF_DEPARTMENT") or []
    senior = None
    department_id = departments[0] if departments else None
    seen: set[str] = set()
    while department_id and str(department_id) not in seen and len(seen) < 10:
        seen.add(str(department_id))
        department = structure.get(str(department_id))
        if department is None:
            rows = client.call("department.get", {"ID": department_id})
            if not rows:
                break
            department = rows[0]
        head = int(department.get("UF_HEAD") or 0)
        if head and head != manager_id:
            senior = head
            break
        department_id = department.get("PARENT")
    senior = senior or portal_settings.owner_user_id(portal)
    with _cache_lock:
        _senior_cache[key] = (time.monotonic(), senior)
    return senior


def _user(client, portal: Portal, user_id: int) -> dict[str, Any] | None:
    key = (portal.member_id, user_id)
    with _cache_lock:
        cached = _user_cache.get(key)
    if cached and time.monotonic() - cached[0] < SENIOR_CACHE_SECONDS:
        return cached[1]
    rows = client.call("user.get", {"ID": user_id})
    user = rows[0] if rows else None
    with _cache_lock:
        _user_cache[key] = (time.monotonic(), user)
    return user


def _user_link(client, portal: Portal, user_id: int | None) -> str:
    if not user_id:
        return "—"
    try:
        user = _user(client, portal, user_id)
    except BitrixCallError:
        user = None
    name = sla_settings.user_name(user) if user else f"#{user_id}"
    return f"[USER={user_id}]{name}[/USER]"


# Closing tasks of answered leads


def close_due_tasks(services: Services, now: datetime | None = None) -> int:
    """Complete escalation tasks of leads that got their answer; return how many."""
    now = now or datetime.now(UTC)
    with services.db.session() as session:
        rows = session.execute(
            select(Escalation.id, Escalation.portal_id)
            .join(Portal, Escalation.portal_id == Portal.id)
            .where(Escalation.close_after <= now, Portal.status == "active")
            .order_by(Escalation.close_after)
            .limit(CLOSE_BATCH)
        ).all()
    return sum(
        1 for escalation_id, _ in rows if _close_task(services, escalation_id, now)
    )


def close_open_tasks(services: Services, portal: Portal, lead_id: int) -> None:
    """Complete the lead's escalation tasks now; failures are retried by the sweep."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        ids = session.scalars(
            select(Escalation.id).where(
                Escalation.lead_id == lead_id, Escalation.close_after.is_not(None)
            )
        ).all()
    for escalation_id in ids:
        _close_task(services, escalation_id, now)


def _close_task(services: Services, escalation_id: int, now: datetime) -> bool:
    with services.db.session() as session:
        won = session.execute(
            update(Escalation)
            .where(Escalation.id == escalation_id, Escalation.close_after <= now)
            .values(close_after=now + CLAIM_LEASE)
        ).rowcount
        if not won:
            return False
        row = session.get(Escalation, escalation_id)
        portal = session.get(Portal, row.portal_id)
        task_id = row.task_bitrix_id
        session.expunge_all()

    extra = {"member_id": portal.member_id, "task_id": task_id}
    try:
        services.client(portal).call("tasks.task.complete", {"taskId": task_id})
    except BitrixCallError as err:
        retryable = err.retryable or err.status in (429, 503)
        with services.db.session() as session:
            row = session.get(Escalation, escalation_id)
            if retryable and not isinstance(err, PortalInactive):
                row.close_after = now + timedelta(minutes=2)
            else:
                # Deleted or not ours to complete any more: nothing left to do.
                row.close_after = None
                row.task_closed = True
                row.error = f"task not completed: {err}"[:500]
        logger.warning(
            "closing escalation task failed", extra=extra | {"code": err.code}
        )
        return False

    with services.db.session() as session:
        row = session.get(Escalation, escalation_id)
        row.task_closed = True
        row.close_after = None
    logger.info("escalation task completed", extra=extra)
    return True


# Texts


def _lead_url(portal: Portal, lead: Lead) -> str:
    return f"https://{portal.domain}/crm/lead/details/{lead.bitrix_id}/"


def _lead_name(lead: Lead) -> str:
    title = (lead.title or "").strip()
    if len(title) > 60:
        title = title[:57].rstrip() + "…"
    return f"#{lead.bitrix_id} «{title}»" if title else f"#{lead.bitrix_id}"


def _business_seconds(portal: Portal, start: datetime, end: datetime) -> float:
    seconds = sla_settings.calendar(portal).business_seconds_between(start, end)
    return max(0.0, seconds)


def duration_text(seconds: float, lang: str) -> str:
    """Format a span of time for a notice, in whole minutes rounded down.

    Spans under a minute read "меньше минуты" rather than "0 мин", so a
    warning never claims more time left than there is. An hour or more
    reads as hours and minutes.
    """
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "less than a minute" if lang == "en" else "меньше минуты"
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min" if lang == "en" else f"{minutes} мин"
    if lang == "en":
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{hours} ч {rest} мин" if rest else f"{hours} ч"


def _task_title(lead: Lead, lang: str) -> str:
    if lang == "en":
        return f"No reply to the client: lead {_lead_name(lead)}"[:250]
    return f"Нет ответа клиенту: лид {_lead_name(lead)}"[:250]


def _request_text(lead: Lead, lang: str) -> str:
    from b24app.tagging.types import RU_LABELS

    classification = lead.classification or {}
    tags = list(lead.manual_tags if lead.manual_tags is not None else lead.tags or [])
    if lead.urgent:
        tags.append("urgent")
    labels = [RU_LABELS.get(tag, tag) if lang != "en" else tag for tag in tags]
    parts = [", ".join(labels)] if labels else []
    if classification.get("service"):
        parts.append(str(classification["service"]))
    if classification.get("explanation"):
        parts.append(str(classification["explanation"]))
    return "; ".join(parts) or "—"


def _task_description(
    client,
    portal: Portal,
    lead: Lead,
    clock: SlaClock,
    escalation: Escalation,
    now: datetime,
    lang: str,
) -> str:
    tz = sla_settings.calendar(portal).tz
    late = duration_text(_business_seconds(portal, clock.due_at, now), lang)
    target = duration_text(clock.target_seconds, lang)
    due = sla_settings.due_text(clock.due_at, tz, clock.target_seconds)
    manager = _user_link(client, portal, clock.responsible_id)
    link = f"[URL={_lead_url(portal, lead)}]{_lead_name(lead)}[/URL]"
    marker = TASK_MARKER.format(id=escalation.id)
    if lang == "en":
        return (
            f"The client has had no first reply within the target.\n"
            f"Lead: {link}\n"
            f"Client's request: {_request_text(lead, lang)}\n"
            f"Due: {due} ({target} of working time); the target passed "
            f"{late} ago.\n"
            f"Responsible: {manager}\n"
            "Contact the client or hand the lead to a free manager. The task "
            "completes itself once the client gets a reply.\n"
            f"Otklik, escalation {marker}"
        )
    return (
        f"Клиент не получил первого ответа в срок.\n"
        f"Лид: {link}\n"
        f"Запрос клиента: {_request_text(lead, lang)}\n"
        f"Срок ответа: {due} ({target} рабочего времени); срок истёк "
        f"{late} назад.\n"
        f"Ответственный: {manager}\n"
        "Свяжитесь с клиентом или передайте лид свободному менеджеру. Задача "
        "закроется сама, когда клиент получит ответ.\n"
        f"Отклик, эскалация {marker}"
    )


def _senior_text(
    portal: Portal, lead: Lead, clock: SlaClock, now: datetime, lang: str
) -> str:
    late = duration_text(_business_seconds(portal, clock.due_at, now), lang)
    link = f"[URL={_lead_url(portal, lead)}]{_lead_name(lead)}[/URL]"
    if lang == "en":
        return (
            f"The reply target of lead {link} passed {late} ago and the client "
            "still has no reply. A task was created for you."
        )
    return (
        f"Срок ответа по лиду {link} истёк {late} назад, а клиент всё ещё без "
        "ответа. Для вас создана задача."
    )


def _warn_text(
    client,
    portal: Portal,
    lead: Lead,
    clock: SlaClock,
    now: datetime,
    lang: str,
    rerouted: bool,
) -> str:
    tz = sla_settings.calendar(portal).tz
    link = f"[URL={_lead_url(portal, lead)}]{_lead_name(lead)}[/URL]"
    due = sla_settings.due_text(clock.due_at, tz, clock.target_seconds)
    if now < clock.due_at:
        left = duration_text(_business_seconds(portal, now, clock.due_at), lang)
        when = (
            f"{left} left, until {due}"
            if lang == "en"
            else f"осталось {left}, срок до {due}"
        )
    else:
        late = duration_text(_business_seconds(portal, clock.due_at, now), lang)
        when = (
            f"the target passed {late} ago"
            if lang == "en"
            else f"срок прошёл {late} назад"
        )

    if rerouted:
        manager = _user_link(client, portal, clock.responsible_id)
        if lang == "en":
            return (
                f"The client of lead {link} is waiting for a reply ({when}), and the "
                f"responsible {manager} is off shift. Reply or hand the lead over."
            )
        return (
            f"Клиент по лиду {link} ждёт ответа ({when}), а ответственный "
            f"{manager} не на смене. Ответьте клиенту или передайте лид."
        )
    if lang == "en":
        return f"The client of lead {link} is waiting for your reply: {when}."
    return f"Клиент по лиду {link} ждёт вашего ответа: {when}."


def _owner_text(
    portal: Portal, lead: Lead, clock: SlaClock, now: datetime, lang: str
) -> str:
    late = duration_text(_business_seconds(portal, clock.due_at, now), lang)
    link = f"[URL={_lead_url(portal, lead)}]{_lead_name(lead)}[/URL]"
    if lang == "en":
        return (
            f"The reply target of lead {link} passed {late} ago and the client "
            "still has no reply. The senior has a task for it."
        )
    return (
        f"Срок ответа по лиду {link} истёк {late} назад, а клиент всё ещё без "
        "ответа. У старшего есть задача по нему."
    )

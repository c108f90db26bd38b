"""First-response clocks stored per lead: start, stop, reassignment, display.

Touch rule: what stops the human clock, the same in event handling and in the
periodic reconciliation (``reconcile.py``):

* an outgoing call, e-mail or open-line reply bound to the lead, made by a
  person. On events, a person is an action whose event carried a user token;
  a robot, a workflow or the app itself sends none. A planned call is not a
  touch until it is done: the activity must be completed (calls) and its time
  must not lie ahead (``FUTURE_TOLERANCE`` allows for clock skew);
* a status change away from the lead's initial status made by a person.

Incoming activities, internal comments, the app's own writes and automation
do not stop it. The clock stops at the real time of the touch, also when the
event arrives late or only reconciliation finds it. An earlier touch found
later moves the stop time back.

The bot tier is met only by an automatic reply: an outgoing activity that
came with no user token (the open-line bot, a robot, a workflow). It exists
only for leads from the channels in ``policy.bot_channels``. A person's touch
never counts as a bot reply:

* before the bot's due time and before any bot reply, it cancels the bot
  clock (state "cancelled" with ``stopped_at`` at the touch). The client got
  a reply, so the bot tier neither breaches nor counts in the bot median.
* after the bot's due time, the bot's breach stands and the bot clock keeps
  no stop time, so the person's reply time is not taken for the bot's.

A bot reply found later that came before the cancelling touch replaces the
cancellation.

A lead tagged spam gets no clock unless the policy says so. Reassignment
restarts the human clock only when ``policy.fresh_clock_on_reassign`` is set;
the restarted clock is a new round whose escalation ladder fires again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, true, update

from b24app.bitrix.values import aware_time, optional_id
from b24app.models import Escalation, Lead, Portal, SlaClock
from b24app.services import Services
from b24app.sla import settings as sla_settings
from b24app.sla.calendar import BusinessCalendar
from b24app.sla.policy import SPAM_TAG, DueTimes, LadderLevel, SlaPolicy, compute_due

logger = logging.getLogger(__name__)

FUTURE_TOLERANCE = timedelta(minutes=5)
PENDING_STATUSES = ("claimed", "postponed", "failed")
OPENLINE_PROVIDER = "IMOPENLINES_SESSION"
TOUCH_TYPES = {"2": "call", "4": "email"}
DIRECTION_OUTGOING = "2"


@dataclass(frozen=True)
class Touch:
    kind: str
    at: datetime
    user_id: int | None


# The touch rule


def touch_from_activity(activity: dict[str, Any]) -> Touch | None:
    """Return the touch an activity makes under the rule above, or None.

    The caller decides whether a person made it (from the event's user token,
    or from the events that reconciliation finds stored).
    """
    if str(activity.get("DIRECTION")) != DIRECTION_OUTGOING:
        return None
    if str(activity.get("PROVIDER_ID")) == OPENLINE_PROVIDER:
        kind = "openline"
    else:
        kind = TOUCH_TYPES.get(str(activity.get("TYPE_ID")))
    if kind is None:
        return None
    if kind == "call" and str(activity.get("COMPLETED") or "Y").upper() != "Y":
        return None

    at = None
    if kind == "call":
        at = parse_time(activity.get("START_TIME"))
    at = at or parse_time(activity.get("CREATED"))
    if at is None:
        return None
    author = optional_id(activity.get("AUTHOR_ID") or activity.get("RESPONSIBLE_ID"))
    return Touch(kind, at, author)


def effective_tags(lead: Lead) -> list[str]:
    """Return the lead's tags, where a manager's correction wins over the app's."""
    return list(lead.manual_tags if lead.manual_tags is not None else lead.tags or [])


def has_no_clock(lead: Lead, policy: SlaPolicy) -> bool:
    tags = {tag.lower() for tag in effective_tags(lead)}
    return SPAM_TAG in tags and not policy.spam_has_clock


# Ladder keys and times


def level_key(code: str, clock_round: int) -> str:
    """Build the unique escalation key of a ladder level in a clock round."""
    return code if not clock_round else f"{code}@{clock_round}"


def split_level(key: str) -> tuple[str, int]:
    code, _, round_text = key.partition("@")
    return code, int(round_text) if round_text.isdigit() else 0


def ladder_fire_times(
    clock: SlaClock, policy: SlaPolicy, calendar: BusinessCalendar
) -> list[tuple[LadderLevel, datetime]]:
    """Return each ladder level of the clock with its fire time, earliest first.

    A level at ratio 1.0 fires exactly at the stored due time, so a later
    change of the calendar cannot split "overdue" from "task created".
    """
    times = []
    for level in sorted(policy.ladder, key=lambda item: item.at_ratio):
        if math.isclose(level.at_ratio, 1.0):
            at = clock.due_at
        else:
            at = calendar.add_business_seconds(
                clock.starts_at, level.at_ratio * clock.target_seconds
            )
        times.append((level, at))
    return times


def _first_check(
    clock: SlaClock, policy: SlaPolicy, calendar: BusinessCalendar
) -> datetime:
    times = [at for _, at in ladder_fire_times(clock, policy, calendar)]
    return min([clock.due_at, *times])


# Start and stop


def start_clocks(services: Services, portal: Portal, lead_id: int) -> DueTimes | None:
    """Create the bot and human clocks of a tagged lead (none for spam)."""
    calendar = sla_settings.calendar(portal)
    policy = sla_settings.policy(portal)
    with services.db.session() as session:
        lead = session.get(Lead, lead_id)
        if lead is None or lead.deleted:
            return None
        due = compute_due(
            lead.created_at, effective_tags(lead), lead.urgent, policy, calendar
        )
        if due is None:
            return None

        existing = {
            c.tier
            for c in session.scalars(
                select(SlaClock).where(SlaClock.lead_id == lead_id)
            )
        }
        if "bot" not in existing and policy.has_bot_clock(lead.channel):
            session.add(
                SlaClock(
                    portal_id=portal.id,
                    lead_id=lead_id,
                    tier="bot",
                    target_seconds=policy.bot_seconds,
                    target_rule="bot",
                    created_at=lead.created_at,
                    starts_at=lead.created_at,
                    due_at=due.bot_due,
                    state="running",
                    next_check_at=due.bot_due,
                    responsible_id=lead.assigned_by_id,
                    clock_round=0,
                )
            )
        if "human" not in existing:
            clock = SlaClock(
                portal_id=portal.id,
                lead_id=lead_id,
                tier="human",
                target_seconds=due.human_seconds,
                target_rule=due.rule,
                created_at=lead.created_at,
                starts_at=due.human_starts_at,
                due_at=due.human_due,
                state="running",
                responsible_id=lead.assigned_by_id,
                clock_round=0,
            )
            clock.next_check_at = _first_check(clock, policy, calendar)
            session.add(clock)
        touch, bot_reply = lead.first_touch_at, lead.bot_reply_at

    # Touches seen before the lead was tagged (events out of order).
    if bot_reply is not None:
        _stop(services, lead_id, bot_reply, tiers=("bot",))
    if touch is not None:
        _stop(services, lead_id, touch, tiers=("human",))
        _settle_bot_clock(services, lead_id, touch)
    return due


def record_touch(
    services: Services,
    portal: Portal,
    lead_id: int,
    *,
    kind: str,
    at: datetime,
    user_id: int | None,
) -> bool:
    """Record a person's first touch and stop the human clock at its real time.

    The bot clock follows the rule in the module docstring. Returns False
    when an earlier touch is already known, or when ``at`` lies ahead (a
    planned activity is not a touch).
    """
    now = datetime.now(UTC)
    extra = {"member_id": portal.member_id, "lead_id": lead_id, "kind": kind}
    if at > now + FUTURE_TOLERANCE:
        logger.info("touch in the future ignored", extra=extra)
        return False

    with services.db.session() as session:
        lead = session.get(Lead, lead_id, with_for_update=True)
        if lead is None:
            return False
        if lead.first_touch_at is not None and lead.first_touch_at <= at:
            return False
        lead.first_touch_at = at
        lead.first_touch_kind = kind
        lead.first_touch_by = user_id
    logger.info("first touch recorded", extra=extra)

    human_stopped = _stop(services, lead_id, at, tiers=("human",))
    _settle_bot_clock(services, lead_id, at)
    if human_stopped:
        from b24app.sla.escalation import close_open_tasks

        close_open_tasks(services, portal, lead_id)
    return True


def record_bot_reply(
    services: Services, portal: Portal, lead_id: int, *, at: datetime
) -> None:
    """Record a bot's or robot's reply, which stops the bot tier only."""
    with services.db.session() as session:
        lead = session.get(Lead, lead_id, with_for_update=True)
        if lead is None:
            return
        if lead.bot_reply_at is None or at < lead.bot_reply_at:
            lead.bot_reply_at = at
    _stop(services, lead_id, at, tiers=("bot",))


def _settle_bot_clock(services: Services, lead_id: int, touch_at: datetime) -> None:
    """Apply a person's first touch at ``touch_at`` to the lead's bot clock.

    A bot clock still waiting for a bot reply at the touch is cancelled when
    the touch came in time. A clock the bot missed stays breached. A clock
    cancelled by a later touch moves its cancellation back to this one.
    """
    with services.db.session() as session:
        clock = session.scalars(
            select(SlaClock)
            .where(SlaClock.lead_id == lead_id, SlaClock.tier == "bot")
            .with_for_update()
        ).first()
        if clock is None:
            return
        cancelled_by_touch = clock.state == "cancelled" and clock.stopped_at
        if clock.state == "cancelled" and not cancelled_by_touch:
            return
        if clock.stopped_at is not None and clock.stopped_at <= touch_at:
            return
        if touch_at > clock.due_at:
            if clock.stopped_at is None:
                clock.state = "breached"
                clock.breached_at = clock.due_at
                clock.next_check_at = None
            return
        clock.state = "cancelled"
        clock.stopped_at = touch_at
        clock.breached_at = None
        clock.next_check_at = None


def _stop(
    services: Services, lead_id: int, at: datetime, *, tiers: tuple[str, ...]
) -> bool:
    """Stop the lead's clocks of ``tiers`` at ``at``; True if the human one stopped."""
    human_stopped = False
    now = datetime.now(UTC)
    with services.db.session() as session:
        for clock in session.scalars(
            select(SlaClock)
            .where(SlaClock.lead_id == lead_id, SlaClock.tier.in_(tiers))
            .with_for_update()
        ):
            # A clock cancelled with a stop time was cancelled by a person's
            # touch. An earlier bot reply found later still replaces that.
            if clock.state == "cancelled" and clock.stopped_at is None:
                continue
            if clock.stopped_at is not None and clock.stopped_at <= at:
                continue
            clock.stopped_at = at
            clock.next_check_at = None
            if at <= clock.due_at:
                clock.state = "met"
                clock.breached_at = None
            else:
                clock.state = "breached"
                clock.breached_at = clock.due_at
            human_stopped = human_stopped or clock.tier == "human"

        if human_stopped:
            # Notices still waiting are not needed any more; a task already
            # on the portal is completed by the sweep from now on.
            session.execute(
                update(Escalation)
                .where(
                    Escalation.lead_id == lead_id,
                    Escalation.status.in_(("postponed", "failed")),
                )
                .values(status="cancelled", locked_until=None)
            )
            _mark_tasks_for_closing(session, lead_id, now)
    return human_stopped


def _mark_tasks_for_closing(session, lead_id: int, now: datetime) -> None:
    session.execute(
        update(Escalation)
        .where(
            Escalation.lead_id == lead_id,
            Escalation.task_bitrix_id.is_not(None),
            Escalation.task_closed.is_(False),
            Escalation.close_after.is_(None),
        )
        .values(close_after=now)
    )


def reassign(
    services: Services,
    portal: Portal,
    lead_id: int,
    user_id: int,
    *,
    at: datetime | None = None,
) -> None:
    """Point the running clock at the new responsible; restart it if the policy says so.

    ``at`` is when the lead changed hands (default: now). A restarted clock
    counts the full target from the next opening at or after ``at``.
    """
    policy = sla_settings.policy(portal)
    calendar = sla_settings.calendar(portal)
    at = at or datetime.now(UTC)
    restarted = False
    with services.db.session() as session:
        lead = session.get(Lead, lead_id, with_for_update=True)
        if lead is None:
            return
        lead.assigned_by_id = user_id
        clock = session.scalars(
            select(SlaClock)
            .where(SlaClock.lead_id == lead_id, SlaClock.tier == "human")
            .with_for_update()
        ).first()
        if clock is None or clock.stopped_at is not None or clock.state == "cancelled":
            return
        if clock.responsible_id == user_id:
            return
        clock.responsible_id = user_id

        if policy.fresh_clock_on_reassign:
            clock.clock_round = (clock.clock_round or 0) + 1
            clock.starts_at = calendar.next_opening(at)
            clock.due_at = calendar.add_business_seconds(
                clock.starts_at, clock.target_seconds
            )
            clock.state = "running"
            clock.breached_at = None
            clock.next_check_at = _first_check(clock, policy, calendar)
            # Steps of the previous round still waiting are dropped; the new
            # round fires its own.
            session.execute(
                update(Escalation)
                .where(
                    Escalation.lead_id == lead_id,
                    Escalation.status.in_(("postponed", "failed")),
                )
                .values(status="cancelled", locked_until=None)
            )
            restarted = True
    logger.info(
        "lead reassigned",
        extra={
            "member_id": portal.member_id,
            "lead_id": lead_id,
            "restarted": restarted,
        },
    )


def cancel_clocks(services: Services, lead_id: int) -> None:
    """Stop the clocks of a deleted lead and drop its waiting steps."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        cancelled = False
        for clock in session.scalars(
            select(SlaClock).where(SlaClock.lead_id == lead_id).with_for_update()
        ):
            if clock.stopped_at is None and clock.state != "cancelled":
                clock.state = "cancelled"
                clock.next_check_at = None
                cancelled = True
        if cancelled:
            session.execute(
                update(Escalation)
                .where(
                    Escalation.lead_id == lead_id,
                    Escalation.status.in_(("postponed", "failed")),
                )
                .values(status="cancelled", locked_until=None)
            )
            _mark_tasks_for_closing(session, lead_id, now)


def cancel_off_channel_bot_clocks(session, portal_id: int, policy: SlaPolicy) -> int:
    """Cancel the portal's open bot clocks of leads outside ``policy.bot_channels``.

    Such clocks come from before the per-channel rule, or from a channel the
    administrator took off the list later. No bot replies there, so they
    would show a bot breach. Clocks with a stop time keep their result.
    Returns the number of clocks cancelled.
    """
    off_channel = or_(Lead.channel.is_(None), Lead.channel == "")
    if policy.bot_channels:
        off_channel = or_(off_channel, Lead.channel.not_in(policy.bot_channels))
    else:
        off_channel = true()

    lead_off_channel = (
        exists().where(Lead.id == SlaClock.lead_id, off_channel).correlate(SlaClock)
    )
    result = session.execute(
        update(SlaClock)
        .where(
            SlaClock.portal_id == portal_id,
            SlaClock.tier == "bot",
            SlaClock.stopped_at.is_(None),
            SlaClock.state.in_(("running", "breached")),
            lead_off_channel,
        )
        .values(state="cancelled", breached_at=None, next_check_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def apply_tags(services: Services, portal: Portal, lead_id: int) -> str:
    """Bring the clocks in line with the lead's current tags.

    Call it after a manager corrected the tags: a lead marked spam loses its
    running clocks, and a lead taken out of spam gets them.
    """
    policy = sla_settings.policy(portal)
    with services.db.session() as session:
        lead = session.get(Lead, lead_id)
        if lead is None or lead.deleted:
            return "unchanged"
        spam = has_no_clock(lead, policy)
        has_clocks = session.scalar(
            select(SlaClock.id).where(SlaClock.lead_id == lead_id).limit(1)
        )
    if spam:
        cancel_clocks(services, lead_id)
        return "cancelled"
    if has_clocks is None:
        start_clocks(services, portal, lead_id)
        return "started"
    return "unchanged"


# Display


def clock_view(
    clock: SlaClock,
    portal: Portal,
    now: datetime,
    *,
    first_touch_at: datetime | None = None,
) -> dict:
    """State of a clock for people: running, paused, met, breached, in minutes.

    Human minutes are business minutes of the portal calendar; bot minutes are
    wall-clock minutes. ``left_minutes`` is negative when overdue.
    ``first_touch_at`` is the lead's first touch by a person: a bot clock the
    bot missed counts its lateness up to that touch, when the client got a
    reply.
    """
    calendar = sla_settings.calendar(portal)
    tz = calendar.tz
    human = clock.tier == "human"

    def between(start: datetime, end: datetime) -> float:
        if not human:
            return max(0.0, (end - start).total_seconds())
        return calendar.business_seconds_between(start, end)

    state = clock.state
    end = clock.stopped_at or now
    person_answered = (
        not human
        and clock.stopped_at is None
        and first_touch_at is not None
        and first_touch_at > clock.due_at
    )
    if person_answered and state != "cancelled":
        end = min(now, first_touch_at)
    if state == "cancelled":
        left = 0.0
    elif person_answered:
        state = "breached"
        left = -between(clock.due_at, end)
    elif clock.stopped_at is not None:
        left = between(clock.stopped_at, clock.due_at) - between(
            clock.due_at, clock.stopped_at
        )
    else:
        left = between(now, clock.due_at) - between(clock.due_at, now)
        if now >= clock.due_at:
            state = "breached"
        elif human and (now < clock.starts_at or not calendar.is_open(now)):
            state = "paused"

    resumes_at = calendar.next_opening(now) if state == "paused" else None
    view = {
        "tier": clock.tier,
        "state": state,
        "round": clock.clock_round or 0,
        "starts_at": clock.starts_at.isoformat(),
        "due_at": clock.due_at.isoformat(),
        "stopped_at": clock.stopped_at.isoformat() if clock.stopped_at else None,
        "starts_local": sla_settings.local_text(clock.starts_at, tz),
        "due_local": sla_settings.due_text(clock.due_at, tz, clock.target_seconds),
        "stopped_local": sla_settings.local_text(clock.stopped_at, tz)
        if clock.stopped_at
        else None,
        "cancelled_by_person": state == "cancelled" and clock.stopped_at is not None,
        "answered_by_person": person_answered,
        "started_out_of_hours": human
        and not clock.clock_round
        and clock.starts_at > clock.created_at,
        "target_minutes": round(clock.target_seconds / 60, 1),
        "elapsed_minutes": round(between(clock.starts_at, end) / 60, 1),
        "left_minutes": round(left / 60, 1),
        "overdue_minutes": round(max(0.0, -left) / 60, 1),
        "resumes_at": resumes_at.isoformat() if resumes_at else None,
        "resumes_local": sla_settings.local_text(resumes_at, tz)
        if resumes_at
        else None,
        "responsible_id": clock.responsible_id,
        "responsible_working": None,
        "responsible_back_local": None,
    }
    if human and clock.responsible_id and _has_schedule(portal, clock.responsible_id):
        working = sla_settings.is_working(portal, clock.responsible_id, now)
        view["responsible_working"] = working
        if not working:
            back = sla_settings.next_working_time(portal, clock.responsible_id, now)
            view["responsible_back_local"] = sla_settings.local_text(back, tz)
    return view


def _has_schedule(portal: Portal, user_id: int) -> bool:
    return str(user_id) in sla_settings.manager_schedules(portal)


# Parsing


def parse_time(value: Any) -> datetime | None:
    """Parse an aware ISO time from the portal as UTC; None if empty or naive."""
    parsed = aware_time(value)
    return parsed.astimezone(UTC) if parsed is not None else None

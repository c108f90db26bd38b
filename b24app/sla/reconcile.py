"""Periodic reconciliation: apply the touch rule to what events never brought.

Bitrix24 does not retry event deliveries, so a reply made while the app was
down, or whose event was lost, would leave a clock running and escalate an
answered lead. For each lead with a running human clock the job reads the
lead's outgoing activities, its status, assignee and existence, and applies
the rule in ``clocks`` at the touch's real time.

Who made an activity: when its event was stored, the event decides as on
event handling (a user token means a person). When no event arrived, the
activity counts as a person's touch, because a robot's activity cannot be
told from a person's without the event. A status the app never saw change
counts as a person's move for the same reason.

Each run also cancels the portal's open bot clocks of leads whose channel is
not (or no longer) one of the policy's bot channels, as the sweep does when
such a clock falls due (``escalation``).

Leads are taken in turns, least recently reconciled first, at most
``MAX_LEADS_PER_RUN`` per portal and run, in batch calls of
``LEADS_PER_BATCH`` leads.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from b24app.bitrix.errors import BitrixCallError
from b24app.bitrix.values import optional_id
from b24app.models import InboundEvent, Lead, Portal, SlaClock
from b24app.services import Services
from b24app.sla import clocks
from b24app.sla import settings as sla_settings
from b24app.sla.policy import PolicyError

logger = logging.getLogger(__name__)

LEADS_PER_BATCH = 24
MAX_LEADS_PER_RUN = 240
ACTIVITY_EVENTS = ("ONCRMACTIVITYADD", "ONCRMACTIVITYUPDATE")
# Events are looked up around the activity's time: delivery is prompt, but
# the worker may have been down for a while.
EVENT_WINDOW_BEFORE = timedelta(minutes=10)
EVENT_WINDOW_AFTER = timedelta(hours=6)
ACTIVITY_SELECT = [
    "ID",
    "TYPE_ID",
    "PROVIDER_ID",
    "DIRECTION",
    "COMPLETED",
    "CREATED",
    "START_TIME",
    "AUTHOR_ID",
    "RESPONSIBLE_ID",
]
LEAD_SELECT = ["ID", "STATUS_ID", "MOVED_TIME", "MOVED_BY_ID", "ASSIGNED_BY_ID"]


def reconcile_all(services: Services) -> int:
    """Reconcile every active portal; one portal's failure does not stop the rest.

    Returns the number of touches found.
    """
    with services.db.session() as session:
        portals = session.scalars(select(Portal).where(Portal.status == "active")).all()
    found = 0
    for portal in portals:
        try:
            found += reconcile_portal(services, portal)
        except BitrixCallError as err:
            logger.warning(
                "reconciliation failed",
                extra={"member_id": portal.member_id, "code": err.code},
            )
    return found


def reconcile_portal(
    services: Services, portal: Portal, now: datetime | None = None
) -> int:
    now = now or datetime.now(UTC)
    _cancel_off_channel_bot_clocks(services, portal)

    with services.db.session() as session:
        rows = session.execute(
            select(SlaClock.id, Lead)
            .join(Lead, SlaClock.lead_id == Lead.id)
            .where(
                SlaClock.portal_id == portal.id,
                SlaClock.tier == "human",
                SlaClock.stopped_at.is_(None),
                SlaClock.state != "cancelled",
                Lead.deleted.is_(False),
            )
            .order_by(SlaClock.reconciled_at.asc().nulls_first(), SlaClock.id)
            .limit(MAX_LEADS_PER_RUN)
        ).all()
    if not rows:
        return 0

    client = services.client(portal)
    found = 0
    for start in range(0, len(rows), LEADS_PER_BATCH):
        chunk = rows[start : start + LEADS_PER_BATCH]
        found += _reconcile_chunk(services, client, portal, [r[1] for r in chunk], now)
        with services.db.session() as session:
            session.execute(
                update(SlaClock)
                .where(SlaClock.id.in_([r[0] for r in chunk]))
                .values(reconciled_at=now)
            )
    if found:
        logger.info(
            "reconciliation found missed touches",
            extra={"member_id": portal.member_id, "count": found},
        )
    return found


def _cancel_off_channel_bot_clocks(services: Services, portal: Portal) -> None:
    try:
        policy = sla_settings.policy(portal)
    except PolicyError as err:
        logger.warning(
            "sla policy invalid, bot clocks not checked",
            extra={"member_id": portal.member_id, "error": str(err)[:200]},
        )
        return

    with services.db.session() as session:
        cancelled = clocks.cancel_off_channel_bot_clocks(session, portal.id, policy)
    if cancelled:
        logger.info(
            "bot clocks outside the bot channels cancelled",
            extra={"member_id": portal.member_id, "count": cancelled},
        )


def _reconcile_chunk(
    services: Services, client, portal: Portal, leads: list[Lead], now: datetime
) -> int:
    commands: dict[str, tuple[str, dict[str, Any]]] = {
        f"a{lead.bitrix_id}": (
            "crm.activity.list",
            {
                "filter": {
                    "OWNER_TYPE_ID": 1,
                    "OWNER_ID": lead.bitrix_id,
                    "DIRECTION": 2,
                },
                "order": {"ID": "ASC"},
                "select": ACTIVITY_SELECT,
            },
        )
        for lead in leads
    }
    commands["leads"] = (
        "crm.lead.list",
        {
            "filter": {"@ID": [lead.bitrix_id for lead in leads]},
            "select": LEAD_SELECT,
        },
    )
    results, errors = client.batch(commands)
    portal_leads = {int(row["ID"]): row for row in results.get("leads") or []}

    found = 0
    for lead in leads:
        row = portal_leads.get(lead.bitrix_id)
        if row is None:
            if "leads" not in errors and _deleted_on_portal(client, lead):
                _mark_deleted(services, portal, lead)
            continue

        key = f"a{lead.bitrix_id}"
        activities = [] if key in errors else results.get(key) or []
        touch = _earliest_touch(services, portal, lead, activities, row, now)
        if touch is not None and clocks.record_touch(
            services,
            portal,
            lead.id,
            kind=touch.kind,
            at=touch.at,
            user_id=touch.user_id,
        ):
            found += 1

        assigned = optional_id(row.get("ASSIGNED_BY_ID"))
        if assigned and assigned != lead.assigned_by_id:
            clocks.reassign(services, portal, lead.id, assigned)
    return found


def _earliest_touch(
    services: Services,
    portal: Portal,
    lead: Lead,
    activities: list[dict],
    row: dict,
    now: datetime,
) -> clocks.Touch | None:
    candidates: list[tuple[str, clocks.Touch]] = []
    for activity in activities:
        touch = clocks.touch_from_activity(activity)
        if touch is not None and touch.at <= now + clocks.FUTURE_TOLERANCE:
            candidates.append((str(activity.get("ID")), touch))

    touches = [
        touch
        for activity_id, touch in candidates
        if _made_by_person(services, portal, activity_id, touch.at)
    ]

    status = row.get("STATUS_ID")
    changed = status and status not in (lead.status_id, lead.initial_status_id)
    if changed and not _update_waiting(services, portal, lead):
        # The app never saw this move, so its event was lost.
        moved_at = clocks.parse_time(row.get("MOVED_TIME"))
        if moved_at is not None:
            touches.append(
                clocks.Touch("status", moved_at, optional_id(row.get("MOVED_BY_ID")))
            )
        with services.db.session() as session:
            session.get(Lead, lead.id).status_id = status
    return min(touches, key=lambda touch: touch.at) if touches else None


def _made_by_person(
    services: Services, portal: Portal, activity_id: str, at: datetime
) -> bool:
    """Decide from the stored events whether a person made the activity.

    Without a stored event the activity counts as a person's.
    """
    with services.db.session() as session:
        payloads = session.scalars(
            select(InboundEvent.payload).where(
                InboundEvent.portal_id == portal.id,
                InboundEvent.event.in_(ACTIVITY_EVENTS),
                InboundEvent.received_at >= at - EVENT_WINDOW_BEFORE,
                InboundEvent.received_at <= at + EVENT_WINDOW_AFTER,
            )
        ).all()
    verdicts = [
        bool(payload.get("has_user_token"))
        for payload in payloads
        if str(((payload.get("data") or {}).get("FIELDS") or {}).get("ID"))
        == activity_id
    ]
    return any(verdicts) if verdicts else True


def _update_waiting(services: Services, portal: Portal, lead: Lead) -> bool:
    """Tell whether a stored update event of the lead still waits for the worker."""
    with services.db.session() as session:
        payloads = session.scalars(
            select(InboundEvent.payload).where(
                InboundEvent.portal_id == portal.id,
                InboundEvent.event == "ONCRMLEADUPDATE",
                InboundEvent.status.in_(("pending", "processing")),
            )
        ).all()
    return any(
        str(((payload.get("data") or {}).get("FIELDS") or {}).get("ID"))
        == str(lead.bitrix_id)
        for payload in payloads
    )


def _deleted_on_portal(client, lead: Lead) -> bool:
    try:
        client.call("crm.lead.get", {"id": lead.bitrix_id})
    except BitrixCallError as err:
        return "not found" in err.description.lower()
    return False


def _mark_deleted(services: Services, portal: Portal, lead: Lead) -> None:
    with services.db.session() as session:
        session.get(Lead, lead.id).deleted = True
    clocks.cancel_clocks(services, lead.id)
    logger.info(
        "lead deleted on the portal, clocks cancelled",
        extra={"member_id": portal.member_id, "lead_id": lead.bitrix_id},
    )

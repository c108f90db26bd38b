"""Processing of stored events: tag new leads, notice touches, keep clocks right."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from b24app import features, leadtext, portal_settings
from b24app.bitrix.client import PortalClient
from b24app.bitrix.errors import BitrixCallError
from b24app.bitrix.values import aware_time, optional_id
from b24app.dbutil import insert_ignore
from b24app.kpi import sync as kpi_sync
from b24app.models import InboundEvent, Lead, Portal, TagFeedback
from b24app.services import Services
from b24app.sla import clocks
from b24app.tagging.model import ModelEngine, build_engine
from b24app.tagging.types import RU_LABELS, Classification

logger = logging.getLogger(__name__)

# An update event from the app's own user this soon after the app wrote to
# the lead is the echo of that write, and needs no reading.
ECHO_WINDOW = timedelta(seconds=30)
OWNER_TYPE_LEAD = "1"

MAX_ORDERING_RETRIES = 3
# Minimum seconds a model is given, even when the bot target is nearly spent.
MIN_MODEL_SECONDS = 1.0

_engines: dict[str, Any] = {}
_engines_lock = threading.Lock()


class RetryLater(Exception):
    """The event refers to a lead whose ONCRMLEADADD is not processed yet."""


def engine_for(portal: Portal):
    """Return the classifier for the portal's settings (built once per process)."""
    settings = portal_settings.engine_settings(portal)
    key = repr(sorted(settings.items()))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = build_engine(settings)
            _engines[key] = engine
    return engine


def process_event(services: Services, portal: Portal, event: InboundEvent) -> str:
    """Dispatch one stored event; return a short outcome for the log."""
    data = event.payload.get("data") or {}
    fields = data.get("FIELDS") or {}
    # CRM events carry data[FIELDS][ID]; Booking and timeline events data[ID].
    bitrix_id = int(fields.get("ID") or data.get("ID") or 0)
    if not bitrix_id:
        return "skipped: no id"

    client = services.client(portal)
    if event.event == "ONCRMLEADADD":
        return tag_new_lead(services, client, portal, bitrix_id, event.received_at)
    if event.event == "ONCRMLEADUPDATE":
        return handle_lead_update(services, client, portal, bitrix_id, event)
    if event.event == "ONCRMLEADDELETE":
        return handle_lead_delete(services, portal, bitrix_id)
    if event.event in ("ONCRMACTIVITYADD", "ONCRMACTIVITYUPDATE"):
        return handle_activity(services, client, portal, bitrix_id, event)
    return _run_feature_handlers(services, client, portal, bitrix_id, event)


def _run_feature_handlers(
    services: Services,
    client: PortalClient,
    portal: Portal,
    bitrix_id: int,
    event: InboundEvent,
) -> str:
    handlers = features.event_handlers(event.event)
    if not handlers:
        return "skipped: not handled"
    return ", ".join(h(services, client, portal, bitrix_id, event) for h in handlers)


# New leads


def tag_new_lead(
    services: Services,
    client: PortalClient,
    portal: Portal,
    bitrix_id: int,
    received_at: datetime,
) -> str:
    """Read the lead, classify it, write tags and a comment, start its clocks."""
    with services.db.session() as session:
        lead = session.scalar(
            select(Lead).where(Lead.portal_id == portal.id, Lead.bitrix_id == bitrix_id)
        )
        if lead is not None and lead.tagged_at is not None:
            return "skipped: already tagged"

    results, errors = client.batch(
        {
            "lead": ("crm.lead.get", {"id": bitrix_id}),
            "activities": (
                "crm.activity.list",
                {
                    "filter": {
                        "OWNER_TYPE_ID": 1,
                        "OWNER_ID": bitrix_id,
                        "DIRECTION": 1,
                    },
                    "select": [
                        "ID",
                        "TYPE_ID",
                        "DIRECTION",
                        "PROVIDER_ID",
                        "SUBJECT",
                        "DESCRIPTION",
                        "CREATED",
                    ],
                },
            ),
        }
    )
    if "lead" in errors:
        description = str(errors["lead"].get("error_description", ""))
        if "not found" in description.lower():
            return "skipped: lead deleted"
        raise BitrixCallError(
            "crm.lead.get", str(errors["lead"].get("error", "")), description, 400
        )
    fields = results["lead"]
    activities = results.get("activities") or []

    tz = portal_settings.timezone(portal)
    created_at = aware_time(fields.get("DATE_CREATE")) or received_at
    text = leadtext.extract(fields, activities if isinstance(activities, list) else [])
    result = _classify(
        portal, text.text, created_at.astimezone(ZoneInfo(tz)), tz, received_at
    )

    lead_row = _save_lead(
        services, portal, fields, created_at, text, result, received_at
    )
    _write_back(services, client, portal, lead_row, fields, result, text)
    clocks.start_clocks(services, portal, lead_row.id)
    logger.info(
        "lead tagged",
        extra={
            "member_id": portal.member_id,
            "lead_id": bitrix_id,
            "tags": ",".join(result.tags),
            "engine": result.engine,
            "source": text.source,
        },
    )
    return "tagged"


def _classify(
    portal: Portal, text: str, arrived: datetime, tz: str, received_at: datetime
) -> Classification:
    """Classify with the portal's engine within what is left of the bot target.

    A model engine that does not reply in time gives the offline result, so
    the tags are never later than the bot tier allows.
    """
    engine = engine_for(portal)
    if not isinstance(engine, ModelEngine):
        return engine.classify(text, arrived, tz)
    elapsed = (datetime.now(UTC) - received_at).total_seconds()
    budget = portal_settings.policy(portal).bot_seconds / 2 - elapsed
    return engine.classify(text, arrived, tz, deadline=max(MIN_MODEL_SECONDS, budget))


def _save_lead(
    services: Services,
    portal: Portal,
    fields: dict[str, Any],
    created_at: datetime,
    text: leadtext.LeadText,
    result: Classification,
    received_at: datetime,
) -> Lead:
    now = datetime.now(UTC)
    bitrix_id = int(fields["ID"])
    with services.db.session() as session:
        insert_ignore(
            session,
            Lead,
            {
                "portal_id": portal.id,
                "bitrix_id": bitrix_id,
                "created_at": created_at,
                "tags": [],
                "classification": {},
                "urgent": False,
                "needs_review": False,
                "deleted": False,
            },
            ["portal_id", "bitrix_id"],
        )
        lead = session.scalars(
            select(Lead)
            .where(Lead.portal_id == portal.id, Lead.bitrix_id == bitrix_id)
            .with_for_update()
        ).one()
        lead.title = leadtext.clean(fields.get("TITLE"))[:255] or None
        lead.source_id = fields.get("SOURCE_ID")
        lead.channel = leadtext.channel(fields, text.source)
        lead.status_id = fields.get("STATUS_ID")
        lead.initial_status_id = lead.initial_status_id or fields.get("STATUS_ID")
        lead.assigned_by_id = optional_id(fields.get("ASSIGNED_BY_ID"))
        lead.created_at = created_at
        lead.text_source = text.source
        lead.tags = list(result.tags)
        lead.urgent = bool(result.urgent)
        lead.needs_review = bool(result.needs_review)
        lead.classification = result.to_json() | {"explanation": result.explanation}
        lead.tagged_at = now
        lead.event_received_at = received_at
        lead.tag_latency_ms = (now - received_at).total_seconds() * 1000
        session.flush()
        session.expunge(lead)
    return lead


def tag_codes(result: Classification) -> list[str]:
    """Tag codes written to the portal: intents, then urgent and review marks."""
    codes = list(result.tags)
    if result.urgent:
        codes.append("urgent")
    if result.needs_review:
        codes.append("review")
    return codes


def _write_back(
    services: Services,
    client: PortalClient,
    portal: Portal,
    lead: Lead,
    fields: dict[str, Any],
    result: Classification,
    text: leadtext.LeadText,
) -> None:
    """Write the tag field and the timeline comment in one batch call."""
    update: dict[str, Any] = {}
    if portal.tag_field and not lead.manual_tags:
        update[portal.tag_field] = [
            portal.tag_options[c] for c in tag_codes(result) if c in portal.tag_options
        ]
    if result.name and not (fields.get("NAME") or "").strip():
        update["NAME"] = result.name
    if text.source in ("openline", "email", "activity") and not leadtext.clean(
        fields.get("COMMENTS")
    ):
        update["COMMENTS"] = text.text

    commands: dict[str, tuple[str, dict]] = {}
    if update:
        commands["update"] = (
            "crm.lead.update",
            {
                "id": lead.bitrix_id,
                "fields": update,
                "params": {"REGISTER_SONET_EVENT": "N"},
            },
        )
    commands["comment"] = (
        "crm.timeline.comment.add",
        {
            "fields": {
                "ENTITY_ID": lead.bitrix_id,
                "ENTITY_TYPE": "lead",
                "COMMENT": timeline_comment(result, portal_settings.timezone(portal)),
            }
        },
    )

    with services.db.session() as session:
        session.get(Lead, lead.id).last_app_write_at = datetime.now(UTC)
    _, errors = client.batch(commands)
    if errors:
        logger.warning(
            "lead write-back partly failed",
            extra={
                "member_id": portal.member_id,
                "lead_id": lead.bitrix_id,
                "commands": ",".join(errors),
            },
        )


def timeline_comment(result: Classification, tz: str) -> str:
    """Build the Russian comment that explains the tags to managers."""
    labels = [RU_LABELS[c] for c in tag_codes(result) if c in RU_LABELS]
    lines = ["Отклик: " + ", ".join(labels)]

    details = []
    if result.name:
        details.append(f"имя — {result.name}")
    if result.service:
        details.append(f"услуга — {result.service}")
    if result.appointment_time:
        booked = _local(result.appointment_time, result.appointment_time_precision, tz)
        details.append(f"время записи — {booked}")
    if result.desired_time:
        desired = _local(result.desired_time, result.desired_time_precision, tz)
        details.append(f"желаемое время — {desired}")
    if details:
        lines.append("Из сообщения: " + "; ".join(details) + ".")
    if result.explanation:
        lines.append("Почему: " + result.explanation)

    confidence = ", ".join(
        f"{RU_LABELS.get(code, code).lower()} {value:.0%}"
        for code, value in sorted(result.confidence.items(), key=lambda kv: -kv[1])
        if code in result.tags or (code == "urgent" and result.urgent)
    )
    if confidence:
        lines.append("Уверенность: " + confidence + ".")
    if result.needs_review:
        lines.append("Уверенность низкая: проверьте теги и поправьте их в поле лида.")
    return "\n".join(lines)


def _local(moment: datetime, precision: str | None, tz: str) -> str:
    local = moment.astimezone(ZoneInfo(tz))
    return local.strftime("%d.%m.%Y %H:%M" if precision == "hour" else "%d.%m.%Y")


# Updates and touches


def handle_lead_update(
    services: Services,
    client: PortalClient,
    portal: Portal,
    bitrix_id: int,
    event: InboundEvent,
) -> str:
    """Notice a status move by a person and a manager's correction of tags."""
    with services.db.session() as session:
        lead = session.scalar(
            select(Lead).where(Lead.portal_id == portal.id, Lead.bitrix_id == bitrix_id)
        )
    if lead is None:
        if event.attempts < MAX_ORDERING_RETRIES:
            raise RetryLater(f"lead {bitrix_id} is not tagged yet")
        return "skipped: unknown lead"
    if _is_echo(portal, lead, event):
        return "skipped: echo of the app's write"

    try:
        fields = client.call("crm.lead.get", {"id": bitrix_id})
    except BitrixCallError as err:
        if "not found" in err.description.lower():
            return handle_lead_delete(services, portal, bitrix_id)
        raise

    outcome = []
    by_person = bool(event.payload.get("has_user_token"))
    status = fields.get("STATUS_ID")
    if status and status != lead.status_id:
        moved_at = aware_time(fields.get("MOVED_TIME") or fields.get("DATE_MODIFY"))
        actor = optional_id(fields.get("MOVED_BY_ID") or fields.get("MODIFY_BY_ID"))
        with services.db.session() as session:
            session.get(Lead, lead.id).status_id = status
            # The booking KPIs count a lead that ever reached a booked status.
            kpi_sync.record_stage_move(
                session,
                portal.id,
                kpi_sync.LEAD_ENTITY,
                bitrix_id,
                status,
                moved_at or event.received_at,
            )
        if by_person and status != lead.initial_status_id:
            clocks.record_touch(
                services,
                portal,
                lead.id,
                kind="status",
                at=moved_at or event.received_at,
                user_id=actor,
            )
            outcome.append("status touch")

    assigned = optional_id(fields.get("ASSIGNED_BY_ID"))
    if assigned and assigned != lead.assigned_by_id:
        moved_at = aware_time(fields.get("DATE_MODIFY")) or event.received_at
        clocks.reassign(services, portal, lead.id, assigned, at=moved_at)
        outcome.append("reassigned")

    if portal.tag_field and _record_manual_tags(services, portal, lead, fields, event):
        # A lead taken out of spam gets a clock, and one marked spam loses it.
        clocks.apply_tags(services, portal, lead.id)
        outcome.append("manual tags")
    return ", ".join(outcome) or "no change"


def _is_echo(portal: Portal, lead: Lead, event: InboundEvent) -> bool:
    user_id = optional_id(event.payload.get("user_id"))
    if lead.last_app_write_at is None or user_id is None:
        return False
    if user_id != portal.token_user_id:
        return False
    return event.received_at - lead.last_app_write_at <= ECHO_WINDOW


def _record_manual_tags(
    services: Services,
    portal: Portal,
    lead: Lead,
    fields: dict[str, Any],
    event: InboundEvent,
) -> bool:
    raw = fields.get(portal.tag_field)
    if raw is None:
        return False
    values = raw if isinstance(raw, list) else [raw]
    by_option = {str(v): k for k, v in portal.tag_options.items()}
    on_portal = sorted({by_option[str(v)] for v in values if str(v) in by_option})
    ours = sorted(
        set(lead.tags)
        | ({"urgent"} if lead.urgent else set())
        | ({"review"} if lead.needs_review else set())
    )
    if lead.manual_tags is not None:
        ours = sorted(lead.manual_tags)
    if on_portal == ours:
        return False

    with services.db.session() as session:
        row = session.get(Lead, lead.id)
        row.manual_tags = on_portal
        session.add(
            TagFeedback(
                portal_id=portal.id,
                lead_id=lead.id,
                predicted=ours,
                corrected=on_portal,
                user_id=optional_id(event.payload.get("user_id")),
            )
        )
    logger.info(
        "manager corrected tags",
        extra={"member_id": portal.member_id, "lead_id": lead.bitrix_id},
    )
    return True


def handle_activity(
    services: Services,
    client: PortalClient,
    portal: Portal,
    activity_id: int,
    event: InboundEvent,
) -> str:
    """Stop the clock on an outgoing call, e-mail or open-line reply."""
    try:
        activity = client.call("crm.activity.get", {"id": activity_id})
    except BitrixCallError as err:
        if "not found" in err.description.lower():
            return "skipped: activity deleted"
        raise

    lead_ids = _lead_bindings(activity)
    if not lead_ids:
        return "skipped: not bound to a lead"
    touch = clocks.touch_from_activity(activity)
    if touch is None:
        return "skipped: not an outgoing communication"

    outcomes = []
    with services.db.session() as session:
        leads = session.scalars(
            select(Lead).where(
                Lead.portal_id == portal.id, Lead.bitrix_id.in_(lead_ids)
            )
        ).all()
    if not leads and event.attempts < MAX_ORDERING_RETRIES:
        raise RetryLater(f"leads {lead_ids} are not tagged yet")
    for lead in leads:
        if event.payload.get("has_user_token"):
            clocks.record_touch(
                services,
                portal,
                lead.id,
                kind=touch.kind,
                at=touch.at,
                user_id=touch.user_id,
            )
            outcomes.append(f"{touch.kind} touch")
        else:
            # Robots and bots act with no user token: only the bot tier counts it.
            clocks.record_bot_reply(services, portal, lead.id, at=touch.at)
            outcomes.append("bot reply")
    return ", ".join(outcomes) or "skipped: lead not tracked"


def _lead_bindings(activity: dict[str, Any]) -> list[int]:
    ids = set()
    if str(activity.get("OWNER_TYPE_ID")) == OWNER_TYPE_LEAD:
        ids.add(int(activity.get("OWNER_ID") or 0))
    for binding in activity.get("BINDINGS") or []:
        if (
            isinstance(binding, dict)
            and str(binding.get("OWNER_TYPE_ID")) == OWNER_TYPE_LEAD
        ):
            ids.add(int(binding.get("OWNER_ID") or 0))
    ids.discard(0)
    return sorted(ids)


def handle_lead_delete(services: Services, portal: Portal, bitrix_id: int) -> str:
    with services.db.session() as session:
        lead = session.scalar(
            select(Lead).where(Lead.portal_id == portal.id, Lead.bitrix_id == bitrix_id)
        )
        if lead is None:
            return "skipped: unknown lead"
        lead.deleted = True
        lead_id = lead.id
    clocks.cancel_clocks(services, lead_id)
    return "deleted"

"""History import: the portal's past leads, deals, activities and stage moves.

Each request is one ``batch`` of up to 50 ``start=-1`` list commands chained
by ID. Command k filters ``>ID`` on the last ID of command k-1 through a
``$result[...]`` reference. So one request reads up to 2,500 rows and counts
as one call against the portal's rate limit. The rows of a request and the
new checkpoint (``KpiImport.last_id``) are written in one transaction, so an
import stopped at any point resumes without gaps or duplicates.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from b24app import portal_settings
from b24app.bitrix.client import PortalClient
from b24app.kpi import rollup, sync
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import KpiImport
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)

PAGE = 50
LOCK_SECONDS = 120


@dataclass(frozen=True)
class Entity:
    name: str
    method: str
    params: dict[str, Any]
    items_key: str | None = None


ENTITIES: tuple[Entity, ...] = (
    Entity("leads", "crm.lead.list", {"select": sync.LEAD_SELECT}),
    Entity(
        "activities",
        "crm.activity.list",
        {"select": sync.ACTIVITY_SELECT, "filter": {"OWNER_TYPE_ID": 1}},
    ),
    Entity(
        "lead_history",
        "crm.stagehistory.list",
        {"entityTypeId": 1, "select": ["ID", "OWNER_ID", "STATUS_ID", "CREATED_TIME"]},
        items_key="items",
    ),
    Entity("deals", "crm.deal.list", {"select": sync.DEAL_SELECT}),
    Entity(
        "deal_history",
        "crm.stagehistory.list",
        {"entityTypeId": 2, "select": ["ID", "OWNER_ID", "STAGE_ID", "CREATED_TIME"]},
        items_key="items",
    ),
)
BY_NAME = {entity.name: entity for entity in ENTITIES}


def start_import(services: Services, portal: Portal, *, restart: bool = False) -> None:
    """Create the checkpoints (idempotent); ``restart`` reads everything again."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        existing = {
            row.entity: row
            for row in session.scalars(
                select(KpiImport).where(KpiImport.portal_id == portal.id)
            )
        }
        for entity in ENTITIES:
            row = existing.get(entity.name)
            if row is None:
                session.add(
                    KpiImport(
                        portal_id=portal.id,
                        entity=entity.name,
                        status="pending",
                        last_id=0,
                        rows_done=0,
                        requests=0,
                        started_at=now,
                        updated_at=now,
                    )
                )
            elif restart or row.status == "failed":
                row.status = "pending"
                row.error = None
                row.finished_at = None
                row.updated_at = now
                if restart:
                    row.last_id = row.rows_done = row.requests = 0
                    row.rows_total = None
                    row.started_at = now


def run_import(
    services: Services,
    portal: Portal,
    *,
    batch_size: int = 50,
    max_requests: int | None = None,
    budget_seconds: float | None = None,
) -> int:
    """Advance the portal's pending imports; return the number of requests made.

    Stops at ``max_requests`` or ``budget_seconds``; the next call resumes.
    """
    client = services.client(portal)
    cfg = kpi_settings.load(services, portal)
    tz = portal_settings.timezone(portal)
    deadline = time.monotonic() + budget_seconds if budget_seconds else None
    requests_made = 0
    for entity in ENTITIES:
        if not _claim(services, portal.id, entity.name):
            continue
        try:
            while True:
                if max_requests is not None and requests_made >= max_requests:
                    return requests_made
                if deadline is not None and time.monotonic() >= deadline:
                    return requests_made
                done = _step(services, client, portal, entity, cfg, tz, batch_size)
                requests_made += 1
                if done:
                    break
        except Exception as err:
            _release(services, portal.id, entity.name, error=str(err)[:500])
            logger.warning(
                "history import stopped",
                extra={"member_id": portal.member_id, "entity": entity.name},
            )
            raise
        finally:
            _release(services, portal.id, entity.name)
            if requests_made:
                # Stored per-day counts may predate the rows just imported.
                rollup.invalidate(services, portal.id)
    return requests_made


def _claim(services: Services, portal_id: int, entity: str) -> bool:
    now = datetime.now(UTC)
    with services.db.session() as session:
        result = session.execute(
            update(KpiImport)
            .where(
                KpiImport.portal_id == portal_id,
                KpiImport.entity == entity,
                KpiImport.status.in_(("pending", "running")),
                or_(KpiImport.locked_until.is_(None), KpiImport.locked_until < now),
            )
            .values(
                status="running",
                locked_until=now + timedelta(seconds=LOCK_SECONDS),
                error=None,
            )
        )
        return result.rowcount == 1


def _release(
    services: Services, portal_id: int, entity: str, error: str | None = None
) -> None:
    values: dict[str, Any] = {"locked_until": None}
    if error is not None:
        values["error"] = error
    with services.db.session() as session:
        session.execute(
            update(KpiImport)
            .where(KpiImport.portal_id == portal_id, KpiImport.entity == entity)
            .values(**values)
        )


def _step(
    services: Services,
    client: PortalClient,
    portal: Portal,
    entity: Entity,
    cfg: kpi_settings.KpiConfig,
    tz: str,
    batch_size: int,
) -> bool:
    """Read one batch, store it with the new checkpoint; True when finished."""
    with services.db.session() as session:
        state = session.scalars(
            select(KpiImport).where(
                KpiImport.portal_id == portal.id, KpiImport.entity == entity.name
            )
        ).one()
        last_id, need_total = state.last_id, state.rows_total is None
        known_total, done = state.rows_total, state.rows_done

    total = None
    if need_total:
        # A plain page (start=0) returns the total, shown by the progress bar.
        answer = client.call_raw(
            entity.method, {**entity.params, "select": ["ID"], "start": 0}
        )
        total = int(answer.get("total") or 0)
        known_total = total

    # Commands after the last full page would refer to a row that does not
    # exist, so the batch holds only as many pages as remain, plus one for
    # rows added since the total was read.
    remaining = max((known_total or 0) - done, 0)
    pages = min(batch_size, remaining // PAGE + 1)
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    keys = [f"p{i}" for i in range(pages)]
    for index, key in enumerate(keys):
        cursor: Any = last_id
        if index:
            path = f"[{entity.items_key}]" if entity.items_key else ""
            cursor = f"$result[{keys[index - 1]}]{path}[{PAGE - 1}][ID]"
        base_filter = dict(entity.params.get("filter") or {})
        params = dict(entity.params)
        if entity.name == "deals":
            params["select"] = sync.deal_select(cfg)
        commands[key] = (
            entity.method,
            {
                **params,
                "filter": base_filter | {">ID": cursor},
                "order": {"ID": "ASC"},
                "start": -1,
            },
        )

    results, errors = client.batch(commands)
    rows: list[dict[str, Any]] = []
    finished = False
    for key in keys:
        if key in errors:
            raise RuntimeError(f"{entity.method} failed: {errors[key]}")
        page = results.get(key)
        if entity.items_key and isinstance(page, dict):
            page = page.get(entity.items_key)
        if not isinstance(page, list):
            raise RuntimeError(f"{entity.method} gave no list for {key}")
        rows.extend(page)
        if len(page) < PAGE:
            finished = True
            break

    now = datetime.now(UTC)
    with services.db.session() as session:
        _store(session, portal.id, entity, rows, tz, cfg)
        values: dict[str, Any] = {
            "last_id": max([last_id, *(int(r["ID"]) for r in rows)]),
            "rows_done": KpiImport.rows_done + len(rows),
            "requests": KpiImport.requests + 1,
            "updated_at": now,
            "locked_until": now + timedelta(seconds=LOCK_SECONDS),
        }
        if total is not None:
            values["rows_total"] = total
        if finished:
            values |= {"status": "done", "finished_at": now}
        session.execute(
            update(KpiImport)
            .where(KpiImport.portal_id == portal.id, KpiImport.entity == entity.name)
            .values(**values)
        )
    return finished


def _store(session, portal_id, entity, rows, tz, cfg) -> None:
    if entity.name == "leads":
        sync.insert_leads(session, portal_id, rows, tz)
    elif entity.name == "activities":
        sync.apply_activities(session, portal_id, rows, tz)
    elif entity.name == "deals":
        sync.upsert_deals(session, portal_id, rows, cfg, tz)
    elif entity.name == "lead_history":
        sync.insert_stage_moves(session, portal_id, 1, rows, tz)
    else:
        sync.insert_stage_moves(session, portal_id, 2, rows, tz)


def progress(services: Services, portal: Portal, rate: float) -> dict[str, Any]:
    """Counts per entity and an estimate of the time left at ``rate`` requests/s."""
    with services.db.session() as session:
        rows = session.scalars(
            select(KpiImport).where(KpiImport.portal_id == portal.id)
        ).all()
    if not rows:
        return {"status": "not_started", "entities": [], "share": None}
    entities = []
    done_rows = total_rows = 0
    for row in sorted(rows, key=lambda r: list(BY_NAME).index(r.entity)):
        total = max(row.rows_total or 0, row.rows_done)
        done_rows += row.rows_done
        total_rows += total
        entities.append(
            {
                "entity": row.entity,
                "status": row.status,
                "rows_done": row.rows_done,
                "rows_total": row.rows_total,
                "requests": row.requests,
                "error": row.error,
            }
        )
    remaining = max(total_rows - done_rows, 0)
    statuses = {row.status for row in rows}
    overall = (
        "done"
        if statuses == {"done"}
        else "failed"
        if "failed" in statuses
        else "running"
    )
    return {
        "status": overall,
        "rows_done": done_rows,
        "rows_total": total_rows,
        "share": share_of(done_rows, total_rows) if overall != "done" else 1.0,
        "eta_seconds": round(remaining / (PAGE * PAGE * rate), 1) if rate else None,
        "entities": entities,
    }


def share_of(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None

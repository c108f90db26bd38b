"""Live deal events: deletions and stage moves reach the stored KPI rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from b24app.emulator import crm
from b24app.emulator.events import AUTOMATION
from b24app.kpi import history, sync
from b24app.kpi.feature import on_deal, reconcile_portal
from b24app.kpi.models import KpiDeal, KpiStageMove
from tests.helpers import drain, lead_row

DEAL = {
    "TITLE": "Окрашивание",
    "CATEGORY_ID": 1,
    "OPPORTUNITY": "2500.00",
    "CONTACT_ID": 77,
}


def _deal(services, bitrix_id):
    with services.db.session() as session:
        row = session.scalar(select(KpiDeal).where(KpiDeal.bitrix_id == bitrix_id))
        if row is not None:
            session.expunge(row)
        return row


def _moves(services, owner_id):
    with services.db.session() as session:
        return session.execute(
            select(KpiStageMove.stage_id, KpiStageMove.bitrix_id).where(
                KpiStageMove.entity_type == sync.DEAL_ENTITY,
                KpiStageMove.owner_id == owner_id,
            )
        ).all()


def test_deal_delete_event_marks_deal_deleted(emulator, services, installed, worker):
    deal_id = crm.add_deal(emulator.portal, DEAL, AUTOMATION)
    drain(worker, services, until=lambda: _deal(services, deal_id))

    crm.delete_deal(emulator.portal, deal_id, AUTOMATION)
    drain(worker, services, until=lambda: _deal(services, deal_id).deleted)

    assert _deal(services, deal_id).deleted is True


def test_stage_move_from_update_recorded_once(emulator, services, installed, worker):
    deal_id = crm.add_deal(emulator.portal, DEAL, AUTOMATION)
    drain(worker, services, until=lambda: _deal(services, deal_id))

    crm.update_deal(emulator.portal, deal_id, {"STAGE_ID": "C1:WON"}, AUTOMATION)
    drain(worker, services, until=lambda: _moves(services, deal_id))
    # Reading the deal again (a later update, the hourly reconciliation)
    # without a stage change adds no move.
    on_deal(services, services.client(installed), installed, deal_id, None)
    reconcile_portal(services, installed)

    assert _moves(services, deal_id) == [("C1:WON", None)]


def test_history_row_replaces_live_move(emulator, services, installed, worker):
    deal_id = crm.add_deal(emulator.portal, DEAL, AUTOMATION)
    drain(worker, services, until=lambda: _deal(services, deal_id))
    crm.update_deal(emulator.portal, deal_id, {"STAGE_ID": "C1:WON"}, AUTOMATION)
    drain(worker, services, until=lambda: _moves(services, deal_id))

    history.start_import(services, installed)
    history.run_import(services, installed)

    stages = _moves(services, deal_id)
    assert [stage for stage, _ in stages].count("C1:WON") == 1
    assert all(bitrix_id is not None for _, bitrix_id in stages)


def test_live_move_known_to_history_is_skipped(services, installed):
    moved = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with services.db.session() as session:
        sync.insert_stage_moves(
            session,
            installed.id,
            sync.DEAL_ENTITY,
            [
                {
                    "ID": 31,
                    "OWNER_ID": 9,
                    "STAGE_ID": "C1:WON",
                    "CREATED_TIME": moved.isoformat(),
                }
            ],
            "Europe/Moscow",
        )
        for _ in range(2):
            sync.record_stage_move(
                session,
                installed.id,
                sync.DEAL_ENTITY,
                9,
                "C1:WON",
                moved + timedelta(seconds=1),
            )
            sync.record_stage_move(
                session, installed.id, sync.DEAL_ENTITY, 9, "C1:LOSE", moved
            )

    assert sorted(_moves(services, 9)) == [("C1:LOSE", None), ("C1:WON", 31)]


def test_lead_status_move_recorded_from_update(emulator, services, installed, worker):
    lead_id = crm.add_lead(
        emulator.portal, {"TITLE": "Запись на стрижку", "NAME": "Ольга"}, AUTOMATION
    )
    drain(worker, services, until=lambda: lead_row(services, lead_id))

    crm.update_lead(emulator.portal, lead_id, {"STATUS_ID": "IN_PROCESS"}, AUTOMATION)
    drain(
        worker,
        services,
        until=lambda: ("IN_PROCESS", None) in _lead_moves(services, lead_id),
    )

    assert _lead_moves(services, lead_id).count(("IN_PROCESS", None)) == 1


def _lead_moves(services, owner_id):
    with services.db.session() as session:
        return session.execute(
            select(KpiStageMove.stage_id, KpiStageMove.bitrix_id).where(
                KpiStageMove.entity_type == sync.LEAD_ENTITY,
                KpiStageMove.owner_id == owner_id,
            )
        ).all()

"""History import through batched ID-cursor reads, resumed after a crash."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from b24app.bitrix.errors import BitrixCallError
from b24app.emulator.history import generate_history
from b24app.kpi import history
from b24app.kpi.models import KpiDeal, KpiImport, KpiStageMove
from b24app.models import Lead
from tests.helpers import drain

LEADS, DEALS = 260, 120


def _portal_deals(emulator) -> int:
    return sum(
        1 for d in emulator.portal.deals.values() if str(d["CATEGORY_ID"]) == "1"
    )


def _count(services, model, *where):
    with services.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def past(emulator, installed):
    return generate_history(emulator.portal, leads=LEADS, deals=DEALS, days=60)


def test_import_reads_everything(emulator, services, installed, past):
    history.start_import(services, installed)

    requests = history.run_import(services, installed)

    assert _count(services, Lead) == LEADS
    assert _count(services, KpiDeal, KpiDeal.category_id == 1) == _portal_deals(
        emulator
    )
    assert _count(services, Lead, Lead.first_touch_at.is_not(None)) > LEADS // 2
    assert _count(services, KpiStageMove) > LEADS
    assert requests == 5


def test_import_resumes_after_crash(emulator, services, installed, past):
    history.start_import(services, installed)
    history.run_import(services, installed, batch_size=2, max_requests=1)
    emulator.portal.set_fault("batch", "INTERNAL_SERVER_ERROR", times=1)

    with pytest.raises(BitrixCallError):
        history.run_import(services, installed, batch_size=2)
    with services.db.session() as session:
        stopped = session.scalar(select(KpiImport).where(KpiImport.entity == "leads"))
    history.run_import(services, installed, batch_size=2)

    assert stopped.rows_done == 100
    assert stopped.status == "running"
    assert _count(services, Lead) == LEADS
    assert _count(services, KpiDeal, KpiDeal.category_id == 1) == _portal_deals(
        emulator
    )


def test_import_progress(services, installed, past):
    history.start_import(services, installed)
    history.run_import(services, installed, batch_size=2, max_requests=1)

    progress = history.progress(services, installed, rate=2.0)

    assert progress["status"] == "running"
    assert progress["rows_done"] == 100
    assert progress["entities"][0]["rows_total"] == LEADS
    assert progress["eta_seconds"] is not None


def test_deal_event_stores_deal(emulator, services, installed, worker):
    from b24app.emulator import crm
    from b24app.emulator.events import AUTOMATION

    new_id = crm.add_deal(
        emulator.portal,
        {"TITLE": "Стрижка", "CATEGORY_ID": 1, "OPPORTUNITY": "1500.00"},
        AUTOMATION,
    )
    crm.update_deal(emulator.portal, new_id, {"STAGE_ID": "C1:WON"}, AUTOMATION)

    drain(
        worker,
        services,
        until=lambda: _count(
            services, KpiDeal, KpiDeal.bitrix_id == new_id, KpiDeal.stage_id == "C1:WON"
        ),
    )
    with services.db.session() as session:
        row = session.scalar(select(KpiDeal).where(KpiDeal.bitrix_id == new_id))
    assert row.amount == 1500.0
    assert row.appointment_at is not None


def test_reconcile_repairs_missed_deal(emulator, services, installed):
    from b24app.emulator import crm
    from b24app.emulator.events import AUTOMATION
    from b24app.kpi.feature import reconcile_portal

    # No worker runs here, so the deal's event is never processed: only the
    # reconciliation can bring the deal in.
    deal_id = crm.add_deal(
        emulator.portal,
        {"TITLE": "Маникюр", "CATEGORY_ID": 1, "OPPORTUNITY": "900.00"},
        AUTOMATION,
    )

    found = reconcile_portal(services, installed)

    assert found >= 1
    assert _count(services, KpiDeal, KpiDeal.bitrix_id == deal_id) == 1


def test_user_field_appointment_time_read(emulator, services, installed):
    from datetime import UTC, datetime

    from b24app.emulator import crm
    from b24app.emulator.events import AUTOMATION
    from b24app.kpi import settings as kpi_settings
    from b24app.kpi.feature import reconcile_portal

    # The seeded portal has the deal field UF_CRM_APPOINTMENT_AT (date and time).
    cfg = kpi_settings.load(services, installed)
    kpi_settings.save(
        services,
        installed,
        mapping={**cfg.mapping, "appointment_field": "UF_CRM_APPOINTMENT_AT"},
    )
    first = crm.add_deal(
        emulator.portal,
        {"CATEGORY_ID": 1, "UF_CRM_APPOINTMENT_AT": "2026-12-10T14:30:00+03:00"},
        AUTOMATION,
    )
    history.start_import(services, installed)
    history.run_import(services, installed)
    second = crm.add_deal(
        emulator.portal,
        {"CATEGORY_ID": 1, "UF_CRM_APPOINTMENT_AT": "2026-12-11T10:00:00+03:00"},
        AUTOMATION,
    )
    reconcile_portal(services, installed)

    with services.db.session() as session:
        times = dict(
            session.execute(
                select(KpiDeal.bitrix_id, KpiDeal.appointment_at).where(
                    KpiDeal.bitrix_id.in_([first, second])
                )
            ).all()
        )
    assert times == {
        first: datetime(2026, 12, 10, 11, 30, tzinfo=UTC),
        second: datetime(2026, 12, 11, 7, 0, tzinfo=UTC),
    }


def test_imported_leads_have_response_times(emulator, services, installed, past):
    from datetime import UTC, datetime, timedelta

    from b24app.kpi.first_response import first_response_report

    history.start_import(services, installed)
    history.run_import(services, installed)

    today = datetime.now(UTC).date()
    report = first_response_report(
        services, installed, today - timedelta(days=61), today
    )

    # No SLA clock ran for these leads; creation to first touch counts.
    assert report["first_response_minutes"]["median"] is not None

"""New leads end to end: emulator event → app → worker → tags on the portal."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from b24app.models import InboundEvent, SlaClock, TagFeedback
from b24app.pipeline import timeline_comment
from b24app.tagging.types import Classification
from tests.helpers import drain, events_stored, lead_row

MANAGER = 4


def _tagged(services, lead_id):
    return lambda: (row := lead_row(services, lead_id)) is not None and row.tagged_at


def _uf_values(emulator, installed, lead_id) -> list[str]:
    value = emulator.portal.leads[lead_id].get(installed.tag_field) or []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _codes(installed, option_ids):
    by_option = {v: k for k, v in installed.tag_options.items()}
    return sorted(by_option[o] for o in option_ids)


def test_form_lead_gets_tags_and_comment(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"TITLE": "Заявка с сайта", "ASSIGNED_BY_ID": MANAGER},
        kind="form",
        message="Здравствуйте! Хочу записаться на маникюр завтра в 15:00, "
        "сколько стоит? Анна",
    )

    drain(worker, services, until=_tagged(services, lead_id))

    row = lead_row(services, lead_id)
    assert "booking" in row.tags
    assert "price" in row.tags
    assert row.text_source == "comments"
    assert set(_codes(installed, _uf_values(emulator, installed, lead_id))) >= {
        "booking",
        "price",
    }
    comments = [
        c
        for c in emulator.portal.timeline_comments.snapshot()
        if int(c["ENTITY_ID"]) == lead_id
    ]
    assert len(comments) == 1
    assert comments[0]["COMMENT"].startswith("Отклик: ")
    assert "Запись" in comments[0]["COMMENT"]


def test_openline_lead_reads_first_message(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER},
        kind="openline",
        message="добрый день, как отменить запись на завтра? не смогу прийти",
    )

    drain(worker, services, until=_tagged(services, lead_id))

    row = lead_row(services, lead_id)
    assert row.text_source == "openline"
    assert "cancel" in row.tags
    # The empty COMMENTS field is filled with the client's words.
    assert "отменить" in (emulator.portal.leads[lead_id].get("COMMENTS") or "")


def test_lead_is_tagged_once(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER}, kind="form", message="Сколько стоит стрижка?"
    )

    drain(worker, services, until=_tagged(services, lead_id))
    drain(worker, services)

    comments = [
        c
        for c in emulator.portal.timeline_comments.snapshot()
        if int(c["ENTITY_ID"]) == lead_id
    ]
    assert len(comments) == 1
    with services.db.session() as session:
        clocks = session.scalars(
            select(SlaClock).where(SlaClock.lead_id == lead_row(services, lead_id).id)
        ).all()
    # A web-form lead gets no bot clock because no bot can reply there.
    assert sorted(c.tier for c in clocks) == ["human"]


def test_own_write_echo_does_no_work(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER}, kind="form", message="Есть окошко на пятницу?"
    )
    drain(worker, services, until=_tagged(services, lead_id))
    drain(worker, services)

    updates = [
        e
        for e in events_stored(services, "ONCRMLEADUPDATE")
        if e.payload["data"]["FIELDS"]["ID"] == str(lead_id)
    ]
    assert updates, "the app's write should echo back as an update event"
    assert all(e.outcome == "skipped: echo of the app's write" for e in updates)


def test_outgoing_call_stops_clock(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER},
        kind="form",
        message="Запишите на стрижку в субботу",
    )
    drain(worker, services, until=_tagged(services, lead_id))

    emulator.portal.add_activity(
        lead_id, type_id=2, direction=2, author_id=MANAGER, subject="Звонок клиенту"
    )
    drain(worker, services, until=lambda: lead_row(services, lead_id).first_touch_at)

    row = lead_row(services, lead_id)
    assert row.first_touch_kind == "call"
    with services.db.session() as session:
        human = session.scalar(
            select(SlaClock).where(SlaClock.lead_id == row.id, SlaClock.tier == "human")
        )
    assert human.stopped_at is not None
    assert human.state == "met"


def test_automation_status_change_is_not_a_touch(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER}, kind="form", message="Подскажите адрес студии"
    )
    drain(worker, services, until=_tagged(services, lead_id))

    emulator.portal.change_lead_status(lead_id, "IN_PROCESS", actor_id="automation")
    drain(
        worker,
        services,
        until=lambda: lead_row(services, lead_id).status_id == "IN_PROCESS",
    )

    assert lead_row(services, lead_id).first_touch_at is None


def test_status_change_by_manager_is_a_touch(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER}, kind="form", message="Хочу на массаж спины"
    )
    drain(worker, services, until=_tagged(services, lead_id))

    emulator.portal.change_lead_status(lead_id, "IN_PROCESS", actor_id=MANAGER)
    drain(worker, services, until=lambda: lead_row(services, lead_id).first_touch_at)

    assert lead_row(services, lead_id).first_touch_kind == "status"


def test_manual_tags_are_kept(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER}, kind="form", message="Сколько стоит окрашивание?"
    )
    drain(worker, services, until=_tagged(services, lead_id))

    complaint = installed.tag_options["complaint"]
    emulator.portal.update_lead(
        lead_id, {installed.tag_field: [complaint]}, actor_id=MANAGER
    )
    drain(worker, services, until=lambda: lead_row(services, lead_id).manual_tags)

    row = lead_row(services, lead_id)
    assert row.manual_tags == ["complaint"]
    with services.db.session() as session:
        feedback = session.scalars(select(TagFeedback)).all()
    assert len(feedback) == 1
    assert feedback[0].corrected == ["complaint"]
    assert _uf_values(emulator, installed, lead_id) == [complaint]


def test_deleted_lead_is_skipped(emulator, installed, services, worker):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER}, kind="form", message="Запись на завтра"
    )
    services.client(installed).call("crm.lead.delete", {"id": lead_id})

    drain(worker, services, until=lambda: events_stored(services, "ONCRMLEADDELETE"))

    with services.db.session() as session:
        events = session.scalars(select(InboundEvent)).all()
    outcomes = {e.event: e.outcome for e in events}
    assert all(e.status == "done" for e in events)
    assert outcomes["ONCRMLEADADD"] == "skipped: lead deleted"
    assert lead_row(services, lead_id) is None


def test_timeline_comment_booked_and_desired_time():
    moscow = ZoneInfo("Europe/Moscow")
    result = Classification(
        tags=["reschedule"],
        urgent=False,
        appointment_time=datetime(2026, 12, 18, 15, tzinfo=moscow),
        appointment_time_precision="hour",
        desired_time=datetime(2026, 12, 22, tzinfo=moscow),
        desired_time_precision="day",
    )

    comment = timeline_comment(result, "Europe/Moscow")

    assert "время записи — 18.12.2026 15:00" in comment
    assert "желаемое время — 22.12.2026" in comment

"""The bot tier: only automatic replies meet it, only chat leads have it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from b24app.models import Lead, Portal, SlaClock
from b24app.sla import clocks, escalation, reconcile
from tests.helpers import drain, lead_row
from tests.sla.support import MANAGER, configure, new_lead, now


def _chat_lead(emulator, services, worker, text="Хочу записаться на стрижку"):
    lead_id = emulator.portal.create_lead(
        {"ASSIGNED_BY_ID": MANAGER}, kind="openline", message=text
    )
    drain(
        worker,
        services,
        until=lambda: (r := lead_row(services, lead_id)) and r.tagged_at,
    )
    return lead_id


def _clocks(services, bitrix_id: int) -> dict[str, SlaClock]:
    with services.db.session() as session:
        rows = session.scalars(
            select(SlaClock)
            .join(Lead, SlaClock.lead_id == Lead.id)
            .where(Lead.bitrix_id == bitrix_id)
        ).all()
    return {clock.tier: clock for clock in rows}


def _portal(services, portal_id: int) -> Portal:
    with services.db.session() as session:
        return session.get(Portal, portal_id)


def _touch(services, installed, bitrix_id: int, at):
    row = lead_row(services, bitrix_id)
    return clocks.record_touch(
        services,
        _portal(services, installed.id),
        row.id,
        kind="call",
        at=at,
        user_id=MANAGER,
    )


def _bot_reply(services, installed, bitrix_id: int, at):
    row = lead_row(services, bitrix_id)
    clocks.record_bot_reply(services, _portal(services, installed.id), row.id, at=at)


def test_form_lead_has_no_bot_clock(emulator, installed, services, worker):
    configure(services, installed.id)
    lead_id = new_lead(emulator, services, worker)

    assert sorted(_clocks(services, lead_id)) == ["human"]


def test_chat_lead_has_bot_clock(emulator, installed, services, worker):
    configure(services, installed.id)
    lead_id = _chat_lead(emulator, services, worker)

    assert sorted(_clocks(services, lead_id)) == ["bot", "human"]


def test_bot_channels_setting_adds_forms(emulator, installed, services, worker):
    configure(services, installed.id, policy={"bot_channels": ["openline", "site"]})
    lead_id = new_lead(emulator, services, worker)

    assert sorted(_clocks(services, lead_id)) == ["bot", "human"]


def test_person_touch_in_time_cancels_bot_clock(emulator, installed, services, worker):
    configure(services, installed.id, policy={"bot_seconds": 600})
    lead_id = _chat_lead(emulator, services, worker)
    touched_at = now()

    assert _touch(services, installed, lead_id, touched_at)

    tiers = _clocks(services, lead_id)
    assert tiers["human"].state == "met"
    assert tiers["bot"].state == "cancelled"
    assert tiers["bot"].stopped_at == touched_at
    assert tiers["bot"].breached_at is None


def test_earlier_bot_reply_replaces_cancellation(emulator, installed, services, worker):
    configure(services, installed.id, policy={"bot_seconds": 600})
    lead_id = _chat_lead(emulator, services, worker)
    touched_at = now()
    _touch(services, installed, lead_id, touched_at)

    # The bot's reply came first, but its event arrived after the call's.
    replied_at = touched_at - timedelta(seconds=1)
    _bot_reply(services, installed, lead_id, replied_at)

    bot = _clocks(services, lead_id)["bot"]
    assert bot.state == "met"
    assert bot.stopped_at == replied_at


def test_later_bot_reply_keeps_cancellation(emulator, installed, services, worker):
    configure(services, installed.id, policy={"bot_seconds": 600})
    lead_id = _chat_lead(emulator, services, worker)
    touched_at = now()
    _touch(services, installed, lead_id, touched_at)

    _bot_reply(services, installed, lead_id, touched_at + timedelta(seconds=5))

    bot = _clocks(services, lead_id)["bot"]
    assert bot.state == "cancelled"
    assert bot.stopped_at == touched_at


def test_person_touch_after_bot_due_keeps_breach(emulator, installed, services, worker):
    configure(services, installed.id, policy={"bot_seconds": 30})
    lead_id = _chat_lead(emulator, services, worker)
    bot = _clocks(services, lead_id)["bot"]
    touched_at = bot.due_at + timedelta(minutes=5)

    # Move the bot clock ten minutes back, so that a touch five minutes after
    # its due time lies in the past.
    with services.db.session() as session:
        clock = session.get(SlaClock, bot.id)
        clock.due_at -= timedelta(minutes=10)
        clock.starts_at -= timedelta(minutes=10)
    touched_at -= timedelta(minutes=10)
    _touch(services, installed, lead_id, touched_at)

    bot = _clocks(services, lead_id)["bot"]
    assert bot.state == "breached"
    # No stop time: the person's reply is not the bot's reply time.
    assert bot.stopped_at is None

    view = clocks.clock_view(
        bot,
        _portal(services, installed.id),
        now(),
        first_touch_at=touched_at,
    )
    assert view["answered_by_person"] is True
    assert view["overdue_minutes"] == 5.0


def test_bot_reply_meets_bot_clock_only(emulator, installed, services, worker):
    configure(services, installed.id)
    lead_id = _chat_lead(emulator, services, worker)

    _bot_reply(services, installed, lead_id, now())

    tiers = _clocks(services, lead_id)
    assert tiers["bot"].state == "met"
    assert tiers["human"].stopped_at is None


def test_lead_tab_says_bot_not_needed(emulator, installed, services, worker):
    configure(services, installed.id, policy={"bot_seconds": 600})
    lead_id = _chat_lead(emulator, services, worker)
    _touch(services, installed, lead_id, now())

    response = emulator.portal.open_placement(
        "CRM_LEAD_DETAIL_TAB", {"ID": str(lead_id)}, MANAGER
    )

    assert 'data-tier="bot" data-state="cancelled"' in response.text
    assert "не понадобился: менеджер ответил раньше бота" in response.text
    assert "ответ за 0 мин" not in response.text


def _form_lead_with_old_bot_clock(emulator, installed, services, worker) -> int:
    """A form lead tagged while forms had a bot, then forms taken off the list."""
    configure(services, installed.id, policy={"bot_channels": ["openline", "site"]})
    lead_id = new_lead(emulator, services, worker)
    configure(services, installed.id)
    return lead_id


def _lapse_bot_clock(services, bitrix_id: int, *, breached: bool) -> None:
    bot = _clocks(services, bitrix_id)["bot"]
    with services.db.session() as session:
        clock = session.get(SlaClock, bot.id)
        clock.starts_at -= timedelta(minutes=10)
        clock.due_at -= timedelta(minutes=10)
        clock.next_check_at = None if breached else clock.due_at
        if breached:
            clock.state = "breached"
            clock.breached_at = clock.due_at


def test_sweep_cancels_off_channel_bot_clock(emulator, installed, services, worker):
    lead_id = _form_lead_with_old_bot_clock(emulator, installed, services, worker)
    _lapse_bot_clock(services, lead_id, breached=False)

    escalation.sweep(services)

    bot = _clocks(services, lead_id)["bot"]
    assert bot.state == "cancelled"
    assert bot.breached_at is None
    assert bot.next_check_at is None


def test_reconcile_cancels_off_channel_bot_clock(emulator, installed, services, worker):
    form_lead = _form_lead_with_old_bot_clock(emulator, installed, services, worker)
    chat_lead = _chat_lead(emulator, services, worker)
    _lapse_bot_clock(services, form_lead, breached=True)
    _lapse_bot_clock(services, chat_lead, breached=True)

    reconcile.reconcile_portal(services, _portal(services, installed.id))

    form_bot = _clocks(services, form_lead)["bot"]
    assert form_bot.state == "cancelled"
    assert form_bot.breached_at is None
    assert form_bot.stopped_at is None
    assert _clocks(services, chat_lead)["bot"].state == "breached"


def test_reconcile_keeps_met_off_channel_bot_clock(
    emulator, installed, services, worker
):
    lead_id = _form_lead_with_old_bot_clock(emulator, installed, services, worker)
    replied_at = now()
    _bot_reply(services, installed, lead_id, replied_at)

    reconcile.reconcile_portal(services, _portal(services, installed.id))

    bot = _clocks(services, lead_id)["bot"]
    assert bot.state == "met"
    assert bot.stopped_at == replied_at

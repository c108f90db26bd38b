"""Chat replies handled once per message, and consent asked in the chat."""

from __future__ import annotations

from sqlalchemy import select, update

from b24app.emulator.methods import openlines
from b24app.models import InboundEvent
from b24app.reminders import consent, dispatch, replies
from b24app.reminders.models import Consent, Reply
from tests.helpers import drain
from tests.reminders.support import appointment, new_appointment


def _replies(services) -> list[Reply]:
    with services.db.session() as session:
        return list(session.scalars(select(Reply).order_by(Reply.id)))


def _chat_events(services) -> list[InboundEvent]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(InboundEvent)
                .where(InboundEvent.event == "ONIMBOTMESSAGEADD")
                .order_by(InboundEvent.id)
            )
        )


def _consent_row(services, portal_id: int, key: str) -> Consent | None:
    with services.db.session() as session:
        return session.scalar(
            select(Consent).where(
                Consent.portal_id == portal_id,
                Consent.contact_key == key,
                Consent.channel == "openline",
            )
        )


def _bot_texts(emulator, chat_id: int) -> list[str]:
    return [m["TEXT"] for m in emulator.portal.messages_to_client(chat_id)]


def _reminded(emulator, services, worker, portal):
    deal_id, row = new_appointment(emulator, services, worker)
    chat_id = emulator.portal.open_crm_chat("deal", deal_id)
    consent.grant(services, portal.id, f"deal:{deal_id}", "openline", source="form")
    dispatch.dispatch_due(services)
    return deal_id, chat_id


def _capture_bot_events(emulator, monkeypatch) -> list[tuple]:
    sent: list[tuple] = []
    events = emulator.portal.events
    original = events.send

    def keep(event, url, data, auth, handler_id=None):
        sent.append((event, url, data, auth, handler_id))
        original(event, url, data, auth, handler_id)

    monkeypatch.setattr(events, "send", keep)
    return sent


def _notifications(emulator) -> int:
    return len(emulator.portal.notifications)


# Idempotency


def test_redelivered_event_changes_nothing(
    emulator, services, worker, reminder_portal, monkeypatch
):
    deal_id, chat_id = _reminded(emulator, services, worker, reminder_portal)
    sent = _capture_bot_events(emulator, monkeypatch)
    emulator.portal.client_reply(chat_id, "3")
    drain(worker, services, until=lambda: _replies(services))
    notified = _notifications(emulator)
    bot_texts = _bot_texts(emulator, chat_id)

    event, url, data, auth, handler_id = sent[-1]
    emulator.portal.events.send(event, url, data, auth, handler_id)
    emulator.portal.events.wait_idle()
    drain(worker, services)

    assert len(_replies(services)) == 1
    assert len(_chat_events(services)) == 1
    assert _notifications(emulator) == notified
    assert _bot_texts(emulator, chat_id) == bot_texts
    assert appointment(services, deal_id).status == "cancelled"


def test_retried_event_acts_once(emulator, services, worker, reminder_portal):
    _, chat_id = _reminded(emulator, services, worker, reminder_portal)
    emulator.portal.client_reply(chat_id, "А парковка у вас есть?")
    drain(worker, services, until=lambda: _replies(services))
    notified = _notifications(emulator)
    bot_texts = _bot_texts(emulator, chat_id)

    # A worker that died mid-way leaves the mark and the event to be requeued.
    with services.db.session() as session:
        session.execute(
            update(InboundEvent)
            .where(InboundEvent.event == "ONIMBOTMESSAGEADD")
            .values(status="pending", outcome=replies.STARTED)
        )
    drain(worker, services)

    assert len(_replies(services)) == 1
    assert _notifications(emulator) == notified
    assert _bot_texts(emulator, chat_id) == bot_texts
    assert _chat_events(services)[0].outcome == "skipped: message already handled"


# Consent in the chat


def _unconsented_chat(emulator, services, worker):
    deal_id, _ = new_appointment(emulator, services, worker)
    chat_id = openlines.open_crm_chat(
        emulator.portal, "deal", deal_id, with_line_bots=True
    )
    return deal_id, chat_id


def _say(emulator, services, worker, chat_id: int, text: str) -> None:
    before = len(_chat_events(services))
    emulator.portal.client_reply(chat_id, text)
    drain(worker, services, until=lambda: len(_chat_events(services)) > before)


def test_chat_asks_consent_once(emulator, services, worker, reminder_portal):
    _, chat_id = _unconsented_chat(emulator, services, worker)
    _say(emulator, services, worker, chat_id, "Здравствуйте!")
    _say(emulator, services, worker, chat_id, "Подскажите адрес")

    questions = [t for t in _bot_texts(emulator, chat_id) if t == consent.CHAT_QUESTION]
    assert len(questions) == 1


def test_chat_yes_grants_consent(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _unconsented_chat(emulator, services, worker)
    _say(emulator, services, worker, chat_id, "Здравствуйте!")
    _say(emulator, services, worker, chat_id, "Да")

    row = _consent_row(services, reminder_portal.id, f"deal:{deal_id}")
    assert (row.status, row.source) == ("granted", "chat")
    assert row.granted_at is not None


def test_chat_consent_lets_reminder_through(
    emulator, services, worker, reminder_portal
):
    _, chat_id = _unconsented_chat(emulator, services, worker)
    dispatch.dispatch_due(services)
    assert not any("Ответьте 1" in t for t in _bot_texts(emulator, chat_id))

    _say(emulator, services, worker, chat_id, "Добрый день")
    _say(emulator, services, worker, chat_id, "согласен")
    dispatch.dispatch_due(services)
    assert any("Ответьте 1" in t for t in _bot_texts(emulator, chat_id))


def test_chat_no_records_refusal(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _unconsented_chat(emulator, services, worker)
    _say(emulator, services, worker, chat_id, "Здравствуйте!")
    _say(emulator, services, worker, chat_id, "нет")
    dispatch.dispatch_due(services)

    row = _consent_row(services, reminder_portal.id, f"deal:{deal_id}")
    assert (row.status, row.revoke_source) == ("revoked", "chat")
    assert not any("Ответьте 1" in t for t in _bot_texts(emulator, chat_id))


def test_chat_stop_revokes_every_channel(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _unconsented_chat(emulator, services, worker)
    key = f"deal:{deal_id}"
    consent.grant(
        services, reminder_portal.id, key, "sms", source="form", address="+79161234567"
    )
    _say(emulator, services, worker, chat_id, "Здравствуйте!")
    _say(emulator, services, worker, chat_id, "стоп")

    assert consent.allowed_channels(services, reminder_portal.id, key) == {}


def test_opted_out_client_not_asked(emulator, services, worker, reminder_portal):
    deal_id, chat_id = _unconsented_chat(emulator, services, worker)
    consent.revoke(services, reminder_portal.id, f"deal:{deal_id}", source="link")
    _say(emulator, services, worker, chat_id, "Здравствуйте!")

    assert consent.CHAT_QUESTION not in _bot_texts(emulator, chat_id)


def test_refused_client_not_asked_again(emulator, services, worker, reminder_portal):
    _, chat_id = _unconsented_chat(emulator, services, worker)
    _say(emulator, services, worker, chat_id, "Здравствуйте!")
    _say(emulator, services, worker, chat_id, "нет")
    _say(emulator, services, worker, chat_id, "Хочу уточнить время")

    questions = [t for t in _bot_texts(emulator, chat_id) if t == consent.CHAT_QUESTION]
    assert len(questions) == 1

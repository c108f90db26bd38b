"""Hostile input on every door of the reminders: bot events, Telegram, SMS,
the opt-out link and the admin API.

Each test sends what an attacker or a careless integrator would send and
checks the response: a clear status, nothing stored that should not be, and
no secret or phone number in the logs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from b24app.models import InboundEvent, Portal
from b24app.placement_auth import Viewer, sign_api_token
from b24app.reminders import channels, consent, dispatch, replies
from b24app.reminders.feature import SMS_EVENT, TELEGRAM_EVENT
from b24app.reminders.models import Appointment, Consent, Delivery, Experiment
from tests.helpers import drain
from tests.reminders.fakes import TELEGRAM_TOKEN
from tests.reminders.support import (
    appointment,
    new_appointment,
    sms_auth,
    use_channels,
    webhook_secret,
)

PHONE = "+79161234567"
CHAT = 777001


# Helpers


def _events(services, name: str | None = None) -> list[InboundEvent]:
    with services.db.session() as session:
        query = select(InboundEvent).order_by(InboundEvent.id)
        if name:
            query = query.where(InboundEvent.event == name)
        return list(session.scalars(query))


def _consent_rows(services) -> int:
    with services.db.session() as session:
        return session.scalar(select(func.count()).select_from(Consent))


def _stored_settings(services, portal_id: int) -> dict:
    with services.db.session() as session:
        return dict(session.get(Portal, portal_id).settings or {})


def _other_portal(services) -> Portal:
    """A second installed portal with its own application token."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        portal = Portal(
            member_id="other-member",
            domain="other.bitrix24.example",
            client_endpoint="https://other.bitrix24.example/rest/",
            server_endpoint="https://oauth.bitrix24.example/rest/",
            access_token_enc=services.box.encrypt("a"),
            refresh_token_enc=services.box.encrypt("r"),
            application_token_enc=services.box.encrypt("other-app-token"),
            token_expires_at=now + timedelta(hours=1),
            token_refreshed_at=now,
            status="active",
            settings={"reminders": {"webhook_secret": "other-secret"}},
        )
        session.add(portal)
        session.flush()
        session.expunge(portal)
    return portal


def _bot_form(portal, services, **overrides) -> dict[str, str]:
    form = {
        "event": "ONIMBOTMESSAGEADD",
        "data[PARAMS][MESSAGE_ID]": "501",
        "data[PARAMS][MESSAGE]": "1",
        "data[PARAMS][CHAT_ID]": "12",
        "data[PARAMS][DIALOG_ID]": "chat12",
        "data[PARAMS][FROM_USER_ID]": "9",
        "data[USER][IS_CONNECTOR]": "Y",
        "auth[member_id]": portal.member_id,
        "auth[application_token]": services.application_token(portal),
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


def _post_bot(app_server, form, **kwargs) -> requests.Response:
    return requests.post(
        f"{app_server.url}/bot/events", data=form, timeout=10, **kwargs
    )


def _headers(services, portal, *, admin: bool = True, member_id=None) -> dict:
    viewer = Viewer(
        portal.id, member_id or portal.member_id, 1 if admin else 3, admin, "ru"
    )
    return {"Authorization": f"Bearer {sign_api_token(services, viewer)}"}


def _api(app_server, path: str) -> str:
    return f"{app_server.url}/api/v1/reminders{path}"


def _put_settings(app_server, services, portal, body) -> requests.Response:
    return requests.put(
        _api(app_server, "/settings"),
        json=body,
        headers=_headers(services, portal),
        timeout=10,
    )


# Chat-bot events


def test_bot_event_forged_token_rejected(app_server, services, reminder_portal):
    form = _bot_form(reminder_portal, services, **{"auth[application_token]": "forged"})
    response = _post_bot(app_server, form)
    assert response.status_code == 401
    assert _events(services, "ONIMBOTMESSAGEADD") == []


def test_bot_event_other_portals_token_rejected(app_server, services, reminder_portal):
    other = _other_portal(services)
    form = _bot_form(
        reminder_portal,
        services,
        **{"auth[member_id]": other.member_id},
    )
    response = _post_bot(app_server, form)
    assert response.status_code == 401
    assert _events(services, "ONIMBOTMESSAGEADD") == []


def test_bot_event_unknown_portal(app_server, services, reminder_portal):
    form = _bot_form(reminder_portal, services, **{"auth[member_id]": "nobody"})
    assert _post_bot(app_server, form).status_code == 404


@pytest.mark.parametrize(
    "overrides",
    [
        {"data[PARAMS][MESSAGE_ID]": None},
        {"data[PARAMS][MESSAGE_ID]": "12abc"},
        {"data[PARAMS]": "text", "data[PARAMS][MESSAGE_ID]": None},
        {"data[PARAMS][CHAT_ID]": "%"},
        {"data[PARAMS][CHAT_ID]": "12_"},
        {"data[PARAMS][CHAT_ID]": "1²"},
        {"data[PARAMS][MESSAGE_ID]": "5²"},
    ],
    ids=[
        "no-id",
        "bad-id",
        "params-scalar",
        "chat-wildcard",
        "chat-underscore",
        "chat-superscript",
        "id-superscript",
    ],
)
def test_bot_event_garbage_fields_rejected(
    app_server, services, reminder_portal, overrides
):
    form = _bot_form(reminder_portal, services, **overrides)
    response = _post_bot(app_server, form)
    assert response.status_code == 400
    assert response.json()["error"]
    assert _events(services, "ONIMBOTMESSAGEADD") == []


def test_bot_event_user_scalar_rejected(app_server, services, reminder_portal):
    form = _bot_form(reminder_portal, services, **{"data[USER][IS_CONNECTOR]": None})
    form["data[USER]"] = "x"
    response = _post_bot(app_server, form)
    assert response.status_code in (200, 400)
    assert response.headers["Content-Type"].startswith("application/json")


def test_bot_event_repeated_is_stored_once(app_server, services, reminder_portal):
    form = _bot_form(reminder_portal, services)
    first = _post_bot(app_server, form).json()
    second = _post_bot(app_server, form).json()
    assert first["status"] == "queued"
    assert second["status"] == "duplicate"
    assert len(_events(services, "ONIMBOTMESSAGEADD")) == 1


def test_bot_event_huge_body_refused(app_server, services, reminder_portal):
    form = _bot_form(reminder_portal, services)
    form["data[PARAMS][MESSAGE]"] = "я" * (2 * 1024 * 1024)
    response = _post_bot(app_server, form)
    assert response.status_code == 413
    assert _events(services, "ONIMBOTMESSAGEADD") == []


def test_bot_event_long_message_is_cut(app_server, services, reminder_portal):
    form = _bot_form(reminder_portal, services)
    form["data[PARAMS][MESSAGE]"] = "a" * 200_000
    assert _post_bot(app_server, form).status_code == 200
    stored = _events(services, "ONIMBOTMESSAGEADD")[0]
    assert len(stored.payload["data"]["PARAMS"]["MESSAGE"]) <= 4096


def test_bot_event_not_utf8(app_server, services, reminder_portal):
    form = _bot_form(reminder_portal, services)
    body = "&".join(
        f"{requests.utils.quote(k)}={requests.utils.quote(v)}"
        for k, v in form.items()
        if k != "data[PARAMS][MESSAGE]"
    )
    raw = body.encode() + b"&data%5BPARAMS%5D%5BMESSAGE%5D=%FF%FE%C0"
    response = requests.post(
        f"{app_server.url}/bot/events",
        data=raw,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code in (200, 400)
    assert response.headers["Content-Type"].startswith("application/json")


def test_chat_reply_goes_to_own_chat_only(emulator, services, worker, reminder_portal):
    """A reply in chat 1 must not act on the client reminded in chat 12."""
    deal_id, row = new_appointment(emulator, services, worker)
    chat_id = emulator.portal.open_crm_chat("deal", deal_id)
    consent.grant(
        services, reminder_portal.id, f"deal:{deal_id}", "openline", source="form"
    )
    use_channels(services, reminder_portal, ["openline"])
    dispatch.dispatch_due(services)
    with services.db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.provider_ref == f"chat:{chat_id}")
            .values(provider_ref="chat:12")
        )

    for other_chat in ("1", "%", "1_"):
        found = replies.appointment_by_ref(
            services, reminder_portal.id, f"chat:{other_chat}"
        )
        assert found is None, other_chat
    assert replies.appointment_by_ref(services, reminder_portal.id, "chat:12") == (
        row.id
    )


def test_bot_event_for_deleted_appointment(emulator, services, worker, reminder_portal):
    deal_id, row = new_appointment(emulator, services, worker)
    chat_id = emulator.portal.open_crm_chat("deal", deal_id)
    consent.grant(
        services, reminder_portal.id, f"deal:{deal_id}", "openline", source="form"
    )
    dispatch.dispatch_due(services)
    with services.db.session() as session:
        session.delete(session.get(Appointment, row.id))
    emulator.portal.client_reply(chat_id, "3")
    drain(worker, services, until=lambda: _events(services, "ONIMBOTMESSAGEADD"))
    event = _events(services, "ONIMBOTMESSAGEADD")[-1]
    assert event.status == "done"
    assert emulator.portal.deals[deal_id]["STAGE_ID"] == "C1:NEW"


# Telegram webhook


def _tg_url(app_server, portal) -> str:
    return f"{app_server.url}/bot/telegram/{portal.id}"


def _subscribed(app_server, services, worker, telegram, emulator, portal):
    deal_id, row = new_appointment(emulator, services, worker)
    url = _tg_url(app_server, portal)
    secret = webhook_secret(services, portal.id)
    code = consent.link_code(services, portal.id, f"deal:{deal_id}")
    telegram.user_writes(url, secret, CHAT, f"/start {code}")
    drain(
        worker,
        services,
        until=lambda: consent.allowed_channels(services, portal.id, f"deal:{deal_id}"),
    )
    return deal_id, row, url, secret


def test_telegram_without_secret_rejected(app_server, services, reminder_portal):
    response = requests.post(
        _tg_url(app_server, reminder_portal),
        json={"update_id": 1, "message": {"chat": {"id": CHAT}, "text": "3"}},
        timeout=10,
    )
    assert response.status_code == 401
    assert _events(services, TELEGRAM_EVENT) == []


def test_telegram_other_portals_secret_rejected(
    app_server, services, telegram, reminder_portal
):
    _other_portal(services)
    response = telegram.user_writes(
        _tg_url(app_server, reminder_portal), "other-secret", CHAT, "3"
    )
    assert response.status_code == 401
    assert _events(services, TELEGRAM_EVENT) == []


@pytest.mark.parametrize(
    "update_body",
    [
        {"update_id": 5, "message": "text"},
        {"update_id": 6, "message": {"chat": "x", "text": "1"}},
        {"update_id": 7, "callback_query": {"data": "a:1:confirm", "message": 3}},
        {"update_id": 8, "callback_query": ["a:1:confirm"]},
        {"update_id": True},
        {"update_id": "9"},
        ["update_id", 10],
    ],
    ids=[
        "message-str",
        "chat-str",
        "cb-message-int",
        "cb-list",
        "id-bool",
        "id-str",
        "list",
    ],
)
def test_telegram_malformed_update(app_server, services, reminder_portal, update_body):
    response = requests.post(
        _tg_url(app_server, reminder_portal),
        json=update_body,
        headers={
            "X-Telegram-Bot-Api-Secret-Token": webhook_secret(
                services, reminder_portal.id
            )
        },
        timeout=10,
    )
    assert response.status_code in (200, 400)
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "data",
    [
        "s:{id}:abc",
        "s:{id}:",
        "s:{id}:²",
        "x:{id}:1",
        "a:{id}:opt_out",
        "a:{id}",
        "a::confirm",
        "a:99999999999999999999:confirm",
    ],
)
def test_telegram_tampered_button_ignored(
    emulator, app_server, services, worker, telegram, reminder_portal, data
):
    deal_id, row, url, secret = _subscribed(
        app_server, services, worker, telegram, emulator, reminder_portal
    )
    telegram.user_presses(url, secret, CHAT, data.format(id=row.id))
    drain(worker, services)
    event = _events(services, TELEGRAM_EVENT)[-1]
    assert event.status == "done"
    assert event.outcome == "skipped: bad button"
    assert appointment(services, deal_id).status == "booked"


def test_telegram_button_of_other_portals_appointment(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, row, url, secret = _subscribed(
        app_server, services, worker, telegram, emulator, reminder_portal
    )
    other = _other_portal(services)
    with services.db.session() as session:
        foreign = Appointment(
            portal_id=other.id,
            source="deal",
            source_id=deal_id,
            deal_id=deal_id,
            starts_at=row.starts_at,
        )
        session.add(foreign)
        session.flush()
        foreign_id = foreign.id
    telegram.user_presses(url, secret, CHAT, f"a:{foreign_id}:cancel")
    drain(worker, services)
    assert _events(services, TELEGRAM_EVENT)[-1].outcome == (
        "skipped: button of another client"
    )
    with services.db.session() as session:
        assert session.get(Appointment, foreign_id).status == "booked"


def test_telegram_replayed_cancel_acts_once(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    deal_id, row, url, secret = _subscribed(
        app_server, services, worker, telegram, emulator, reminder_portal
    )
    update_body = {
        "update_id": 9001,
        "callback_query": {
            "id": "cb-replay",
            "from": {"id": CHAT},
            "message": {"message_id": 1, "chat": {"id": CHAT}},
            "data": f"a:{row.id}:cancel",
        },
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    for _ in range(3):
        requests.post(url, json=update_body, headers=headers, timeout=10)
    drain(worker, services)
    notified = len(emulator.portal.notifications)
    assert len(_events(services, TELEGRAM_EVENT)) == 2  # /start and one button
    assert appointment(services, deal_id).status == "cancelled"

    telegram.user_presses(url, secret, CHAT, f"a:{row.id}:cancel")
    drain(worker, services)
    assert appointment(services, deal_id).status == "cancelled"
    assert len(emulator.portal.notifications) == notified + 1  # "already closed"


def test_telegram_start_code_of_other_portal(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    other = _other_portal(services)
    code = consent.link_code(services, other.id, "deal:5")
    telegram.user_writes(
        _tg_url(app_server, reminder_portal),
        webhook_secret(services, reminder_portal.id),
        CHAT,
        f"/start {code}",
    )
    drain(worker, services)
    assert _consent_rows(services) == 0


def test_telegram_forged_start_code(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    code = consent.link_code(services, reminder_portal.id, "deal:5")
    forged = code.replace("_d5_", "_d6_")
    telegram.user_writes(
        _tg_url(app_server, reminder_portal),
        webhook_secret(services, reminder_portal.id),
        CHAT,
        f"/start {forged}",
    )
    drain(worker, services)
    assert _consent_rows(services) == 0


# SMS replies, delivery reports and the opt-out link


def _legacy_sms_url(app_server, portal, secret: str, what: str = "reply") -> str:
    return f"{app_server.url}/bot/sms/{portal.id}/{secret}/{what}"


def _sms_url(app_server, portal, what: str = "reply") -> str:
    return f"{app_server.url}/bot/sms/{portal.id}/{what}"


def test_sms_reply_wrong_secret(app_server, services, reminder_portal):
    response = requests.post(
        _legacy_sms_url(app_server, reminder_portal, "guess"),
        json={"from": PHONE, "text": "3"},
        timeout=10,
    )
    assert response.status_code == 404
    assert _events(services, SMS_EVENT) == []


def test_sms_reply_other_portals_secret(app_server, services, reminder_portal):
    _other_portal(services)
    response = requests.post(
        _legacy_sms_url(app_server, reminder_portal, "other-secret"),
        json={"from": PHONE, "text": "3"},
        timeout=10,
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([{"from": PHONE, "text": "1"}], 400),
        ("just text", 400),
        ({"from": "not a phone", "text": "1"}, 400),
        ({"from": {"x": 1}, "text": "1"}, 400),
        ({}, 400),
    ],
    ids=["list", "string", "bad-phone", "phone-object", "empty"],
)
def test_sms_reply_bad_bodies(app_server, services, reminder_portal, body, status):
    response = requests.post(
        _sms_url(app_server, reminder_portal),
        json=body,
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    assert response.status_code == status
    assert response.json()["error"]
    assert _events(services, SMS_EVENT) == []


def test_sms_reply_same_text_later_is_new(
    app_server, services, reminder_portal, monkeypatch
):
    """Without a provider id, "1" today and "1" next week are two replies."""
    import handlers.bot

    # The handler's clock is pinned, so the result does not depend on the hour.
    window = handlers.bot.SMS_REPEAT_WINDOW
    slot = int(datetime.now(UTC).timestamp()) // window
    moment = datetime.fromtimestamp(slot * window + window // 2, UTC)

    class Pinned(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment

    monkeypatch.setattr(handlers.bot, "datetime", Pinned)

    url = _sms_url(app_server, reminder_portal)
    auth = sms_auth(services, reminder_portal.id)
    requests.post(url, json={"from": PHONE, "text": "1"}, auth=auth, timeout=10)
    requests.post(url, json={"from": PHONE, "text": "1"}, auth=auth, timeout=10)
    assert len(_events(services, SMS_EVENT)) == 1

    moment += timedelta(days=7)
    requests.post(url, json={"from": PHONE, "text": "1"}, auth=auth, timeout=10)
    assert len(_events(services, SMS_EVENT)) == 2


def test_sms_reply_repeat_across_slots(
    app_server, services, reminder_portal, monkeypatch
):
    """A redelivery seconds after a slot boundary is still one reply."""
    import handlers.bot

    window = handlers.bot.SMS_REPEAT_WINDOW
    boundary = (int(datetime.now(UTC).timestamp()) // window + 1) * window
    moment = datetime.fromtimestamp(boundary - 5, UTC)

    class Pinned(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment

    monkeypatch.setattr(handlers.bot, "datetime", Pinned)
    url = _sms_url(app_server, reminder_portal)
    auth = sms_auth(services, reminder_portal.id)

    requests.post(url, json={"from": PHONE, "text": "2"}, auth=auth, timeout=10)
    moment = datetime.fromtimestamp(boundary + 5, UTC)
    response = requests.post(
        url, json={"from": PHONE, "text": "2"}, auth=auth, timeout=10
    )

    assert response.status_code == 200
    assert len(_events(services, SMS_EVENT)) == 1

    moment = datetime.fromtimestamp(boundary + window, UTC)
    requests.post(url, json={"from": PHONE, "text": "2"}, auth=auth, timeout=10)

    assert len(_events(services, SMS_EVENT)) == 2


def test_sms_reply_from_other_portals_client(
    emulator, app_server, services, worker, reminder_portal
):
    other = _other_portal(services)
    consent.grant(services, other.id, "deal:5", "sms", source="form", address=PHONE)
    requests.post(
        _sms_url(app_server, reminder_portal),
        json={"from": PHONE, "text": "стоп", "id": "m1"},
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    drain(worker, services)
    assert _events(services, SMS_EVENT)[0].outcome == "skipped: unknown number"
    assert consent.allowed_channels(services, other.id, "deal:5") == {"sms": PHONE}


def test_sms_status_garbage_changes_nothing(app_server, services, reminder_portal):
    url = _sms_url(app_server, reminder_portal, "status")
    auth = sms_auth(services, reminder_portal.id)
    for body in ([1, "x", None], {"id": {"a": 1}, "status": "delivered"}, "x"):
        response = requests.post(url, json=body, auth=auth, timeout=10)
        assert response.status_code == 200
    response = requests.post(url, data={"data[]": "sms_status"}, auth=auth, timeout=10)
    assert response.text == "100"


def test_optout_link_tampered(app_server, services, reminder_portal):
    token = consent.optout_token(services, reminder_portal.id, "deal:42")
    consent.grant(
        services, reminder_portal.id, "deal:42", "sms", source="form", address=PHONE
    )
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = requests.get(f"{app_server.url}/bot/optout/{tampered}", timeout=10)
    assert response.status_code == 400
    allowed = consent.allowed_channels(services, reminder_portal.id, "deal:42")
    assert allowed == {"sms": PHONE}


def test_optout_link_is_idempotent(app_server, services, reminder_portal):
    key = "deal:42"
    consent.grant(
        services, reminder_portal.id, key, "sms", source="form", address=PHONE
    )
    url = consent.optout_url(services, reminder_portal.id, key)
    statuses = [requests.post(url, timeout=10).status_code for _ in range(2)]
    assert statuses == [200, 200]
    assert consent.allowed_channels(services, reminder_portal.id, key) == {}


def test_optout_link_of_other_portal_touches_only_it(
    app_server, services, reminder_portal
):
    other = _other_portal(services)
    key = "deal:42"
    consent.grant(
        services, reminder_portal.id, key, "sms", source="form", address=PHONE
    )
    requests.post(consent.optout_url(services, other.id, key), timeout=10)
    allowed = consent.allowed_channels(services, reminder_portal.id, key)
    assert allowed == {"sms": PHONE}


# Logs


def test_logs_carry_no_phone_or_secret(
    emulator, app_server, services, worker, sms, reminder_portal, caplog
):
    caplog.set_level(logging.DEBUG)
    deal_id, _ = new_appointment(emulator, services, worker)
    consent.grant(
        services,
        reminder_portal.id,
        f"deal:{deal_id}",
        "sms",
        source="form",
        address=PHONE,
    )
    use_channels(services, reminder_portal, ["sms"])
    sms.behaviour.set("error", times=1)
    dispatch.dispatch_due(services)
    auth = sms_auth(services, reminder_portal.id)
    requests.post(
        _sms_url(app_server, reminder_portal),
        json={"from": PHONE, "text": "Секретный ответ клиента", "id": "m9"},
        auth=auth,
        timeout=10,
    )
    requests.post(
        _sms_url(app_server, reminder_portal),
        json={"from": "8 (916) 123-45-67", "text": "x" * 10},
        auth=auth,
        timeout=10,
    )
    drain(worker, services)
    text = caplog.text
    secret = auth[1]
    for needle in (PHONE, PHONE[1:], "9161234567", TELEGRAM_TOKEN, "Секретный", secret):
        assert needle not in text, needle


# The admin API


def test_admin_api_without_token(app_server):
    response = requests.get(_api(app_server, "/settings"), timeout=10)
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]


def test_admin_api_forged_token(app_server, reminder_portal):
    response = requests.get(
        _api(app_server, "/settings"),
        headers={"Authorization": "Bearer forged.token.value"},
        timeout=10,
    )
    assert response.status_code == 401


def test_admin_api_token_with_other_member_id(app_server, services, reminder_portal):
    headers = _headers(services, reminder_portal, member_id="other-member")
    response = requests.get(_api(app_server, "/settings"), headers=headers, timeout=10)
    assert response.status_code == 403


def test_other_portal_token_sees_nothing(
    emulator, app_server, services, worker, reminder_portal
):
    other = _other_portal(services)
    _, row = new_appointment(emulator, services, worker)
    headers = _headers(services, other)
    listed = requests.get(
        _api(app_server, "/appointments"), headers=headers, timeout=10
    ).json()
    preview = requests.post(
        _api(app_server, "/preview"),
        json={"text": "{name}", "appointment_id": row.id},
        headers=headers,
        timeout=10,
    )
    assert listed["appointments"] == []
    assert preview.status_code == 404


def test_admin_api_non_admin_cannot_write(app_server, services, reminder_portal):
    before = _stored_settings(services, reminder_portal.id)
    response = requests.put(
        _api(app_server, "/settings"),
        json={"enabled": False},
        headers=_headers(services, reminder_portal, admin=False),
        timeout=10,
    )
    assert response.status_code == 403
    assert _stored_settings(services, reminder_portal.id) == before


BAD_SETTINGS = {
    "negative": {"schedule": [{"kind": "remind", "minutes_before": -60}]},
    "absurd": {"schedule": [{"kind": "remind", "minutes_before": 10**9}]},
    "float": {"schedule": [{"kind": "remind", "minutes_before": 90.5}]},
    "bool": {"schedule": [{"kind": "remind", "minutes_before": True}]},
    "step-string": {"schedule": ["remind"]},
    "step-list": {"schedule": [[1, 2]]},
    "duplicate-offset": {
        "schedule": [
            {"kind": "confirm", "minutes_before": 120},
            {"kind": "remind", "minutes_before": 120},
        ]
    },
    "too-many-steps": {
        "schedule": [{"kind": "remind", "minutes_before": 30 + n} for n in range(50)]
    },
    "services-list": {"services": ["Стрижка"]},
    "service-bad-steps": {"services": {"Стрижка": "often"}},
    "service-empty-name": {
        "services": {"": [{"kind": "remind", "minutes_before": 60}]}
    },
    "enabled-string": {"enabled": "false"},
    "thanks-bool": {"thanks_after_minutes": True},
    "grace-string": {"grace_minutes": "120"},
    "quiet-garbage": {"quiet_hours": {"start": "25:00", "end": "09:00"}},
    "quiet-list": {"quiet_hours": ["21:00", "09:00"]},
    "channels-empty": {"channels": []},
    "channels-repeat": {"channels": ["sms", "sms"]},
    "channels-unknown": {"channels": ["pigeon"]},
    "templates-list": {"templates": ["{name}"]},
    "template-unknown-field": {"templates": {"confirm": "{name} {phone}"}},
    "template-broken-brace": {"templates": {"remind": "Ждём {name"}},
    "template-too-long": {"templates": {"remind": "а" * 5000}},
    "template-empty": {"templates": {"remind": "   "}},
    "template-bad-channel": {"templates": {"remind.fax": "{name}"}},
    "template-bad-kind": {"templates": {"bribe": "{name}"}},
    "telegram-string": {"telegram": "token"},
    "sms-list": {"sms": ["x"]},
    "sms-provider": {"sms": {"provider": "pigeon"}},
    "sms-url-scheme": {"sms": {"url": "file:///etc/passwd"}},
    "telegram-url-scheme": {"telegram": {"api_url": "gopher://127.0.0.1:25/"}},
    "email-port": {"email": {"port": "smtp"}},
    "email-port-range": {"email": {"port": 70000}},
    "field-object": {"sms": {"phone_field": {"a": 1}}},
}


@pytest.mark.parametrize("body", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_bad_settings_rejected_and_nothing_changes(
    app_server, services, reminder_portal, body
):
    before = _stored_settings(services, reminder_portal.id)
    response = _put_settings(app_server, services, reminder_portal, body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"]
    assert _stored_settings(services, reminder_portal.id) == before


def test_private_provider_urls_refused_in_production(
    app, app_server, services, reminder_portal, monkeypatch
):
    monkeypatch.setitem(services.config, "ENV", "production")
    for body in (
        {"sms": {"url": "http://sms.example/send"}},
        {"sms": {"url": "https://169.254.169.254/latest/meta-data"}},
        {"telegram": {"api_url": "https://127.0.0.1:8443"}},
        {"telegram": {"api_url": "https://[::1]/"}},
        {"telegram": {"api_url": "https://10.0.0.8/"}},
        {"telegram": {"api_url": "https://2130706433/"}},
        {"telegram": {"api_url": "https://127.1/"}},
        {"telegram": {"api_url": "https://[::ffff:127.0.0.1]/"}},
        {"sms": {"url": "https://metadata.google.internal/x"}},
        {"email": {"host": "127.0.0.1"}},
    ):
        response = _put_settings(app_server, services, reminder_portal, body)
        assert response.status_code == 422, body
    good = _put_settings(
        app_server,
        services,
        reminder_portal,
        {"sms": {"url": "https://sms.example/send"}},
    )
    assert good.status_code == 200


def test_good_settings_still_saved(app_server, services, reminder_portal):
    body = {
        "schedule": [
            {"kind": "confirm", "minutes_before": 1440},
            {"kind": "remind", "minutes_before": 120},
        ],
        "services": {"Стрижка": [{"kind": "remind", "minutes_before": 60}]},
        "channels": ["sms", "telegram"],
        "templates": {"remind.sms": "{name}, ждём {date} в {time}"},
        "enabled": False,
        "email": {"port": 2525, "host": "127.0.0.1"},
    }
    response = _put_settings(app_server, services, reminder_portal, body)
    assert response.status_code == 200, response.text
    saved = _stored_settings(services, reminder_portal.id)["reminders"]
    assert saved["channels"] == ["sms", "telegram"]
    assert saved["enabled"] is False


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ('{"enabled": false}', "text/plain"),
        ("enabled=false", "application/x-www-form-urlencoded"),
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
    ],
    ids=["text", "form", "broken-json", "json-list"],
)
def test_settings_wrong_body(app_server, services, reminder_portal, data, content_type):
    before = _stored_settings(services, reminder_portal.id)
    response = requests.put(
        _api(app_server, "/settings"),
        data=data,
        headers={
            **_headers(services, reminder_portal),
            "Content-Type": content_type,
        },
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]
    assert _stored_settings(services, reminder_portal.id) == before


def test_settings_oversized_body(app_server, services, reminder_portal):
    before = _stored_settings(services, reminder_portal.id)
    response = _put_settings(
        app_server, services, reminder_portal, {"address": "а" * (2 * 1024 * 1024)}
    )
    assert response.status_code == 413
    assert response.json()["error"]
    assert _stored_settings(services, reminder_portal.id) == before


@pytest.mark.parametrize("limit", ["abc", "-5", "0", "1e9"])
def test_appointments_bad_limit(app_server, services, reminder_portal, limit):
    response = requests.get(
        _api(app_server, f"/appointments?limit={limit}"),
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.parametrize("appointment_id", ["abc", {"id": 1}, [1], -1, 10**20])
def test_preview_bad_appointment_id(
    app_server, services, reminder_portal, appointment_id
):
    response = requests.post(
        _api(app_server, "/preview"),
        json={"text": "{name}", "appointment_id": appointment_id},
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert response.status_code in (400, 404)
    assert response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"items": ["contact:1"]},
        {
            "items": [
                {"contact_key": "contact:1:2", "channel": "email", "address": "a@b"}
            ]
        },
        {
            "items": [
                {"contact_key": "contact:1", "channel": "sms", "address": {"x": 1}}
            ]
        },
        {"contact_key": "contact:1", "channel": "sms", "address": "12"},
        {"contact_key": "contact:1", "channel": "email", "source": "hacker"},
        {"contact_key": "deal:²", "channel": "email", "address": "a@b"},
    ],
    ids=[
        "item-str",
        "key-extra",
        "address-object",
        "bad-phone",
        "source",
        "sup-2",
    ],
)
def test_bad_consents_store_nothing(app_server, services, reminder_portal, body):
    response = requests.post(
        _api(app_server, "/consents"),
        json=body,
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"]
    assert _consent_rows(services) == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"contact_key": ""},
        {"contact_key": "anything"},
        {"contact_key": "contact:1", "channel": "pigeon"},
        {"contact_key": "contact:1", "channel": ["sms"]},
    ],
    ids=["empty", "blank-key", "free-key", "bad-channel", "channel-list"],
)
def test_bad_revoke_stores_nothing(app_server, services, reminder_portal, body):
    response = requests.delete(
        _api(app_server, "/consents"),
        json=body,
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert _consent_rows(services) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"variants": "ab"},
        {"variants": [1, 2]},
        {
            "variants": [
                {"code": "a", "control": True},
                {"code": "b", "weight": "heavy"},
            ]
        },
        {
            "variants": [
                {"code": "a", "control": True},
                {"code": "b", "weight": "nan"},
            ]
        },
        {
            "variants": [
                {"code": "a", "control": True},
                {"code": "b", "templates": ["x"]},
            ]
        },
        {
            "variants": [{"code": "a", "control": True}, {"code": "b"}],
            "min_per_variant": "many",
        },
        {
            "variants": [
                {"code": "a", "control": True},
                {"code": "b", "templates": {"bribe": "{name}"}},
            ]
        },
        {"variants": [{"code": "a" * 100, "control": True}, {"code": "b"}]},
    ],
    ids=[
        "string",
        "numbers",
        "weight-text",
        "weight-nan",
        "templates-list",
        "minimum-text",
        "template-kind",
        "long-code",
    ],
)
def test_bad_experiments_store_nothing(app_server, services, reminder_portal, body):
    response = requests.post(
        _api(app_server, "/experiments"),
        json=body,
        headers=_headers(services, reminder_portal),
        timeout=10,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Experiment)) == 0


def test_other_portals_experiment_hidden(app_server, services, reminder_portal):
    other = _other_portal(services)
    with services.db.session() as session:
        experiment = Experiment(
            portal_id=other.id,
            name="x",
            variants=[],
            metric="no_show",
            min_per_variant=100,
            status="running",
        )
        session.add(experiment)
        session.flush()
        experiment_id = experiment.id
    headers = _headers(services, reminder_portal)
    got = requests.get(
        _api(app_server, f"/experiments/{experiment_id}"), headers=headers, timeout=10
    )
    promoted = requests.post(
        _api(app_server, f"/experiments/{experiment_id}/promote"),
        headers=headers,
        timeout=10,
    )
    assert got.status_code == 404
    assert promoted.status_code == 404


def test_private_provider_refused_at_send(services, monkeypatch):
    """Settings stored before the check, or a name that resolves inside."""
    monkeypatch.setitem(services.config, "ENV", "production")
    cfg = {"provider": "generic", "url": "https://localhost:1/send"}
    with pytest.raises(channels.DeliveryFailed, match="private address rejected"):
        channels.send_sms(services, cfg, PHONE, channels.Outgoing(text="x"))
    with pytest.raises(channels.DeliveryFailed, match="private address rejected"):
        channels.send_email(
            services, {"host": "127.0.0.1"}, "a@mail.example", channels.Outgoing("x")
        )

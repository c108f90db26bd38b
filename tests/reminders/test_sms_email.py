"""SMS (SMS.ru and a generic provider), e-mail, opt-out links, duplicates."""

from __future__ import annotations

import email
import threading
import time
from email.policy import default

import requests

from b24app.reminders import config, consent, dispatch
from tests.helpers import drain
from tests.reminders.conftest import generic_sms_settings
from tests.reminders.support import (
    appointment,
    deliveries,
    jobs,
    new_appointment,
    sms_auth,
    use_channels,
)

PHONE = "+79161234567"


def _sms_client(services, portal, deal_id):
    consent.grant(
        services, portal.id, f"deal:{deal_id}", "sms", source="form", address=PHONE
    )
    use_channels(services, portal, ["sms"])


def test_smsru_sends_e164_without_plus(
    emulator, services, worker, sms, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    dispatch.dispatch_due(services)
    assert sms.sent[0]["to"] == "79161234567"


def test_sms_text_has_no_deal_data(emulator, services, worker, sms, reminder_portal):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    dispatch.dispatch_due(services)
    assert f"#{deal_id}" not in sms.sent[0]["text"]


def test_sms_server_error_retries(emulator, services, worker, sms, reminder_portal):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    sms.behaviour.set("error", times=1)
    dispatch.dispatch_due(services)
    assert jobs(services, "confirm")[0].status == "scheduled"


def test_sms_read_timeout_not_repeated(
    emulator, services, worker, sms, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    sms.behaviour.set("slow", times=1, delay=2.0)
    dispatch.dispatch_due(services)
    time.sleep(1.5)
    dispatch.dispatch_due(services)
    attempts = deliveries(services)
    assert [d.status for d in attempts] == ["unknown"]
    assert attempts[0].error.startswith("sms: timeout")
    assert jobs(services, "confirm")[0].status == "unknown"
    assert len(sms.sent) == 1


def test_sms_gateway_error_retries(emulator, services, worker, sms, reminder_portal):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    sms.behaviour.set("gateway", times=1)
    dispatch.dispatch_due(services)
    assert jobs(services, "confirm")[0].status == "scheduled"


def test_sms_invalid_body_recorded(emulator, services, worker, sms, reminder_portal):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    sms.behaviour.set("invalid", times=1)
    dispatch.dispatch_due(services)
    assert "invalid response" in deliveries(services)[0].error


def test_sms_rejected_number_fails_job(
    emulator, services, worker, sms, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    sms.behaviour.set("reject", times=1)
    dispatch.dispatch_due(services)
    assert jobs(services, "confirm")[0].status == "failed"


def test_generic_provider_sends(emulator, services, worker, sms, reminder_portal):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    config.save(
        services, reminder_portal.id, {"sms": generic_sms_settings(services, sms)}
    )
    dispatch.dispatch_due(services)
    assert deliveries(services)[0].provider_ref == "sms:g-1"


def test_sms_reply_cancels(
    emulator, app_server, services, worker, sms, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    dispatch.dispatch_due(services)
    requests.post(
        f"{app_server.url}/bot/sms/{reminder_portal.id}/reply",
        json={"id": "in-1", "from": "8 916 123 45 67", "text": "3"},
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    drain(
        worker,
        services,
        until=lambda: appointment(services, deal_id).status == "cancelled",
    )
    assert emulator.portal.deals[deal_id]["STAGE_ID"] == "C1:APOLOGY"


def test_smsru_delivery_report(
    emulator, app_server, services, worker, sms, reminder_portal
):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    dispatch.dispatch_due(services)
    sms_id = deliveries(services)[0].provider_ref.removeprefix("smsru:")
    response = requests.post(
        f"{app_server.url}/bot/sms/{reminder_portal.id}/status",
        data={"data[]": f"sms_status\n{sms_id}\n103\n1765000000"},
        auth=sms_auth(services, reminder_portal.id),
        timeout=10,
    )
    assert (response.text, deliveries(services)[0].status) == ("100", "delivered")


def test_email_has_optout_link(
    emulator, services, worker, smtp_server, reminder_portal
):
    controller, inbox = smtp_server
    deal_id, _ = new_appointment(emulator, services, worker)
    consent.grant(
        services,
        reminder_portal.id,
        f"deal:{deal_id}",
        "email",
        source="form",
        address="maria@mail.example",
    )
    use_channels(
        services,
        reminder_portal,
        ["email"],
        email={"host": controller.hostname, "port": controller.port},
    )
    dispatch.dispatch_due(services)
    mail = email.message_from_bytes(inbox.messages[0].content, policy=default)
    assert "/bot/optout/" in mail.get_content()
    assert mail["List-Unsubscribe"].startswith("<http")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_optout_link_revokes_everything(
    emulator, app_server, services, worker, reminder_portal
):
    key = "deal:42"
    consent.grant(
        services, reminder_portal.id, key, "sms", source="form", address=PHONE
    )
    url = consent.optout_url(services, reminder_portal.id, key)

    # Opening the link (a person or a link scanner) only shows the question.
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    assert 'method="post"' in page.text
    assert consent.allowed_channels(services, reminder_portal.id, key) != {}

    response = requests.post(url, timeout=10)
    allowed = consent.allowed_channels(services, reminder_portal.id, key)
    assert response.status_code == 200
    assert allowed == {}


def test_optout_one_click_post_from_mail_client(
    emulator, app_server, services, worker, reminder_portal
):
    key = "deal:43"
    consent.grant(
        services, reminder_portal.id, key, "sms", source="form", address=PHONE
    )
    url = consent.optout_url(services, reminder_portal.id, key)
    response = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    allowed = consent.allowed_channels(services, reminder_portal.id, key)
    assert (response.status_code, allowed) == (200, {})


def test_optout_link_forged_rejected(app_server, reminder_portal):
    response = requests.get(f"{app_server.url}/bot/optout/forged.token", timeout=10)
    assert response.status_code == 400


def test_concurrent_workers_send_once(emulator, services, worker, sms, reminder_portal):
    deal_id, _ = new_appointment(emulator, services, worker)
    _sms_client(services, reminder_portal, deal_id)
    threads = [
        threading.Thread(target=dispatch.dispatch_due, args=(services,))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sms.sent) == 1


def test_replanning_twice_adds_no_jobs(emulator, services, worker, reminder_portal):
    from b24app.reminders import appointments

    _, row = new_appointment(emulator, services, worker)
    appointments.replan(services, reminder_portal, row.id)
    appointments.replan(services, reminder_portal, row.id)
    assert len(jobs(services)) == 2


def test_thanks_sent_after_marked_visit(
    emulator, services, worker, sms, reminder_portal
):
    from datetime import UTC, datetime

    from sqlalchemy import update

    from b24app.reminders.models import ReminderJob

    config.save(services, reminder_portal.id, {"thanks_after_minutes": 60})
    deal_id, row = new_appointment(emulator, services, worker, hours_ahead=-0.5)
    _sms_client(services, reminder_portal, deal_id)
    emulator.portal.move_deal(deal_id, "C1:WON", actor_id=3)
    drain(
        worker,
        services,
        until=lambda: appointment(services, deal_id).status == "visited",
    )
    with services.db.session() as session:
        session.execute(update(ReminderJob).values(due_at=datetime.now(UTC)))
    dispatch.dispatch_due(services)
    assert "спасибо" in sms.sent[0]["text"]


def test_thanks_waits_for_visit_mark(emulator, services, worker, sms, reminder_portal):
    from datetime import UTC, datetime

    from sqlalchemy import update

    from b24app.reminders.models import ReminderJob

    config.save(services, reminder_portal.id, {"thanks_after_minutes": 60})
    deal_id, _ = new_appointment(emulator, services, worker, hours_ahead=-0.5)
    _sms_client(services, reminder_portal, deal_id)
    with services.db.session() as session:
        session.execute(update(ReminderJob).values(due_at=datetime.now(UTC)))
    dispatch.dispatch_due(services)
    assert (sms.sent, jobs(services, "thanks")[0].status) == ([], "scheduled")


def test_import_does_not_undo_optout(services, reminder_portal):
    import pytest

    key = "contact:77"
    consent.revoke(services, reminder_portal.id, key, source="stop_word")
    with pytest.raises(consent.ConsentError):
        consent.grant(
            services, reminder_portal.id, key, "sms", source="import", address=PHONE
        )


def test_explicit_consent_after_optout(services, reminder_portal):
    key = "contact:78"
    consent.revoke(services, reminder_portal.id, key, source="link")
    consent.grant(
        services, reminder_portal.id, key, "sms", source="form", address=PHONE
    )
    allowed = consent.allowed_channels(services, reminder_portal.id, key)
    assert allowed == {"sms": PHONE}

"""Seed data, channel leads, people helpers and the control API."""

import pytest
from emu_helpers import RestClient, loopback_session

from b24app.emulator import EmulatorConfig, create_emulator


def test_seed_users_and_heads(emulator):
    portal = emulator.portal
    heads = {dept["NAME"]: dept["UF_HEAD"] for dept in portal.departments.values()}
    assert heads == {"Студия «Лотос»": "1", "Отдел продаж": "2"}
    assert portal.users[1]["IS_ADMIN"] is True
    assert len(portal.users) == 6


def test_seed_booking_pipeline(emulator):
    stages = [
        status["STATUS_ID"]
        for status in emulator.portal.statuses.values()
        if status["ENTITY_ID"] == "DEAL_STAGE_1"
    ]
    assert stages == ["C1:NEW", "C1:PREPARATION", "C1:WON", "C1:LOSE", "C1:APOLOGY"]


def test_seed_deals_have_amounts(emulator):
    amounts = [deal["OPPORTUNITY"] for deal in emulator.portal.deals.values()]
    assert len(amounts) == 6
    assert "12000.00" in amounts


def test_minimal_portal_without_seed():
    app = create_emulator(EmulatorConfig(seed=False))
    portal = app.extensions["emulator"]
    assert list(portal.users) == [1]
    assert len(portal.deals) == 0


def test_form_lead_text_in_comments(emulator):
    lead_id = emulator.portal.create_lead(
        {"NAME": "Оля"}, kind="form", message="Хочу стрижку"
    )
    lead = emulator.portal.leads[lead_id]
    assert lead["COMMENTS"] == "Хочу стрижку"
    assert lead["SOURCE_ID"] == "WEBFORM"


def test_title_lead_text_in_title(emulator):
    lead_id = emulator.portal.create_lead({}, kind="title", message="Перезвоните")
    assert emulator.portal.leads[lead_id]["TITLE"] == "Перезвоните"


def test_openline_lead_message_in_activity(client: RestClient, emulator):
    lead_id = emulator.portal.create_lead(
        {"NAME": "Маша"}, kind="openline", message="Есть окошко завтра?"
    )
    lead = client.result("crm.lead.get", {"id": lead_id})
    activities = client.result(
        "crm.activity.list",
        {"filter": {"OWNER_TYPE_ID": 1, "OWNER_ID": lead_id}, "select": ["*"]},
    )
    assert lead["COMMENTS"] == ""
    assert lead["HAS_IMOL"] == "Y"
    assert lead["SOURCE_ID"] == "1|OPENLINE"
    assert activities[0]["PROVIDER_ID"] == "IMOPENLINES_SESSION"
    assert activities[0]["DIRECTION"] == "1"
    assert activities[0]["DESCRIPTION"] == "Есть окошко завтра?"


def test_email_lead_message_in_activity(client: RestClient, emulator):
    lead_id = emulator.portal.create_lead(
        {"SUBJECT": "Запись"}, kind="email", message="Добрый день, хочу на чистку"
    )
    activity = client.result(
        "crm.activity.list", {"filter": {"OWNER_ID": lead_id, "TYPE_ID": 4}}
    )[0]
    assert activity["DIRECTION"] == "1"
    assert activity["SUBJECT"] == "Запись"
    assert activity["DESCRIPTION"] == "Добрый день, хочу на чистку"


def test_activity_bindings_filter(client: RestClient, emulator):
    lead_id = emulator.portal.create_lead({}, kind="email", message="x")
    activities = client.result(
        "crm.activity.list",
        {"filter": {"BINDINGS": [{"OWNER_TYPE_ID": 1, "OWNER_ID": lead_id}]}},
    )
    assert len(activities) == 1


def test_new_leads_distributed_over_managers(emulator):
    portal = emulator.portal
    assigned = set()
    for _ in range(8):
        lead_id = portal.create_lead({}, kind="form", message="x")
        assigned.add(portal.leads[lead_id]["ASSIGNED_BY_ID"])
    assert assigned == {"3", "4", "5", "6"}


def test_manager_call_recorded(emulator):
    portal = emulator.portal
    lead_id = portal.create_lead({}, kind="form", message="x")
    activity_id = portal.add_activity(
        lead_id, type_id=2, direction=2, author_id=4, subject="", description=""
    )
    activity = portal.activities[activity_id]
    assert activity["TYPE_ID"] == "2"
    assert activity["DIRECTION"] == "2"
    assert activity["AUTHOR_ID"] == "4"
    assert portal.leads[lead_id]["LAST_ACTIVITY_BY"] == "4"


def test_openline_reply_adds_chat_message(emulator):
    portal = emulator.portal
    lead_id = portal.create_lead({}, kind="openline", message="Здравствуйте")
    portal.add_activity(
        lead_id,
        type_id=6,
        direction=2,
        author_id=3,
        provider_id="IMOPENLINES_SESSION",
        description="Добрый день!",
    )
    texts = [message["TEXT"] for message in portal.openline_messages.values()]
    assert texts == ["Здравствуйте", "Добрый день!"]


def test_openline_chat_methods(client: RestClient, emulator):
    lead_id = emulator.portal.create_lead({}, kind="openline", message="Привет")
    chats = client.result(
        "imopenlines.crm.chat.get", {"CRM_ENTITY_TYPE": "lead", "CRM_ENTITY": lead_id}
    )
    client.result(
        "imopenlines.crm.chat.user.add",
        {"CRM_ENTITY_TYPE": "lead", "CRM_ENTITY": lead_id, "USER_ID": 1},
    )
    message_id = client.result(
        "imopenlines.crm.message.add",
        {
            "CRM_ENTITY_TYPE": "lead",
            "CRM_ENTITY": lead_id,
            "USER_ID": 1,
            "CHAT_ID": chats[0]["CHAT_ID"],
            "MESSAGE": "Напоминаем о записи",
        },
    )
    assert chats[0]["CONNECTOR_ID"] in ("livechat", "telegrambot")
    assert (
        emulator.portal.openline_messages[message_id]["TEXT"] == "Напоминаем о записи"
    )


def test_unknown_lead_kind_rejected(emulator):
    with pytest.raises(ValueError):
        emulator.portal.create_lead({}, kind="fax", message="x")


def test_wait_for_returns_false_on_timeout(emulator):
    assert emulator.portal.wait_for(lambda: False, timeout=0.1) is False


@pytest.fixture
def control(emulator):
    session = loopback_session(emulator.ca_path)

    def call(method: str, path: str, **kwargs):
        return session.request(
            method, f"{emulator.base_url}/_emulator/{path}", timeout=30, **kwargs
        )

    return call


def test_control_create_lead(control, emulator):
    response = control(
        "POST",
        "leads",
        json={"fields": {"NAME": "Ира"}, "kind": "form", "message": "Hi"},
    )
    assert response.status_code == 201
    assert emulator.portal.leads[response.json()["id"]]["COMMENTS"] == "Hi"


def test_control_activity_and_status(control, emulator):
    lead_id = control("POST", "leads", json={"kind": "title", "message": "x"}).json()[
        "id"
    ]
    activity = control(
        "POST",
        f"leads/{lead_id}/activities",
        json={"type_id": 2, "direction": 2, "author_id": 3},
    )
    status = control(
        "POST",
        f"leads/{lead_id}/status",
        json={"status_id": "IN_PROCESS", "actor_id": 3},
    )
    assert activity.status_code == 201
    assert status.status_code == 200
    assert emulator.portal.leads[lead_id]["STATUS_ID"] == "IN_PROCESS"


def test_control_missing_field_is_400(control):
    lead_id = control("POST", "leads", json={"kind": "title", "message": "x"}).json()[
        "id"
    ]
    response = control("POST", f"leads/{lead_id}/activities", json={})
    assert response.status_code == 400


def test_control_fault_and_expire(control, client: RestClient):
    control("POST", "faults", json={"method": "profile", "error": "OVERLOAD_LIMIT"})
    faulted = client.call("profile")
    expired = control("POST", "expire-tokens").json()
    after = client.call("profile")
    assert faulted.status_code == 503
    assert expired["expired"] >= 1
    assert after.json()["error"] == "expired_token"


def test_control_state_lists_leads_with_user_fields(
    control, client: RestClient, emulator
):
    client.result(
        "crm.lead.userfield.add",
        {"fields": {"FIELD_NAME": "INTENT", "USER_TYPE_ID": "string"}},
    )
    emulator.portal.create_lead({}, kind="form", message="x")
    state = control("GET", "state").json()
    assert state["counts"]["leads"] == 1
    assert "UF_CRM_INTENT" in state["leads"][0]


def test_control_users(control):
    users = control("GET", "users").json()
    assert [user["ID"] for user in users] == ["1", "2", "3", "4", "5", "6"]

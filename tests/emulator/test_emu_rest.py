"""REST envelope, auth, errors and the wire formats of values."""

import re

import pytest
from emu_helpers import RestClient, loopback_session

from b24app.emulator import EmulatorConfig
from b24app.emulator.server import start_emulator

TIME_KEYS = {
    "start",
    "finish",
    "duration",
    "processing",
    "date_start",
    "date_finish",
    "operating",
}
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def test_success_envelope_has_result_and_time(client: RestClient):
    body = client.call("user.current").json()
    assert body["result"]["ID"] == "1"
    assert TIME_KEYS <= set(body["time"])


def test_success_envelope_dates_use_portal_offset(client: RestClient):
    body = client.call("server.time").json()
    assert body["result"].endswith("+03:00")
    assert ISO_WITH_OFFSET.match(body["time"]["date_start"])


def test_json_suffix_and_method_case(client: RestClient):
    response = client.call("USER.Current.json")
    assert response.status_code == 200
    assert response.json()["result"]["ID"] == "1"


def test_bearer_header_authenticates(emulator, client: RestClient):
    session = loopback_session(emulator.ca_path)
    response = session.get(
        f"{emulator.base_url}/rest/profile",
        headers={"Authorization": f"Bearer {client.token}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["result"]["ADMIN"] is True


def test_access_token_param_authenticates(emulator, client: RestClient):
    session = loopback_session(emulator.ca_path)
    response = session.get(
        f"{emulator.base_url}/rest/profile",
        params={"access_token": client.token},
        timeout=10,
    )
    assert response.status_code == 200


def test_form_body_wins_over_query(emulator, client: RestClient):
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "x"}})
    session = loopback_session(emulator.ca_path)
    response = session.post(
        f"{emulator.base_url}/rest/crm.lead.get",
        params={"auth": client.token, "id": "999"},
        data={"id": str(lead_id)},
        timeout=10,
    )
    assert response.json()["result"]["ID"] == str(lead_id)


def test_form_nested_fields(client: RestClient):
    lead_id = client.result(
        "crm.lead.add",
        {
            "fields[TITLE]": "Форма",
            "fields[PHONE][0][VALUE]": "+7 900 000-00-01",
            "fields[PHONE][0][VALUE_TYPE]": "MOBILE",
        },
        form=True,
    )
    lead = client.result("crm.lead.get", {"id": lead_id})
    assert lead["PHONE"][0]["VALUE"] == "+7 900 000-00-01"
    assert lead["HAS_PHONE"] == "Y"


def test_unknown_method_is_404(client: RestClient):
    response = client.call("crm.nothing.here")
    assert response.status_code == 404
    assert response.json() == {
        "error": "ERROR_METHOD_NOT_FOUND",
        "error_description": "Method not found!",
    }


def test_missing_token_is_401(emulator):
    session = loopback_session(emulator.ca_path)
    response = session.get(f"{emulator.base_url}/rest/profile", timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "NO_AUTH_FOUND"


def test_unknown_token_is_401(client: RestClient):
    response = client.call("profile", token="not-a-token")
    assert response.status_code == 401
    assert response.json()["error"] == "NO_AUTH_FOUND"


def test_error_body_has_no_time(client: RestClient):
    body = client.call("crm.lead.get", {"id": 424242}).json()
    assert set(body) == {"error", "error_description"}


def test_legacy_crm_error_has_empty_code(client: RestClient):
    response = client.call("crm.lead.get", {"id": 424242})
    assert response.status_code == 400
    assert response.json() == {"error": "", "error_description": "Not found"}


def test_legacy_crm_invalid_id(client: RestClient):
    response = client.call("crm.lead.get", {"id": "abc"})
    assert response.json()["error_description"] == "ID is not defined or invalid."


def test_scope_not_granted_is_403(make_emulator):
    handle = make_emulator(scopes=("crm", "user"))
    response = RestClient(handle).call("tasks.task.list")
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_webhook_path_calls_method(emulator):
    base = emulator.portal.add_webhook(3)
    session = loopback_session(emulator.ca_path)
    response = session.get(f"{base}user.current.json", timeout=10)
    assert response.status_code == 200
    assert response.json()["result"]["ID"] == "3"


def test_webhook_wrong_code_rejected(emulator):
    session = loopback_session(emulator.ca_path)
    response = session.get(f"{emulator.base_url}/rest/3/wrongcode/profile", timeout=10)
    assert response.status_code == 403
    assert response.json()["error"] == "INVALID_CREDENTIALS"


def test_webhook_cannot_bind_events(emulator):
    base = emulator.portal.add_webhook(1)
    session = loopback_session(emulator.ca_path)
    response = session.post(
        f"{base}event.bind",
        json={"event": "ONCRMLEADADD", "handler": "https://app.example/h"},
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json()["error"] == "WRONG_AUTH_TYPE"


def test_response_headers(client: RestClient, emulator):
    response = client.call("profile")
    assert response.headers["X-Bitrix-Rest-Application"] == emulator.config.client_id
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_lead_values_are_strings(client: RestClient):
    lead_id = client.result(
        "crm.lead.add", {"fields": {"TITLE": "t", "OPPORTUNITY": 5}}
    )
    lead = client.result("crm.lead.get", {"id": lead_id})
    assert lead["ID"] == str(lead_id)
    assert lead["OPPORTUNITY"] == "5.00"
    assert lead["DATE_CLOSED"] == ""
    assert ISO_WITH_OFFSET.match(lead["DATE_CREATE"])
    assert lead["STATUS_SEMANTIC_ID"] == "P"


def test_lead_add_returns_int(client: RestClient):
    assert isinstance(client.result("crm.lead.add", {"fields": {"TITLE": "t"}}), int)


def test_lead_update_ignores_unknown_fields(client: RestClient):
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "t"}})
    assert client.result(
        "crm.lead.update", {"id": lead_id, "fields": {"NOPE": 1, "ID": 99}}
    )
    assert client.result("crm.lead.get", {"id": lead_id})["ID"] == str(lead_id)


def test_userfield_prefix_rule(client: RestClient):
    client.result(
        "crm.lead.userfield.add",
        {"fields": {"FIELD_NAME": "UF_INTENT", "USER_TYPE_ID": "string"}},
    )
    fields = client.result("crm.lead.fields")
    assert "UF_CRM_INTENT" in fields


def test_userfield_requires_field_name(client: RestClient):
    response = client.call(
        "crm.lead.userfield.add", {"fields": {"USER_TYPE_ID": "string"}}
    )
    assert response.status_code == 400
    assert (
        response.json()["error_description"] == "The 'FIELD_NAME' field is not found."
    )


def test_userfield_enumeration_items_and_values(client: RestClient):
    client.result(
        "crm.lead.userfield.add",
        {
            "fields": {
                "FIELD_NAME": "TAGS",
                "USER_TYPE_ID": "enumeration",
                "MULTIPLE": "Y",
                "LIST": [{"VALUE": "price"}, {"VALUE": "booking"}],
            }
        },
    )
    items = client.result("crm.lead.fields")["UF_CRM_TAGS"]["items"]
    option_ids = {item["VALUE"]: item["ID"] for item in items}
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "t"}})

    client.result(
        "crm.lead.update",
        {"id": lead_id, "fields": {"UF_CRM_TAGS": [option_ids["booking"], "price"]}},
    )
    lead = client.result("crm.lead.get", {"id": lead_id})
    assert lead["UF_CRM_TAGS"] == [option_ids["booking"]]


def test_userfield_list_shows_enum_items(client: RestClient):
    client.result(
        "crm.lead.userfield.add",
        {
            "fields": {
                "FIELD_NAME": "KIND",
                "USER_TYPE_ID": "enumeration",
                "LIST": [{"VALUE": "a", "XML_ID": "A"}],
            }
        },
    )
    fields = client.result(
        "crm.lead.userfield.list", {"filter": {"FIELD_NAME": "UF_CRM_KIND"}}
    )
    assert fields[0]["LIST"][0]["XML_ID"] == "A"


def test_task_add_answers_camel_case(client: RestClient, emulator):
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "t"}})
    task = client.result(
        "tasks.task.add",
        {
            "fields": {
                "TITLE": "Перезвонить клиенту",
                "RESPONSIBLE_ID": 2,
                "DEADLINE": "2030-01-31T18:00:00+03:00",
                "UF_CRM_TASK": [f"L_{lead_id}"],
            }
        },
    )["task"]
    assert task["responsibleId"] == "2"
    assert task["status"] == "2"
    assert task["deadline"] == "2030-01-31T18:00:00+03:00"
    stored = emulator.portal.tasks[int(task["id"])]
    assert stored["UF_CRM_TASK"] == [f"L_{lead_id}"]
    assert stored["CREATED_BY"] == "1"


def test_task_get_shows_crm_binding_when_selected(client: RestClient):
    task = client.result(
        "tasks.task.add",
        {"fields": {"TITLE": "t", "RESPONSIBLE_ID": 3, "UF_CRM_TASK": ["L_1"]}},
    )["task"]
    plain = client.result("tasks.task.get", {"taskId": task["id"]})["task"]
    selected = client.result(
        "tasks.task.get", {"taskId": task["id"], "select": ["ID", "UF_CRM_TASK"]}
    )["task"]
    assert "ufCrmTask" not in plain
    assert selected["ufCrmTask"] == ["L_1"]


def test_task_add_without_title(client: RestClient):
    response = client.call("tasks.task.add", {"fields": {"RESPONSIBLE_ID": 3}})
    assert response.status_code == 400
    assert response.json()["error"] == "ERROR_CORE"


def test_task_complete_and_list(client: RestClient):
    task = client.result(
        "tasks.task.add", {"fields": {"TITLE": "t", "RESPONSIBLE_ID": 4}}
    )["task"]
    client.result("tasks.task.complete", {"taskId": task["id"]})
    listed = client.result(
        "tasks.task.list", {"filter": {"RESPONSIBLE_ID": 4, "STATUS": 5}}
    )["tasks"]
    assert [item["id"] for item in listed] == [task["id"]]


def test_notify_system_add_stored(client: RestClient, emulator):
    notification_id = client.result(
        "im.notify.system.add", {"USER_ID": 2, "MESSAGE": "Лид без ответа", "TAG": "x"}
    )
    stored = emulator.portal.notifications[notification_id]
    assert stored["USER_ID"] == "2"
    assert stored["MESSAGE"] == "Лид без ответа"


def test_notify_requires_message(client: RestClient):
    response = client.call("im.notify.system.add", {"USER_ID": 2})
    assert response.json()["error"] == "MESSAGE_EMPTY"


def test_app_option_round_trip(client: RestClient):
    assert client.result("app.option.get") == []
    client.result("app.option.set", {"options": {"sla_minutes": 15}})
    assert client.result("app.option.get", {"option": "sla_minutes"}) == 15


def test_app_option_set_needs_admin(client: RestClient, emulator):
    manager_token = emulator.portal.user_token(3)
    response = client.call("app.option.set", {"options": {"a": 1}}, token=manager_token)
    assert response.status_code == 403
    assert response.json()["error"] == "ACCESS_DENIED"


def test_app_info_before_install(client: RestClient):
    info = client.result("app.info")
    assert info["INSTALLED"] is False
    assert info["STATUS"] == "L"


def test_scope_lists_granted(client: RestClient):
    assert "crm" in client.result("scope")


def test_stage_history_records_status_move(client: RestClient):
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "t"}})
    client.result("crm.lead.update", {"id": lead_id, "fields": {"STATUS_ID": "JUNK"}})
    items = client.result(
        "crm.stagehistory.list", {"entityTypeId": 1, "filter": {"OWNER_ID": lead_id}}
    )["items"]
    assert [(item["TYPE_ID"], item["STATUS_ID"]) for item in items] == [
        (1, "NEW"),
        (3, "JUNK"),
    ]


def test_status_list_filters_entity(client: RestClient):
    statuses = client.result("crm.status.list", {"filter": {"ENTITY_ID": "STATUS"}})
    assert [item["STATUS_ID"] for item in statuses] == [
        "NEW",
        "IN_PROCESS",
        "PROCESSED",
        "JUNK",
        "CONVERTED",
    ]


def test_activity_add_validates_subject(client: RestClient):
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "t"}})
    response = client.call(
        "crm.activity.add",
        {
            "fields": {
                "OWNER_TYPE_ID": 1,
                "OWNER_ID": lead_id,
                "TYPE_ID": 2,
                "RESPONSIBLE_ID": 3,
                "COMMUNICATIONS": [{"VALUE": "+7900"}],
            }
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == ""


def test_timeline_comment_add(client: RestClient, emulator):
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "t"}})
    comment_id = client.result(
        "crm.timeline.comment.add",
        {"fields": {"ENTITY_ID": lead_id, "ENTITY_TYPE": "lead", "COMMENT": "Тег"}},
    )
    assert emulator.portal.timeline_comments[comment_id]["COMMENT"] == "Тег"


def test_timeline_comment_unknown_owner(client: RestClient):
    response = client.call(
        "crm.timeline.comment.add",
        {"fields": {"ENTITY_ID": 9999, "ENTITY_TYPE": "lead", "COMMENT": "x"}},
    )
    assert response.json()["error"] == "OWNER_NOT_FOUND"


def test_department_get_has_head(client: RestClient):
    departments = client.result("department.get", {"ID": 2})
    assert departments[0]["UF_HEAD"] == "2"
    assert departments[0]["PARENT"] == "1"


def test_user_get_filters_by_department(client: RestClient):
    users = client.result("user.get", {"FILTER": {"UF_DEPARTMENT": 2}})
    assert [user["ID"] for user in users] == ["2", "3", "4", "5", "6"]


def test_deal_list_booking_pipeline(client: RestClient):
    deals = client.result("crm.deal.list", {"filter": {"CATEGORY_ID": 1}})
    stages = {deal["STAGE_ID"] for deal in deals}
    assert stages == {"C1:NEW", "C1:PREPARATION", "C1:WON", "C1:LOSE", "C1:APOLOGY"}


def test_deal_update_keeps_category(client: RestClient):
    deal_id = client.result("crm.deal.add", {"fields": {"CATEGORY_ID": 1}})
    client.result("crm.deal.update", {"id": deal_id, "fields": {"CATEGORY_ID": 0}})
    deal = client.result("crm.deal.get", {"id": deal_id})
    assert deal["CATEGORY_ID"] == "1"
    assert deal["STAGE_ID"] == "C1:NEW"


def test_plain_http_mode():
    handle = start_emulator(EmulatorConfig(), tls=False)
    try:
        response = RestClient(handle).call("server.time")
    finally:
        handle.stop()
    assert handle.base_url.startswith("http://127.0.0.1:")
    assert response.status_code == 200


def test_non_loopback_host_rejected(tmp_path):
    with pytest.raises(ValueError):
        start_emulator(host="0.0.0.0", cert_dir=tmp_path)

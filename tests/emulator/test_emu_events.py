"""Event delivery to a loopback receiver, and event/placement binding rules."""

import pytest
from emu_helpers import Receiver, RestClient

APP_AUTH_KEYS = {
    "auth[access_token]",
    "auth[expires]",
    "auth[expires_in]",
    "auth[scope]",
    "auth[domain]",
    "auth[server_endpoint]",
    "auth[status]",
    "auth[client_endpoint]",
    "auth[member_id]",
    "auth[user_id]",
    "auth[application_token]",
}
NO_TOKEN_AUTH_KEYS = {
    "auth[domain]",
    "auth[server_endpoint]",
    "auth[status]",
    "auth[client_endpoint]",
    "auth[member_id]",
    "auth[application_token]",
}


def _bind(client: RestClient, event: str, handler: str):
    return client.call("event.bind", {"event": event, "handler": handler})


@pytest.fixture
def installed(emulator):
    """Finish the install of an app without an installer page."""
    emulator.portal.install_app()
    return emulator


def _auth_keys(form: dict[str, str]) -> set[str]:
    return {key for key in form if key.startswith("auth[")}


def test_no_delivery_before_install_finished(emulator, client, receiver):
    _bind(client, "ONCRMLEADADD", f"{receiver.url}/events")
    client.result("crm.lead.add", {"fields": {"TITLE": "early"}})
    emulator.portal.events.wait_idle()
    assert receiver.events() == []
    assert emulator.portal.delivered_events == []


def test_delivery_after_install_finished(installed, client, receiver):
    _bind(client, "ONCRMLEADADD", f"{receiver.url}/events")
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "late"}})
    assert installed.portal.wait_for(lambda: receiver.events("ONCRMLEADADD"))
    event = receiver.events("ONCRMLEADADD")[0]
    assert event.form["data[FIELDS][ID]"] == str(lead_id)
    assert event.content_type == "application/x-www-form-urlencoded"


def test_delivered_body_keys_and_strings(installed, client, receiver):
    _bind(client, "ONCRMLEADADD", f"{receiver.url}/events")
    client.result("crm.lead.add", {"fields": {"TITLE": "x"}})
    installed.portal.wait_for(lambda: receiver.events("ONCRMLEADADD"))
    form = receiver.events("ONCRMLEADADD")[0].form
    assert form["event"] == "ONCRMLEADADD"
    assert form["event_handler_id"].isdigit()
    assert form["ts"].isdigit()
    assert _auth_keys(form) == APP_AUTH_KEYS
    assert "null" not in form.values()
    assert "None" not in form.values()


def test_own_write_echoes_caller_token(installed, client, receiver):
    _bind(client, "ONCRMLEADUPDATE", f"{receiver.url}/events")
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "x"}})
    client.result("crm.lead.update", {"id": lead_id, "fields": {"TITLE": "y"}})
    installed.portal.wait_for(lambda: receiver.events("ONCRMLEADUPDATE"))
    form = receiver.events("ONCRMLEADUPDATE")[0].form
    assert form["auth[access_token]"] == client.token
    assert form["auth[user_id]"] == "1"


def test_user_action_carries_that_users_token(installed, client, receiver):
    _bind(client, "ONCRMLEADADD", f"{receiver.url}/events")
    installed.portal.create_lead(
        {"TITLE": "manual"}, kind="title", message="x", actor_id=3
    )
    installed.portal.wait_for(lambda: receiver.events("ONCRMLEADADD"))
    form = receiver.events("ONCRMLEADADD")[0].form
    assert form["auth[user_id]"] == "3"
    assert form["auth[access_token]"] == installed.portal.user_token(3)


def test_automation_event_has_no_tokens(installed, client, receiver):
    lead_id = installed.portal.create_lead({}, kind="form", message="x")
    _bind(client, "ONCRMLEADUPDATE", f"{receiver.url}/events")
    installed.portal.change_lead_status(lead_id, "IN_PROCESS", actor_id="automation")
    installed.portal.wait_for(lambda: receiver.events("ONCRMLEADUPDATE"))
    form = receiver.events("ONCRMLEADUPDATE")[0].form
    assert _auth_keys(form) == NO_TOKEN_AUTH_KEYS


def test_application_token_matches_install(installed, client, receiver):
    _bind(client, "ONCRMLEADADD", f"{receiver.url}/events")
    client.result("crm.lead.add", {"fields": {"TITLE": "x"}})
    installed.portal.wait_for(lambda: receiver.events("ONCRMLEADADD"))
    form = receiver.events("ONCRMLEADADD")[0].form
    assert form["auth[application_token]"] == installed.portal.app.application_token


def test_activity_event_for_openline_lead(installed, client, receiver):
    _bind(client, "ONCRMACTIVITYADD", f"{receiver.url}/events")
    installed.portal.create_lead({"NAME": "Ира"}, kind="openline", message="Привет")
    installed.portal.wait_for(lambda: receiver.events("ONCRMACTIVITYADD"))
    activity_id = receiver.events("ONCRMACTIVITYADD")[0].form["data[FIELDS][ID]"]
    activity = client.result("crm.activity.get", {"id": activity_id})
    assert activity["PROVIDER_ID"] == "IMOPENLINES_SESSION"
    assert activity["DESCRIPTION"] == "Привет"


def test_timeline_comment_event_data_id(installed, client, receiver):
    _bind(client, "ONCRMTIMELINECOMMENTADD", f"{receiver.url}/events")
    lead_id = client.result("crm.lead.add", {"fields": {"TITLE": "x"}})
    comment_id = client.result(
        "crm.timeline.comment.add",
        {"fields": {"ENTITY_ID": lead_id, "ENTITY_TYPE": "lead", "COMMENT": "c"}},
    )
    installed.portal.wait_for(lambda: receiver.events("ONCRMTIMELINECOMMENTADD"))
    form = receiver.events("ONCRMTIMELINECOMMENTADD")[0].form
    assert form["data[ID]"] == str(comment_id)


def test_task_event_fields_after(installed, client, receiver):
    _bind(client, "ONTASKADD", f"{receiver.url}/events")
    task = client.result(
        "tasks.task.add", {"fields": {"TITLE": "t", "RESPONSIBLE_ID": 3}}
    )
    installed.portal.wait_for(lambda: receiver.events("ONTASKADD"))
    form = receiver.events("ONTASKADD")[0].form
    assert form["data[FIELDS_AFTER][ID]"] == task["task"]["id"]


def test_failed_handler_not_retried(installed, client):
    down = Receiver(status=500)
    try:
        _bind(client, "ONCRMLEADADD", f"{down.url}/events")
        client.result("crm.lead.add", {"fields": {"TITLE": "x"}})
        installed.portal.wait_for(lambda: installed.portal.delivered_events)
        installed.portal.events.wait_idle()
        assert len(down.events("ONCRMLEADADD")) == 1
        assert installed.portal.delivered_events[0][2] == 500
    finally:
        down.stop()


def test_unreachable_handler_recorded(installed, client):
    closed = Receiver()
    url = f"{closed.url}/events"
    closed.stop()
    _bind(client, "ONCRMLEADADD", url)
    client.result("crm.lead.add", {"fields": {"TITLE": "x"}})
    assert installed.portal.wait_for(lambda: installed.portal.delivered_events)
    assert installed.portal.delivered_events[0][2].startswith("error")


def test_bind_duplicate_rejected(client, receiver):
    _bind(client, "ONCRMLEADADD", f"{receiver.url}/events")
    again = _bind(client, "ONCRMLEADADD", f"{receiver.url}/events")
    assert again.status_code == 400
    assert again.json() == {
        "error": "ERROR_CORE",
        "error_description": "Unable to set event handler: Handler already binded",
    }


def test_bind_localhost_rejected(client):
    response = _bind(client, "ONCRMLEADADD", "http://localhost:8000/events")
    assert response.json()["error"] == "ERROR_WRONG_HANDLER_URL"


def test_bind_unsupported_protocol(client):
    response = _bind(client, "ONCRMLEADADD", "ftp://127.0.0.1/events")
    assert response.json()["error"] == "ERROR_UNSUPPORTED_PROTOCOL"


def test_bind_unknown_event(client, receiver):
    response = _bind(client, "ONSOMETHINGODD", f"{receiver.url}/events")
    assert response.json()["error"] == "ERROR_EVENT_NOT_FOUND"


def test_bind_event_outside_scopes(make_emulator, receiver):
    client = RestClient(make_emulator(scopes=("crm",)))
    response = _bind(client, "ONTASKADD", f"{receiver.url}/events")
    assert response.json()["error"] == "ERROR_EVENT_NOT_FOUND"


def test_event_get_and_unbind(client, receiver):
    _bind(client, "ONCRMLEADADD", f"{receiver.url}/a")
    _bind(client, "ONCRMLEADADD", f"{receiver.url}/b")
    listed = client.result("event.get")
    removed = client.result(
        "event.unbind", {"event": "ONCRMLEADADD", "handler": f"{receiver.url}/a"}
    )
    assert listed[0] == {
        "event": "ONCRMLEADADD",
        "handler": f"{receiver.url}/a",
        "auth_type": "0",
        "offline": 0,
    }
    assert removed == {"count": 1}
    assert len(client.result("event.get")) == 1


def test_placement_bind_duplicate_rejected(client, receiver):
    params = {"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": f"{receiver.url}/tab"}
    assert client.result("placement.bind", params) is True
    again = client.call("placement.bind", params)
    assert again.status_code == 400
    assert again.json()["error"] == "ERROR_CORE"
    assert "already binded" in again.json()["error_description"]


def test_placement_default_rejected(client, receiver):
    response = client.call(
        "placement.bind", {"PLACEMENT": "DEFAULT", "HANDLER": f"{receiver.url}/x"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "ERROR_ARGUMENT"
    assert response.json()["argument"] == "PLACEMENT"


def test_placement_unknown_code(client, receiver):
    response = client.call(
        "placement.bind", {"PLACEMENT": "CRM_NOWHERE", "HANDLER": f"{receiver.url}/x"}
    )
    assert response.json()["error"] == "ERROR_PLACEMENT_NOT_FOUND"


def test_placement_bind_needs_admin(client, emulator, receiver):
    response = client.call(
        "placement.bind",
        {"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": f"{receiver.url}/x"},
        token=emulator.portal.user_token(4),
    )
    assert response.status_code == 403
    assert response.json()["error"] == "ACCESS_DENIED"


def test_placement_single_instance(client, receiver):
    client.result(
        "placement.bind", {"PLACEMENT": "REST_APP_URI", "HANDLER": f"{receiver.url}/a"}
    )
    again = client.call(
        "placement.bind", {"PLACEMENT": "REST_APP_URI", "HANDLER": f"{receiver.url}/b"}
    )
    assert again.json()["error"] == "ERROR_PLACEMENT_MAX_COUNT"


def test_placement_get_and_unbind(client, receiver):
    client.result(
        "placement.bind",
        {
            "PLACEMENT": "CRM_ANALYTICS_MENU",
            "HANDLER": f"{receiver.url}/kpi",
            "TITLE": "KPI",
        },
    )
    listed = client.result("placement.get")
    removed = client.result("placement.unbind", {"PLACEMENT": "CRM_ANALYTICS_MENU"})
    assert listed[0]["title"] == "KPI"
    assert removed == {"count": 2}

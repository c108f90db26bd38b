"""imopenlines.dialog.get: lookup keys, response shape, access and errors."""

import pytest
from emu_helpers import RestClient

from b24app.emulator.methods import openlines

OPERATOR = 4
OTHER_MANAGER = 3


@pytest.fixture
def deal_chat(emulator) -> tuple[int, int]:
    """Return (deal id, chat id) of an open-line chat bound to a seeded deal."""
    deal_id = min(emulator.portal.deals)
    chat_id = openlines.open_crm_chat(
        emulator.portal, "deal", deal_id, operator_id=OPERATOR
    )
    return deal_id, chat_id


def _error(response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


def test_dialog_by_chat_id_shape(client: RestClient, emulator, deal_chat):
    deal_id, chat_id = deal_chat
    chat = emulator.portal.openline_chats[chat_id]

    dialog = client.result("imopenlines.dialog.get", {"CHAT_ID": chat_id})

    assert dialog["id"] == chat_id
    assert dialog["dialog_id"] == f"chat{chat_id}"
    assert dialog["type"] == "lines"
    assert dialog["message_type"] == "L"
    assert dialog["entity_type"] == "LINES"
    assert dialog["entity_data_2"] == f"LEAD|0|COMPANY|0|CONTACT|0|DEAL|{deal_id}"
    assert dialog["entity_data_1"].startswith(f"Y|DEAL|{deal_id}|N|N|")
    assert dialog["entity_data_1"].split("|")[5] == str(chat["SESSION_ID"])
    assert dialog["entity_id"] == (
        f"telegrambot|1|{chat_id}|{openlines.client_user_id(chat_id)}"
    )
    assert dialog["entity_link"] == {
        "type": "LINES",
        "url": "",
        "id": dialog["entity_id"],
    }
    assert dialog["owner"] == OPERATOR
    assert dialog["manager_list"] == [OPERATOR]
    assert dialog["description"] is None
    assert dialog["extranet"] is False
    assert dialog["date_create"] == chat["DATE_CREATE"]
    assert set(dialog["restrictions"]) >= {"send", "user_list", "leave_owner"}
    assert set(dialog["permissions"]) >= {"can_post", "manage_settings"}


def test_dialog_counts_messages(client: RestClient, emulator, deal_chat):
    _, chat_id = deal_chat
    empty = client.result("imopenlines.dialog.get", {"CHAT_ID": chat_id})
    first = emulator.portal.client_reply(chat_id, "Здравствуйте")
    last = emulator.portal.client_reply(chat_id, "Можно перенести?")

    dialog = client.result("imopenlines.dialog.get", {"CHAT_ID": chat_id})

    assert empty["message_count"] == 0
    assert empty["last_message_id"] == 0
    assert first < last
    assert dialog["message_count"] == 2
    assert dialog["last_message_id"] == last
    assert dialog["last_message_views"]["message_id"] == last


@pytest.mark.parametrize(
    "key, value",
    [
        ("CHAT_ID", lambda chat: chat["CHAT_ID"]),
        ("CHAT_ID", lambda chat: str(chat["CHAT_ID"])),
        ("DIALOG_ID", lambda chat: f"chat{chat['CHAT_ID']}"),
        ("SESSION_ID", lambda chat: chat["SESSION_ID"]),
        ("USER_CODE", openlines.user_code),
        ("USER_CODE", lambda chat: "imol|" + openlines.user_code(chat)),
    ],
)
def test_dialog_found_by_each_key(client: RestClient, emulator, deal_chat, key, value):
    _, chat_id = deal_chat
    chat = emulator.portal.openline_chats[chat_id]

    dialog = client.result("imopenlines.dialog.get", {key: value(chat)})

    assert dialog["id"] == chat_id


def test_dialog_form_encoded_call(client: RestClient, deal_chat):
    _, chat_id = deal_chat
    dialog = client.result(
        "imopenlines.dialog.get", {"DIALOG_ID": f"chat{chat_id}"}, form=True
    )
    assert dialog["id"] == chat_id


def test_dialog_first_given_key_wins(client: RestClient, emulator, deal_chat):
    _, chat_id = deal_chat
    other = openlines.open_crm_chat(emulator.portal, "contact", 1)

    dialog = client.result(
        "imopenlines.dialog.get",
        {"CHAT_ID": chat_id, "DIALOG_ID": f"chat{other}"},
    )

    assert dialog["id"] == chat_id


@pytest.mark.parametrize(
    "params",
    [{}, {"CHAT_ID": ""}, {"DIALOG_ID": "  "}, {"SESSION_ID": 0}, {"USER_CODE": None}],
)
def test_dialog_without_id_rejected(client: RestClient, deal_chat, params):
    response = client.call("imopenlines.dialog.get", params)
    assert _error(response) == (400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")


@pytest.mark.parametrize(
    "params",
    [
        {"CHAT_ID": 99999},
        {"CHAT_ID": "abc"},
        {"DIALOG_ID": "chat99999"},
        {"DIALOG_ID": "4"},
        {"SESSION_ID": 99999},
        {"USER_CODE": "livechat|1|99999|1"},
    ],
)
def test_dialog_unknown_id_rejected(client: RestClient, deal_chat, params):
    response = client.call("imopenlines.dialog.get", params)
    status, error, description = _error(response)
    assert status == 400
    assert error == "ACCESS_ERROR"
    assert description == "You do not have access to the specified dialog"


def test_dialog_hidden_from_non_member(client: RestClient, emulator, deal_chat):
    _, chat_id = deal_chat
    assert not emulator.portal.is_admin(OTHER_MANAGER)

    response = client.call(
        "imopenlines.dialog.get",
        {"CHAT_ID": chat_id},
        token=emulator.portal.user_token(OTHER_MANAGER),
    )

    assert _error(response)[:2] == (400, "ACCESS_ERROR")


def test_dialog_roles_of_operator_and_admin(client: RestClient, emulator, deal_chat):
    _, chat_id = deal_chat
    as_operator = client.result(
        "imopenlines.dialog.get",
        {"CHAT_ID": chat_id},
        token=emulator.portal.user_token(OPERATOR),
    )
    as_admin = client.result("imopenlines.dialog.get", {"CHAT_ID": chat_id})

    assert as_operator["role"] == "owner"
    assert as_admin["role"] == "none"


def test_dialog_needs_imopenlines_scope(make_emulator):
    handle = make_emulator(scopes=("crm", "im"))
    chat_id = openlines.open_crm_chat(handle.portal, "deal", 1)
    client = RestClient(handle)

    response = client.call("imopenlines.dialog.get", {"CHAT_ID": chat_id})

    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_dialog_in_batch(client: RestClient, deal_chat):
    _, chat_id = deal_chat
    result = client.result(
        "batch",
        {
            "halt": 0,
            "cmd": {
                "found": f"imopenlines.dialog.get?CHAT_ID={chat_id}",
                "missing": "imopenlines.dialog.get?CHAT_ID=99999",
            },
        },
    )
    assert result["result"]["found"]["id"] == chat_id
    assert result["result_error"]["missing"]["error"] == "ACCESS_ERROR"

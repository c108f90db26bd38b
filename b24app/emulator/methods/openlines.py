"""Clients on the other side of open-line chats bound to CRM deals and contacts.

The `imopenlines.crm.*` and `imopenlines.dialog.get` REST methods live in
`im.py`; this module adds what a test needs to play the client: open a chat
bound to a deal, read what reached the client, and reply, which raises
ONIMBOTMESSAGEADD for every chat bot that is a member of the chat. It also
builds the chat fields both the event and `imopenlines.dialog.get` carry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .. import channels

if TYPE_CHECKING:
    from ..state import Portal

logger = logging.getLogger(__name__)

# Client (connector) users get ids from here on, one per chat.
CLIENT_USER_BASE = 100_000


def open_crm_chat(
    portal: Portal,
    entity_type: str,
    entity_id: int,
    *,
    connector: str = "telegrambot",
    operator_id: int | None = None,
    with_line_bots: bool = False,
) -> int:
    """Open an open-line chat bound to a CRM item and return its CHAT_ID.

    ``with_line_bots`` puts every open-line chat bot in the chat from the
    start, as when the line's settings name the bot that responds first.
    """
    with portal.lock:
        chat_id = 1000 + portal.next_id("chat")
        title, _source = channels.OPENLINE_CONNECTORS.get(
            connector, (connector, "1|OPENLINE")
        )
        portal.openline_chats.data[chat_id] = {
            "CHAT_ID": chat_id,
            "CONNECTOR_ID": connector,
            "CONNECTOR_TITLE": title,
            "LINE_ID": 1,
            "SESSION_ID": portal.next_id("session"),
            "CRM_ENTITY_TYPE": entity_type.upper(),
            "CRM_ENTITY": int(entity_id),
            "ACTIVE": "Y",
            "USERS": [operator_id or portal.owner_id],
            "DATE_CREATE": portal.now_iso(),
        }
        if with_line_bots:
            portal.openline_chats.data[chat_id]["USERS"] += [
                int(bot["ID"])
                for bot in portal.bots.data.values()
                if bot.get("OPENLINE") == "Y"
            ]
        portal.touch()
    return chat_id


def _bindings(chat: dict) -> str:
    """CRM bindings as in ``entity_data_2``: ``LEAD|0|COMPANY|0|CONTACT|0|DEAL|12``."""
    return "|".join(
        f"{kind}|{chat['CRM_ENTITY'] if chat['CRM_ENTITY_TYPE'] == kind else 0}"
        for kind in ("LEAD", "COMPANY", "CONTACT", "DEAL")
    )


def _session_data(chat: dict) -> str:
    """Session data as in ``entity_data_1``: ``Y|DEAL|12|N|N|<session>|0|0|0|0``."""
    return (
        f"Y|{chat['CRM_ENTITY_TYPE']}|{chat['CRM_ENTITY']}|N|N|"
        f"{chat['SESSION_ID']}|0|0|0|0"
    )


def client_user_id(chat_id: int) -> int:
    """Return the id of the connector user who is the client of chat ``chat_id``."""
    return CLIENT_USER_BASE + int(chat_id)


def user_code(chat: dict) -> str:
    """Return the chat's USER_CODE: ``<connector>|<line>|<chat>|<client user>``."""
    chat_id = int(chat["CHAT_ID"])
    return (
        f"{chat['CONNECTOR_ID']}|{chat['LINE_ID']}|{chat_id}|{client_user_id(chat_id)}"
    )


def dialog_view(portal: Portal, chat: dict, user_id: int) -> dict[str, Any]:
    """Return the chat as ``imopenlines.dialog.get`` shows it to ``user_id``.

    Operators are the chat members that are neither bots nor the client.
    Read receipts and views are not tracked, so those lists are empty.
    """
    chat_id = int(chat["CHAT_ID"])
    with portal.lock:
        bot_ids = {int(bot_id) for bot_id in portal.bots.data}
        message_ids = [
            int(message["ID"])
            for message in portal.openline_messages.data.values()
            if int(message["CHAT_ID"]) == chat_id
        ]
    members = [int(user) for user in chat["USERS"]]
    operators = [user for user in members if user not in bot_ids]
    owner = operators[0] if operators else 0
    if user_id == owner:
        role = "owner"
    elif user_id in members:
        role = "member"
    else:
        role = "none"
    last_message_id = max(message_ids, default=0)
    code = user_code(chat)
    return {
        "id": chat_id,
        "parent_chat_id": 0,
        "parent_message_id": 0,
        "name": chat.get("NAME") or f"Клиент - {chat['CONNECTOR_TITLE']}",
        "description": None,
        "owner": owner,
        "extranet": False,
        "avatar": "",
        "color": "#58cc47",
        "type": "lines",
        "counter": 0,
        "user_counter": len(members) + 1,
        "message_count": len(message_ids),
        "unread_id": 0,
        "restrictions": dict.fromkeys(
            (
                "avatar",
                "rename",
                "extend",
                "call",
                "mute",
                "leave",
                "leave_owner",
                "send",
                "user_list",
            ),
            True,
        ),
        "last_message_id": last_message_id,
        "last_id": last_message_id,
        "marked_id": 0,
        "disk_folder_id": 0,
        "entity_type": "LINES",
        "entity_id": code,
        "entity_data_1": _session_data(chat),
        "entity_data_2": _bindings(chat),
        "entity_data_3": "N",
        "mute_list": [],
        "date_create": chat.get("DATE_CREATE") or portal.now_iso(),
        "message_type": "L",
        "public": "",
        "role": role,
        "entity_link": {"type": "LINES", "url": "", "id": code},
        "text_field_enabled": chat["ACTIVE"] == "Y",
        "background_id": None,
        "permissions": {
            "manage_users_add": "member",
            "manage_users_delete": "manager",
            "manage_ui": "member",
            "manage_settings": "owner",
            "manage_messages": "member",
            "can_post": "member",
        },
        "is_new": False,
        "readed_list": [],
        "manager_list": [owner] if owner else [],
        "last_message_views": {
            "message_id": last_message_id,
            "first_viewers": [],
            "count_of_viewers": 0,
        },
        "dialog_id": f"chat{chat_id}",
    }


def messages_to_client(portal: Portal, chat_id: int) -> list[dict]:
    """Messages of the chat written by anyone but the client, oldest first."""
    with portal.lock:
        return [
            dict(message)
            for message in sorted(
                portal.openline_messages.data.values(), key=lambda m: m["ID"]
            )
            if message["CHAT_ID"] == chat_id and message["AUTHOR_ID"] != 0
        ]


def client_reply(
    portal: Portal, chat_id: int, text: str, *, with_entity_data: bool = True
) -> int:
    """Post a client message into the chat and send member bots ONIMBOTMESSAGEADD.

    Without ``with_entity_data`` the event leaves out the CHAT_ENTITY_DATA_*
    keys, as events that carry no chat binding do, so a bot has to read them
    with ``imopenlines.dialog.get``.
    """
    with portal.lock:
        chat = portal.openline_chats.data.get(int(chat_id))
        if chat is None:
            raise KeyError(f"Chat {chat_id} does not exist.")
        chat = dict(chat)
        bots = [
            dict(bot)
            for bot in portal.bots.data.values()
            if int(bot["ID"]) in [int(user) for user in chat["USERS"]]
        ]
    message_id = channels.add_chat_message(portal, int(chat_id), 0, text)
    client_user = client_user_id(chat_id)
    for bot in bots:
        url = bot.get("EVENT_MESSAGE_ADD")
        if not url:
            continue
        data = {
            "BOT": {
                str(bot["ID"]): {
                    "BOT_ID": str(bot["ID"]),
                    "BOT_CODE": bot["CODE"],
                    "application_token": portal.app.application_token,
                }
            },
            "PARAMS": {
                "MESSAGE": text,
                "MESSAGE_ID": str(message_id),
                "DIALOG_ID": f"chat{chat_id}",
                "TO_CHAT_ID": str(chat_id),
                "CHAT_ID": str(chat_id),
                "FROM_USER_ID": str(client_user),
                "AUTHOR_ID": str(client_user),
                "MESSAGE_TYPE": "L",
                "CHAT_TYPE": "L",
                "CHAT_ENTITY_TYPE": "LINES",
                "CHAT_ENTITY_ID": user_code(chat),
                "LANGUAGE": "ru",
            },
            "USER": {
                "ID": str(client_user),
                "NAME": "Клиент",
                "IS_BOT": "N",
                "IS_CONNECTOR": "Y",
                "IS_NETWORK": "N",
                "IS_EXTRANET": "Y",
            },
        }
        if with_entity_data:
            data["PARAMS"].update(
                {
                    "CHAT_ENTITY_DATA_1": _session_data(chat),
                    "CHAT_ENTITY_DATA_2": _bindings(chat),
                    "CHAT_ENTITY_DATA_3": "N",
                }
            )
        portal.events.send(
            "ONIMBOTMESSAGEADD", url, data, portal.events.auth_block(access=None)
        )
    return message_id

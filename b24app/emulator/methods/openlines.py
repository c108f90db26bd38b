"""Clients on the other side of open-line chats bound to CRM deals and contacts.

The `imopenlines.crm.*` REST methods live in `im.py`; this module adds what
a test needs to play the client: open a chat bound to a deal, read what
reached the client, and reply, which raises ONIMBOTMESSAGEADD for every
chat bot that is a member of the chat.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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


def client_reply(portal: Portal, chat_id: int, text: str) -> int:
    """Post a client message into the chat and send member bots ONIMBOTMESSAGEADD."""
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
    client_user = CLIENT_USER_BASE + int(chat_id)
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
                "CHAT_ENTITY_ID": f"{chat['CONNECTOR_ID']}|1|{chat_id}|{client_user}",
                "CHAT_ENTITY_DATA_1": f"Y|{chat['CRM_ENTITY_TYPE']}|"
                f"{chat['CRM_ENTITY']}|N|N|{chat['SESSION_ID']}|0|0|0|0",
                "CHAT_ENTITY_DATA_2": _bindings(chat),
                "CHAT_ENTITY_DATA_3": "N",
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
        portal.events.send(
            "ONIMBOTMESSAGEADD", url, data, portal.events.auth_block(access=None)
        )
    return message_id

"""Legacy chat-bot API (`imbot.*`): register a bot and let it write to dialogs.

A bot is stored with its handler URLs; `openlines.client_reply` sends it
ONIMBOTMESSAGEADD. Registering the same CODE again returns the same bot, as
an app reinstall would find it.
"""

from __future__ import annotations

from ..channels import add_chat_message
from ..errors import RestError, argument_error
from ..params import as_dict, get_param
from ..registry import CallContext, rest_method

MAX_BOTS = 5
BOT_ID_BASE = 500


@rest_method("imbot.register", "imbot")
def register(ctx: CallContext, params: dict) -> int:
    ctx.require_app()
    code = str(get_param(params, "CODE") or "").strip()
    if not code:
        raise argument_error("CODE")
    handler = get_param(params, "EVENT_MESSAGE_ADD") or get_param(
        params, "EVENT_HANDLER"
    )
    if not handler:
        raise RestError("EVENT_MESSAGE_ADD_ERROR", "Handler for message add not set")
    properties = as_dict(get_param(params, "PROPERTIES"))
    if not (properties.get("NAME") or properties.get("LAST_NAME")):
        raise RestError("NAME_ERROR", "Bot name is not specified")
    portal = ctx.portal
    with portal.lock:
        for bot in portal.bots.data.values():
            if bot["CODE"] == code:
                return int(bot["ID"])
        if len(portal.bots.data) >= MAX_BOTS:
            raise RestError("MAX_COUNT_ERROR", "Has reached the maximum number of bots")
        bot_id = BOT_ID_BASE + portal.next_id("bot")
        bot_type = str(get_param(params, "TYPE") or "B").upper()
        portal.bots.data[bot_id] = {
            "ID": bot_id,
            "CODE": code,
            "TYPE": bot_type,
            "OPENLINE": "Y"
            if bot_type == "O"
            else str(get_param(params, "OPENLINE") or "N").upper(),
            "EVENT_MESSAGE_ADD": str(handler),
            "EVENT_WELCOME_MESSAGE": get_param(params, "EVENT_WELCOME_MESSAGE"),
            "EVENT_BOT_DELETE": get_param(params, "EVENT_BOT_DELETE"),
            "NAME": properties.get("NAME") or properties.get("LAST_NAME"),
            "WORK_POSITION": properties.get("WORK_POSITION"),
        }
        portal.touch()
    return bot_id


@rest_method("imbot.unregister", "imbot")
def unregister(ctx: CallContext, params: dict) -> bool:
    bot_id = int(str(get_param(params, "BOT_ID") or 0))
    with ctx.portal.lock:
        if bot_id not in ctx.portal.bots.data:
            raise RestError("BOT_ID_ERROR", "Bot not found")
        del ctx.portal.bots.data[bot_id]
    return True


@rest_method("imbot.bot.list", "imbot")
def bot_list(ctx: CallContext, params: dict) -> dict:
    with ctx.portal.lock:
        return {
            str(bot["ID"]): {"ID": bot["ID"], "CODE": bot["CODE"], "TYPE": bot["TYPE"]}
            for bot in ctx.portal.bots.data.values()
        }


@rest_method("imbot.message.add", "imbot")
def message_add(ctx: CallContext, params: dict) -> int:
    portal = ctx.portal
    raw_bot = get_param(params, "BOT_ID")
    with portal.lock:
        bots = dict(portal.bots.data)
    if raw_bot:
        bot_id = int(str(raw_bot))
        if bot_id not in bots:
            raise RestError("BOT_ID_ERROR", "Bot not found")
    elif len(bots) == 1:
        bot_id = next(iter(bots))
    else:
        raise RestError("BOT_ID_ERROR", "Bot not found")
    dialog = str(get_param(params, "DIALOG_ID") or "")
    if not dialog:
        raise RestError("DIALOG_ID_EMPTY", "Dialog ID can't be empty")
    message = str(get_param(params, "MESSAGE") or "").strip()
    if not message and not get_param(params, "ATTACH"):
        raise RestError("MESSAGE_EMPTY", "Message can't be empty")
    if dialog.startswith("chat") and dialog[4:].isdigit():
        chat_id = int(dialog[4:])
        with portal.lock:
            chat = portal.openline_chats.data.get(chat_id)
            if chat is None or bot_id not in [int(u) for u in chat["USERS"]]:
                raise RestError("ACCESS_ERROR", "You don't have access to this chat")
        return add_chat_message(portal, chat_id, bot_id, message)
    with portal.lock:
        message_id = portal.next_id("chat_message")
        portal.bot_messages.data[message_id] = {
            "ID": message_id,
            "BOT_ID": bot_id,
            "DIALOG_ID": dialog,
            "MESSAGE": message,
            "DATE": portal.now_iso(),
        }
        portal.touch()
    return message_id

"""Notifications (`im.notify.*`) and open-line chats bound to CRM items."""

from __future__ import annotations

import logging

from .. import channels
from ..errors import RestError, argument_error
from ..params import get_param
from ..registry import CallContext, rest_method
from . import openlines

logger = logging.getLogger(__name__)

ATTACH_MAX_LENGTH = 60_000


def _notify(ctx: CallContext, params: dict, kind: str) -> int | bool:
    user_id = str(get_param(params, "USER_ID") or "").strip()
    if not user_id:
        raise RestError("USER_ID_EMPTY")
    message = str(get_param(params, "MESSAGE") or "").strip()
    if not message:
        raise RestError("MESSAGE_EMPTY")
    attach = get_param(params, "ATTACH")
    if attach is not None and len(str(attach)) > ATTACH_MAX_LENGTH:
        raise RestError("ATTACH_OVERSIZE", "Attach is too big")

    portal = ctx.portal
    if not user_id.isdigit() or int(user_id) not in portal.users:
        logger.info("notification not sent: user %s not found", user_id)
        return False
    tag = get_param(params, "TAG")
    with portal.lock:
        if tag:
            # A repeated TAG replaces that user's older notifications with it.
            for key in [
                key
                for key, item in portal.notifications.data.items()
                if item["TAG"] == str(tag) and item["USER_ID"] == user_id
            ]:
                del portal.notifications.data[key]
        notification_id = portal.next_id("notification")
        portal.notifications.data[notification_id] = {
            "ID": notification_id,
            "TYPE": kind,
            "USER_ID": user_id,
            "AUTHOR_ID": str(ctx.user_id) if kind == "personal" else "0",
            "MESSAGE": message,
            "MESSAGE_OUT": get_param(params, "MESSAGE_OUT"),
            "TAG": None if tag is None else str(tag),
            "SUB_TAG": get_param(params, "SUB_TAG"),
            "ATTACH": attach,
            "DATE_CREATE": portal.now_iso(),
        }
        portal.touch()
    return notification_id


@rest_method("im.notify.system.add", "im")
def notify_system(ctx: CallContext, params: dict) -> int | bool:
    return _notify(ctx, params, "system")


@rest_method("im.notify.personal.add", "im")
def notify_personal(ctx: CallContext, params: dict) -> int | bool:
    return _notify(ctx, params, "personal")


# ---------------------------------------------------------------- open lines


def _crm_chats(ctx: CallContext, params: dict) -> list[dict]:
    entity_type = str(get_param(params, "CRM_ENTITY_TYPE") or "").upper()
    entity_id = str(get_param(params, "CRM_ENTITY") or "")
    if not entity_type:
        raise argument_error("CRM_ENTITY_TYPE")
    if not entity_id:
        raise argument_error("CRM_ENTITY")
    active_only = str(get_param(params, "ACTIVE_ONLY", "Y")).upper() != "N"
    with ctx.portal.lock:
        return [
            dict(chat)
            for chat in ctx.portal.openline_chats.data.values()
            if chat["CRM_ENTITY_TYPE"] == entity_type
            and str(chat["CRM_ENTITY"]) == entity_id
            and (not active_only or chat["ACTIVE"] == "Y")
        ]


@rest_method("imopenlines.crm.chat.get", "imopenlines")
def crm_chat_get(ctx: CallContext, params: dict) -> list[dict]:
    return [
        {
            "CHAT_ID": str(chat["CHAT_ID"]),
            "CONNECTOR_ID": chat["CONNECTOR_ID"],
            "CONNECTOR_TITLE": chat["CONNECTOR_TITLE"],
        }
        for chat in _crm_chats(ctx, params)
    ]


@rest_method("imopenlines.crm.chat.getLastId", "imopenlines")
def crm_chat_last_id(ctx: CallContext, params: dict) -> int:
    chats = _crm_chats(ctx, params)
    return max((chat["CHAT_ID"] for chat in chats), default=0)


def _chat_for(ctx: CallContext, params: dict) -> dict:
    chats = _crm_chats(ctx, {**params, "ACTIVE_ONLY": "N"})
    chat_id = str(get_param(params, "CHAT_ID") or "")
    if chat_id:
        chats = [chat for chat in chats if str(chat["CHAT_ID"]) == chat_id]
    if not chats:
        raise RestError("CHAT_NOT_IN_CRM")
    return max(chats, key=lambda chat: chat["CHAT_ID"])


@rest_method("imopenlines.crm.chat.user.add", "imopenlines")
def crm_chat_user_add(ctx: CallContext, params: dict) -> bool:
    chat = _chat_for(ctx, params)
    user_id = int(str(get_param(params, "USER_ID") or ctx.user_id))
    with ctx.portal.lock:
        users = ctx.portal.openline_chats.data[chat["CHAT_ID"]]["USERS"]
        if user_id not in users:
            users.append(user_id)
        ctx.portal.touch()
    return True


@rest_method("imopenlines.crm.message.add", "imopenlines")
def crm_message_add(ctx: CallContext, params: dict) -> int:
    chat = _chat_for(ctx, params)
    message = str(get_param(params, "MESSAGE") or "").strip()
    if not message:
        raise argument_error("MESSAGE")
    user_id = int(str(get_param(params, "USER_ID") or ctx.user_id))
    if user_id not in chat["USERS"]:
        raise RestError("ACCESS_DENIED", "Access denied! The user is not in the chat.")
    return channels.add_chat_message(ctx.portal, chat["CHAT_ID"], user_id, message)


# Parameters that name an open-line chat, in the order they are tried.
DIALOG_KEYS = ("CHAT_ID", "DIALOG_ID", "SESSION_ID", "USER_CODE")


def _find_dialog(ctx: CallContext, key: str, value: str) -> dict | None:
    """Return the open-line chat that ``key`` = ``value`` names, or None."""
    with ctx.portal.lock:
        chats = [dict(chat) for chat in ctx.portal.openline_chats.data.values()]
    if key == "CHAT_ID":
        return next((c for c in chats if str(c["CHAT_ID"]) == value), None)
    if key == "DIALOG_ID":
        # A bare number names a private dialog with a user, never an open line.
        if not value.startswith("chat"):
            return None
        return next((c for c in chats if f"chat{c['CHAT_ID']}" == value), None)
    if key == "SESSION_ID":
        return next((c for c in chats if str(c["SESSION_ID"]) == value), None)
    code = value.removeprefix("imol|")
    return next((c for c in chats if openlines.user_code(c) == code), None)


@rest_method("imopenlines.dialog.get", "imopenlines")
def dialog_get(ctx: CallContext, params: dict) -> dict:
    """Return an open-line chat named by CHAT_ID, DIALOG_ID, SESSION_ID or USER_CODE.

    The first non-empty parameter of DIALOG_KEYS is used. An unknown chat
    and a chat the caller may not read get the same ACCESS_ERROR.
    """
    named = [
        (key, str(get_param(params, key) or "").strip())
        for key in DIALOG_KEYS
        if str(get_param(params, key) or "").strip()
    ]
    if not named:
        # Older revisions of the method's docs page name this error, but the
        # current one lists only ACCESS_ERROR and IM_NOT_INSTALLED.
        raise RestError("DIALOG_ID_EMPTY")

    key, value = named[0]
    chat = _find_dialog(ctx, key, value)
    # NOTE: access is granted to chat members and portal admins. The open
    # line's own permission settings (which other operators may read) are
    # not modelled.
    allowed = chat is not None and (
        ctx.user_id in [int(user) for user in chat["USERS"]] or ctx.is_admin
    )
    if not allowed:
        logger.info("dialog not shown: %s=%s, user %s", key, value, ctx.user_id)
        raise RestError("ACCESS_ERROR")
    return openlines.dialog_view(ctx.portal, chat, ctx.user_id)

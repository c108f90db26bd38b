"""Leads arriving through channels, and managers' replies to them.

A channel decides where the client's words end up, which is what the app
must learn to read:

* "form": a web form; the text is in COMMENTS.
* "title": a callback or site widget; the request is the lead TITLE.
* "openline": an open-line chat; COMMENTS is empty, the first message is
  the DESCRIPTION of an IMOPENLINES_SESSION activity bound to the lead.
* "email": COMMENTS is empty, the letter is an incoming e-mail activity
  (TYPE_ID 4, DIRECTION 1) with SUBJECT and DESCRIPTION.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import crm
from .errors import crm_error
from .events import Actor

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

LEAD_KINDS = ("form", "title", "openline", "email")

OPENLINE_CONNECTORS = {
    "livechat": ("Онлайн-чат", "1|OPENLINE"),
    "telegrambot": ("Telegram", "1|TELEGRAMBOT"),
}


def managers(portal: Portal) -> list[int]:
    """Return active employees who head no department and are not admins."""
    with portal.lock:
        heads = {
            int(record["UF_HEAD"])
            for record in portal.departments.data.values()
            if record.get("UF_HEAD")
        }
        ids = [
            int(user["ID"])
            for user in portal.users.data.values()
            if user["ACTIVE"] and not user["IS_ADMIN"] and int(user["ID"]) not in heads
        ]
    return sorted(ids)


def pick_manager(portal: Portal) -> int:
    """Distribute new leads round-robin over the managers, like a queue rule."""
    candidates = managers(portal) or [portal.owner_id]
    turn = portal.next_id("assign") - 1
    return candidates[turn % len(candidates)]


def _subject_from(message: str) -> str:
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return first_line[:60] or "Без темы"


def _open_chat(portal: Portal, lead_id: int, connector: str, operator_id: int) -> dict:
    with portal.lock:
        chat_id = 1000 + portal.next_id("chat")
        session_id = portal.next_id("session")
        title, _source = OPENLINE_CONNECTORS.get(connector, (connector, "1|OPENLINE"))
        chat = {
            "CHAT_ID": chat_id,
            "CONNECTOR_ID": connector,
            "CONNECTOR_TITLE": title,
            "LINE_ID": 1,
            "SESSION_ID": session_id,
            "CRM_ENTITY_TYPE": "LEAD",
            "CRM_ENTITY": lead_id,
            "ACTIVE": "Y",
            "USERS": [operator_id],
            "DATE_CREATE": portal.now_iso(),
        }
        portal.openline_chats.data[chat_id] = chat
        return dict(chat)


def add_chat_message(portal: Portal, chat_id: int, author_id: int, text: str) -> int:
    """Store a chat message; author 0 is the client."""
    with portal.lock:
        message_id = portal.next_id("chat_message")
        portal.openline_messages.data[message_id] = {
            "ID": message_id,
            "CHAT_ID": chat_id,
            "AUTHOR_ID": author_id,
            "TEXT": text,
            "DATE": portal.now_iso(),
        }
        portal.touch()
        return message_id


def chat_of_lead(portal: Portal, lead_id: int) -> dict | None:
    with portal.lock:
        for chat in portal.openline_chats.data.values():
            if chat["CRM_ENTITY_TYPE"] == "LEAD" and chat["CRM_ENTITY"] == lead_id:
                return chat
    return None


def create_incoming_lead(
    portal: Portal,
    fields: dict[str, Any],
    *,
    kind: str,
    message: str | None,
    actor: Actor,
) -> int:
    """Create a lead as the given channel would, with its activity if any."""
    if kind not in LEAD_KINDS:
        raise ValueError(f"Unknown lead kind {kind!r}; use one of {LEAD_KINDS}.")
    text = message or ""
    fields = {str(key).upper(): value for key, value in fields.items()}
    subject = str(fields.pop("SUBJECT", "") or _subject_from(text))
    connector = str(fields.pop("CONNECTOR", "") or "livechat")
    fields.setdefault("ASSIGNED_BY_ID", pick_manager(portal))
    name = str(fields.get("NAME") or "Гость")

    if kind == "form":
        fields.setdefault("SOURCE_ID", "WEBFORM")
        fields.setdefault("TITLE", "Заявка с сайта: онлайн-запись")
        fields["COMMENTS"] = text
    elif kind == "title":
        fields.setdefault("SOURCE_ID", "CALLBACK")
        fields["TITLE"] = text
    elif kind == "openline":
        channel_title, source_id = OPENLINE_CONNECTORS.get(
            connector, (connector, "1|OPENLINE")
        )
        fields.setdefault("SOURCE_ID", source_id)
        fields.setdefault("TITLE", f"{name} - {channel_title}")
        fields["COMMENTS"] = ""
    else:
        fields.setdefault("SOURCE_ID", "EMAIL")
        fields.setdefault("TITLE", subject)
        fields.setdefault(
            "EMAIL", [{"VALUE": "client@mail.example", "VALUE_TYPE": "WORK"}]
        )
        fields["COMMENTS"] = ""

    lead_id = crm.add_lead(portal, fields, actor)
    assigned = int(crm.lead_view(portal, lead_id)["ASSIGNED_BY_ID"])

    if kind == "openline":
        _attach_open_line(portal, lead_id, connector, assigned, text, actor)
    elif kind == "email":
        _attach_email(portal, lead_id, assigned, subject, text, actor)
    return lead_id


def _attach_open_line(
    portal: Portal,
    lead_id: int,
    connector: str,
    operator_id: int,
    text: str,
    actor: Actor,
) -> None:
    chat = _open_chat(portal, lead_id, connector, operator_id)
    imol = f"imol|{connector}|{chat['LINE_ID']}|{chat['SESSION_ID']}|{chat['CHAT_ID']}"
    with portal.lock:
        lead = portal.leads.data[lead_id]
        crm.write_multifield(
            portal, lead, "IM", [{"VALUE": imol, "VALUE_TYPE": "OPENLINE"}]
        )
        lead["HAS_IMOL"] = "Y"
    add_chat_message(portal, chat["CHAT_ID"], 0, text)
    crm.store_activity(
        portal,
        {
            "OWNER_TYPE_ID": 1,
            "OWNER_ID": lead_id,
            "TYPE_ID": 6,
            "PROVIDER_ID": "IMOPENLINES_SESSION",
            "PROVIDER_TYPE_ID": connector.upper(),
            "ASSOCIATED_ENTITY_ID": chat["SESSION_ID"],
            "SUBJECT": f"{chat['CONNECTOR_TITLE']}: обращение клиента",
            "DESCRIPTION": text,
            "DESCRIPTION_TYPE": 1,
            "DIRECTION": 1,
            "COMPLETED": "N",
            "RESPONSIBLE_ID": operator_id,
            "AUTHOR_ID": operator_id,
            "COMMUNICATIONS": [{"TYPE": "IM", "VALUE": imol}],
        },
        actor,
    )


def _attach_email(
    portal: Portal,
    lead_id: int,
    responsible_id: int,
    subject: str,
    text: str,
    actor: Actor,
) -> None:
    lead = crm.lead_view(portal, lead_id)
    address = lead.get("EMAIL", [{}])[0].get("VALUE", "")
    crm.store_activity(
        portal,
        {
            "OWNER_TYPE_ID": 1,
            "OWNER_ID": lead_id,
            "TYPE_ID": 4,
            "PROVIDER_ID": "CRM_EMAIL",
            "PROVIDER_TYPE_ID": "EMAIL",
            "SUBJECT": subject,
            "DESCRIPTION": text,
            "DESCRIPTION_TYPE": 1,
            "DIRECTION": 1,
            "COMPLETED": "N",
            "RESPONSIBLE_ID": responsible_id,
            "AUTHOR_ID": responsible_id,
            "COMMUNICATIONS": [{"TYPE": "EMAIL", "VALUE": address}],
        },
        actor,
    )


def _lead_contact(lead: Mapping, type_id: str) -> str:
    items = lead.get(type_id) or []
    return items[0]["VALUE"] if items else ""


def add_person_activity(
    portal: Portal,
    lead_id: int,
    *,
    type_id: int,
    direction: int,
    actor: Actor,
    provider_id: str | None,
    subject: str,
    description: str,
    completed: bool | None,
) -> int:
    """Record what a manager did on a lead: call, e-mail or open-line reply."""
    with portal.lock:
        if lead_id not in portal.leads.data:
            raise crm_error("Not found")
        lead = crm.lead_view(portal, lead_id)

    user_id = (
        actor.user_id if actor.user_id is not None else int(lead["ASSIGNED_BY_ID"])
    )
    outgoing = int(direction) == 2
    is_done = completed if completed is not None else outgoing
    chat = None

    if provider_id == "IMOPENLINES_SESSION":
        communication = {"TYPE": "IM", "VALUE": _lead_contact(lead, "IM")}
        chat = chat_of_lead(portal, lead_id)
        if chat is not None and description:
            add_chat_message(
                portal, chat["CHAT_ID"], user_id if outgoing else 0, description
            )
        default_subject = "Ответ в открытой линии" if outgoing else "Сообщение клиента"
    elif int(type_id) == 4:
        communication = {"TYPE": "EMAIL", "VALUE": _lead_contact(lead, "EMAIL")}
        default_subject = "Re: ваша заявка" if outgoing else "Письмо клиента"
    else:
        communication = {"TYPE": "PHONE", "VALUE": _lead_contact(lead, "PHONE")}
        default_subject = "Исходящий звонок" if outgoing else "Входящий звонок"

    fields: dict[str, Any] = {
        "OWNER_TYPE_ID": 1,
        "OWNER_ID": lead_id,
        "TYPE_ID": type_id,
        "SUBJECT": subject or default_subject,
        "DESCRIPTION": description,
        "DIRECTION": direction,
        "COMPLETED": "Y" if is_done else "N",
        "RESPONSIBLE_ID": user_id,
        "AUTHOR_ID": user_id,
        "COMMUNICATIONS": [communication],
    }
    if provider_id:
        fields["PROVIDER_ID"] = provider_id
        if provider_id == "IMOPENLINES_SESSION" and chat is not None:
            fields["ASSOCIATED_ENTITY_ID"] = chat["SESSION_ID"]
    return crm.store_activity(portal, fields, actor)

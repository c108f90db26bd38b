"""Delivery channels: the open-line chat, a Telegram bot, SMS and e-mail.

Each sender returns a provider reference (message id) or raises
``DeliveryFailed``; ``retry`` is True when the same channel may succeed
later (timeouts, 5xx, rate limits) and False when it cannot (bad number,
blocked bot). Only
the address and the text go to a provider, never names or deal data.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import requests

from b24app.bitrix.client import PortalClient
from b24app.bitrix.errors import BitrixCallError
from b24app.services import Services

logger = logging.getLogger(__name__)

TIMEOUT = (5.0, 10.0)
TELEGRAM_API = "https://api.telegram.org"
SMSRU_API = "https://sms.ru"


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass
class Outgoing:
    text: str
    subject: str = "Напоминание о записи"
    # (label, callback data) pairs shown as buttons where the channel has them.
    buttons: list[tuple[str, str]] = field(default_factory=list)


def _secret(services: Services, cfg: dict[str, Any], key: str) -> str | None:
    value = cfg.get(f"{key}_enc")
    return services.box.decrypt(value) if value else None


def _json(response: requests.Response, provider: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as err:
        raise DeliveryFailed(
            f"{provider}: invalid response (HTTP {response.status_code})", retry=True
        ) from err
    if not isinstance(body, dict):
        raise DeliveryFailed(f"{provider}: invalid response", retry=True)
    return body


def _timeout(cfg: dict[str, Any]) -> tuple[float, float]:
    read = cfg.get("timeout")
    return (TIMEOUT[0], float(read)) if read else TIMEOUT


def _post(url: str, provider: str, **kwargs: Any) -> requests.Response:
    try:
        return requests.post(url, **kwargs)
    except requests.Timeout as err:
        raise DeliveryFailed(f"{provider}: timeout", retry=True) from err
    except requests.RequestException as err:
        raise DeliveryFailed(
            f"{provider}: connection failed ({type(err).__name__})", retry=True
        ) from err


# Open-line chat


def send_openline(
    client: PortalClient,
    *,
    deal_id: int | None,
    contact_id: int | None,
    bot_id: int,
    message: Outgoing,
) -> str:
    """Post into the client's open-line chat linked to the deal or contact.

    The bot joins the chat first because a sender must be a member. One batch
    does the look-up, the join and the message, so a reminder costs one request.
    """
    targets = []
    if deal_id:
        targets.append(("deal", deal_id))
    if contact_id:
        targets.append(("contact", contact_id))
    if not targets:
        raise DeliveryFailed("openline: no deal or contact", retry=False)
    for entity_type, entity_id in targets:
        base = {"CRM_ENTITY_TYPE": entity_type, "CRM_ENTITY": entity_id}
        chat_ref = "$result[chats][0][CHAT_ID]"
        try:
            results, errors = client.batch(
                {
                    "chats": ("imopenlines.crm.chat.get", base),
                    "join": (
                        "imopenlines.crm.chat.user.add",
                        {**base, "CHAT_ID": chat_ref, "USER_ID": bot_id},
                    ),
                    "send": (
                        "imopenlines.crm.message.add",
                        {
                            **base,
                            "CHAT_ID": chat_ref,
                            "USER_ID": bot_id,
                            "MESSAGE": message.text,
                        },
                    ),
                }
            )
        except BitrixCallError as err:
            raise DeliveryFailed(
                f"openline: {err.code or 'error'}", retry=True
            ) from err
        chats = results.get("chats")
        if "chats" in errors:
            raise DeliveryFailed("openline: chat look-up failed", retry=True)
        if not chats:
            continue
        if errors or "send" not in results:
            codes = ",".join(str(e.get("error")) for e in errors.values())
            raise DeliveryFailed(f"openline: {codes or 'no result'}", retry=False)
        return f"chat:{chats[0]['CHAT_ID']}"
    raise DeliveryFailed("openline: no chat linked to the client", retry=False)


# Telegram


def telegram_call(
    services: Services, cfg: dict[str, Any], method: str, payload: dict[str, Any]
) -> dict[str, Any]:
    token = _secret(services, cfg, "token")
    if not token:
        raise DeliveryFailed("telegram: bot token is not set", retry=False)
    base = (cfg.get("api_url") or TELEGRAM_API).rstrip("/")
    response = _post(
        f"{base}/bot{token}/{method}", "telegram", json=payload, timeout=_timeout(cfg)
    )
    body = _json(response, "telegram")
    if body.get("ok") is True:
        return body.get("result") or {}
    code = int(body.get("error_code") or response.status_code)
    retry = code == 429 or code >= 500
    wait = (body.get("parameters") or {}).get("retry_after")
    detail = f", retry after {wait} s" if wait else ""
    raise DeliveryFailed(f"telegram: error {code}{detail}", retry=retry)


def send_telegram(
    services: Services, cfg: dict[str, Any], chat_id: str, message: Outgoing
) -> str:
    payload: dict[str, Any] = {"chat_id": chat_id, "text": message.text}
    if message.buttons:
        payload["reply_markup"] = {
            "inline_keyboard": [
                [{"text": label, "callback_data": data}]
                for label, data in message.buttons
            ]
        }
    result = telegram_call(services, cfg, "sendMessage", payload)
    return f"tg:{chat_id}:{result.get('message_id', '')}"


# SMS


def send_sms(
    services: Services, cfg: dict[str, Any], phone: str, message: Outgoing
) -> str:
    provider = cfg.get("provider") or "smsru"
    if provider == "smsru":
        return _send_smsru(services, cfg, phone, message.text)
    if provider == "generic":
        return _send_generic(services, cfg, phone, message.text)
    raise DeliveryFailed(f"sms: unknown provider {provider}", retry=False)


def _send_smsru(services: Services, cfg: dict[str, Any], phone: str, text: str) -> str:
    """SMS.ru JSON API: POST /sms/send with api_id, to, msg, json=1."""
    api_id = _secret(services, cfg, "api_key")
    if not api_id:
        raise DeliveryFailed("sms: API key is not set", retry=False)
    base = (cfg.get("url") or SMSRU_API).rstrip("/")
    to = phone.lstrip("+")
    data = {"api_id": api_id, "to": to, "msg": text, "json": "1"}
    if cfg.get("sender"):
        data["from"] = cfg["sender"]
    response = _post(f"{base}/sms/send", "sms", data=data, timeout=_timeout(cfg))
    if response.status_code >= 500:
        raise DeliveryFailed(f"sms: HTTP {response.status_code}", retry=True)
    body = _json(response, "sms")
    if body.get("status") != "OK":
        raise DeliveryFailed(
            f"sms: provider error {body.get('status_code')}", retry=False
        )
    item = (body.get("sms") or {}).get(to) or {}
    if item.get("status") != "OK" or not item.get("sms_id"):
        raise DeliveryFailed(
            f"sms: number rejected ({item.get('status_code')})", retry=False
        )
    return f"smsru:{item['sms_id']}"


def _send_generic(
    services: Services, cfg: dict[str, Any], phone: str, text: str
) -> str:
    """Send through a configurable HTTP provider: JSON body, bearer token."""
    url = cfg.get("url")
    if not url:
        raise DeliveryFailed("sms: provider URL is not set", retry=False)
    headers = {}
    token = _secret(services, cfg, "api_key")
    if token:
        headers[cfg.get("auth_header") or "Authorization"] = (
            cfg.get("auth_prefix", "Bearer ") + token
        )
    body = {
        cfg.get("phone_field") or "to": phone,
        cfg.get("text_field") or "text": text,
    }
    if cfg.get("sender"):
        body[cfg.get("sender_field") or "from"] = cfg["sender"]
    response = _post(url, "sms", json=body, headers=headers, timeout=_timeout(cfg))
    if response.status_code == 429 or response.status_code >= 500:
        raise DeliveryFailed(f"sms: HTTP {response.status_code}", retry=True)
    if response.status_code >= 400:
        raise DeliveryFailed(f"sms: HTTP {response.status_code}", retry=False)
    answer: Any = _json(response, "sms")
    for key in str(cfg.get("id_path") or "id").split("."):
        answer = answer.get(key) if isinstance(answer, dict) else None
    if not answer:
        raise DeliveryFailed("sms: response has no message id", retry=True)
    return f"sms:{answer}"


# E-mail


def send_email(
    services: Services, cfg: dict[str, Any], address: str, message: Outgoing
) -> str:
    host = cfg.get("host")
    if not host:
        raise DeliveryFailed("email: SMTP host is not set", retry=False)
    mail = EmailMessage()
    mail["From"] = cfg.get("sender") or "otklik@localhost"
    mail["To"] = address
    mail["Subject"] = message.subject
    mail.set_content(message.text)
    try:
        with smtplib.SMTP(host, int(cfg.get("port") or 587), timeout=10) as smtp:
            if cfg.get("starttls"):
                smtp.starttls()
            password = _secret(services, cfg, "password")
            if cfg.get("username") and password:
                smtp.login(cfg["username"], password)
            smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused as err:
        raise DeliveryFailed("email: recipient rejected", retry=False) from err
    except (smtplib.SMTPException, OSError) as err:
        raise DeliveryFailed(f"email: {type(err).__name__}", retry=True) from err
    return f"email:{mail.get('Message-ID') or ''}"

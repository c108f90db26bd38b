"""Delivery channels: the open-line chat, a Telegram bot, SMS and e-mail.

Each sender returns a provider reference (message id) or raises
``DeliveryFailed``. ``retry`` is True when the provider did not take the
message and the same channel may succeed later (connection refused, 5xx,
rate limits), and False when it cannot (bad number, blocked bot).
``unknown`` is True when the request may have reached the provider but no
readable answer came back (read timeout, broken answer body): the message
may have gone out, so sending it again could duplicate it. Telegram's flood
control raises ``FloodControl`` with the wait the Bot API asked for. Only
the address and the text go to a provider, never names or deal data.
"""

from __future__ import annotations

import ipaddress
import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from b24app.bitrix.client import PortalClient
from b24app.bitrix.errors import BitrixCallError
from b24app.services import Services

logger = logging.getLogger(__name__)

TIMEOUT = (5.0, 10.0)
TELEGRAM_API = "https://api.telegram.org"
# Wait after a 429 that names no retry_after, in seconds.
FLOOD_WAIT_DEFAULT = 30
SMSRU_API = "https://sms.ru"


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, retry: bool, unknown: bool = False) -> None:
        super().__init__(message)
        self.retry = retry
        self.unknown = unknown


class FloodControl(DeliveryFailed):
    """Error for a Telegram 429: no call to this bot before ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retry=True)
        self.retry_after = retry_after


@dataclass
class Outgoing:
    text: str
    subject: str = "Напоминание о записи"
    # (label, callback data) pairs shown as buttons where the channel has them.
    buttons: list[tuple[str, str]] = field(default_factory=list)
    # Key that is the same for every attempt of one job over one channel. It is
    # sent as the idempotency key to providers that accept one.
    key: str | None = None
    # The opt-out link, sent as the e-mail's one-click unsubscribe header.
    unsubscribe: str | None = None


def _secret(services: Services, cfg: dict[str, Any], key: str) -> str | None:
    value = cfg.get(f"{key}_enc")
    return services.box.decrypt(value) if value else None


def _json(response: requests.Response, provider: str) -> dict[str, Any]:
    """Parse a JSON object. An unreadable body is retried only after a 5xx.

    A 2xx or 4xx response that is not JSON leaves the outcome unknown: the
    provider (or a proxy in front of it) may have taken the message.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    message = f"{provider}: invalid response (HTTP {response.status_code})"
    if response.status_code >= 500:
        raise DeliveryFailed(message, retry=True)
    raise DeliveryFailed(message, retry=False, unknown=True)


def is_private_host(host: str) -> bool:
    """Return whether ``host`` is localhost or a non-public IP address.

    Shorthand IPv4 forms that resolvers accept (``127.1``, ``2130706433``)
    count as the address they stand for.
    """
    name = host.strip("[]").lower().rstrip(".")
    if name in ("localhost", "") or name.endswith((".localhost", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return False
    mapped = getattr(address, "ipv4_mapped", None)
    return not (mapped or address).is_global


def resolve_public(
    services: Services, host: str | None, provider: str
) -> tuple[str, ...] | None:
    """Resolve ``host`` once and return its addresses, all of them public.

    Providers are set by portal administrators, so a provider URL must not
    reach the app's own network. The caller connects only to the returned
    addresses (see ``PinnedAdapter`` and ``_PinnedSMTP``), so a name that
    resolves to another address by the time of the request (DNS
    rebinding) cannot redirect it. Outside production this returns None
    and the request resolves the name itself, so tests can use loopback.
    Raises DeliveryFailed when a name or any of its addresses is private.
    """
    if services.config.get("ENV") != "production":
        return None
    if not host or is_private_host(host):
        raise DeliveryFailed(f"{provider}: private address rejected", retry=False)
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as err:
        raise DeliveryFailed(f"{provider}: host not resolved", retry=True) from err
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DeliveryFailed(f"{provider}: host not resolved", retry=True)
    if any(is_private_host(address) for address in addresses):
        raise DeliveryFailed(f"{provider}: private address rejected", retry=False)
    return addresses


def _open_socket(
    address: tuple[str, int],
    timeout: Any,
    source_address: tuple[str, int] | None = None,
    socket_options: Any = None,
) -> socket.socket:
    return urllib3_connection.create_connection(
        address, timeout, source_address=source_address, socket_options=socket_options
    )


def _connect_pinned(addresses: tuple[str, ...], port: int, timeout: Any, **kwargs):
    """Connect to the first reachable address; raise the last error otherwise."""
    last_error: OSError | None = None
    for address in addresses:
        # Checked by resolve_public already. Repeated here because this is
        # the only place a provider connection is opened.
        if is_private_host(address):
            raise OSError(f"private address {address} rejected")
        try:
            return _open_socket((address, port), timeout, **kwargs)
        except OSError as err:
            last_error = err
    raise last_error or OSError("no address to connect to")


class _PinnedConnectionMixin:
    """urllib3 connection that connects to pinned addresses, not to DNS.

    ``host`` stays the provider's name, so the Host header, TLS SNI and the
    certificate check all use the name while the socket goes to an address
    that ``resolve_public`` checked.
    """

    pinned: tuple[str, ...] = ()

    def _new_conn(self) -> socket.socket:
        try:
            return _connect_pinned(
                self.pinned,
                self.port,
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as err:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out."
            ) from err
        except OSError as err:
            raise NewConnectionError(
                self, f"Failed to establish a new connection: {err}"
            ) from err


class PinnedAdapter(HTTPAdapter):
    """Transport adapter for requests that sends only to pinned addresses."""

    def __init__(self, addresses: tuple[str, ...]) -> None:
        self.addresses = addresses
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        pinned = self.addresses

        class Connection(_PinnedConnectionMixin, HTTPConnection):
            pass

        class SecureConnection(_PinnedConnectionMixin, HTTPSConnection):
            pass

        Connection.pinned = SecureConnection.pinned = pinned

        class Pool(HTTPConnectionPool):
            ConnectionCls = Connection

        class SecurePool(HTTPSConnectionPool):
            ConnectionCls = SecureConnection

        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}


def _timeout(cfg: dict[str, Any]) -> tuple[float, float]:
    read = cfg.get("timeout")
    return (TIMEOUT[0], float(read)) if read else TIMEOUT


def _post(
    services: Services, url: str, provider: str, **kwargs: Any
) -> requests.Response:
    """POST once, to the checked addresses of the URL's host in production.

    A connect failure is safe to retry, but a read timeout is not.
    """
    addresses = resolve_public(services, urlsplit(url).hostname, provider)
    try:
        if addresses is None:
            return requests.post(url, **kwargs)
        with requests.Session() as session:
            # An HTTP proxy from the environment would resolve the name itself
            # and bypass the pinned addresses.
            session.trust_env = False
            adapter = PinnedAdapter(addresses)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            return session.post(url, **kwargs)
    except requests.ConnectTimeout as err:
        raise DeliveryFailed(f"{provider}: connect timeout", retry=True) from err
    except requests.Timeout as err:
        # The request went out, so the provider may have accepted it.
        raise DeliveryFailed(f"{provider}: timeout", retry=False, unknown=True) from err
    except requests.ConnectionError as err:
        raise DeliveryFailed(
            f"{provider}: connection failed ({type(err).__name__})", retry=True
        ) from err
    except requests.RequestException as err:
        raise DeliveryFailed(
            f"{provider}: request failed ({type(err).__name__})",
            retry=False,
            unknown=True,
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
            # Only a timed-out batch may have reached the portal.
            raise DeliveryFailed(
                f"openline: {err.code or 'error'}",
                retry=err.code != "TIMEOUT",
                unknown=err.code == "TIMEOUT",
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
        services,
        f"{base}/bot{token}/{method}",
        "telegram",
        json=payload,
        timeout=_timeout(cfg),
    )
    if response.status_code == 429 or response.status_code >= 500:
        # Error responses of the Bot API are JSON too, but a proxy's may not be.
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
    else:
        body = _json(response, "telegram")
    if body.get("ok") is True:
        result = body.get("result")
        return result if isinstance(result, dict) else {}
    code = _int(body.get("error_code")) or response.status_code
    if code == 429:
        wait = _int((body.get("parameters") or {}).get("retry_after"))
        if wait is None:
            wait = _int(response.headers.get("Retry-After"))
        wait = max(1, wait or FLOOD_WAIT_DEFAULT)
        raise FloodControl(f"telegram: error 429, retry after {wait} s", wait)
    raise DeliveryFailed(f"telegram: error {code}", retry=code >= 500)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def telegram_bot_id(services: Services, cfg: dict[str, Any]) -> str | None:
    """Return the bot's numeric id, the part of its token before the colon."""
    token = _secret(services, cfg, "token")
    return token.split(":", 1)[0] if token else None


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
        return _send_generic(services, cfg, phone, message.text, key=message.key)
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
    response = _post(
        services, f"{base}/sms/send", "sms", data=data, timeout=_timeout(cfg)
    )
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
    services: Services,
    cfg: dict[str, Any],
    phone: str,
    text: str,
    *,
    key: str | None = None,
) -> str:
    """Send through a configurable HTTP provider: JSON body, bearer token.

    With ``idempotency_header`` set, ``key`` goes in that header, so a
    provider that honours it accepts a repeated request only once.
    """
    url = cfg.get("url")
    if not url:
        raise DeliveryFailed("sms: provider URL is not set", retry=False)
    headers = {}
    token = _secret(services, cfg, "api_key")
    if token:
        headers[cfg.get("auth_header") or "Authorization"] = (
            cfg.get("auth_prefix", "Bearer ") + token
        )
    if key and cfg.get("idempotency_header"):
        headers[cfg["idempotency_header"]] = key
    body = {
        cfg.get("phone_field") or "to": phone,
        cfg.get("text_field") or "text": text,
    }
    if cfg.get("sender"):
        body[cfg.get("sender_field") or "from"] = cfg["sender"]
    response = _post(
        services, url, "sms", json=body, headers=headers, timeout=_timeout(cfg)
    )
    if response.status_code == 429 or response.status_code >= 500:
        raise DeliveryFailed(f"sms: HTTP {response.status_code}", retry=True)
    if response.status_code >= 400:
        raise DeliveryFailed(f"sms: HTTP {response.status_code}", retry=False)
    answer: Any = _json(response, "sms")
    for key in str(cfg.get("id_path") or "id").split("."):
        answer = answer.get(key) if isinstance(answer, dict) else None
    if not answer:
        raise DeliveryFailed(
            "sms: response has no message id", retry=False, unknown=True
        )
    return f"sms:{answer}"


def can_resend_safely(channel: str, cfg: dict[str, Any]) -> bool:
    """Return whether repeating a message of unknown outcome still sends it once.

    Only a generic SMS provider with an idempotency header qualifies: it
    recognises the repeated key. The Telegram Bot API, SMS.ru and the
    open-line chat take no such key.
    """
    return (
        channel == "sms"
        and cfg.get("provider") == "generic"
        and bool(cfg.get("idempotency_header"))
    )


# E-mail


def send_email(
    services: Services, cfg: dict[str, Any], address: str, message: Outgoing
) -> str:
    host = cfg.get("host")
    if not host:
        raise DeliveryFailed("email: SMTP host is not set", retry=False)
    addresses = resolve_public(services, host, "email")
    mail = EmailMessage()
    mail["From"] = cfg.get("sender") or "otklik@localhost"
    mail["To"] = address
    mail["Subject"] = message.subject
    if message.unsubscribe:
        # RFC 8058: mail clients offer a button that POSTs to this link.
        mail["List-Unsubscribe"] = f"<{message.unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.set_content(message.text)
    try:
        smtp = _PinnedSMTP(addresses, timeout=10)
        with smtp:
            smtp.connect(host, int(cfg.get("port") or 587))
            if cfg.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            password = _secret(services, cfg, "password")
            if cfg.get("username") and password:
                smtp.login(cfg["username"], password)
            smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused as err:
        raise DeliveryFailed("email: recipient rejected", retry=False) from err
    except (smtplib.SMTPException, OSError) as err:
        raise DeliveryFailed(f"email: {type(err).__name__}", retry=True) from err
    return f"email:{mail.get('Message-ID') or ''}"


class _PinnedSMTP(smtplib.SMTP):
    """SMTP client that connects to pinned addresses, not to DNS.

    ``connect`` keeps the host name as ``_host``, so STARTTLS sends it as
    SNI and checks the certificate against it. None means no pinning.
    """

    def __init__(self, addresses: tuple[str, ...] | None, **kwargs: Any) -> None:
        self.pinned = addresses
        super().__init__(**kwargs)

    def _get_socket(self, host, port, timeout):
        if self.pinned is None:
            return super()._get_socket(host, port, timeout)
        return _connect_pinned(
            self.pinned, port, timeout, source_address=self.source_address
        )

"""Client replies reaching the app: chat-bot events, Telegram, SMS, opt-out links.

Every reply is checked (application token, webhook secret, SMS callback
credentials) and stored as an inbound event; the worker handles it like a
portal event, so a portal that is briefly unreachable loses no answer.
Message texts are kept in the database only, never in logs.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, jsonify, render_template_string, request
from sqlalchemy import select, update
from werkzeug.exceptions import RequestEntityTooLarge

from b24app import get_services
from b24app.crypto import same_secret
from b24app.dbutil import insert_ignore
from b24app.models import InboundEvent, Portal
from b24app.phpform import FormError, parse_nested
from b24app.reminders import config, consent, webhooks
from b24app.reminders.feature import SMS_EVENT, TELEGRAM_EVENT
from b24app.reminders.models import Delivery

logger = logging.getLogger(__name__)

bp = Blueprint("bot", __name__, url_prefix="/bot")

# Maximum length of a client text kept from one reply, because replies are short.
MAX_TEXT = 4096
# Replies of a provider that sends no message id count as one reply when
# the same number sends the same text within this window, in seconds.
SMS_REPEAT_WINDOW = 600

# SMS.ru delivery codes: 103 delivered; 104-108, 150 and above failed.
SMSRU_DELIVERED = {"103"}
SMSRU_PENDING = {"100", "101", "102"}

OPTOUT_PAGE = """<!doctype html><html lang="ru"><meta charset="utf-8">
<title>Отписка</title>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>{{ title }}</h1><p>{{ text }}</p>
{% if confirm %}<form method="post"><button type="submit">Отписаться</button></form>
{% endif %}</body></html>"""


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_err: RequestEntityTooLarge):
    return jsonify(error="body too large"), 413


def _store(portal_id: int, event: str, key: str, data: dict[str, Any]) -> bool:
    services = get_services()
    now = datetime.now(UTC)
    with services.db.session() as session:
        inserted = insert_ignore(
            session,
            InboundEvent,
            {
                "portal_id": portal_id,
                "event": event,
                "dedupe_key": hashlib.sha256(f"{event}:{key}".encode()).hexdigest(),
                "payload": {"data": data, "has_user_token": False},
                "status": "pending",
                "attempts": 0,
                "received_at": now,
                "next_attempt_at": now,
            },
            ["portal_id", "dedupe_key"],
        )
    return inserted is not None


def _portal(portal_id: int) -> Portal | None:
    with get_services().db.session() as session:
        portal = session.get(Portal, portal_id)
    return portal if portal is not None and portal.is_active else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """Return a client text cut to ``limit``, or None when it is missing."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)[:limit]


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


def _secret_ok(portal: Portal, given: str | None) -> bool:
    expected = config.settings(portal).get("webhook_secret")
    return bool(expected) and same_secret(given or "", expected)


# Chat-bot events from the portal


@bp.post("/events")
def bot_event():
    services = get_services()
    try:
        body = parse_nested(list(request.form.items(multi=True)))
    except FormError:
        return jsonify(error="malformed body"), 400
    event = str(body.get("event") or "").upper()
    auth = body.get("auth") if isinstance(body.get("auth"), dict) else {}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    with services.db.session() as session:
        portal = session.scalar(
            select(Portal).where(Portal.member_id == str(auth.get("member_id") or ""))
        )
    if portal is None:
        return jsonify(error="unknown portal"), 404
    stored = services.application_token(portal)
    if not stored or not same_secret(str(auth.get("application_token") or ""), stored):
        return jsonify(error="application token does not match"), 401
    if not portal.is_active:
        return jsonify(status="ignored")
    if event != "ONIMBOTMESSAGEADD":
        return jsonify(status="ignored")

    params = data.get("PARAMS")
    user = data.get("USER") or {}
    if not isinstance(params, dict) or not isinstance(user, dict):
        return jsonify(error="data[PARAMS] and data[USER] must be fields"), 400
    message_id = str(params.get("MESSAGE_ID") or "")
    if not _number(message_id):
        return jsonify(error="missing data[PARAMS][MESSAGE_ID]"), 400
    chat_id = str(params.get("CHAT_ID") or "")
    if chat_id and not _number(chat_id):
        return jsonify(error="data[PARAMS][CHAT_ID] must be a number"), 400

    bot_id = str(config.settings(portal).get("bot_id") or "")
    from_client = (
        str(user.get("IS_CONNECTOR") or "N") == "Y"
        and str(params.get("FROM_USER_ID")) != bot_id
    )
    kept = {
        "ID": message_id,
        "FROM_CLIENT": from_client,
        "PARAMS": {
            "MESSAGE": _text(params.get("MESSAGE")),
            "MESSAGE_ID": message_id,
            "DIALOG_ID": _text(params.get("DIALOG_ID"), 64),
            "CHAT_ID": chat_id or None,
            "FROM_USER_ID": _text(params.get("FROM_USER_ID"), 32),
            # The CRM items the open-line chat is bound to.
            "CHAT_ENTITY_DATA_2": _text(params.get("CHAT_ENTITY_DATA_2"), 512),
        },
    }
    queued = _store(portal.id, event, message_id, kept)
    return jsonify(status="queued" if queued else "duplicate")


# Telegram webhook


@bp.post("/telegram/<int:portal_id>")
def telegram_update(portal_id: int):
    portal = _portal(portal_id)
    if portal is None:
        return jsonify(error="unknown portal"), 404
    if not _secret_ok(portal, request.headers.get("X-Telegram-Bot-Api-Secret-Token")):
        return jsonify(error="wrong secret token"), 401
    update_body = request.get_json(silent=True)
    update_id = update_body.get("update_id") if isinstance(update_body, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return jsonify(error="not a Telegram update"), 400
    kept = {"ID": update_id, "update": _telegram_subset(update_body)}
    _store(portal.id, TELEGRAM_EVENT, str(update_id), kept)
    return jsonify(ok=True)


def _chat_id(message: Any) -> int | None:
    chat_id = _dict(_dict(message).get("chat")).get("id")
    return (
        chat_id if isinstance(chat_id, int) and not isinstance(chat_id, bool) else None
    )


def _telegram_subset(update_body: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the reply needs: chat id, text, button data.

    Values of the wrong type are dropped here, so the worker gets only a
    numeric chat id and strings.
    """
    result: dict[str, Any] = {}
    message = update_body.get("message")
    if isinstance(message, dict):
        result["message"] = {
            "chat": {"id": _chat_id(message)},
            "text": _text(message.get("text")),
        }
    callback = update_body.get("callback_query")
    if isinstance(callback, dict):
        result["callback_query"] = {
            "id": _text(callback.get("id"), 64),
            # Telegram's callback data is at most 64 bytes.
            "data": _text(callback.get("data"), 64),
            "message": {"chat": {"id": _chat_id(callback.get("message"))}},
        }
    return result


# SMS provider callbacks


@bp.post("/sms/<int:portal_id>/reply")
def sms_reply(portal_id: int):
    """Store an incoming SMS: JSON or form with ``from``, ``text`` and ``id``."""
    portal, rejection = _sms_caller(portal_id, "reply")
    if rejection is not None:
        return rejection
    return _sms_reply(portal)


@bp.post("/sms/<int:portal_id>/status")
def sms_status(portal_id: int):
    """Record delivery reports: SMS.ru's ``data[]`` lines or generic JSON."""
    portal, rejection = _sms_caller(portal_id, "status")
    if rejection is not None:
        return rejection
    return _sms_status(portal)


@bp.post("/sms/<int:portal_id>/<secret>/reply")
def sms_reply_legacy(portal_id: int, secret: str):
    """Old reply URL with the secret in the path, accepted during migration."""
    portal, rejection = _legacy_caller(portal_id, secret, "reply")
    if rejection is not None:
        return rejection
    return _sms_reply(portal)


@bp.post("/sms/<int:portal_id>/<secret>/status")
def sms_status_legacy(portal_id: int, secret: str):
    """Old status URL with the secret in the path, accepted during migration."""
    portal, rejection = _legacy_caller(portal_id, secret, "status")
    if rejection is not None:
        return rejection
    return _sms_status(portal)


def _sms_caller(portal_id: int, callback: str):
    """Return (portal, None) for an authentic callback, else (None, response)."""
    portal = _portal(portal_id)
    if portal is None:
        logger.warning(
            "SMS %s callback for an unknown or inactive portal rejected",
            callback,
            extra={"portal_id": portal_id},
        )
        return None, (jsonify(error="unknown portal"), 404)
    secret = config.settings(portal).get(config.SMS_SECRET_KEY)
    auth = request.authorization
    basic_password = auth.password if auth and auth.type == "basic" else None
    signature_header = request.headers.get(webhooks.SIGNATURE_HEADER)
    body = request.get_data(cache=True) if signature_header is not None else b""
    result = webhooks.check_request(
        secret,
        basic_password=basic_password,
        has_authorization="Authorization" in request.headers,
        signature_header=signature_header,
        body=body,
    )
    if not result.ok:
        logger.warning(
            "SMS %s callback rejected (HTTP %s)",
            callback,
            result.status,
            extra={"portal_id": portal.id},
        )
        headers = {}
        if result.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="otklik-sms", charset="UTF-8"'
        return None, (jsonify(error=result.error), result.status, headers)
    webhooks.record_call(get_services(), portal, callback, legacy=False)
    return portal, None


def _legacy_caller(portal_id: int, secret: str, callback: str):
    """Check an old-format callback; see ``b24app.reminders.webhooks``."""
    portal = _portal(portal_id)
    if portal is None or not _secret_ok(portal, secret):
        logger.warning(
            "SMS %s callback on the old URL rejected: unknown portal or wrong secret",
            callback,
            extra={"portal_id": portal_id},
        )
        return None, (jsonify(error="unknown portal or wrong secret"), 404)
    settings = config.settings(portal)
    if not webhooks.legacy_open(settings, callback, datetime.now(UTC)):
        logger.warning(
            "SMS %s callback on the closed old URL rejected",
            callback,
            extra={"portal_id": portal.id},
        )
        message = (
            "this callback URL format is no longer accepted: copy the new SMS "
            f"{callback} URL from the reminder settings into the provider"
        )
        return None, (jsonify(error=message), 410)
    logger.warning(
        "SMS %s callback used the old URL with the secret in its path",
        callback,
        extra={"portal_id": portal.id},
    )
    webhooks.record_call(get_services(), portal, callback, legacy=True)
    return portal, None


def _sms_reply(portal: Portal):
    body = request.get_json(silent=True) if request.is_json else request.form
    if not body or not hasattr(body, "get"):
        return jsonify(error="send a JSON object or a form with from and text"), 400
    sender = body.get("from")
    if not isinstance(sender, str | int) or isinstance(sender, bool):
        return jsonify(error="from is not a phone number"), 400
    try:
        phone = consent.normalize_phone(str(sender)[:32])
    except consent.ConsentError:
        return jsonify(error="from is not a phone number"), 400
    text = _text(body.get("text")) or ""
    given_id = _text(body.get("id"), 128)
    if given_id:
        key = given_id
    else:
        # Without an id, a repeat within the window is a redelivery. A later one
        # is a new reply, such as the same "1" to next week's reminder.
        now = datetime.now(UTC)
        slot = int(now.timestamp()) // SMS_REPEAT_WINDOW
        key = _repeat_key(phone, text, slot)
        if _repeated(portal.id, _repeat_key(phone, text, slot - 1), now):
            logger.info(
                "SMS reply repeated within the window, skipped",
                extra={"portal_id": portal.id},
            )
            return jsonify(status="ok")
    _store(portal.id, SMS_EVENT, key, {"ID": 1, "from": phone, "text": text})
    return jsonify(status="ok")


def _repeat_key(phone: str, text: str, slot: int) -> str:
    return hashlib.sha256(f"{phone}:{text}:{slot}".encode()).hexdigest()


def _repeated(portal_id: int, previous_key: str, now: datetime) -> bool:
    """Return True when the same reply came in the previous slot within the window.

    Keys are per fixed slot, so a repeat in the same slot hits the unique key.
    This check covers a repeat that crosses into the next slot.
    """
    dedupe_key = hashlib.sha256(f"{SMS_EVENT}:{previous_key}".encode()).hexdigest()
    since = now - timedelta(seconds=SMS_REPEAT_WINDOW)
    with get_services().db.session() as session:
        found = session.scalar(
            select(InboundEvent.id).where(
                InboundEvent.portal_id == portal_id,
                InboundEvent.dedupe_key == dedupe_key,
                InboundEvent.received_at >= since,
            )
        )
    return found is not None


def _sms_status(portal: Portal):
    reports: list[tuple[str, str]] = []
    if request.is_json:
        body = request.get_json(silent=True) or {}
        items = body if isinstance(body, list) else [body]
        for item in items:
            if isinstance(item, dict) and item.get("id"):
                state = str(item.get("status") or "").lower()
                reports.append((f"sms:{item['id']}", state))
    else:
        for line in request.form.getlist("data[]"):
            parts = line.split("\n")
            if len(parts) >= 3 and parts[0] == "sms_status":
                code = parts[2].strip()
                if code in SMSRU_DELIVERED:
                    state = "delivered"
                elif code in SMSRU_PENDING:
                    state = "sent"
                else:
                    state = "failed"
                reports.append((f"smsru:{parts[1].strip()}", state))
    with get_services().db.session() as session:
        for ref, state in reports:
            if state not in ("delivered", "failed"):
                continue
            session.execute(
                update(Delivery)
                .where(Delivery.portal_id == portal.id, Delivery.provider_ref == ref)
                .values(
                    status=state,
                    error="reported by provider" if state == "failed" else None,
                    updated_at=datetime.now(UTC),
                )
            )
    # SMS.ru expects the text "100" as the acknowledgement.
    return "100", 200, {"Content-Type": "text/plain"}


# Opt-out link


@bp.route("/optout/<token>", methods=["GET", "POST"])
def optout(token: str):
    services = get_services()
    try:
        portal_id, contact_key = consent.read_optout_token(services, token)
    except consent.ConsentError:
        page = render_template_string(
            OPTOUT_PAGE,
            title="Ссылка не работает",
            text="Ссылка повреждена. Ответьте «стоп» на любое наше сообщение.",
        )
        return page, 400
    if request.method == "GET":
        # Mail and messenger link scanners open links on their own, so a GET
        # only shows the question. The button (or a one-click POST from a mail
        # client) acts.
        return render_template_string(
            OPTOUT_PAGE,
            title="Отписаться от напоминаний?",
            text="Мы перестанем присылать напоминания о записи во все каналы.",
            confirm=True,
        )
    if _portal(portal_id) is None:
        return render_template_string(
            OPTOUT_PAGE, title="Готово", text="Напоминаний больше не будет."
        )
    consent.revoke(services, portal_id, contact_key, source="link")
    logger.info("opt-out by link", extra={"portal_id": portal_id})
    return render_template_string(
        OPTOUT_PAGE,
        title="Вы отписались",
        text="Напоминаний о записи больше не будет. Записаться можно как обычно.",
    )

"""Consent per client and channel, opt-out, and phone numbers.

No consent, no message: the dispatcher calls ``allowed_channels`` before
every send. An opt-out (a stop word or the signed link) revokes at once and
stays revoked; only a new explicit agreement grants again.

A consent row with status "asked" records that the chat bot asked the
client once for the open-line channel and is waiting for the reply. Such a
row allows nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import UTC, datetime, timedelta

import phonenumbers
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from b24app.dbutil import insert_ignore
from b24app.reminders.config import CHANNELS
from b24app.reminders.models import Consent
from b24app.services import Services

logger = logging.getLogger(__name__)

GRANT_SOURCES = ("form", "chat", "import", "telegram", "admin")
STOP_WORDS = frozenset({"стоп", "stop", "отписаться", "unsubscribe"})
AGREE_WORDS = frozenset(
    {"да", "согласен", "согласна", "согласны", "можно", "конечно", "yes"}
)
REFUSE_WORDS = frozenset({"нет", "не надо", "не нужно", "не согласен", "no"})
CHAT_QUESTION = (
    "Можно присылать вам напоминания о записи сюда? Ответьте «да» или «нет»."
)
DEFAULT_REGION = "RU"
# A client is a contact or, without one, a deal: "contact:5", "deal:12".
CONTACT_KEY = re.compile(r"(contact|deal):[1-9][0-9]{0,9}")


class ConsentError(ValueError):
    """A consent request that cannot be recorded as given."""


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 form of a phone number (``+79161234567``); raises ConsentError."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as err:
        raise ConsentError("Номер телефона не распознан.") from err
    if not phonenumbers.is_valid_number(number):
        raise ConsentError("Номер телефона неверный.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str | None) -> str:
    """Mask a phone for logs and pages: ``+7916*****67``."""
    if not phone:
        return ""
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:5] + "*" * (len(phone) - 7) + phone[-2:]


def is_stop_word(text: str) -> bool:
    return text.strip().strip(".!").lower() in STOP_WORDS


def _answer_text(text: str) -> str:
    return " ".join(text.strip().strip(".!").lower().replace(",", " ").split())


def chat_answer(text: str) -> str | None:
    """Classify a reply to the chat consent question: "agree", "refuse" or None."""
    answer = _answer_text(text)
    if answer in AGREE_WORDS or answer.startswith(("да ", "согласен ", "согласна ")):
        return "agree"
    if answer in REFUSE_WORDS or answer in STOP_WORDS:
        return "refuse"
    return None


def mark_asked(services: Services, portal_id: int, contact_key: str) -> bool:
    """Record the open-line consent question; return False if any row exists.

    The unique key on (portal, client, channel) makes this the only place a
    question can be decided, so a client is asked at most once, and never
    after an opt-out (revoking keeps a row).
    """
    with services.db.session() as session:
        inserted = insert_ignore(
            session,
            Consent,
            {
                "portal_id": portal_id,
                "contact_key": contact_key,
                "channel": "openline",
                "status": "asked",
                "source": "chat",
                "updated_at": datetime.now(UTC),
            },
            ["portal_id", "contact_key", "channel"],
        )
    return inserted is not None


def chat_state(services: Services, portal_id: int, contact_key: str) -> str | None:
    """Return the open-line consent status of the client, None when there is none."""
    with services.db.session() as session:
        return session.scalar(
            select(Consent.status).where(
                Consent.portal_id == portal_id,
                Consent.contact_key == contact_key,
                Consent.channel == "openline",
            )
        )


def is_contact_key(value: object) -> bool:
    """Return whether ``value`` is a client key, ``contact:<id>`` or ``deal:<id>``."""
    return isinstance(value, str) and CONTACT_KEY.fullmatch(value) is not None


def normalize_address(channel: str, address: object) -> str | None:
    if address is not None and (
        not isinstance(address, str | int) or isinstance(address, bool)
    ):
        raise ConsentError("Адрес должен быть строкой.")
    if channel == "sms":
        return normalize_phone(str(address or "")[:32])
    if channel == "email":
        value = str(address or "").strip()
        if "@" not in value or len(value) > 254:
            raise ConsentError("Адрес почты неверный.")
        return value
    if channel == "telegram":
        value = str(address or "").strip()
        digits = value.removeprefix("-")
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 20):
            raise ConsentError("Нужен числовой идентификатор чата Telegram.")
        return value
    return None


def grant(
    services: Services,
    portal_id: int,
    contact_key: str,
    channel: str,
    *,
    source: str,
    address: str | None = None,
    at: datetime | None = None,
) -> Consent:
    """Record an agreement; a client who opted out is granted only explicitly."""
    if source not in GRANT_SOURCES:
        raise ConsentError(f"Неизвестный источник согласия: {source}.")
    normalized = normalize_address(channel, address)
    now = at or datetime.now(UTC)
    with services.db.session() as session:
        insert_ignore(
            session,
            Consent,
            {
                "portal_id": portal_id,
                "contact_key": contact_key,
                "channel": channel,
                "status": "granted",
                "source": source,
                "address": normalized,
                "granted_at": now,
                "updated_at": now,
            },
            ["portal_id", "contact_key", "channel"],
        )
        row = _row(session, portal_id, contact_key, channel)
        if row.status == "revoked" and source == "import":
            # An opt-out stands until the client agrees again themselves.
            raise ConsentError(
                "Клиент отписался: импорт не возвращает согласие, нужно новое."
            )
        row.status = "granted"
        row.source = source
        row.address = normalized
        row.granted_at = now
        row.revoked_at = None
        row.revoke_source = None
        session.flush()
        session.expunge(row)
    logger.info(
        "consent granted",
        extra={"portal_id": portal_id, "channel": channel, "source": source},
    )
    return row


def revoke(
    services: Services,
    portal_id: int,
    contact_key: str,
    channels: tuple[str, ...] | None = None,
    *,
    source: str,
) -> int:
    """Revoke consent on the given channels (all by default); return how many."""
    now = datetime.now(UTC)
    count = 0
    with services.db.session() as session:
        query = select(Consent).where(
            Consent.portal_id == portal_id, Consent.contact_key == contact_key
        )
        rows = {row.channel: row for row in session.scalars(query)}
        for channel in channels or CHANNELS:
            row = rows.get(channel)
            if row is None:
                # Keep the refusal, so a later import cannot silently grant.
                row = Consent(
                    portal_id=portal_id,
                    contact_key=contact_key,
                    channel=channel,
                    source=source,
                )
                session.add(row)
            row.status = "revoked"
            row.revoked_at = now
            row.revoke_source = source
            count += 1
    logger.info("consent revoked", extra={"portal_id": portal_id, "source": source})
    return count


def consents(services: Services, portal_id: int, contact_key: str) -> list[Consent]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(Consent).where(
                    Consent.portal_id == portal_id,
                    Consent.contact_key == contact_key,
                )
            )
        )


def allowed_channels(
    services: Services, portal_id: int, contact_key: str
) -> dict[str, str | None]:
    """Channels the client agreed to, with the address of each."""
    return {
        row.channel: row.address
        for row in consents(services, portal_id, contact_key)
        if row.status == "granted"
    }


def find_by_address(
    services: Services, portal_id: int, channel: str, address: str
) -> Consent | None:
    with services.db.session() as session:
        return session.scalars(
            select(Consent)
            .where(
                Consent.portal_id == portal_id,
                Consent.channel == channel,
                Consent.address == address,
            )
            .order_by(Consent.id.desc())
        ).first()


def _row(session, portal_id: int, contact_key: str, channel: str) -> Consent:
    return session.scalars(
        select(Consent)
        .where(
            Consent.portal_id == portal_id,
            Consent.contact_key == contact_key,
            Consent.channel == channel,
        )
        .with_for_update()
    ).one()


# Signed opt-out links


def _serializer(services: Services) -> URLSafeSerializer:
    return URLSafeSerializer(services.config["SECRET_KEY"], salt="otklik-optout")


def optout_token(services: Services, portal_id: int, contact_key: str) -> str:
    return _serializer(services).dumps([portal_id, contact_key])


def read_optout_token(services: Services, token: str) -> tuple[int, str]:
    try:
        portal_id, contact_key = _serializer(services).loads(token)
    except (BadSignature, ValueError, TypeError) as err:
        raise ConsentError("Ссылка повреждена.") from err
    return int(portal_id), str(contact_key)


def optout_url(services: Services, portal_id: int, contact_key: str) -> str:
    base = services.config.get("PUBLIC_URL", "").rstrip("/")
    return f"{base}/bot/optout/{optout_token(services, portal_id, contact_key)}"


# Short signed codes for Telegram deep links (/start <code>)
#
# Telegram allows at most 64 characters from [A-Za-z0-9_-] in a start
# parameter. A code is "<portal>_<c|d><id>_<issued>_<mac>": the issue time
# in base-36 Unix seconds and 16 hex digits (64 bits) of an HMAC-SHA256 of
# the rest, at most 47 characters. Codes of the first format had no issue
# time ("<portal>_<c|d><id>_<mac>"). They are accepted until
# LEGACY_LINK_CODES_UNTIL and rejected as expired after it.

# How long a client may use a deep link after the owner created it.
LINK_CODE_TTL = timedelta(days=30)
# Cut-off for codes without an issue time, which were sent out before codes
# expired: 30 days (one LINK_CODE_TTL) after the release that added expiry.
LEGACY_LINK_CODES_UNTIL = datetime(2027, 1, 4, tzinfo=UTC)
# A code issued this far in the future is invalid, whatever its signature.
LINK_CODE_CLOCK_SKEW = timedelta(minutes=5)
LINK_CODE = re.compile(
    r"(?P<portal>[1-9][0-9]{0,9})_(?P<key>[cd][1-9][0-9]{0,9})"
    r"(?:_(?P<issued>[0-9a-z]{1,7}))?_(?P<mac>[0-9a-f]{16})"
)
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class LinkCodeExpired(ConsentError):
    """A correctly signed deep-link code that is past its expiry."""


def link_code(
    services: Services,
    portal_id: int,
    contact_key: str,
    *,
    issued_at: datetime | None = None,
) -> str:
    """Sign a deep-link code for the client, valid for LINK_CODE_TTL."""
    kind, _, raw_id = contact_key.partition(":")
    issued = int((issued_at or datetime.now(UTC)).timestamp())
    body = f"{portal_id}_{kind[0]}{raw_id}_{_base36(issued)}"
    return f"{body}_{_mac(services, body, 'tg-link-v2')}"


def link_code_expires_at(issued_at: datetime) -> datetime:
    return issued_at + LINK_CODE_TTL


def read_link_code(
    services: Services, code: str, *, now: datetime | None = None
) -> tuple[int, str]:
    """Return (portal id, client key) of a deep-link code.

    Raises ConsentError for a malformed or forged code and LinkCodeExpired
    for a genuine code past its expiry. The signature is checked first, so
    only a holder of a genuine code learns that it expired.
    """
    match = LINK_CODE.fullmatch(code)
    if match is None:
        raise ConsentError("Код ссылки повреждён.")
    issued_raw = match["issued"]
    body = f"{match['portal']}_{match['key']}"
    if issued_raw is None:
        expected = _mac(services, body, "tg-link")
    else:
        body = f"{body}_{issued_raw}"
        expected = _mac(services, body, "tg-link-v2")
    if not hmac.compare_digest(match["mac"].encode(), expected.encode()):
        raise ConsentError("Код ссылки повреждён.")

    now = now or datetime.now(UTC)
    if issued_raw is None:
        expires_at = LEGACY_LINK_CODES_UNTIL
    else:
        issued_at = datetime.fromtimestamp(int(issued_raw, 36), UTC)
        if issued_at > now + LINK_CODE_CLOCK_SKEW:
            raise ConsentError("Код ссылки повреждён.")
        expires_at = link_code_expires_at(issued_at)
    if now >= expires_at:
        raise LinkCodeExpired("Срок действия ссылки истёк.")

    kind = "contact" if match["key"][0] == "c" else "deal"
    return int(match["portal"]), f"{kind}:{match['key'][1:]}"


def _base36(value: int) -> str:
    digits = ""
    while True:
        value, rest = divmod(value, 36)
        digits = BASE36[rest] + digits
        if value == 0:
            return digits


def _mac(services: Services, body: str, purpose: str) -> str:
    key = services.config["SECRET_KEY"].encode()
    digest = hmac.new(key, f"{purpose}:{body}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]

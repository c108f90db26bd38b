"""Telegram deep-link codes: format, expiry, the old format and forged codes."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import func, select

from b24app.reminders import consent
from b24app.reminders.feature import LINK_EXPIRED_REPLY, LINK_INVALID_REPLY
from b24app.reminders.models import Consent
from tests.helpers import drain
from tests.reminders.support import webhook_secret

KEY = SimpleNamespace(config={"SECRET_KEY": "link-code-test-key"})
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CHAT = 777002


def _old_format_code(services, portal_id: int, short_key: str) -> str:
    """Build a code the way releases before code expiry did."""
    body = f"{portal_id}_{short_key}"
    key = services.config["SECRET_KEY"].encode()
    mac = hmac.new(key, f"tg-link:{body}".encode(), hashlib.sha256).hexdigest()
    return f"{body}_{mac[:16]}"


# Format


def test_code_round_trip():
    code = consent.link_code(KEY, 12, "deal:345", issued_at=NOW)
    assert consent.read_link_code(KEY, code, now=NOW) == (12, "deal:345")


def test_code_fits_telegram_start_parameter():
    code = consent.link_code(KEY, 9_999_999_999, "contact:9999999999", issued_at=NOW)
    assert len(code) <= 64
    assert re.fullmatch(r"[A-Za-z0-9_-]+", code)


def test_code_carries_issue_time():
    code = consent.link_code(KEY, 1, "deal:5", issued_at=NOW)
    issued = code.split("_")[2]
    assert int(issued, 36) == int(NOW.timestamp())


# Expiry


def test_code_valid_until_ttl():
    code = consent.link_code(KEY, 1, "deal:5", issued_at=NOW)
    almost = NOW + consent.LINK_CODE_TTL - timedelta(seconds=1)
    assert consent.read_link_code(KEY, code, now=almost) == (1, "deal:5")


def test_code_expired_after_ttl():
    code = consent.link_code(KEY, 1, "deal:5", issued_at=NOW)
    with pytest.raises(consent.LinkCodeExpired):
        consent.read_link_code(KEY, code, now=NOW + consent.LINK_CODE_TTL)


def test_code_issued_in_future_rejected():
    later = NOW + timedelta(hours=1)
    code = consent.link_code(KEY, 1, "deal:5", issued_at=later)
    with pytest.raises(consent.ConsentError) as caught:
        consent.read_link_code(KEY, code, now=NOW)
    assert not isinstance(caught.value, consent.LinkCodeExpired)


def test_code_with_moved_issue_time_rejected():
    """Changing the issue time to extend a code breaks its signature."""
    code = consent.link_code(KEY, 1, "deal:5", issued_at=NOW)
    portal, key, _, mac = code.split("_")
    fresh = consent.link_code(KEY, 1, "deal:5", issued_at=NOW + timedelta(days=40))
    moved = f"{portal}_{key}_{fresh.split('_')[2]}_{mac}"
    with pytest.raises(consent.ConsentError) as caught:
        consent.read_link_code(KEY, moved, now=NOW + timedelta(days=41))
    assert not isinstance(caught.value, consent.LinkCodeExpired)


def test_expired_forged_code_reads_as_damaged():
    """Only a genuine code is reported as expired."""
    code = consent.link_code(KEY, 1, "deal:5", issued_at=NOW)
    forged = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(consent.ConsentError) as caught:
        consent.read_link_code(KEY, forged, now=NOW + timedelta(days=365))
    assert not isinstance(caught.value, consent.LinkCodeExpired)


def test_code_of_other_secret_key_rejected():
    other = SimpleNamespace(config={"SECRET_KEY": "another-key"})
    code = consent.link_code(other, 1, "deal:5", issued_at=NOW)
    with pytest.raises(consent.ConsentError):
        consent.read_link_code(KEY, code, now=NOW)


@pytest.mark.parametrize(
    "code",
    [
        "",
        "1_d5",
        "1_x5_abc_0123456789abcdef",
        "01_d5_abc_0123456789abcdef",
        "1_d5_abc_0123456789ABCDEF",
        "1_d5_ab c_0123456789abcdef",
        "1_d5_abc_0123456789abcdé",
        "١_d5_abc_0123456789abcdef",
        "1_d5_abc_0123456789abcdef_extra",
    ],
    ids=[
        "empty",
        "no-mac",
        "bad-kind",
        "leading-zero",
        "upper-hex",
        "space",
        "non-ascii-mac",
        "arabic-digit",
        "extra-part",
    ],
)
def test_malformed_code_rejected(code):
    with pytest.raises(consent.ConsentError):
        consent.read_link_code(KEY, code, now=NOW)


# Codes of the old format, without an issue time


def test_old_format_code_accepted_before_cutoff():
    code = _old_format_code(KEY, 7, "c42")
    before = consent.LEGACY_LINK_CODES_UNTIL - timedelta(seconds=1)
    assert consent.read_link_code(KEY, code, now=before) == (7, "contact:42")


def test_old_format_code_expired_at_cutoff():
    code = _old_format_code(KEY, 7, "c42")
    with pytest.raises(consent.LinkCodeExpired):
        consent.read_link_code(KEY, code, now=consent.LEGACY_LINK_CODES_UNTIL)


def test_old_format_forged_code_rejected():
    code = _old_format_code(KEY, 7, "c42").replace("_c42_", "_c43_")
    with pytest.raises(consent.ConsentError) as caught:
        consent.read_link_code(KEY, code, now=NOW)
    assert not isinstance(caught.value, consent.LinkCodeExpired)


# Bot replies to /start


def _consent_rows(services) -> int:
    with services.db.session() as session:
        return session.scalar(select(func.count()).select_from(Consent))


def _start(app_server, services, worker, telegram, portal, code: str) -> str:
    telegram.user_writes(
        f"{app_server.url}/bot/telegram/{portal.id}",
        webhook_secret(services, portal.id),
        CHAT,
        f"/start {code}",
    )
    drain(worker, services)
    replies = [m["text"] for m in telegram.sent if str(m["chat_id"]) == str(CHAT)]
    return replies[-1] if replies else ""


def test_bot_expired_code_reply(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    issued = datetime.now(UTC) - consent.LINK_CODE_TTL - timedelta(minutes=1)
    code = consent.link_code(services, reminder_portal.id, "deal:5", issued_at=issued)
    reply = _start(app_server, services, worker, telegram, reminder_portal, code)
    assert reply == LINK_EXPIRED_REPLY
    assert reply.startswith("Срок действия ссылки истёк")
    assert _consent_rows(services) == 0


def test_bot_damaged_code_reply(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    code = consent.link_code(services, reminder_portal.id, "deal:5")
    forged = code.replace("_d5_", "_d6_")
    reply = _start(app_server, services, worker, telegram, reminder_portal, forged)
    assert reply == LINK_INVALID_REPLY
    assert _consent_rows(services) == 0


def test_bot_fresh_code_grants(
    emulator, app_server, services, worker, telegram, reminder_portal
):
    code = consent.link_code(services, reminder_portal.id, "deal:5")
    reply = _start(app_server, services, worker, telegram, reminder_portal, code)
    assert reply.startswith("Готово")
    allowed = consent.allowed_channels(services, reminder_portal.id, "deal:5")
    assert allowed == {"telegram": str(CHAT)}


def test_admin_link_reports_expiry(app_server, services, reminder_portal):
    from tests.reminders.test_admin_api import _api, _headers

    before = datetime.now(UTC)
    body = requests.get(
        _api(app_server, "/telegram-link?contact_key=deal:5"),
        headers=_headers(services, reminder_portal),
        timeout=10,
    ).json()
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at - before >= consent.LINK_CODE_TTL - timedelta(seconds=2)
    assert expires_at - before <= consent.LINK_CODE_TTL + timedelta(seconds=60)
    assert consent.read_link_code(services, body["code"]) == (
        reminder_portal.id,
        "deal:5",
    )

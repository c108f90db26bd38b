"""The portal's base currency and exchange rates, for the KPI amounts.

Every KPI amount is in the portal's base currency (``crm.currency.base.get``).
A deal in another currency is converted with the rate from
``crm.currency.list`` (``AMOUNT`` base units per ``AMOUNT_CNT`` units of the
currency) stored when the deal is stored. A deal whose currency has no rate
is left out of the sums and lowers the amount coverage instead of being
added in the wrong currency.

The base currency and the rates are kept in the KPI settings row
(``KpiSettings.mapping["currency"]``), re-read by the hourly reconciliation
and on the first report of a portal. A failed read is remembered for
``RETRY_SECONDS``, so an unreachable portal costs one call per minute.
"""

from __future__ import annotations

import logging
import threading
import time as monotonic_time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from b24app.bitrix.errors import BitrixCallError
from b24app.kpi import rollup
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import KpiDeal
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)

RETRY_SECONDS = 60
MAX_CURRENCIES = 200
# Latest stored deals whose currency names the amounts' currency before the
# portal's base currency has been read.
DEALS_SAMPLE = 200

# Short signs for the e-mail and the spreadsheet number formats. Other codes
# are written as the ISO 4217 code itself.
SIGNS = {
    "ru": {"RUB": "руб.", "USD": "$", "EUR": "€", "KZT": "₸", "BYN": "Br", "UAH": "₴"},
    "en": {"RUB": "₽", "USD": "$", "EUR": "€", "KZT": "₸", "BYN": "Br", "UAH": "₴"},
}

_failed_at: dict[str, float] = {}
_lock = threading.Lock()


def info(cfg: kpi_settings.KpiConfig) -> dict[str, Any] | None:
    """Return the stored ``{"base", "rates", "read_at"}``, or None before a read."""
    value = cfg.mapping.get("currency")
    if isinstance(value, dict) and value.get("base"):
        return value
    return None


def base_code(cfg: kpi_settings.KpiConfig) -> str | None:
    stored = info(cfg)
    return stored["base"] if stored else None


def code_of(session, portal_id: int, cfg: kpi_settings.KpiConfig) -> str | None:
    """Return the currency of the KPI amounts: the base one, else ``deals_currency``."""
    return base_code(cfg) or deals_currency(session, portal_id)


def deals_currency(session, portal_id: int) -> str | None:
    """Return the one currency of the latest stored deals; None if none or several."""
    recent = session.scalars(
        select(KpiDeal.extra)
        .where(KpiDeal.portal_id == portal_id, KpiDeal.deleted.is_(False))
        .order_by(KpiDeal.id.desc())
        .limit(DEALS_SAMPLE)
    )
    codes = {(extra or {}).get("CURRENCY_ID") for extra in recent} - {None}
    return codes.pop() if len(codes) == 1 else None


def to_base(
    amount: float | None, currency_id: Any, stored: dict[str, Any] | None
) -> float | None:
    """Convert ``amount`` in ``currency_id`` to the base currency.

    Without a stored base currency the amount is taken as it is. A currency
    without a rate gives None, so the deal counts as one without an amount.
    """
    if amount is None:
        return None
    code = str(currency_id or "").upper()
    if stored is None or not code or code == stored["base"]:
        return amount
    rate = (stored.get("rates") or {}).get(code)
    if not rate:
        return None
    return round(amount * float(rate), 2)


def read_portal(services: Services, portal: Portal) -> dict[str, Any]:
    """Read the base currency and the rates from the portal.

    Raises BitrixCallError when ``crm.currency.base.get`` fails. The rates are
    optional: when ``crm.currency.list`` fails (it needs access to the CRM
    settings), only deals in the base currency are counted.
    """
    client = services.client(portal)
    base = str(client.call("crm.currency.base.get", {}) or "").strip().upper()
    if not base:
        raise BitrixCallError(
            "crm.currency.base.get", "EMPTY_RESULT", "no base currency returned", 200
        )

    rates: dict[str, float] = {}
    try:
        rows = client.call("crm.currency.list", {}) or []
    except BitrixCallError as err:
        logger.warning(
            "currency rates not read for portal %s: crm.currency.list failed: %s",
            portal.member_id,
            err.code,
        )
        rows = []
    for row in rows[:MAX_CURRENCIES]:
        code = str(row.get("CURRENCY") or "").strip().upper()
        try:
            amount = float(row.get("AMOUNT"))
            units = float(row.get("AMOUNT_CNT") or 1)
        except (TypeError, ValueError):
            continue
        if code and code != base and amount > 0 and units > 0:
            rates[code] = amount / units
    return {"base": base, "rates": rates, "read_at": datetime.now(UTC).isoformat()}


def refresh(services: Services, portal: Portal) -> dict[str, Any] | None:
    """Read the portal's currencies and store them; return the stored value.

    Returns None when the portal could not be read (logged, retried after
    ``RETRY_SECONDS``). A new base currency, or a currency that gained or
    lost its rate, converts the stored deals again and drops the stored
    days, so the next report sums the new amounts.
    """
    try:
        fresh = read_portal(services, portal)
    except BitrixCallError as err:
        logger.warning(
            "base currency not read for portal %s: %s failed: %s",
            portal.member_id,
            err.method,
            err.code,
        )
        with _lock:
            _failed_at[portal.member_id] = monotonic_time.monotonic()
        return None
    with _lock:
        _failed_at.pop(portal.member_id, None)

    old = info(kpi_settings.load(services, portal))
    kpi_settings.save_currency(services, portal, fresh)
    changed = old is None or (
        old["base"] != fresh["base"]
        or set(old.get("rates") or {}) != set(fresh["rates"])
    )
    if changed:
        with services.db.session() as session:
            count = reconvert(session, portal.id, fresh)
        if count:
            rollup.invalidate(services, portal.id)
        logger.info(
            "currency of portal %s is %s; %d stored deal amounts converted again",
            portal.member_id,
            fresh["base"],
            count,
        )
    return fresh


def ensure(
    services: Services, portal: Portal, cfg: kpi_settings.KpiConfig
) -> kpi_settings.KpiConfig:
    """Return ``cfg`` with the portal's currency, reading it once if never read."""
    if info(cfg) is not None:
        return cfg
    with _lock:
        failed_at = _failed_at.get(portal.member_id)
    if failed_at is not None and monotonic_time.monotonic() - failed_at < RETRY_SECONDS:
        return cfg
    if refresh(services, portal) is None:
        return cfg
    return kpi_settings.load(services, portal)


def reconvert(session, portal_id: int, stored: dict[str, Any]) -> int:
    """Convert the stored amounts of deals again; return how many changed.

    Deals stored before ``CURRENCY_ID`` was read have no raw amount in
    ``extra`` and keep their amount.
    """
    changed = 0
    # NOTE: reads every stored deal of the portal in one query. That runs
    # only on the first read of the currency or when it changes.
    rows = session.execute(
        select(KpiDeal.id, KpiDeal.amount, KpiDeal.extra).where(
            KpiDeal.portal_id == portal_id
        )
    ).all()
    for row_id, amount, extra in rows:
        extra = extra or {}
        if "OPPORTUNITY" not in extra:
            continue
        raw = positive(extra.get("OPPORTUNITY"))
        converted = to_base(raw, extra.get("CURRENCY_ID"), stored)
        if converted != amount:
            session.execute(
                update(KpiDeal).where(KpiDeal.id == row_id).values(amount=converted)
            )
            changed += 1
    return changed


def positive(value: Any) -> float | None:
    """Parse a deal amount; None unless it is a number above 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def sign(code: str | None, lang: str) -> str:
    """Return the short sign of a currency for text in ``lang`` (its code if none)."""
    if not code:
        return ""
    return SIGNS["en" if lang == "en" else "ru"].get(code, code)


def money_text(value: float | None, code: str | None, lang: str) -> str:
    """Format an amount for plain text: "12 500 руб.", "12,500 ₽", "—" for None."""
    if value is None:
        return "—"
    whole = f"{round(value):,}"
    if lang != "en":
        whole = whole.replace(",", "\u00a0")
    suffix = sign(code, lang)
    return f"{whole}\u00a0{suffix}" if suffix else whole


def xlsx_format(code: str | None, lang: str) -> str:
    """Return an Excel number format that shows the currency after the amount."""
    suffix = sign(code, lang)
    if not suffix:
        return "#,##0.00"
    return f'#,##0.00\\ "{suffix}"'

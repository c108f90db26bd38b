"""CRM currencies: `crm.currency.base.get`, `crm.currency.list` and their state.

A portal keeps one row per currency in `portal.currencies`, keyed by the
ISO 4217 code. Every value is a string, as the REST API returns it: `AMOUNT`
base-currency units buy `AMOUNT_CNT` units of the currency, and the base
currency has `BASE` "Y", `AMOUNT` "1.0000" and `AMOUNT_CNT` "1".

A new portal has RUB as its base currency, with USD and EUR rates.
`set_currencies` changes the base currency and the rates for tests and the
demo (through `Portal.set_currencies` and `POST /_emulator/currencies`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ..errors import crm_error
from ..listing import LIST_LIMIT, Page, parse_start, sort_records
from ..params import as_dict, get_param
from ..registry import CallContext, rest_method

if TYPE_CHECKING:
    from ..state import Portal

logger = logging.getLogger(__name__)

FIELD_TYPES = {
    "AMOUNT_CNT": "integer",
    "AMOUNT": "double",
    "SORT": "integer",
    "DECIMALS": "integer",
    "DATE_UPDATE": "datetime",
}

# The PHP core sorts by FULL_NAME when the `order` key is "name".
ORDER_ALIASES = {"NAME": "FULL_NAME"}
DEFAULT_ORDER = {"SORT": "ASC", "CURRENCY": "ASC"}

# The portal stores rates as decimal(18,4).
RATE_QUANTUM = Decimal("0.0001")
MAX_AMOUNT = Decimal(10) ** 14
MAX_AMOUNT_CNT = 10**9

_CODE = re.compile(r"^[A-Za-z]{3}$")

# (code, AMOUNT_CNT, AMOUNT, SORT, FORMAT_STRING, THOUSANDS_SEP) of a new portal.
# The rates are plausible RUB rates, not quotes of any particular day.
SEED = (
    ("RUB", 1, "1", 100, "# ₽", "&nbsp;"),
    ("USD", 1, "92.5", 200, "$#", None),
    ("EUR", 1, "99.8", 300, "# €", "&nbsp;"),
)

FULL_NAMES = {
    "ru": {"RUB": "Российский рубль", "USD": "Доллар США", "EUR": "Евро"},
    "en": {"RUB": "Russian Ruble", "USD": "US Dollar", "EUR": "Euro"},
}


def _full_name(portal: Portal, code: str) -> str:
    names = FULL_NAMES["ru" if portal.config.language == "ru" else "en"]
    return names.get(code, code)


def _amount_text(amount: Decimal) -> str:
    return str(amount.quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP))


def _row(
    portal: Portal,
    code: str,
    *,
    amount_cnt: int,
    amount: Decimal,
    sort: int,
    base: bool,
    format_string: str | None = None,
    thousands_sep: str | None = "&nbsp;",
) -> dict[str, Any]:
    """Build a row with the documented fields, in the order the REST API has them."""
    return {
        "CURRENCY": code,
        "AMOUNT_CNT": str(amount_cnt),
        "AMOUNT": _amount_text(amount),
        "SORT": str(sort),
        "BASE": "Y" if base else "N",
        "FULL_NAME": _full_name(portal, code),
        "LID": portal.config.language,
        "FORMAT_STRING": format_string or f"# {code}",
        "DEC_POINT": ".",
        "THOUSANDS_SEP": thousands_sep,
        "DECIMALS": "2",
        "DATE_UPDATE": portal.now_iso(),
    }


def seed_currencies(portal: Portal) -> None:
    """Fill a new portal's currencies: RUB as the base, USD and EUR."""
    with portal.lock:
        for code, amount_cnt, amount, sort, format_string, separator in SEED:
            portal.currencies.data[code] = _row(
                portal,
                code,
                amount_cnt=amount_cnt,
                amount=Decimal(amount),
                sort=sort,
                base=code == "RUB",
                format_string=format_string,
                thousands_sep=separator,
            )


def base_code(portal: Portal) -> str:
    """Return the code of the row with `BASE` "Y"."""
    with portal.lock:
        for code, row in portal.currencies.data.items():
            if row["BASE"] == "Y":
                return code
    raise LookupError("The portal has no base currency.")


# ---------------------------------------------------------------- REST methods


@rest_method("crm.currency.base.get", "crm")
def currency_base_get(ctx: CallContext, params: dict) -> str:
    return base_code(ctx.portal)


@rest_method("crm.currency.list", "crm")
def currency_list(ctx: CallContext, params: dict) -> Page:
    """Return the currency rows sorted by `order`; `total` is always 0.

    `order` maps field names (any case, "name" meaning FULL_NAME) to "asc" or
    "desc". Every key is honoured in turn, as the REST docs describe it.
    """
    # NOTE: the docs allow "any user with access to CRM settings". The
    # emulator grants that access to portal administrators only.
    if not ctx.is_admin:
        raise crm_error("Access denied.")

    # NOTE: the PHP core (CCrmCurrency::GetList) reads only the first `order`
    # key and falls back to SORT for fields other than currency and name.
    order: dict[str, str] = {}
    for key, direction in as_dict(get_param(params, "order")).items():
        name = str(key).strip().upper()
        order[ORDER_ALIASES.get(name, name)] = str(direction)
    for key, direction in DEFAULT_ORDER.items():
        order.setdefault(key, direction)

    portal = ctx.portal
    with portal.lock:
        rows = [dict(row) for row in portal.currencies.data.values()]
    rows = sort_records(rows, order, FIELD_TYPES, portal.tz)

    # The docs describe no paging here. Like other lists, a call returns at
    # most 50 rows from `start`.
    start = max(parse_start(params), 0)
    return Page(rows[start : start + LIST_LIMIT], 0, None)


# ---------------------------------------------------------------- portal side


def _parse_code(raw: Any) -> str:
    code = str(raw or "").strip()
    if not _CODE.match(code):
        raise ValueError(
            f"Invalid currency code {raw!r}: use three Latin letters (ISO 4217)."
        )
    return code.upper()


def _parse_amount(code: str, raw: Any) -> Decimal:
    try:
        amount = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError) as err:
        raise ValueError(
            f"Invalid rate for {code}: {raw!r} is not a number; send a number above 0."
        ) from err
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"Invalid rate for {code}: {raw!r}; send a number above 0.")
    if amount >= MAX_AMOUNT:
        raise ValueError(
            f"Invalid rate for {code}: {raw!r} has more than 14 digits before "
            "the decimal point."
        )
    if amount.quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP) == 0:
        raise ValueError(
            f"Invalid rate for {code}: {raw!r} rounds to 0 at 4 decimal places; "
            "raise amount_cnt instead."
        )
    return amount


def _parse_amount_cnt(code: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"Invalid amount_cnt for {code}: {raw!r}.")
    try:
        units = int(str(raw).strip())
    except ValueError as err:
        raise ValueError(
            f"Invalid amount_cnt for {code}: {raw!r}; send a whole number above 0."
        ) from err
    if not 0 < units <= MAX_AMOUNT_CNT:
        raise ValueError(
            f"Invalid amount_cnt for {code}: {raw!r}; "
            f"send a whole number from 1 to {MAX_AMOUNT_CNT}."
        )
    return units


def _parse_rate(code: str, raw: Any) -> tuple[Decimal, int]:
    """Read `1.08` or `{"amount": 1.08, "amount_cnt": 1}` as (amount, units)."""
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"amount", "amount_cnt"}
        if unknown:
            names = ", ".join(sorted(map(str, unknown)))
            raise ValueError(
                f"Unknown keys for {code}: {names}; use amount and amount_cnt."
            )
        if "amount" not in raw:
            raise ValueError(f"Missing amount for {code}.")
        units = _parse_amount_cnt(code, raw.get("amount_cnt", 1))
        return _parse_amount(code, raw["amount"]), units
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"Invalid rate for {code}: {raw!r}; send a number above 0.")
    return _parse_amount(code, raw), 1


def _rescaled(row: dict[str, Any], new_base: dict[str, Any]) -> tuple[Decimal, int]:
    """Return the row's (AMOUNT, AMOUNT_CNT) in units of the new base currency.

    AMOUNT_CNT is the smallest power of 10 that gives an AMOUNT of 1 or more,
    so the 4 decimal places keep at least 5 significant digits.
    """
    rate = (Decimal(row["AMOUNT"]) / Decimal(row["AMOUNT_CNT"])) / (
        Decimal(new_base["AMOUNT"]) / Decimal(new_base["AMOUNT_CNT"])
    )
    units = 1
    while rate * units < 1 and units < MAX_AMOUNT_CNT:
        units *= 10
    return rate * units, units


def set_currencies(
    portal: Portal,
    base: str | None = None,
    rates: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Change the base currency, then set rates in units of the base currency.

    A new base currency must already be on the portal. Switching converts
    every other rate to the new base, rounded to 4 decimal places as the
    portal stores them (see `_rescaled` for AMOUNT_CNT). `rates` maps a code
    to an amount per 1 unit or to `{"amount": ..., "amount_cnt": ...}`, and
    an unknown code adds a currency. Everything is checked before anything
    changes, so invalid input raises ValueError or LookupError and leaves the
    rows as they were.
    """
    if rates is not None and not isinstance(rates, Mapping):
        raise ValueError("rates must be an object mapping currency codes to rates.")
    requested_base = _parse_code(base) if base is not None else None
    parsed: dict[str, tuple[Decimal, int]] = {}
    for raw_code, raw_rate in (rates or {}).items():
        code = _parse_code(raw_code)
        parsed[code] = _parse_rate(code, raw_rate)

    with portal.lock:
        rows = portal.currencies.data
        old_base = base_code(portal)
        new_base = requested_base or old_base
        if new_base not in rows:
            raise LookupError(
                f"Currency {new_base} is not on the portal; "
                "add it with rates first, then make it the base currency."
            )
        if new_base in parsed:
            amount, units = parsed[new_base]
            if amount != 1 or units != 1:
                raise ValueError(
                    f"The base currency {new_base} must keep amount 1 and "
                    "amount_cnt 1; send rates of the other currencies."
                )

        # Rates of the other currencies in units of the new base currency.
        switched: dict[str, tuple[Decimal, int]] = {}
        if new_base != old_base:
            target = rows[new_base]
            for code, row in rows.items():
                if code == new_base or code in parsed:
                    continue
                switched[code] = _rescaled(row, target)
                if _amount_text(switched[code][0]) == _amount_text(Decimal(0)):
                    raise ValueError(
                        f"The rate of {code} rounds to 0 in {new_base}; send its "
                        "rate with a larger amount_cnt in the same request."
                    )

        now = portal.now_iso()
        if new_base != old_base:
            for code, row in rows.items():
                if code in switched:
                    amount, units = switched[code]
                    row.update(AMOUNT=_amount_text(amount), AMOUNT_CNT=str(units))
                row["BASE"] = "N"
                row["DATE_UPDATE"] = now
            rows[new_base].update(AMOUNT=_amount_text(Decimal(1)), AMOUNT_CNT="1")
            rows[new_base]["BASE"] = "Y"

        next_sort = max((int(row["SORT"]) for row in rows.values()), default=0) + 100
        for code, (amount, units) in parsed.items():
            if code == new_base:
                continue
            if code not in rows:
                rows[code] = _row(
                    portal,
                    code,
                    amount_cnt=units,
                    amount=amount,
                    sort=next_sort,
                    base=False,
                )
                next_sort += 100
                continue
            rows[code].update(
                AMOUNT=_amount_text(amount), AMOUNT_CNT=str(units), DATE_UPDATE=now
            )
        portal.touch()

    logger.info(
        "currencies of portal %s: base %s, rates set for %s",
        portal.domain,
        new_base,
        ", ".join(sorted(parsed)) or "none",
    )
    return currency_state(portal)


def currency_state(portal: Portal) -> dict[str, Any]:
    """Return `{"base": code, "currencies": rows in SORT order}`."""
    with portal.lock:
        rows = [dict(row) for row in portal.currencies.data.values()]
    rows = sort_records(rows, DEFAULT_ORDER, FIELD_TYPES, portal.tz)
    return {"base": base_code(portal), "currencies": rows}

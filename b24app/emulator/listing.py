"""List methods: filter prefixes, `order`, `select` and 50-row pages.

Filter keys carry an operator prefix (`>=DATE_CREATE`, `@ID`, `%TITLE`,
`!STATUS_ID`). Values are compared by field type: numbers as numbers, dates
as moments, and the rest as case-insensitive text, as MySQL collations do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from .fields import DATE_TYPES, NUMERIC_TYPES, parse_datetime
from .params import as_dict, as_list, get_param

LIST_LIMIT = 50

# Longest prefixes first, so `!=%` is not read as `!`.
_OPERATORS = (
    "!=%",
    "!%=",
    "!@",
    "!%",
    "!=",
    ">=",
    "<=",
    "=%",
    "%=",
    "@",
    ">",
    "<",
    "%",
    "!",
    "=",
)


@dataclass
class Condition:
    """One filter entry: `field`, operator and the requested value."""

    field: str
    operator: str
    value: Any


@dataclass
class Page:
    """A list response: the rows, `total`, and `next` when more rows exist."""

    result: Any
    total: int
    next: int | None


def parse_filter(raw: Any) -> list[Condition]:
    """Split filter keys into (field, operator, value) conditions."""
    conditions = []
    for key, value in as_dict(raw).items():
        text = str(key).strip()
        operator = "="
        for candidate in _OPERATORS:
            if text.startswith(candidate):
                operator = candidate
                text = text[len(candidate) :]
                break
        conditions.append(Condition(field=text.upper(), operator=operator, value=value))
    return conditions


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _coerce(value: Any, field_type: str, tz: tzinfo) -> Any:
    """Convert a stored or requested value to a comparable Python value."""
    if value is None or value == "":
        return None
    if field_type in NUMERIC_TYPES:
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value).lower()
    if field_type in DATE_TYPES:
        return parse_datetime(value, tz)
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value).lower()


def _stored_values(record: Mapping, field: str) -> list[Any]:
    """Return the record's values for a field; multiple fields give several."""
    value = record.get(field)
    if isinstance(value, list):
        values = []
        for item in value:
            values.append(item.get("VALUE") if isinstance(item, Mapping) else item)
        return values
    return [value]


def _like(pattern: str, text: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.lower().split("%"))
    return re.fullmatch(regex, text.lower(), flags=re.DOTALL) is not None


def _matches_one(
    stored: Any,
    condition: Condition,
    field_type: str,
    tz: tzinfo,
) -> bool:
    operator = condition.operator.lstrip("!") or "="
    wanted = condition.value

    if operator == "@":
        targets = {_coerce(item, field_type, tz) for item in as_list(wanted)}
        return _coerce(stored, field_type, tz) in targets
    if operator in ("%", "=%", "%="):
        if stored is None:
            return False
        text = str(stored)
        if condition.field == "PHONE" and _digits(str(wanted)):
            return _digits(str(wanted)) in _digits(text)
        if operator == "%":
            return str(wanted).lower() in text.lower()
        return _like(str(wanted), text)

    left = _coerce(stored, field_type, tz)
    right = _coerce(wanted, field_type, tz)
    if condition.field == "PHONE" and isinstance(left, str) and isinstance(right, str):
        left, right = _digits(left), _digits(right)
    if operator == "=":
        return left == right
    if left is None or right is None:
        return False
    try:
        if operator == ">":
            return left > right
        if operator == ">=":
            return left >= right
        if operator == "<":
            return left < right
        if operator == "<=":
            return left <= right
    except TypeError:
        return False
    return False


def matches(
    record: Mapping,
    conditions: Iterable[Condition],
    field_types: Mapping[str, str],
    tz: tzinfo,
) -> bool:
    """Tell whether a stored record satisfies every condition."""
    for condition in conditions:
        field_type = field_types.get(condition.field, "string")
        values = _stored_values(record, condition.field) or [None]
        hit = any(_matches_one(value, condition, field_type, tz) for value in values)
        negated = condition.operator.startswith("!")
        if hit == negated:
            return False
    return True


def sort_records(
    records: list[dict],
    order: Any,
    field_types: Mapping[str, str],
    tz: tzinfo,
) -> list[dict]:
    """Sort by `order` ({FIELD: ASC|DESC}); empty values come first in ASC."""
    keys = list(as_dict(order).items())
    rows = list(records)
    for field, direction in reversed(keys):
        name = str(field).upper()
        field_type = field_types.get(name, "string")
        descending = str(direction).upper() == "DESC"

        def sort_key(row: dict, name: str = name, field_type: str = field_type):
            value = _coerce(row.get(name), field_type, tz)
            return (0, "") if value is None else (1, value)

        try:
            rows.sort(key=sort_key, reverse=descending)
        except TypeError:
            rows.sort(key=lambda row, n=name: str(row.get(n)), reverse=descending)
    return rows


def parse_start(params: Mapping) -> int:
    """Read the `start` offset; -1 turns on the fast mode with no count."""
    raw = get_param(params, "start", 0)
    try:
        start = int(str(raw).strip() or 0)
    except ValueError:
        return 0
    if start == -1:
        return -1
    return max(start, 0)


def paginate(rows: list, start: int) -> tuple[list, int, int | None]:
    """Cut one page; return (page, total, next). Fast mode gives total 0."""
    if start == -1:
        return rows[:LIST_LIMIT], 0, None
    page = rows[start : start + LIST_LIMIT]
    total = len(rows)
    following = start + LIST_LIMIT
    return page, total, following if following < total else None


def select_fields(
    select: Any,
    *,
    standard: Iterable[str],
    user_fields: Iterable[str] = (),
    on_request_only: Iterable[str] = (),
) -> list[str]:
    """Resolve a `select` list to field names.

    Empty or `*` gives the standard fields, `UF_*` every user field; fields in
    `on_request_only` (multifields, activity communications) only by name.
    """
    requested = [str(item).upper() for item in as_list(select)]
    standard = list(standard)
    user_fields = list(user_fields)
    known = set(standard) | set(user_fields) | set(on_request_only)
    if not requested:
        requested = ["*"]

    chosen: list[str] = ["ID"] if "ID" in known else []
    for name in requested:
        if name == "*":
            candidates = standard
        elif name == "UF_*":
            candidates = user_fields
        elif name in known:
            candidates = [name]
        else:
            candidates = []
        for candidate in candidates:
            if candidate not in chosen:
                chosen.append(candidate)
    return chosen


def project(record: Mapping, names: Iterable[str]) -> dict:
    """Copy only the chosen keys; absent multifields stay absent."""
    return {name: record.get(name) for name in names if name in record}


def list_records(
    records: Iterable[dict],
    params: Mapping,
    *,
    field_types: Mapping[str, str],
    tz: tzinfo,
    default_order: Mapping[str, str] | None = None,
    transform: Callable[[dict], dict] | None = None,
    filter_key: str = "filter",
    order_key: str = "order",
) -> tuple[list[dict], int, int | None]:
    """Filter, sort and page stored records; `transform` runs on the page only."""
    conditions = parse_filter(get_param(params, filter_key))
    rows = [row for row in records if matches(row, conditions, field_types, tz)]
    order = get_param(params, order_key) or default_order or {"ID": "ASC"}
    rows = sort_records(rows, order, field_types, tz)
    page, total, following = paginate(rows, parse_start(params))
    if transform is not None:
        page = [transform(row) for row in page]
    return page, total, following

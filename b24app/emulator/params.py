"""PHP-style request parameters: bracket nesting in, `http_build_query` out.

Bitrix24 is a PHP application, so form and query parameters arrive as
`fields[PHONE][0][VALUE]=...` and outgoing event bodies are built with
`http_build_query`. PHP arrays are ordered maps with int or string keys; here
they are Python dicts whose canonical decimal keys are ints, as in PHP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote_plus

_CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]*)$")


def php_key(key: str | int) -> str | int:
    """Convert a key the way PHP does: canonical decimal strings become ints."""
    if isinstance(key, int):
        return key
    if _CANONICAL_INT.match(key) and len(key) < 19:
        return int(key)
    return key


def _split_key(raw: str) -> tuple[str, list[str | None]]:
    """Split `a[b][]` into ("a", ["b", None]); None marks an append `[]`."""
    opening = raw.find("[")
    if opening <= 0:
        return _php_base_name(raw), []

    base = _php_base_name(raw[:opening])
    segments: list[str | None] = []
    rest = raw[opening:]
    while rest.startswith("["):
        closing = rest.find("]")
        if closing < 0:
            # PHP keeps an unterminated bracket as part of the name.
            if not segments:
                return _php_base_name(raw.replace("[", "_", 1)), []
            break
        inner = rest[1:closing]
        segments.append(inner if inner != "" else None)
        rest = rest[closing + 1 :]
    return base, segments


def _php_base_name(name: str) -> str:
    """Apply PHP's rename of `.` and space in top-level names to `_`."""
    return name.replace(".", "_").replace(" ", "_")


def _next_index(container: dict) -> int:
    int_keys = [key for key in container if isinstance(key, int)]
    return max(int_keys) + 1 if int_keys else 0


def _assign(target: dict, base: str, segments: list[str | None], value: str) -> None:
    key: str | int | None = php_key(base)
    container = target
    for segment in segments:
        if key is None:
            key = _next_index(container)
        child = container.get(key)
        if not isinstance(child, dict):
            child = {}
            container[key] = child
        container = child
        key = None if segment is None else php_key(segment)
    if key is None:
        key = _next_index(container)
    container[key] = value


def parse_php_pairs(pairs: Iterable[tuple[str, str]]) -> dict:
    """Build a nested PHP-style dict from decoded (key, value) pairs."""
    result: dict = {}
    for raw_key, value in pairs:
        if raw_key == "":
            continue
        base, segments = _split_key(raw_key)
        if base == "":
            continue
        _assign(result, base, segments, value)
    return result


def parse_php_query(query: str) -> dict:
    """Parse a query string like PHP's `parse_str`."""
    return parse_php_pairs(parse_qsl(query, keep_blank_values=True))


def is_php_list(value: Mapping) -> bool:
    """Tell whether PHP's `json_encode` would print this array as a JSON list."""
    return list(value.keys()) == list(range(len(value)))


def to_php_json(value: Any) -> Any:
    """Shape nested dicts the way PHP `json_encode` prints arrays.

    Sequential int keys from 0 become a JSON list (so an empty map is `[]`),
    any other keys become an object with string keys.
    """
    if isinstance(value, Mapping):
        if is_php_list(value):
            return [to_php_json(item) for item in value.values()]
        return {str(key): to_php_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_php_json(item) for item in value]
    return value


def as_list(value: Any) -> list:
    """Read a PHP array parameter (JSON list, dict with int keys, scalar) as a list."""
    if value is None or value == "":
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def as_dict(value: Any) -> dict:
    """Read a PHP array parameter as a dict; lists get their indexes as keys."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        return dict(enumerate(value))
    return {}


def get_param(params: Mapping, name: str, default: Any = None) -> Any:
    """Look a parameter up by name, exact case first, then ignoring case."""
    if name in params:
        return params[name]
    lowered = name.lower()
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return default


def _php_scalar(value: Any) -> str | None:
    """Convert a scalar like PHP string conversion; None means "leave out"."""
    if value is None:
        return None
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        items: Iterable = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        scalar = _php_scalar(value)
        if scalar is not None:
            out.append((prefix, scalar))
        return
    for key, item in items:
        _flatten(f"{prefix}[{key}]", item, out)


def flatten_php(data: Mapping) -> list[tuple[str, str]]:
    """Flatten nested data into (`a[b][0]`, "value") pairs, strings only.

    Follows PHP `http_build_query`: nulls and empty arrays are left out,
    `True`/`False` become "1"/"0", list items get their index as key.
    """
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        _flatten(str(key), value, out)
    return out


def http_build_query(data: Mapping) -> str:
    """Encode nested data as PHP `http_build_query` does (RFC 1738, `+` spaces)."""
    return "&".join(
        f"{quote_plus(key)}={quote_plus(value)}" for key, value in flatten_php(data)
    )

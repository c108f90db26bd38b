"""Parse PHP-style nested form keys (``data[FIELDS][ID]=5``) into dicts.

Bitrix24 sends events as ``http_build_query`` output: every scalar is a
string, lists arrive as ``[0]``, ``[1]`` keys and nulls are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
MAX_DEPTH = 8


class FormError(ValueError):
    """A key of the form cannot be parsed."""


def parse_nested(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``(key, value)`` pairs into nested dicts; ``[]`` appends."""
    result: dict[str, Any] = {}
    for key, value in items:
        match = _KEY.match(key)
        if match is None:
            raise FormError(f"malformed form key {key[:60]!r}")
        parts = [match.group(1), *_PART.findall(match.group(2))]
        if len(parts) > MAX_DEPTH:
            raise FormError(f"form key {key[:60]!r} is nested too deeply")
        _assign(result, parts, value, key)
    return result


def _assign(target: dict[str, Any], parts: list[str], value: str, key: str) -> None:
    node = target
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "":
            part = str(len(node))
        if last:
            node[part] = value
            return
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise FormError(f"form key {key[:60]!r} mixes a value and a group")
        node = child

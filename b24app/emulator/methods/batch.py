"""`batch`: up to 50 commands in one request, with `$result[...]` references."""

from __future__ import annotations

import logging
import re
from typing import Any

from .. import dispatch
from ..errors import RestError
from ..listing import Page
from ..params import as_dict, get_param, parse_php_query, php_key, to_php_json
from ..registry import CallContext, rest_method

logger = logging.getLogger(__name__)

BATCH_MAX_LENGTH = 50

_REFERENCE = re.compile(
    r"\$(result|result_error|result_total|result_next|result_time)((?:\[[^\]]+\])+)"
)
_PATH_PART = re.compile(r"\[([^\]]+)\]")


def _lookup(results: dict[str, dict], kind: str, path: str) -> Any:
    """Follow `[key][field]...`; stop at the last level found, as the portal does."""
    value: Any = results[kind]
    for part in _PATH_PART.findall(path):
        container = value
        if isinstance(container, list):
            container = dict(enumerate(container))
        if not isinstance(container, dict):
            break
        key = part if part in container else _int_or_none(part)
        if key is None or key not in container:
            break
        value = container[key]
    return value


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _substitute(value: Any, results: dict[str, dict]) -> Any:
    """Replace references in one parameter value, recursing into arrays."""
    if isinstance(value, dict):
        return {key: _substitute(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, results) for item in value]
    if not isinstance(value, str) or "$result" not in value:
        return value

    whole = _REFERENCE.fullmatch(value)
    if whole:
        return _lookup(results, whole.group(1), whole.group(2))

    def replace(match: re.Match) -> str:
        found = _lookup(results, match.group(1), match.group(2))
        if isinstance(found, bool):
            return match.group(0)
        if isinstance(found, int | float):
            return str(found)
        # Arrays embedded in a longer string are left as they are.
        return found if isinstance(found, str) else match.group(0)

    return _REFERENCE.sub(replace, value)


def _split_command(command: Any) -> tuple[str, dict]:
    text = str(command or "").strip()
    method, _, query = text.partition("?")
    params = parse_php_query(query)
    for key in ("auth", "access_token", "auth_connector"):
        params.pop(key, None)
    return method.strip(), params


@rest_method("batch", batch_allowed=False)
def batch(ctx: CallContext, params: dict) -> dict:
    commands = as_dict(get_param(params, "cmd"))
    halt = str(get_param(params, "halt", "0")).lower() in ("1", "true", "y")

    results: dict[str, dict] = {
        "result": {},
        "result_error": {},
        "result_total": {},
        "result_next": {},
        "result_time": {},
    }
    for position, (raw_key, command) in enumerate(commands.items()):
        key = php_key(raw_key)
        if position >= BATCH_MAX_LENGTH:
            results["result_error"][key] = RestError(
                "ERROR_BATCH_LENGTH_EXCEEDED"
            ).to_body()
            continue

        method, command_params = _split_command(command)
        command_params = _substitute(command_params, results)
        try:
            spec = dispatch.find_method(method)
            if not spec.batch_allowed:
                raise RestError("ERROR_BATCH_METHOD_NOT_ALLOWED")
            outcome = dispatch.execute(ctx, method, command_params)
        except RestError as error:
            results["result_error"][key] = error.to_body()
            if halt:
                break
            continue

        value = outcome.result
        if isinstance(value, Page):
            results["result_total"][key] = value.total
            if value.next is not None:
                results["result_next"][key] = value.next
            value = value.result
        results["result"][key] = value
        results["result_time"][key] = dispatch.time_block(ctx, outcome)

    logger.debug("batch ran %s commands", len(commands))
    return {name: to_php_json(values) for name, values in results.items()}

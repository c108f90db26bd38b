"""Running one REST method: lookup, scope, faults, operating limit, timing.

Shared by plain calls and by each command inside `batch`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import RestError
from .fields import format_datetime
from .registry import METHODS, CallContext, MethodSpec

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """Result of one method call and its timing."""

    result: Any
    started: float
    finished: float
    processing: float
    method: str


def find_method(name: str) -> MethodSpec:
    spec = METHODS.get(name.lower())
    if spec is None:
        raise RestError("ERROR_METHOD_NOT_FOUND")
    return spec


def check_scope(ctx: CallContext, spec: MethodSpec) -> None:
    if "basic" in spec.scopes:
        return
    if not ctx.scopes.intersection(spec.scopes):
        description = (
            "The request requires higher privileges than provided by the webhook token"
            if ctx.is_webhook
            else None
        )
        raise RestError("insufficient_scope", description)


def execute(ctx: CallContext, name: str, params: dict, *, extra_delay: float = 0.0):
    """Run a method for the caller and return its `Outcome`; errors raise RestError."""
    portal = ctx.portal
    spec = find_method(name)
    check_scope(ctx, spec)

    started = portal.time()
    clock_start = time.perf_counter()
    if extra_delay:
        time.sleep(extra_delay)

    fault = portal.faults.take(spec.name)
    if fault is not None:
        logger.info("injected fault %s for %s", fault.error, spec.name)
        fault.apply(portal)

    portal.operating.check(ctx.client, spec.name)
    try:
        result = spec.handler(ctx, params)
    finally:
        processing = time.perf_counter() - clock_start
        portal.operating.record(ctx.client, spec.name, processing)

    return Outcome(
        result=result,
        started=started,
        finished=started + processing,
        processing=processing,
        method=spec.name,
    )


def time_block(ctx: CallContext, outcome: Outcome) -> dict[str, Any]:
    """Build the `time` object of a response, with the operating-limit keys."""
    portal = ctx.portal
    start = outcome.started
    finish = max(portal.time(), outcome.finished)
    block: dict[str, Any] = {
        "start": round(start, 6),
        "finish": round(finish, 6),
        "duration": round(finish - start, 6),
        "processing": round(outcome.processing, 6),
        "date_start": format_datetime(_moment(portal, start)),
        "date_finish": format_datetime(_moment(portal, finish)),
    }
    used, reset_at = portal.operating.usage(ctx.client, outcome.method)
    if reset_at:
        block["operating_reset_at"] = reset_at
    block["operating"] = round(used, 6)
    return block


def _moment(portal, unix_time: float) -> datetime:
    return datetime.fromtimestamp(unix_time, portal.tz)

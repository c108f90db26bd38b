"""The `/rest/` endpoint: parameters, auth, rate limit, response envelope.

URL shapes: `/rest/<method>[.json]` with an OAuth token, and
`/rest/<user_id>/<webhook_code>/<method>[.json]` for incoming webhooks.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, request

from . import dispatch, methods  # noqa: F401  (importing registers the methods)
from .errors import RestError
from .listing import Page
from .params import parse_php_pairs
from .registry import CallContext

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

bp = Blueprint("emulator_rest", __name__)

_AUTH_PARAMS = ("auth", "access_token", "auth_connector")


def _json_response(body: dict[str, Any], status: int, headers: dict | None = None):
    response = Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    response.headers["Access-Control-Allow-Origin"] = "*"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: RestError) -> Response:
    return _json_response(error.to_body(), error.status)


def read_params() -> dict:
    """Merge query and body parameters, the body winning; JSON only by content type."""
    query = parse_php_pairs(request.args.items(multi=True))
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
    else:
        body = parse_php_pairs(request.form.items(multi=True))
    return {**query, **body}


def _take_token(params: dict) -> str | None:
    """Pop the token: the Bearer header first, then `auth`, then `access_token`."""
    values = {name: params.pop(name, None) for name in _AUTH_PARAMS}
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer ") and header[7:].strip():
        return header[7:].strip()
    for name in ("auth", "access_token"):
        if isinstance(values[name], str) and values[name]:
            return values[name]
    return None


def _split_path(path: str) -> tuple[str, tuple[str, str] | None]:
    """Return (method, (user_id, code) for webhooks or None)."""
    parts = [part for part in path.strip("/").split("/") if part]
    if len(parts) == 3:
        user_id, code, method = parts
        webhook: tuple[str, str] | None = (user_id, code)
    elif len(parts) == 1:
        method, webhook = parts[0], None
    else:
        raise RestError("ERROR_METHOD_NOT_FOUND")
    if method.lower().endswith(".json"):
        method = method[: -len(".json")]
    return method.lower(), webhook


def authenticate(portal: Portal, token: str | None, webhook) -> CallContext:
    if webhook is not None:
        hook = portal.tokens.check_webhook(*webhook)
        return CallContext(
            portal=portal,
            user_id=hook.user_id,
            access_token=None,
            webhook_code=hook.code,
            scopes=frozenset(hook.scopes),
        )
    if not token:
        raise RestError("NO_AUTH_FOUND")
    access = portal.tokens.check_access(token)
    return CallContext(
        portal=portal,
        user_id=access.user_id,
        access_token=access.value,
        webhook_code=None,
        scopes=frozenset(portal.config.scopes),
    )


@bp.route("/rest/<path:path>", methods=["GET", "POST"])
def rest_entry(path: str):
    """Serve one REST call with the portal's envelope and error statuses."""
    portal: Portal = current_app.extensions["emulator"]
    wall_start = time.perf_counter()
    try:
        method, webhook = _split_path(path)
        params = read_params()
        token = _take_token(params)
        if not portal.bucket.try_acquire():
            logger.info("rate limit hit on %s", method)
            raise RestError("QUERY_LIMIT_EXCEEDED")
        ctx = authenticate(portal, token, webhook)
        outcome = dispatch.execute(
            ctx, method, params, extra_delay=portal.config.latency_ms / 1000
        )
    except RestError as error:
        return error_response(error)
    except Exception:
        logger.exception("REST method failed: %s", path)
        return error_response(RestError("INTERNAL_SERVER_ERROR"))

    result = outcome.result
    body: dict[str, Any] = {}
    if isinstance(result, Page):
        body["result"] = result.result
        if result.next is not None:
            body["next"] = result.next
        body["total"] = result.total
    else:
        body["result"] = result
    body["time"] = dispatch.time_block(ctx, outcome)

    elapsed = f"{time.perf_counter() - wall_start:.4f}"
    headers = {
        "X-Bitrix-Rest-Time": elapsed,
        "X-Bitrix-Rest-User-Time": f"{outcome.processing:.4f}",
        "X-Bitrix-Rest-System-Time": "0.0000",
    }
    if not ctx.is_webhook:
        headers["X-Bitrix-Rest-Application"] = portal.config.client_id
    return _json_response(body, 200, headers)

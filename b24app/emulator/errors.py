"""REST errors with the codes, texts and HTTP statuses a cloud portal uses.

Statuses follow the Bitrix24 docs error table where the docs and the PHP core
disagree (for example `insufficient_scope` is 403, `placement.bind` errors are
400). Clients are expected to branch on the `error` string.
"""

from __future__ import annotations

from typing import Any

# error code -> (HTTP status, default description)
KNOWN_ERRORS: dict[str, tuple[int, str]] = {
    "": (400, "Not found"),
    "INTERNAL_SERVER_ERROR": (500, "Internal server error"),
    "ERROR_UNEXPECTED_ANSWER": (500, "Server returned an unexpected response."),
    "QUERY_LIMIT_EXCEEDED": (503, "Too many requests"),
    "OPERATION_TIME_LIMIT": (429, "Method is blocked due to operation time limit."),
    "OVERLOAD_LIMIT": (503, "REST API is blocked due to overload."),
    "ERROR_METHOD_NOT_FOUND": (404, "Method not found!"),
    "ERROR_BATCH_METHOD_NOT_ALLOWED": (405, "Method is not allowed for batch usage"),
    "ERROR_BATCH_LENGTH_EXCEEDED": (400, "Max batch length exceeded"),
    "NO_AUTH_FOUND": (401, "Wrong authorization data"),
    "expired_token": (401, "The access token provided has expired."),
    "invalid_token": (401, "The access token provided is invalid."),
    "insufficient_scope": (
        403,
        "The request requires higher privileges than provided by the access token",
    ),
    "user_access_error": (403, "The user does not have access to the application."),
    "authorization_error": (401, "Unable to authorize user"),
    "APPLICATION_NOT_FOUND": (401, "Application not found"),
    "ACCESS_DENIED": (403, "Access denied!"),
    "WRONG_AUTH_TYPE": (403, "Current authorization type is denied for this method"),
    "INVALID_CREDENTIALS": (403, "Invalid request credentials"),
    "INVALID_REQUEST": (400, "Https required."),
    "ERROR_ARGUMENT": (400, "Invalid argument"),
    "ERROR_CORE": (400, "Internal error"),
    "PORTAL_DELETED": (500, "Portal was deleted"),
    "PAYMENT_REQUIRED": (402, "Payment required"),
    "ERROR_EVENT_NOT_FOUND": (400, "Event not found"),
    "ERROR_WRONG_HANDLER_URL": (400, "Wrong handler URL"),
    "ERROR_UNSUPPORTED_PROTOCOL": (400, "Unsupported event handler protocol"),
    "ERROR_PLACEMENT_NOT_FOUND": (400, "Placement not found"),
    "ERROR_PLACEMENT_MAX_COUNT": (400, "Placement max count exceeded"),
    "ERROR_PLACEMENT_USER_MODE": (400, "User mode is not available for placement"),
    "USER_ID_EMPTY": (400, "Recipient ID can't be empty"),
    "MESSAGE_EMPTY": (400, "Message can't be empty"),
    "NOT_FOUND": (400, "Not found."),
    "OWNER_NOT_FOUND": (400, "Owner not found."),
    "INVALID_ARG_VALUE": (400, "Invalid argument value."),
    "CHAT_NOT_IN_CRM": (400, "The chat is not bound to the CRM entity."),
    "DIALOG_ID_EMPTY": (400, "Dialog ID can't be empty"),
    "ACCESS_ERROR": (400, "You do not have access to the specified dialog"),
}


class RestError(Exception):
    """A REST error response: `{"error", "error_description"[, extra keys]}`."""

    def __init__(
        self,
        error: str,
        description: str | None = None,
        *,
        status: int | None = None,
        **extra: Any,
    ) -> None:
        known_status, known_text = KNOWN_ERRORS.get(error, (400, error or "Error"))
        self.error = error
        self.description = description if description is not None else known_text
        self.status = status if status is not None else known_status
        self.extra = extra
        super().__init__(f"{error or '(empty code)'}: {self.description}")

    def to_body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": self.description,
            **self.extra,
        }


def crm_error(description: str) -> RestError:
    """Build a legacy CRM error: empty `error` code and HTTP 400."""
    return RestError("", description, status=400)


def argument_error(argument: str, description: str | None = None) -> RestError:
    """Build `ERROR_ARGUMENT` naming the argument, like the PHP ArgumentException."""
    text = description or f"Argument '{argument}' is null or empty"
    return RestError("ERROR_ARGUMENT", text, argument=argument)

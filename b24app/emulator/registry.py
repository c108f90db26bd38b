"""Registry of REST methods and the context each call runs in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import RestError
from .events import Actor

if TYPE_CHECKING:
    from .state import Portal


@dataclass(frozen=True)
class CallContext:
    """Caller of a method: the user, the token used, and whether it is a webhook."""

    portal: Portal
    user_id: int
    access_token: str | None
    webhook_code: str | None
    scopes: frozenset[str]

    @property
    def is_webhook(self) -> bool:
        return self.webhook_code is not None

    @property
    def is_admin(self) -> bool:
        return self.portal.is_admin(self.user_id)

    @property
    def client(self) -> str:
        """Key of the caller for the operating-time limiter."""
        return f"webhook:{self.webhook_code}" if self.is_webhook else "app"

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, access_token=self.access_token)

    def require_app(self) -> None:
        """Reject webhook calls to methods that need an app context."""
        if self.is_webhook:
            raise RestError(
                "WRONG_AUTH_TYPE",
                "Current authorization type is denied for this method",
            )

    def require_admin(self, text: str = "Administrator authorization required") -> None:
        if not self.is_admin:
            raise RestError("ACCESS_DENIED", f"Access denied! {text}")


Handler = Callable[[CallContext, dict], Any]


@dataclass(frozen=True)
class MethodSpec:
    """A REST method: name, handler, the scopes that grant it, batch permission."""

    name: str
    handler: Handler
    scopes: tuple[str, ...]
    batch_allowed: bool = True


METHODS: dict[str, MethodSpec] = {}


def rest_method(
    name: str,
    scope: str | tuple[str, ...] = "basic",
    *,
    batch_allowed: bool = True,
) -> Callable[[Handler], Handler]:
    """Register a handler; `basic` methods need no granted scope."""
    scopes = (scope,) if isinstance(scope, str) else tuple(scope)

    def register(handler: Handler) -> Handler:
        METHODS[name.lower()] = MethodSpec(name.lower(), handler, scopes, batch_allowed)
        return handler

    return register


# Scopes known to the platform, for `scope` with `full=true`.
ALL_SCOPES = (
    "basic",
    "bizproc",
    "booking",
    "calendar",
    "catalog",
    "crm",
    "department",
    "disk",
    "entity",
    "humanresources",
    "im",
    "imbot",
    "imopenlines",
    "lists",
    "log",
    "placement",
    "pull",
    "sale",
    "task",
    "telephony",
    "user",
    "user_basic",
    "user_brief",
)

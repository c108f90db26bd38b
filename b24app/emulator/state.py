"""In-memory state of one emulated portal, shared by every request thread.

All stores share one re-entrant lock. Readers outside the emulator get deep
copies, so tests can inspect `portal.leads[5]` while request threads write.
"""

from __future__ import annotations

import copy
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import channels, crm, install, seed, tasks
from .config import EmulatorConfig
from .events import AUTOMATION, Actor, EventDispatcher
from .fields import format_datetime
from .limits import FaultInjector, LeakyBucket, OperatingLimiter
from .oauth import TokenPair, TokenStore, Webhook, token_response

logger = logging.getLogger(__name__)


class Store(Mapping):
    """A lock-guarded dict of records; reads return deep copies.

    Emulator code acquires `portal.lock` and works on `.data` directly.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.data: dict[Any, Any] = {}

    def __getitem__(self, key: Any) -> Any:
        with self._lock:
            return copy.deepcopy(self.data[key])

    def __iter__(self) -> Iterator:
        with self._lock:
            return iter(list(self.data))

    def __len__(self) -> int:
        with self._lock:
            return len(self.data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self.data

    def values(self) -> list[Any]:  # type: ignore[override]
        """Return deep copies of all records, taken under the lock."""
        with self._lock:
            return [copy.deepcopy(value) for value in self.data.values()]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        with self._lock:
            return [(key, copy.deepcopy(value)) for key, value in self.data.items()]

    def snapshot(self) -> list[Any]:
        """Return deep copies of all records in key order."""
        with self._lock:
            keys = sorted(self.data, key=lambda key: (type(key).__name__, key))
            return [copy.deepcopy(self.data[key]) for key in keys]

    def __repr__(self) -> str:
        return f"<Store of {len(self)} records>"


@dataclass
class AppState:
    """State of the app on the portal: present, installed, its URLs and token."""

    present: bool = True
    installed: bool = False
    application_token: str = field(default_factory=lambda: secrets.token_hex(16))
    handler_url: str | None = None
    install_url: str | None = None


class Portal:
    """A cloud portal with one installed app; see the package docstring."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self.tz = ZoneInfo(config.timezone)
        self.clock_offset = 0.0
        self.stopping = threading.Event()

        self.domain: str | None = None
        self.base_url: str | None = None

        self.leads = Store(self.lock)
        self.deals = Store(self.lock)
        self.activities = Store(self.lock)
        self.timeline_comments = Store(self.lock)
        self.tasks = Store(self.lock)
        self.notifications = Store(self.lock)
        self.users = Store(self.lock)
        self.departments = Store(self.lock)
        self.event_bindings = Store(self.lock)
        self.placements = Store(self.lock)
        self.userfields = Store(self.lock)
        self.statuses = Store(self.lock)
        self.app_options = Store(self.lock)
        self.user_options = Store(self.lock)
        self.stage_history = Store(self.lock)
        self.categories = Store(self.lock)
        self.openline_chats = Store(self.lock)
        self.openline_messages = Store(self.lock)
        # Chat bots, their messages outside open lines, and the Booking module.
        self.bots = Store(self.lock)
        self.bot_messages = Store(self.lock)
        self.bookings = Store(self.lock)
        self.booking_resources = Store(self.lock)
        # CRM currencies by ISO 4217 code; see `methods.currency`.
        self.currencies = Store(self.lock)
        self._counters: dict[str, int] = defaultdict(int)
        self._delivered: list[tuple[str, str, int | str]] = []

        self.app = AppState(
            handler_url=config.app_handler_url, install_url=config.app_install_url
        )
        self.tokens = TokenStore(self)
        self.bucket = LeakyBucket(config.effective_rate, config.effective_burst)
        self.operating = OperatingLimiter(clock=self.time)
        self.faults = FaultInjector()
        self.events = EventDispatcher(self)

        seed.populate(self, full=config.seed)
        from .methods import currency

        currency.seed_currencies(self)

    # ------------------------------------------------------------ basics

    def time(self) -> float:
        """Return the portal's unix time (wall clock plus `clock_offset`)."""
        return time.time() + self.clock_offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), self.tz).replace(microsecond=0)

    def now_iso(self) -> str:
        return format_datetime(self.now())

    def advance_clock(self, seconds: float) -> None:
        """Move the portal clock forward; token expiry follows it."""
        with self.lock:
            self.clock_offset += seconds
            self.touch()

    def next_id(self, kind: str) -> int:
        with self.lock:
            self._counters[kind] += 1
            return self._counters[kind]

    def touch(self) -> None:
        """Wake threads in `wait_for`; call after every change."""
        with self.lock:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy and return its last value.

        The predicate runs without the portal lock, so it may call the REST
        API of this portal. Changes wake the wait early; a 50 ms poll covers
        changes made between a check and the wait.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            remaining = deadline - time.monotonic()
            if value or remaining <= 0:
                return value
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

    def set_address(self, domain: str, base_url: str) -> None:
        """Set the host the portal is reached at (`127.0.0.1:PORT`)."""
        with self.lock:
            self.domain = domain
            self.base_url = base_url.rstrip("/")

    @property
    def client_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def server_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token/"

    @property
    def installed(self) -> bool:
        return self.app.installed

    @property
    def app_present(self) -> bool:
        return self.app.present

    @property
    def owner_id(self) -> int:
        with self.lock:
            for user in self.users.data.values():
                if user["IS_ADMIN"]:
                    return int(user["ID"])
        raise LookupError("The portal has no administrator.")

    def is_admin(self, user_id: int) -> bool:
        with self.lock:
            user = self.users.data.get(int(user_id))
            return bool(user and user["IS_ADMIN"])

    @property
    def delivered_events(self) -> list[tuple[str, str, int | str]]:
        """Return (event, handler URL, HTTP status or error) per delivery attempt."""
        with self.lock:
            return list(self._delivered)

    def record_delivery(self, event: str, url: str, outcome: int | str) -> None:
        with self.lock:
            self._delivered.append((event, url, outcome))
            self.touch()

    def actor(self, actor_id: int | str | None) -> Actor:
        """Turn a user id (or "automation"/None) into an event actor."""
        if actor_id is None or actor_id == "automation":
            return AUTOMATION
        user_id = int(actor_id)
        if user_id not in self.users:
            raise ValueError(f"User {user_id} does not exist on the portal.")
        return Actor(user_id=user_id)

    # ------------------------------------------------------------ tokens

    def issue_tokens(self, user_id: int | None = None) -> dict:
        """Issue tokens for a user (default: the owner) like the token endpoint."""
        pair: TokenPair = self.tokens.issue(user_id or self.owner_id)
        return token_response(self, pair)

    def user_token(self, user_id: int) -> str:
        """Return a valid app access token of that user."""
        return self.tokens.token_for_user(user_id).value

    def expire_tokens(self) -> int:
        """Expire every access token now; return how many were affected."""
        count = self.tokens.expire_all()
        logger.info("expired %s access tokens", count)
        return count

    def add_webhook(self, user_id: int, scopes: tuple[str, ...] | None = None) -> str:
        """Create an incoming webhook; return its base URL `.../rest/<id>/<code>/`."""
        hook: Webhook = self.tokens.add_webhook(user_id, scopes or self.config.scopes)
        return f"{self.base_url}/rest/{hook.user_id}/{hook.code}/"

    # ------------------------------------------------------------ limits

    def set_fault(self, method: str, error_code: str, times: int = 1, **options: Any):
        """Make the next `times` calls of a REST method fail with `error_code`.

        `error_code` is a documented error ("QUERY_LIMIT_EXCEEDED",
        "expired_token", ...), "timeout" (hang past the client's timeout) or
        "latency_ms" (delay by `latency_ms=` milliseconds, then respond).
        Use the method "oauth.token" for the token endpoint and "*" for all.
        """
        return self.faults.set(method, error_code, times, **options)

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_operating_limit(self, limit_seconds: float | None, enabled: bool = True):
        """Switch the per-method execution-time limiter on (429) or off."""
        self.operating.configure(enabled=enabled, limit_seconds=limit_seconds)

    def set_rate_limit(self, rate: float | None = None, burst: int | None = None):
        self.bucket.configure(rate=rate, burst=burst)

    # ------------------------------------------------------------ people

    def create_lead(
        self,
        fields: Mapping[str, Any] | None = None,
        *,
        kind: str = "form",
        message: str | None = None,
        actor_id: int | str | None = None,
    ) -> int:
        """Create a lead as a channel does: "form", "title", "openline" or "email"."""
        return channels.create_incoming_lead(
            self,
            dict(fields or {}),
            kind=kind,
            message=message,
            actor=self.actor(actor_id),
        )

    def add_activity(
        self,
        lead_id: int,
        *,
        type_id: int,
        direction: int,
        author_id: int,
        provider_id: str | None = None,
        subject: str = "",
        description: str = "",
        completed: bool | None = None,
    ) -> int:
        """Record a manager's activity on a lead (call, e-mail, open-line reply)."""
        return channels.add_person_activity(
            self,
            int(lead_id),
            type_id=type_id,
            direction=direction,
            actor=self.actor(author_id),
            provider_id=provider_id,
            subject=subject,
            description=description,
            completed=completed,
        )

    def change_lead_status(
        self, lead_id: int, status_id: str, *, actor_id: int | str = "automation"
    ) -> None:
        """Move a lead to a stage as a user or as an automation rule."""
        crm.update_lead(
            self, int(lead_id), {"STATUS_ID": status_id}, self.actor(actor_id)
        )

    def update_lead(
        self, lead_id: int, fields: Mapping[str, Any], *, actor_id: int | str
    ) -> None:
        crm.update_lead(self, int(lead_id), dict(fields), self.actor(actor_id))

    def complete_task(self, task_id: int, *, actor_id: int) -> None:
        """Complete a task as the given user."""
        tasks.complete_task(self, int(task_id), self.actor(actor_id))

    # ------------------------------------------------------------ bookings and chats

    def move_deal(
        self, deal_id: int, stage_id: str, *, actor_id: int | str = "automation"
    ) -> None:
        """Move a deal to a stage as a user or as an automation rule."""
        crm.update_deal(
            self, int(deal_id), {"STAGE_ID": stage_id}, self.actor(actor_id)
        )

    def change_deal(
        self, deal_id: int, fields: Mapping[str, Any], *, actor_id: int | str
    ) -> None:
        crm.update_deal(self, int(deal_id), dict(fields), self.actor(actor_id))

    def add_booking_resource(self, name: str, **fields: Any) -> int:
        from .methods import booking

        return booking.add_resource(self, {"name": name, **fields})

    def create_booking(
        self,
        resource_ids: list[int],
        start: datetime,
        end: datetime,
        *,
        name: str | None = None,
        deal_id: int | None = None,
        contact_id: int | None = None,
        actor_id: int | str | None = None,
    ) -> int:
        """Book resources for [start, end); link a deal and a contact if given."""
        from .methods import booking

        zone = self.config.timezone
        fields = {
            "resourceIds": resource_ids,
            "name": name,
            "datePeriod": {
                "from": {"timestamp": int(start.timestamp()), "timezone": zone},
                "to": {"timestamp": int(end.timestamp()), "timezone": zone},
            },
        }
        return booking.create_booking(
            self, fields, self.actor(actor_id), deal_id=deal_id, contact_id=contact_id
        )

    def move_booking(
        self, booking_id: int, start: datetime, end: datetime, *, actor_id=None
    ) -> None:
        from .methods import booking

        zone = self.config.timezone
        period = {
            "from": {"timestamp": int(start.timestamp()), "timezone": zone},
            "to": {"timestamp": int(end.timestamp()), "timezone": zone},
        }
        booking.update_booking(
            self, booking_id, {"datePeriod": period}, self.actor(actor_id)
        )

    def delete_booking(self, booking_id: int, *, actor_id=None) -> None:
        from .methods import booking

        booking.delete_booking(self, booking_id, self.actor(actor_id))

    def open_crm_chat(
        self, entity_type: str, entity_id: int, connector: str = "telegrambot"
    ) -> int:
        """Open an open-line chat bound to a deal or contact; return CHAT_ID."""
        from .methods import openlines

        return openlines.open_crm_chat(
            self, entity_type, entity_id, connector=connector
        )

    def client_reply(
        self, chat_id: int, text: str, *, with_entity_data: bool = True
    ) -> int:
        """Post a client message in an open-line chat and notify member bots.

        See `openlines.client_reply` for ``with_entity_data``.
        """
        from .methods import openlines

        return openlines.client_reply(
            self, chat_id, text, with_entity_data=with_entity_data
        )

    def messages_to_client(self, chat_id: int) -> list[dict]:
        from .methods import openlines

        return openlines.messages_to_client(self, chat_id)

    def set_currencies(
        self, base: str | None = None, rates: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Change the base currency and the rates; see `currency.set_currencies`."""
        from .methods import currency

        return currency.set_currencies(self, base, rates)

    # ------------------------------------------------------------ app life cycle

    def install_app(
        self, handler_url: str | None = None, install_url: str | None = None
    ):
        """Simulate installing the app from the market; see `install.install_app`."""
        return install.install_app(self, handler_url, install_url)

    def uninstall_app(self, clean: bool = False) -> None:
        install.uninstall_app(self, clean)

    def open_placement(
        self,
        code: str = "DEFAULT",
        options: Mapping[str, Any] | None = None,
        user_id: int | None = None,
        handler: str | None = None,
    ):
        """Open a placement as a user's browser does; return the app's response."""
        return install.open_placement(self, code, options, user_id, handler)

    # ------------------------------------------------------------ start/stop

    def start(self) -> None:
        self.stopping.clear()
        self.events.start()

    def stop(self) -> None:
        self.stopping.set()
        self.events.stop()

    def __repr__(self) -> str:
        return f"<Portal {self.domain or '(no address)'} installed={self.installed}>"

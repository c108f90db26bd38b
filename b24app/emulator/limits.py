"""Request limits of a cloud portal and injected faults.

* `LeakyBucket`: each REST request adds 1, the level drains at `rate` per
  second, a request that would lift it above `burst` gets 503
  QUERY_LIMIT_EXCEEDED. A `batch` is one request.
* `OperatingLimiter`: execution time per (client, method) is summed in ten
  one-minute baskets. Past the limit that method gets 429 OPERATION_TIME_LIMIT
  until the oldest basket leaves the window. It is off unless switched on.
* `FaultInjector`: makes the next calls of a method fail, hang or slow down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import RestError

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

OPERATING_WINDOW_SECONDS = 600
OPERATING_BASKET_SECONDS = 60

# "timeout" faults hang longer than the 60 s a cloud portal allows a request.
DEFAULT_HANG_SECONDS = 75.0


class LeakyBucket:
    """Per-portal request counter that drains at a constant rate."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._level = 0.0
        self._updated = clock()
        self._lock = threading.Lock()

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self) -> bool:
        """Count one request; False when the bucket is full."""
        with self._lock:
            self._drain()
            if self._level + 1 > self.burst:
                return False
            self._level += 1
            return True

    @property
    def level(self) -> float:
        with self._lock:
            self._drain()
            return self._level

    def configure(self, rate: float | None = None, burst: int | None = None) -> None:
        with self._lock:
            self._drain()
            if rate is not None:
                self.rate = float(rate)
            if burst is not None:
                self.burst = int(burst)

    def reset(self) -> None:
        with self._lock:
            self._level = 0.0
            self._updated = self._clock()


class OperatingLimiter:
    """Sliding ten-minute sum of method execution time per (client, method)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.enabled = False
        self.limit_seconds = 480.0
        self._clock = clock
        self._baskets: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        self._lock = threading.Lock()

    def configure(self, *, enabled: bool, limit_seconds: float | None = None) -> None:
        with self._lock:
            self.enabled = enabled
            if limit_seconds is not None:
                self.limit_seconds = float(limit_seconds)
            if not enabled:
                self._baskets.clear()

    def _live_baskets(self, key: tuple[str, str]) -> dict[int, float]:
        oldest_allowed = int(self._clock() // OPERATING_BASKET_SECONDS) - 9
        baskets = self._baskets[key]
        for minute in [m for m in baskets if m < oldest_allowed]:
            del baskets[minute]
        return baskets

    def check(self, client: str, method: str) -> None:
        """Raise 429 OPERATION_TIME_LIMIT when the method is over its budget."""
        if not self.enabled:
            return
        with self._lock:
            baskets = self._live_baskets((client, method))
            if sum(baskets.values()) > self.limit_seconds:
                raise RestError("OPERATION_TIME_LIMIT")

    def record(self, client: str, method: str, seconds: float) -> None:
        with self._lock:
            minute = int(self._clock() // OPERATING_BASKET_SECONDS)
            baskets = self._live_baskets((client, method))
            baskets[minute] = baskets.get(minute, 0.0) + seconds

    def usage(self, client: str, method: str) -> tuple[float, int | None]:
        """Return (seconds used in the window, unix time the oldest basket ends)."""
        with self._lock:
            baskets = self._live_baskets((client, method))
            if not baskets:
                return 0.0, None
            reset_at = (min(baskets) + 10) * OPERATING_BASKET_SECONDS
            return sum(baskets.values()), reset_at


@dataclass
class Fault:
    """One injected failure for a method: an error code, "timeout" or "latency_ms"."""

    method: str
    error: str
    remaining: int
    latency_ms: int = 1000
    description: str | None = None
    status: int | None = None
    hang_seconds: float = DEFAULT_HANG_SECONDS

    def apply(self, portal: Portal) -> None:
        """Sleep, hang or raise, as this fault requests."""
        if self.error == "latency_ms":
            time.sleep(self.latency_ms / 1000)
            return
        if self.error == "timeout":
            # Waits on the stop event so stopping the server ends the hang.
            portal.stopping.wait(self.hang_seconds)
            raise RestError("INTERNAL_SERVER_ERROR", "Request timed out", status=504)
        raise RestError(self.error, self.description, status=self.status)


class FaultInjector:
    """Faults keyed by lower-case method name; `*` matches every method."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()

    def set(
        self,
        method: str,
        error: str,
        times: int = 1,
        *,
        latency_ms: int = 1000,
        description: str | None = None,
        status: int | None = None,
        hang_seconds: float = DEFAULT_HANG_SECONDS,
    ) -> Fault:
        """Make the next `times` calls fail; `times <= 0` keeps it until cleared."""
        fault = Fault(
            method=method.lower(),
            error=error,
            remaining=times,
            latency_ms=latency_ms,
            description=description,
            status=status,
            hang_seconds=hang_seconds,
        )
        with self._lock:
            self._faults[fault.method] = fault
        logger.info("fault set: %s -> %s (%s times)", fault.method, error, times)
        return fault

    def clear(self, method: str | None = None) -> None:
        with self._lock:
            if method is None:
                self._faults.clear()
            else:
                self._faults.pop(method.lower(), None)

    def take(self, method: str) -> Fault | None:
        """Return the fault due for this call of `method`, counting it used."""
        with self._lock:
            fault = self._faults.get(method.lower()) or self._faults.get("*")
            if fault is None:
                return None
            if fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    del self._faults[fault.method]
            return fault

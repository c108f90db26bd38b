"""A per-portal request limiter shared by every process that calls the portal.

Bitrix24 counts requests per portal in a leaky bucket: 2 requests/s with a
burst of 50 on ordinary plans, 5/s and 250 on Enterprise, and a batch counts
as one request. The limiter implements the same bucket as a generic cell rate algorithm
(GCRA) whose state is one row per portal: each caller advances the row's
theoretical arrival time (``tat``) in a single UPDATE and sleeps until its
reserved slot. One statement per call keeps web workers, the worker process
and several hosts on one database in step without a separate lock service.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import text

from b24app.db import Database

logger = logging.getLogger(__name__)


class PortalRateLimiter:
    """Reserve call slots for a portal at ``rate`` per second, ``burst`` ahead."""

    def __init__(self, db: Database, *, sleep=time.sleep, clock=time.time) -> None:
        self._db = db
        self._sleep = sleep
        self._clock = clock
        greatest = "MAX" if db.dialect == "sqlite" else "GREATEST"
        self._reserve_sql = text(
            f"UPDATE rate_limits SET tat = {greatest}(tat, :now) + :interval "
            "WHERE portal_id = :portal_id RETURNING tat"
        )
        self._create_sql = text(
            "INSERT INTO rate_limits (portal_id, tat) VALUES (:portal_id, 0) "
            "ON CONFLICT (portal_id) DO NOTHING"
        )

    def reserve(self, portal_id: int, *, rate: float, burst: int) -> float:
        """Reserve one slot and return the seconds to wait before using it."""
        interval = 1.0 / rate
        # A slot is free while the queue ahead of it is shorter than the
        # bucket. One interval is kept in hand because the app cannot see the
        # portal's own counter (clock skew, other apps on the same portal).
        tolerance = max(burst - 2, 0) * interval
        now = self._clock()

        with self._db.engine.begin() as connection:
            params = {"now": now, "interval": interval, "portal_id": portal_id}
            row = connection.execute(self._reserve_sql, params).first()
            if row is None:
                connection.execute(self._create_sql, {"portal_id": portal_id})
                row = connection.execute(self._reserve_sql, params).first()
        tat = float(row[0])

        return max(0.0, (tat - interval) - tolerance - now)

    def acquire(self, portal_id: int, *, rate: float, burst: int) -> float:
        """Block until a slot is free; return how long the call waited."""
        wait = self.reserve(portal_id, rate=rate, burst=burst)
        if wait > 0:
            logger.debug(
                "rate limit wait", extra={"portal_id": portal_id, "wait": wait}
            )
            self._sleep(wait)
        return wait

    def penalise(
        self, portal_id: int, seconds: float, *, rate: float, burst: int
    ) -> None:
        """Push the portal's schedule back after it returned QUERY_LIMIT_EXCEEDED.

        After this no slot is handed out for ``seconds``, and then the bucket
        refills at the normal rate.
        """
        interval = 1.0 / rate
        tolerance = max(burst - 2, 0) * interval
        greatest = "MAX" if self._db.dialect == "sqlite" else "GREATEST"
        with self._db.engine.begin() as connection:
            connection.execute(
                text(
                    f"UPDATE rate_limits SET tat = {greatest}(tat, :until) "
                    "WHERE portal_id = :portal_id"
                ),
                {
                    "until": self._clock() + seconds + tolerance + interval,
                    "portal_id": portal_id,
                },
            )

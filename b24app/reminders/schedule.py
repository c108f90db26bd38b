"""When each reminder of an appointment is due.

Offsets count back from the visit. A time inside the client's night (quiet
hours, portal time) moves earlier, to the end of the previous day's
allowed window, so the client still has the evening to reply. Times that
are already past when the appointment is learned collapse into one message
sent now, and only when the visit is far enough ahead to be worth it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

# The latest minute before quiet hours a moved message is sent at.
QUIET_MARGIN = timedelta(minutes=5)
# No reminder later than this before the visit: the client is on the way.
MIN_LEAD = timedelta(minutes=30)


@dataclass(frozen=True)
class Planned:
    kind: str
    offset_minutes: int
    due_at: datetime


def in_quiet_hours(local: datetime, start: time, end: time) -> bool:
    wall = local.time()
    if start <= end:
        return start <= wall < end
    return wall >= start or wall < end


def move_before_quiet(due: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """Move an instant inside quiet hours to just before they began."""
    local = due.astimezone(tz)
    if not in_quiet_hours(local, start, end):
        return due
    day = local.date()
    if start > end and local.time() < end:
        day -= timedelta(days=1)
    quiet_start = datetime.combine(day, start, tzinfo=tz)
    return (quiet_start - QUIET_MARGIN).astimezone(due.tzinfo)


def plan(
    starts_at: datetime,
    steps: list[dict[str, Any]],
    *,
    now: datetime,
    tz: str,
    quiet: tuple[time, time],
    thanks_after_minutes: int | None = None,
) -> list[Planned]:
    """Due times of the messages for a visit at ``starts_at``."""
    zone = ZoneInfo(tz)
    planned: list[Planned] = []
    for step in steps:
        minutes = int(step["minutes_before"])
        due = move_before_quiet(starts_at - timedelta(minutes=minutes), zone, *quiet)
        planned.append(Planned(step["kind"], minutes, due))

    # Of the messages already due, keep only the one nearest the visit.
    planned.sort(key=lambda item: item.due_at)
    past = [item for item in planned if item.due_at <= now]
    future = [item for item in planned if item.due_at > now]
    result = list(future)
    if past and starts_at - now >= MIN_LEAD:
        nearest = past[-1]
        due_now = now
        if in_quiet_hours(now.astimezone(zone), *quiet):
            due_now = _quiet_end(now, zone, quiet[1])
        if starts_at - due_now >= MIN_LEAD:
            result.insert(0, Planned(nearest.kind, nearest.offset_minutes, due_now))
    result = [item for item in result if starts_at - item.due_at >= MIN_LEAD]

    if thanks_after_minutes is not None:
        due = starts_at + timedelta(minutes=int(thanks_after_minutes))
        local = due.astimezone(zone)
        if in_quiet_hours(local, *quiet):
            due = _quiet_end(due, zone, quiet[1])
        if due > now:
            result.append(Planned("thanks", -int(thanks_after_minutes), due))
    return result


def _quiet_end(at: datetime, zone: ZoneInfo, end: time) -> datetime:
    local = at.astimezone(zone)
    candidate = datetime.combine(local.date(), end, tzinfo=zone)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate.astimezone(at.tzinfo)

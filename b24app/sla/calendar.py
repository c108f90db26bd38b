"""Business-time calendar for first-response clocks.

A calendar stores weekly opening hours in one IANA time zone, the public holidays
of a country (from the ``holidays`` package) and per-date overrides. It turns
them into UTC instants, so one business second is always one elapsed second,
also on the days when daylight saving time starts or ends.

Opening hours are half-open wall-clock intervals ``[start, end)`` on a local
date. ``time(0, 0)`` as an end means 24:00, the midnight that ends the day, so
``(time(0, 0), time(0, 0))`` is open all day. An instant is open when its local
wall time on its local date lies inside one of that date's intervals. As a
result an interval that overlaps a skipped hour (spring forward) is shorter, and
an interval that covers a repeated hour (fall back) is open during both passes
of that hour.

A date gets its hours from the first rule that applies:

1. ``custom_dates[date]``: an empty list closes the date, otherwise the list
   replaces the usual hours (this also opens a public holiday).
2. A public holiday of ``country``, including the days off that the yearly
   transfer decrees move, is closed.
3. A weekend day that the country declares a working day (a transferred working
   Saturday in Russia) gets the hours of the first weekday, counting from
   Monday, that is not a weekend day of that country and has hours in
   ``weekly``. That is Monday's hours unless Monday is closed. If no such
   weekday has hours, the date keeps its own ``weekly`` hours.
4. ``weekly[date.weekday()]``, where 0 is Monday.

Every public method takes timezone-aware datetimes and returns them in UTC.
Subtracting two datetimes that share a zoned ``tzinfo`` uses wall time and is
off by the DST shift, while UTC results subtract exactly. Convert with
``astimezone(calendar.tz)`` for display.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

logger = logging.getLogger(__name__)

Interval = tuple[time, time]
"""Opening hours ``(start, end)``. An end of ``time(0, 0)`` means 24:00."""

Span = tuple[datetime, datetime]
"""A half-open interval of real time between two aware datetimes."""

DEFAULT_TZ = "Europe/Moscow"
DEFAULT_COUNTRY = "RU"
DEFAULT_HOURS: tuple[Interval, ...] = ((time(9, 0), time(21, 0)),)

MAX_CLOSED_DAYS = 400
"""Consecutive closed days after which a search for open time stops with an error."""

MIDNIGHT = time(0, 0)

_SETTINGS_FIELDS = ("tz", "country", "weekly", "custom_dates")
_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)
_SECOND = timedelta(seconds=1)

# UTC offsets in tzdata 2025b stay within +-14 hours, so only UTC instants
# within this margin of a local date can show a wall time of that date.
_OFFSET_BOUND = timedelta(hours=16)

_TIME_PATTERN = re.compile(r"(\d{2}):(\d{2})(?::(\d{2}))?")
_DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
_WEEKDAY_PATTERN = re.compile(r"[0-6]")


class CalendarError(ValueError):
    """Invalid calendar settings, or a schedule without open time to count."""


class NoOpenTimeError(CalendarError):
    """No open time within ``MAX_CLOSED_DAYS`` days of the requested instant."""


class BusinessCalendar:
    """Opening hours, holidays and date overrides in one time zone.

    ``weekly`` maps a weekday (0 is Monday) to its opening hours. Weekdays that
    are missing from it are closed, and ``None`` means every day 09:00-21:00.
    ``country`` is an ISO 3166-1 alpha-2 code known to the ``holidays`` package,
    or ``None`` to ignore public holidays. ``custom_dates`` maps a local date to
    its hours, where an empty list means closed.

    Per-date results are cached, so reuse one instance for many clocks.
    """

    def __init__(
        self,
        tz: str = DEFAULT_TZ,
        weekly: Mapping[int, Sequence[Interval]] | None = None,
        country: str | None = DEFAULT_COUNTRY,
        custom_dates: Mapping[date, Sequence[Interval]] | None = None,
    ) -> None:
        self.tz_name = tz
        self.tz = _load_zone(tz)
        self.country = _validate_country(country)
        self.weekly: Mapping[int, tuple[Interval, ...]] = MappingProxyType(
            _validate_weekly(weekly)
        )
        self.custom_dates: Mapping[date, tuple[Interval, ...]] = MappingProxyType(
            _validate_custom_dates(custom_dates)
        )
        self._day_spans = functools.lru_cache(maxsize=4096)(self._compute_day_spans)

    def __repr__(self) -> str:
        return f"BusinessCalendar(tz={self.tz_name!r}, country={self.country!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BusinessCalendar):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    # Schedule of one date

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """Return the opening hours of a local date after holidays and overrides."""
        if isinstance(day, datetime) or not isinstance(day, date):
            raise TypeError(f"day: expected a datetime.date, got {day!r}")

        if day in self.custom_dates:
            return self.custom_dates[day]

        if self.country is not None:
            closed, working, weekend = _country_days(self.country, day.year)
            if day in closed:
                return ()
            if day in working:
                return (
                    self._working_weekend_hours(weekend) or self.weekly[day.weekday()]
                )

        return self.weekly[day.weekday()]

    def _working_weekend_hours(self, weekend: frozenset[int]) -> tuple[Interval, ...]:
        for weekday in range(7):
            if weekday not in weekend and self.weekly[weekday]:
                return self.weekly[weekday]
        return ()

    def _compute_day_spans(self, day: date) -> tuple[Span, ...]:
        """Convert the wall-clock hours of one local date to sorted UTC spans."""
        hours = self.hours_on(day)
        if not hours:
            return ()

        midnight = datetime.combine(day, MIDNIGHT)
        pieces: list[tuple[datetime, datetime]] = []
        for start, end in hours:
            wall_start = midnight + _start_offset(start)
            wall_end = midnight + _end_offset(end)

            # Within a segment of constant UTC offset, wall time = UTC + offset,
            # so the open instants are [wall_start - offset, wall_end - offset)
            # clipped to the segment. Skipped wall times match no instant, and
            # repeated ones match an instant in each of the two segments.
            for segment_start, segment_end, offset in _utc_segments(self.tz, day):
                low = max(segment_start, wall_start - offset)
                high = min(segment_end, wall_end - offset)
                if low < high:
                    pieces.append((low, high))

        pieces.sort()
        merged: list[list[datetime]] = []
        for low, high in pieces:
            if merged and low <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        return tuple(
            (low.replace(tzinfo=UTC), high.replace(tzinfo=UTC)) for low, high in merged
        )

    def _spans_from(
        self, start: datetime, stop: datetime | None = None
    ) -> Iterator[Span]:
        """Yield open UTC spans clipped to ``[start, stop)`` in time order.

        Without ``stop`` the iterator is endless, unless more than
        ``MAX_CLOSED_DAYS`` consecutive days are closed, which raises
        ``NoOpenTimeError``.

        NOTE: this walks local dates in calendar order, which assumes that the
        local date never steps back in time. In tzdata 2025b (checked for
        1990-2040) only fall-back changes before 2011 break that rule, in
        America/St_Johns, America/Goose_Bay, America/Moncton and
        Antarctica/Casey. Spans on those nights can be skipped.
        """
        day = start.astimezone(self.tz).date()
        last_day = None if stop is None else stop.astimezone(self.tz).date()
        closed_days = 0

        while last_day is None or day <= last_day:
            found = False
            for span_start, span_end in self._day_spans(day):
                if span_end <= start:
                    continue
                if stop is not None and span_start >= stop:
                    return
                found = True
                clipped_end = span_end if stop is None else min(span_end, stop)
                yield max(span_start, start), clipped_end

            closed_days = 0 if found else closed_days + 1
            if stop is None and closed_days > MAX_CLOSED_DAYS:
                local_start = start.astimezone(self.tz).isoformat()
                raise NoOpenTimeError(
                    f"no open time within {MAX_CLOSED_DAYS} days after {local_start} "
                    f"({self.tz_name}); check weekly hours, custom_dates and holidays"
                )
            day += _DAY

    # Public time maths

    def is_open(self, at: datetime) -> bool:
        """Return True when ``at`` lies inside opening hours (end excluded)."""
        at_utc = _to_utc(at, "at")
        day = at_utc.astimezone(self.tz).date()
        return any(start <= at_utc < end for start, end in self._day_spans(day))

    def next_opening(self, at: datetime) -> datetime:
        """Return ``at`` when it is open, otherwise the start of the next open span.

        Raises ``NoOpenTimeError`` after ``MAX_CLOSED_DAYS`` closed days.
        """
        at_utc = _to_utc(at, "at")
        for span_start, _ in self._spans_from(at_utc):
            return span_start
        raise AssertionError("unreachable: an endless span iterator stopped")

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """Return the instant when ``seconds`` of open time have passed after ``start``.

        Counting begins at ``next_opening(start)``. A due time that falls on the
        end of an open span is returned as that end, not as the next opening.
        Precision is one microsecond. Raises ``NoOpenTimeError`` after
        ``MAX_CLOSED_DAYS`` closed days.
        """
        start_utc = _to_utc(start, "start")
        remaining = _seconds_to_timedelta(seconds)

        for span_start, span_end in self._spans_from(start_utc):
            length = span_end - span_start
            if remaining <= length:
                return span_start + remaining
            remaining -= length
        raise AssertionError("unreachable: an endless span iterator stopped")

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Return the open seconds in ``[start, end)``, or 0.0 when end <= start."""
        start_utc = _to_utc(start, "start")
        end_utc = _to_utc(end, "end")
        if end_utc <= start_utc:
            return 0.0

        total = timedelta(0)
        for span_start, span_end in self._spans_from(start_utc, end_utc):
            total += span_end - span_start
        return total.total_seconds()

    def open_intervals(self, start: datetime, end: datetime) -> Iterator[Span]:
        """Iterate over the open spans inside ``[start, end)``.

        Spans that touch (hours ending at 24:00 and starting at 00:00 the next
        day) are merged into one.
        """
        start_utc = _to_utc(start, "start")
        end_utc = _to_utc(end, "end")
        return self._merged_spans(start_utc, end_utc)

    def _merged_spans(self, start: datetime, end: datetime) -> Iterator[Span]:
        if end <= start:
            return

        current: list[datetime] | None = None
        for span_start, span_end in self._spans_from(start, end):
            if current is not None and span_start <= current[1]:
                current[1] = span_end
                continue
            if current is not None:
                yield current[0], current[1]
            current = [span_start, span_end]

        if current is not None:
            yield current[0], current[1]

    # JSON settings

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready settings that ``from_dict`` reads back.

        Times are "HH:MM" (or "HH:MM:SS" when seconds are set), and an end at
        midnight is written as "24:00".
        """
        return {
            "tz": self.tz_name,
            "country": self.country,
            "weekly": {
                str(weekday): _format_hours(self.weekly[weekday])
                for weekday in range(7)
            },
            "custom_dates": {
                day.isoformat(): _format_hours(hours)
                for day, hours in sorted(self.custom_dates.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BusinessCalendar:
        """Build a calendar from ``to_dict`` output.

        Missing fields get the constructor defaults. Raises ``CalendarError``
        that names the invalid field and value.
        """
        if not isinstance(data, Mapping):
            raise CalendarError(
                f"calendar settings: expected a JSON object, got {type(data).__name__}"
            )
        unknown = sorted(str(key) for key in data if key not in _SETTINGS_FIELDS)
        if unknown:
            raise CalendarError(
                f"calendar settings: unknown field {unknown[0]!r}; "
                f"expected {', '.join(_SETTINGS_FIELDS)}"
            )

        tz = data.get("tz", DEFAULT_TZ)
        if not isinstance(tz, str):
            raise CalendarError(
                f"tz: expected a time zone name such as 'Europe/Moscow', got {tz!r}"
            )

        weekly_data = data.get("weekly")
        weekly = None if weekly_data is None else _parse_weekly(weekly_data)

        custom_data = data.get("custom_dates")
        custom_dates = None if custom_data is None else _parse_custom_dates(custom_data)

        return cls(
            tz=tz,
            weekly=weekly,
            country=data.get("country", DEFAULT_COUNTRY),
            custom_dates=custom_dates,
        )


# Time zones and holidays


def _load_zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise CalendarError(
            f"tz: expected a time zone name such as 'Europe/Moscow', got {name!r}"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise CalendarError(
            f"tz: unknown time zone {name!r}; use an IANA name such as 'Europe/Moscow'"
        ) from error


def _validate_country(country: object) -> str | None:
    if country is None:
        return None
    if not isinstance(country, str) or country not in _supported_countries():
        raise CalendarError(
            f"country: unsupported country code {country!r}; use an ISO 3166-1 "
            f"alpha-2 code known to the holidays package, such as 'RU', or null"
        )
    return country


@functools.cache
def _supported_countries() -> frozenset[str]:
    return frozenset(holidays.list_supported_countries())


@functools.lru_cache(maxsize=256)
def _country_days(
    country: str, year: int
) -> tuple[frozenset[date], frozenset[date], frozenset[int]]:
    """Return closed dates, working weekend dates and weekend weekdays of a year.

    The neighbouring years are loaded as well, because the ``holidays`` package
    records a working weekend day while it builds the year whose transfer list
    names that day, and a transfer may cross New Year.
    """
    country_calendar = holidays.country_holidays(
        country, years=range(year - 1, year + 2)
    )
    closed = frozenset(day for day in country_calendar if day.year == year)
    working = frozenset(
        day for day in country_calendar.weekend_workdays if day.year == year
    )
    logger.debug(
        "loaded %s holidays for %s: %d closed, %d working weekend days",
        country,
        year,
        len(closed),
        len(working),
    )
    return closed, working, frozenset(country_calendar.weekend)


@functools.lru_cache(maxsize=8192)
def _utc_segments(
    tz: ZoneInfo, day: date
) -> tuple[tuple[datetime, datetime, timedelta], ...]:
    """Split the UTC window around a local date into runs of constant UTC offset.

    Datetimes are naive UTC. Offsets are sampled every hour and each change is
    located to the second by bisection. That assumes at most one change per
    hour, at a whole second: TZif files store whole seconds, and tzdata 2025b
    has no two changes of one zone closer than two hours.
    """
    window_start = datetime.combine(day, MIDNIGHT) - _OFFSET_BOUND
    window_end = window_start + _DAY + 2 * _OFFSET_BOUND
    probe_count = int((window_end - window_start) / _HOUR)
    probes = [window_start + index * _HOUR for index in range(probe_count + 1)]
    offsets = [_utc_offset(tz, probe) for probe in probes]

    segments = []
    segment_start = window_start
    for index in range(1, len(probes)):
        if offsets[index] == offsets[index - 1]:
            continue
        change = _find_offset_change(tz, probes[index - 1], probes[index])
        segments.append((segment_start, change, offsets[index - 1]))
        segment_start = change
    segments.append((segment_start, window_end, offsets[-1]))
    return tuple(segments)


def _utc_offset(tz: ZoneInfo, naive_utc: datetime) -> timedelta:
    offset = naive_utc.replace(tzinfo=UTC).astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _find_offset_change(tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """Return the first whole second in ``(low, high]`` with the offset of ``high``."""
    before = _utc_offset(tz, low)
    while high - low > _SECOND:
        middle = low + _SECOND * ((high - low) // _SECOND // 2)
        if _utc_offset(tz, middle) == before:
            low = middle
        else:
            high = middle
    return high


# Input checks


def _to_utc(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: expected a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name}: naive datetime {value.isoformat()} has no time zone; pass an "
            f"aware datetime, for example with tzinfo=ZoneInfo('Europe/Moscow')"
        )
    return value.astimezone(UTC)


def _seconds_to_timedelta(seconds: object) -> timedelta:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"seconds: expected a number, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds: expected a finite number >= 0, got {seconds!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError as error:
        raise ValueError(f"seconds: {seconds!r} is too large") from error


def _start_offset(value: time) -> timedelta:
    return timedelta(hours=value.hour, minutes=value.minute, seconds=value.second)


def _end_offset(value: time) -> timedelta:
    if value == MIDNIGHT:
        return _DAY
    return _start_offset(value)


def _format_time(value: time, *, is_end: bool = False) -> str:
    if is_end and value == MIDNIGHT:
        return "24:00"
    if value.second:
        return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    return f"{value.hour:02d}:{value.minute:02d}"


def _format_interval(interval: Interval) -> str:
    start, end = interval
    return f"{_format_time(start)}-{_format_time(end, is_end=True)}"


def _format_hours(hours: Sequence[Interval]) -> list[list[str]]:
    return [
        [_format_time(start), _format_time(end, is_end=True)] for start, end in hours
    ]


def _validate_hours(name: str, hours: object) -> tuple[Interval, ...]:
    """Check one day's intervals and return them sorted by start."""
    if isinstance(hours, str | bytes) or not isinstance(hours, Sequence):
        raise CalendarError(
            f"{name}: expected a list of (start, end) pairs, got {hours!r}"
        )

    checked: list[tuple[Interval, int]] = []
    for index, pair in enumerate(hours):
        item = f"{name}[{index}]"
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence):
            raise CalendarError(f"{item}: expected a (start, end) pair, got {pair!r}")
        if len(pair) != 2:
            raise CalendarError(f"{item}: expected a (start, end) pair, got {pair!r}")

        start, end = pair
        for label, value in (("start", start), ("end", end)):
            _check_wall_time(item, label, value)

        if _start_offset(start) > _end_offset(end):
            raise CalendarError(
                f"{item}: start {_format_time(start)} is after end "
                f"{_format_time(end, is_end=True)}"
            )
        if _start_offset(start) == _end_offset(end):
            raise CalendarError(
                f"{item}: start {_format_time(start)} equals end "
                f"{_format_time(end, is_end=True)}, so the interval is empty"
            )
        checked.append(((start, end), index))

    checked.sort(key=lambda entry: _start_offset(entry[0][0]))
    for (previous, previous_index), (current, current_index) in pairwise(checked):
        if _start_offset(current[0]) < _end_offset(previous[1]):
            raise CalendarError(
                f"{name}: interval [{current_index}] {_format_interval(current)} "
                f"overlaps interval [{previous_index}] {_format_interval(previous)}"
            )
    return tuple(interval for interval, _ in checked)


def _check_wall_time(item: str, label: str, value: object) -> None:
    if not isinstance(value, time):
        raise CalendarError(f"{item}: {label} must be a datetime.time, got {value!r}")
    if value.tzinfo is not None:
        raise CalendarError(
            f"{item}: {label} {value.isoformat()} has tzinfo; opening hours are "
            f"wall-clock times in the calendar's tz"
        )
    if value.microsecond:
        raise CalendarError(
            f"{item}: {label} {value.isoformat()} has a fraction of a second; "
            f"use whole seconds"
        )


def _validate_weekly(
    weekly: Mapping[int, Sequence[Interval]] | None,
) -> dict[int, tuple[Interval, ...]]:
    if weekly is None:
        return {weekday: DEFAULT_HOURS for weekday in range(7)}
    if not isinstance(weekly, Mapping):
        raise CalendarError(
            f"weekly: expected a mapping of weekday (0 is Monday) to hours, "
            f"got {weekly!r}"
        )

    result: dict[int, tuple[Interval, ...]] = {weekday: () for weekday in range(7)}
    for weekday, hours in weekly.items():
        if isinstance(weekday, bool) or weekday not in result:
            raise CalendarError(
                f"weekly: key {weekday!r} is not a weekday number 0-6 (0 is Monday)"
            )
        result[weekday] = _validate_hours(f"weekly[{weekday}]", hours)

    if not any(result.values()):
        raise CalendarError(
            "weekly: no opening hours on any weekday; add at least one interval"
        )
    return result


def _validate_custom_dates(
    custom_dates: Mapping[date, Sequence[Interval]] | None,
) -> dict[date, tuple[Interval, ...]]:
    if custom_dates is None:
        return {}
    if not isinstance(custom_dates, Mapping):
        raise CalendarError(
            f"custom_dates: expected a mapping of date to hours, got {custom_dates!r}"
        )

    result: dict[date, tuple[Interval, ...]] = {}
    for day, hours in custom_dates.items():
        if isinstance(day, datetime) or not isinstance(day, date):
            raise CalendarError(f"custom_dates: key {day!r} is not a datetime.date")
        result[day] = _validate_hours(f"custom_dates[{day.isoformat()!r}]", hours)
    return result


# JSON parsing


def _parse_time(item: str, label: str, text: object, *, is_end: bool) -> time:
    match = _TIME_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise CalendarError(f"{item}: invalid {label} time {text!r}, expected HH:MM")

    hour, minute = int(match[1]), int(match[2])
    second = int(match[3] or 0)
    if is_end and (hour, minute, second) == (24, 0, 0):
        return MIDNIGHT
    if hour > 23 or minute > 59 or second > 59:
        allowed = "00:00-24:00" if is_end else "00:00-23:59"
        raise CalendarError(
            f"{item}: invalid {label} time {text!r}, expected HH:MM within {allowed}"
        )
    return time(hour, minute, second)


def _parse_hours(name: str, data: object) -> list[Interval]:
    if isinstance(data, str | bytes) or not isinstance(data, Sequence):
        raise CalendarError(
            f"{name}: expected a list of [start, end] pairs, got {data!r}"
        )

    hours = []
    for index, pair in enumerate(data):
        item = f"{name}[{index}]"
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence):
            raise CalendarError(f"{item}: expected a [start, end] pair, got {pair!r}")
        if len(pair) != 2:
            raise CalendarError(f"{item}: expected a [start, end] pair, got {pair!r}")
        start = _parse_time(item, "start", pair[0], is_end=False)
        end = _parse_time(item, "end", pair[1], is_end=True)
        hours.append((start, end))
    return hours


def _parse_weekly(data: object) -> dict[int, list[Interval]]:
    if not isinstance(data, Mapping):
        raise CalendarError(
            f'weekly: expected an object of weekday ("0" is Monday) to hours, '
            f"got {data!r}"
        )

    weekly = {}
    for key, hours in data.items():
        if isinstance(key, bool):
            weekday = None
        elif isinstance(key, int):
            weekday = key if 0 <= key <= 6 else None
        elif isinstance(key, str) and _WEEKDAY_PATTERN.fullmatch(key):
            weekday = int(key)
        else:
            weekday = None
        if weekday is None:
            raise CalendarError(
                f"weekly: key {key!r} is not a weekday number 0-6 (0 is Monday)"
            )
        weekly[weekday] = _parse_hours(f"weekly[{weekday}]", hours)
    return weekly


def _parse_custom_dates(data: object) -> dict[date, list[Interval]]:
    if not isinstance(data, Mapping):
        raise CalendarError(
            f"custom_dates: expected an object of YYYY-MM-DD to hours, got {data!r}"
        )

    custom_dates = {}
    for key, hours in data.items():
        day = None
        if isinstance(key, str) and _DATE_PATTERN.fullmatch(key):
            try:
                day = date.fromisoformat(key)
            except ValueError:
                day = None
        if day is None:
            raise CalendarError(
                f"custom_dates[{key!r}]: invalid date, expected YYYY-MM-DD"
            )
        custom_dates[day] = _parse_hours(f"custom_dates[{key!r}]", hours)
    return custom_dates

"""Tests of the business-time calendar against real zones and real holiday data.

Russian production calendar facts used below, as the ``holidays`` package 0.109
lists them:

- working Saturdays: 2024-12-28, 2025-11-01, 2027-02-20;
- transferred days off: 2024-12-30, 2025-11-03, 2025-12-31, 2026-01-09,
  2026-12-31, 2027-02-22;
- New Year holidays: 2026-01-01..08 and 2027-01-01..08;
- 2026-03-09 is the day off for 8 March, which falls on a Sunday.
"""

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b24app.sla.calendar import (
    MAX_CLOSED_DAYS,
    MIDNIGHT,
    BusinessCalendar,
    CalendarError,
    NoOpenTimeError,
)

MSK = ZoneInfo("Europe/Moscow")
BER = ZoneInfo("Europe/Berlin")
YEK = ZoneInfo("Asia/Yekaterinburg")

WORKWEEK = range(5)

CALENDARS = {
    "every_day": BusinessCalendar(),
    "mon_fri": BusinessCalendar(
        weekly={day: [(time(9), time(18))] for day in WORKWEEK}
    ),
    "lunch": BusinessCalendar(
        weekly={day: [(time(9), time(13)), (time(14), time(18))] for day in WORKWEEK}
    ),
    "custom": BusinessCalendar(
        custom_dates={
            date(2026, 4, 15): [],
            date(2026, 4, 16): [(time(12), time(15))],
            date(2026, 5, 1): [(time(10), time(14))],
        }
    ),
    "berlin_day": BusinessCalendar(tz="Europe/Berlin", country=None),
    "berlin_night": BusinessCalendar(
        tz="Europe/Berlin",
        country=None,
        weekly={day: [(time(1), time(4))] for day in range(7)},
    ),
    "berlin_short": BusinessCalendar(
        tz="Europe/Berlin",
        country=None,
        weekly={day: [(time(2, 15), time(2, 45))] for day in range(7)},
    ),
    "berlin_late": BusinessCalendar(
        tz="Europe/Berlin",
        country=None,
        weekly={day: [(time(2, 30), time(4))] for day in range(7)},
    ),
    "yekaterinburg": BusinessCalendar(tz="Asia/Yekaterinburg"),
}


def local(zone, year, month, day, hour=0, minute=0, second=0, micro=0, fold=0):
    return datetime(
        year, month, day, hour, minute, second, micro, tzinfo=zone, fold=fold
    )


DUE_CASES = [
    pytest.param(
        "every_day",
        local(MSK, 2026, 4, 14, 23, 30),
        1800,
        local(MSK, 2026, 4, 15, 9, 30),
        id="night-lead",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2026, 4, 15, 3),
        1800,
        local(MSK, 2026, 4, 15, 9, 30),
        id="early-morning-lead",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2026, 4, 15, 10),
        1800,
        local(MSK, 2026, 4, 15, 10, 30),
        id="open-hours-lead",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2026, 4, 15, 20, 30),
        1800,
        local(MSK, 2026, 4, 15, 21),
        id="due-exactly-at-closing",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2026, 4, 14, 20, 59),
        1800,
        local(MSK, 2026, 4, 15, 9, 29),
        id="lead-at-20-59-split-over-night",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2026, 4, 18, 11),
        1800,
        local(MSK, 2026, 4, 20, 9, 30),
        id="saturday-lead-mon-fri",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2026, 4, 17, 17, 50),
        1800,
        local(MSK, 2026, 4, 20, 9, 20),
        id="friday-evening-mon-fri",
    ),
    pytest.param(
        "lunch",
        local(MSK, 2026, 4, 14, 12, 50),
        1800,
        local(MSK, 2026, 4, 14, 14, 20),
        id="lunch-break-crossed",
    ),
    pytest.param(
        "lunch",
        local(MSK, 2026, 4, 14, 13, 20),
        1800,
        local(MSK, 2026, 4, 14, 14, 30),
        id="lead-during-lunch",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2026, 12, 31, 10),
        1800,
        local(MSK, 2027, 1, 9, 9, 30),
        id="31-dec-2026-every-day",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2026, 12, 31, 10),
        1800,
        local(MSK, 2027, 1, 11, 9, 30),
        id="31-dec-2026-mon-fri",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2025, 12, 30, 20, 50),
        1800,
        local(MSK, 2026, 1, 10, 9, 20),
        id="new-year-2026-every-day",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2025, 12, 30, 17, 50),
        1800,
        local(MSK, 2026, 1, 12, 9, 20),
        id="new-year-2026-mon-fri",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2025, 10, 31, 17, 50),
        1800,
        local(MSK, 2025, 11, 1, 9, 20),
        id="working-saturday-2025-11-01",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2025, 11, 1, 17, 50),
        1800,
        local(MSK, 2025, 11, 5, 9, 20),
        id="day-off-2025-11-03-then-unity-day",
    ),
    pytest.param(
        "lunch",
        local(MSK, 2025, 11, 1, 12, 50),
        1800,
        local(MSK, 2025, 11, 1, 14, 20),
        id="working-saturday-keeps-lunch-break",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2027, 2, 19, 17, 50),
        1800,
        local(MSK, 2027, 2, 20, 9, 20),
        id="working-saturday-2027-02-20",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2027, 2, 20, 17, 50),
        1800,
        local(MSK, 2027, 2, 24, 9, 20),
        id="day-off-2027-02-22-then-holiday",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2024, 12, 27, 17, 50),
        1800,
        local(MSK, 2024, 12, 28, 9, 20),
        id="working-saturday-2024-12-28",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2024, 12, 28, 17, 50),
        1800,
        local(MSK, 2025, 1, 9, 9, 20),
        id="days-off-2024-12-30-to-2025-01-08",
    ),
    pytest.param(
        "mon_fri",
        local(MSK, 2026, 3, 6, 17, 50),
        1800,
        local(MSK, 2026, 3, 10, 9, 20),
        id="day-off-2026-03-09-for-sunday-holiday",
    ),
    pytest.param(
        "custom",
        local(MSK, 2026, 4, 14, 20, 50),
        1800,
        local(MSK, 2026, 4, 16, 12, 20),
        id="custom-closed-date",
    ),
    pytest.param(
        "custom",
        local(MSK, 2026, 4, 16, 14, 50),
        1800,
        local(MSK, 2026, 4, 17, 9, 20),
        id="custom-special-hours",
    ),
    pytest.param(
        "custom",
        local(MSK, 2026, 4, 30, 20, 50),
        1800,
        local(MSK, 2026, 5, 1, 10, 20),
        id="custom-hours-on-public-holiday",
    ),
    pytest.param(
        "berlin_day",
        local(BER, 2025, 3, 29, 20, 50),
        1800,
        local(BER, 2025, 3, 30, 9, 20),
        id="berlin-day-hours-spring-forward",
    ),
    pytest.param(
        "berlin_day",
        local(BER, 2025, 10, 25, 20, 50),
        1800,
        local(BER, 2025, 10, 26, 9, 20),
        id="berlin-day-hours-fall-back",
    ),
    pytest.param(
        "berlin_night",
        local(BER, 2025, 3, 30, 1, 30),
        3600,
        local(BER, 2025, 3, 30, 3, 30),
        id="berlin-skipped-hour-not-counted",
    ),
    pytest.param(
        "berlin_night",
        local(BER, 2025, 3, 30, 1, 30),
        7200,
        local(BER, 2025, 3, 31, 1, 30),
        id="berlin-short-night-overflows",
    ),
    pytest.param(
        "berlin_night",
        local(BER, 2025, 10, 26, 1),
        12600,
        local(BER, 2025, 10, 26, 3, 30),
        id="berlin-repeated-hour-counted-twice",
    ),
    pytest.param(
        "berlin_night",
        local(BER, 2025, 10, 26, 1),
        14400,
        local(BER, 2025, 10, 26, 4),
        id="berlin-long-night-ends-at-close",
    ),
    pytest.param(
        "berlin_short",
        local(BER, 2025, 3, 29, 2, 40),
        600,
        local(BER, 2025, 3, 31, 2, 20),
        id="berlin-hours-inside-skipped-hour",
    ),
    pytest.param(
        "berlin_short",
        local(BER, 2025, 10, 26, 2, 40),
        600,
        local(BER, 2025, 10, 26, 2, 20, fold=1),
        id="berlin-hours-inside-repeated-hour",
    ),
    pytest.param(
        "berlin_late",
        local(BER, 2025, 3, 30, 0, 30),
        600,
        local(BER, 2025, 3, 30, 3, 10),
        id="berlin-opening-in-skipped-hour",
    ),
    pytest.param(
        "yekaterinburg",
        local(YEK, 2026, 4, 14, 20, 59),
        1800,
        local(YEK, 2026, 4, 15, 9, 29),
        id="yekaterinburg-lead-at-20-59",
    ),
    pytest.param(
        "yekaterinburg",
        local(YEK, 2026, 6, 11, 20, 50),
        1800,
        local(YEK, 2026, 6, 13, 9, 20),
        id="yekaterinburg-russia-day",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2026, 4, 15, 10),
        0,
        local(MSK, 2026, 4, 15, 10),
        id="zero-seconds-open",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2026, 4, 15, 22),
        0,
        local(MSK, 2026, 4, 16, 9),
        id="zero-seconds-closed",
    ),
    pytest.param(
        "every_day",
        local(MSK, 2026, 4, 15, 20, 59, 59),
        1.5,
        local(MSK, 2026, 4, 16, 9, 0, 0, 500_000),
        id="fractional-seconds",
    ),
]


@pytest.mark.parametrize(("calendar_name", "start", "seconds", "expected"), DUE_CASES)
def test_add_business_seconds_cases(calendar_name, start, seconds, expected):
    due = CALENDARS[calendar_name].add_business_seconds(start, seconds)

    # Compare in UTC: Python treats a fold=1 datetime as unequal to every
    # datetime of another zone (PEP 495).
    assert due == expected.astimezone(UTC)


@pytest.mark.parametrize(("calendar_name", "start", "seconds", "expected"), DUE_CASES)
def test_business_seconds_between_cases(calendar_name, start, seconds, expected):
    counted = CALENDARS[calendar_name].business_seconds_between(start, expected)

    assert math.isclose(counted, seconds, abs_tol=1e-6)


@pytest.mark.parametrize(
    ("calendar_name", "day", "hours"),
    [
        pytest.param("berlin_night", date(2025, 3, 29), 3, id="berlin-normal-night"),
        pytest.param("berlin_night", date(2025, 3, 30), 2, id="berlin-spring-forward"),
        pytest.param("berlin_night", date(2025, 10, 26), 4, id="berlin-fall-back"),
        pytest.param("berlin_short", date(2025, 3, 30), 0, id="berlin-skipped-only"),
        pytest.param("berlin_short", date(2025, 10, 26), 1, id="berlin-repeated-twice"),
        pytest.param("berlin_late", date(2025, 3, 30), 1, id="berlin-late-shortened"),
        pytest.param("lunch", date(2026, 4, 14), 8, id="lunch-day"),
        pytest.param("lunch", date(2025, 11, 1), 8, id="lunch-working-saturday"),
        pytest.param("mon_fri", date(2025, 11, 3), 0, id="mon-fri-transferred-day-off"),
        pytest.param("every_day", date(2026, 1, 9), 0, id="every-day-2026-01-09"),
        pytest.param("every_day", date(2026, 1, 10), 12, id="every-day-2026-01-10"),
        pytest.param("yekaterinburg", date(2026, 6, 12), 0, id="yekaterinburg-holiday"),
    ],
)
def test_business_seconds_between_whole_day(calendar_name, day, hours):
    calendar = CALENDARS[calendar_name]
    start = datetime.combine(day, MIDNIGHT, tzinfo=calendar.tz)
    end = datetime.combine(day + timedelta(days=1), MIDNIGHT, tzinfo=calendar.tz)

    assert calendar.business_seconds_between(start, end) == hours * 3600


def test_business_seconds_between_reversed_is_zero():
    calendar = CALENDARS["every_day"]
    start = local(MSK, 2026, 4, 15, 12)

    assert calendar.business_seconds_between(start, start - timedelta(hours=1)) == 0.0


def test_is_open_interval_bounds():
    calendar = CALENDARS["every_day"]

    assert calendar.is_open(local(MSK, 2026, 4, 15, 9))
    assert calendar.is_open(local(MSK, 2026, 4, 15, 20, 59, 59, 999_999))
    assert not calendar.is_open(local(MSK, 2026, 4, 15, 21))
    assert not calendar.is_open(local(MSK, 2026, 4, 15, 8, 59, 59, 999_999))


def test_is_open_accepts_other_zones():
    calendar = CALENDARS["every_day"]

    assert calendar.is_open(datetime(2026, 4, 15, 6, tzinfo=UTC))
    assert not calendar.is_open(datetime(2026, 4, 15, 5, 59, tzinfo=UTC))


def test_next_opening_open_returns_same_instant():
    start = local(MSK, 2026, 4, 15, 12, 34, 56, 789)

    assert CALENDARS["every_day"].next_opening(start) == start


def test_next_opening_skips_transferred_day_off():
    opening = CALENDARS["mon_fri"].next_opening(local(MSK, 2025, 11, 2, 12))

    assert opening == local(MSK, 2025, 11, 5, 9)


def test_next_opening_at_closing_moves_to_next_day():
    opening = CALENDARS["every_day"].next_opening(local(MSK, 2026, 4, 15, 21))

    assert opening == local(MSK, 2026, 4, 16, 9)


def test_results_are_utc():
    start = local(MSK, 2026, 4, 15, 7)
    calendar = CALENDARS["every_day"]

    assert calendar.add_business_seconds(start, 60).tzinfo is UTC
    assert calendar.next_opening(start).tzinfo is UTC
    assert (
        next(calendar.open_intervals(start, start + timedelta(days=1)))[0].tzinfo is UTC
    )


def test_repeated_hour_due_shows_second_pass():
    due = CALENDARS["berlin_short"].add_business_seconds(
        local(BER, 2025, 10, 26, 2, 40), 600
    )
    wall = due.astimezone(BER)

    assert wall.replace(tzinfo=None) == datetime(2025, 10, 26, 2, 20)
    assert wall.fold == 1


def test_hours_on_working_saturday_uses_monday():
    hours = CALENDARS["lunch"].hours_on(date(2025, 11, 1))

    assert hours == ((time(9), time(13)), (time(14), time(18)))


def test_hours_on_working_saturday_first_open_weekday():
    calendar = BusinessCalendar(
        weekly={1: [(time(10), time(19))], 5: [(time(11), time(15))]}
    )

    assert calendar.hours_on(date(2025, 11, 1)) == ((time(10), time(19)),)


def test_hours_on_ordinary_saturday_keeps_own_hours():
    calendar = BusinessCalendar(
        weekly={1: [(time(10), time(19))], 5: [(time(11), time(15))]}
    )

    assert calendar.hours_on(date(2025, 11, 8)) == ((time(11), time(15)),)


def test_hours_on_holiday_is_closed():
    assert CALENDARS["every_day"].hours_on(date(2026, 3, 9)) == ()


def test_hours_on_without_country_ignores_holidays():
    calendar = BusinessCalendar(country=None)

    assert calendar.hours_on(date(2026, 1, 1)) == ((time(9), time(21)),)


def test_hours_on_custom_date_overrides_holiday():
    hours = CALENDARS["custom"].hours_on(date(2026, 5, 1))

    assert hours == ((time(10), time(14)),)


def test_hours_on_rejects_datetime():
    with pytest.raises(TypeError, match="expected a datetime.date"):
        CALENDARS["every_day"].hours_on(local(MSK, 2026, 4, 15))


def test_open_intervals_merges_across_midnight():
    calendar = BusinessCalendar(
        weekly={day: [(MIDNIGHT, MIDNIGHT)] for day in range(7)}, country=None
    )
    start = local(MSK, 2026, 1, 1)
    end = local(MSK, 2026, 1, 4)

    assert list(calendar.open_intervals(start, end)) == [(start, end)]


def test_open_intervals_repeated_hour_twice():
    calendar = CALENDARS["berlin_short"]
    start = local(BER, 2025, 10, 26)
    end = local(BER, 2025, 10, 27)

    spans = list(calendar.open_intervals(start, end))

    assert spans == [
        (
            datetime(2025, 10, 26, 0, 15, tzinfo=UTC),
            datetime(2025, 10, 26, 0, 45, tzinfo=UTC),
        ),
        (
            datetime(2025, 10, 26, 1, 15, tzinfo=UTC),
            datetime(2025, 10, 26, 1, 45, tzinfo=UTC),
        ),
    ]


def test_open_intervals_clipped_to_range():
    calendar = CALENDARS["lunch"]
    start = local(MSK, 2026, 4, 14, 12)
    end = local(MSK, 2026, 4, 14, 15)

    spans = list(calendar.open_intervals(start, end))

    assert spans == [
        (local(MSK, 2026, 4, 14, 12), local(MSK, 2026, 4, 14, 13)),
        (local(MSK, 2026, 4, 14, 14), local(MSK, 2026, 4, 14, 15)),
    ]


def test_open_intervals_empty_range():
    calendar = CALENDARS["every_day"]
    start = local(MSK, 2026, 4, 14, 12)

    assert list(calendar.open_intervals(start, start)) == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c, t: c.is_open(t), id="is_open"),
        pytest.param(lambda c, t: c.next_opening(t), id="next_opening"),
        pytest.param(
            lambda c, t: c.add_business_seconds(t, 60), id="add_business_seconds"
        ),
        pytest.param(
            lambda c, t: c.business_seconds_between(t, t + timedelta(hours=1)),
            id="business_seconds_between",
        ),
        pytest.param(
            lambda c, t: c.open_intervals(t, t + timedelta(hours=1)),
            id="open_intervals",
        ),
    ],
)
def test_naive_datetime_rejected(call):
    with pytest.raises(
        ValueError, match="naive datetime 2026-04-15T12:00:00 has no time"
    ):
        call(CALENDARS["every_day"], datetime(2026, 4, 15, 12))


@pytest.mark.parametrize(
    "seconds", [-1, math.nan, math.inf], ids=["negative", "nan", "inf"]
)
def test_add_business_seconds_rejects_bad_seconds(seconds):
    with pytest.raises(ValueError, match="seconds: expected a finite number >= 0"):
        CALENDARS["every_day"].add_business_seconds(local(MSK, 2026, 4, 15), seconds)


def test_long_closure_raises_no_open_time():
    first_monday = date(2026, 1, 5)
    closed_mondays = {first_monday + timedelta(weeks=week): [] for week in range(60)}
    calendar = BusinessCalendar(
        weekly={0: [(time(9), time(18))]}, country=None, custom_dates=closed_mondays
    )

    with pytest.raises(NoOpenTimeError, match=f"no open time within {MAX_CLOSED_DAYS}"):
        calendar.add_business_seconds(local(MSK, 2026, 1, 1), 60)


def test_long_closure_between_still_counts():
    first_monday = date(2026, 1, 5)
    closed_mondays = {first_monday + timedelta(weeks=week): [] for week in range(60)}
    calendar = BusinessCalendar(
        weekly={0: [(time(9), time(18))]}, country=None, custom_dates=closed_mondays
    )
    start = local(MSK, 2026, 1, 1)

    counted = calendar.business_seconds_between(start, start + timedelta(days=430))

    assert counted == 9 * 3600


# Settings storage


def test_to_dict_round_trip():
    calendar = BusinessCalendar(
        tz="Europe/Berlin",
        weekly={
            0: [(time(22), MIDNIGHT)],
            2: [(time(9), time(13)), (time(14), time(18, 30, 15))],
        },
        country=None,
        custom_dates={
            date(2026, 12, 24): [],
            date(2026, 12, 31): [(time(10), time(14))],
        },
    )

    assert BusinessCalendar.from_dict(calendar.to_dict()) == calendar


def test_to_dict_midnight_end_is_24_00():
    calendar = BusinessCalendar(weekly={0: [(time(22), MIDNIGHT)]})

    assert calendar.to_dict()["weekly"]["0"] == [["22:00", "24:00"]]


def test_from_dict_empty_uses_defaults():
    assert BusinessCalendar.from_dict({}) == BusinessCalendar()


def test_from_dict_country_null_disables_holidays():
    calendar = BusinessCalendar.from_dict({"country": None})

    assert calendar.country is None


BAD_SETTINGS = [
    pytest.param(
        {"weekly": {"2": [["18:00", "09:00"]]}},
        "weekly[2][0]: start 18:00 is after end 09:00",
        id="start-after-end",
    ),
    pytest.param(
        {"weekly": {"2": [["09:00", "09:00"]]}},
        "weekly[2][0]: start 09:00 equals end 09:00, so the interval is empty",
        id="empty-interval",
    ),
    pytest.param(
        {"weekly": {"2": [["09:00", "13:00"], ["12:00", "14:00"]]}},
        "weekly[2]: interval [1] 12:00-14:00 overlaps interval [0] 09:00-13:00",
        id="overlap",
    ),
    pytest.param(
        {"weekly": {"1": [["25:00", "26:00"]]}},
        "weekly[1][0]: invalid start time '25:00', expected HH:MM within 00:00-23:59",
        id="hour-out-of-range",
    ),
    pytest.param(
        {"weekly": {"1": [["9:00", "18:00"]]}},
        "weekly[1][0]: invalid start time '9:00', expected HH:MM",
        id="time-format",
    ),
    pytest.param(
        {"weekly": {"1": [["24:00", "24:00"]]}},
        "weekly[1][0]: invalid start time '24:00', expected HH:MM within 00:00-23:59",
        id="start-at-24",
    ),
    pytest.param(
        {"weekly": {"1": [["09:00"]]}},
        "weekly[1][0]: expected a [start, end] pair, got ['09:00']",
        id="not-a-pair",
    ),
    pytest.param(
        {"weekly": {"7": [["09:00", "18:00"]]}},
        "weekly: key '7' is not a weekday number 0-6 (0 is Monday)",
        id="weekday-key",
    ),
    pytest.param(
        {"weekly": {}},
        "weekly: no opening hours on any weekday; add at least one interval",
        id="never-open",
    ),
    pytest.param(
        {"tz": "Europe/Moskva"},
        "tz: unknown time zone 'Europe/Moskva'; use an IANA name such as "
        "'Europe/Moscow'",
        id="unknown-zone",
    ),
    pytest.param(
        {"tz": 3},
        "tz: expected a time zone name such as 'Europe/Moscow', got 3",
        id="zone-not-string",
    ),
    pytest.param(
        {"country": "XX"},
        "country: unsupported country code 'XX'",
        id="unknown-country",
    ),
    pytest.param(
        {"custom_dates": {"2026-02-30": []}},
        "custom_dates['2026-02-30']: invalid date, expected YYYY-MM-DD",
        id="impossible-date",
    ),
    pytest.param(
        {"custom_dates": {"01.05.2026": []}},
        "custom_dates['01.05.2026']: invalid date, expected YYYY-MM-DD",
        id="date-format",
    ),
    pytest.param(
        {"custom_dates": {"2026-05-01": [["14:00", "10:00"]]}},
        "custom_dates['2026-05-01'][0]: start 14:00 is after end 10:00",
        id="custom-start-after-end",
    ),
    pytest.param(
        {"timezone": "Europe/Moscow"},
        "calendar settings: unknown field 'timezone'",
        id="unknown-field",
    ),
    pytest.param(
        ["Europe/Moscow"],
        "calendar settings: expected a JSON object, got list",
        id="not-an-object",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_SETTINGS)
def test_from_dict_validation_message(data, message):
    with pytest.raises(CalendarError) as caught:
        BusinessCalendar.from_dict(data)

    assert str(caught.value).startswith(message)


def test_constructor_validation_message():
    with pytest.raises(
        CalendarError, match=r"weekly\[2\]\[0\]: start 18:00 is after end 09:00"
    ):
        BusinessCalendar(weekly={2: [(time(18), time(9))]})


def test_constructor_rejects_aware_time():
    with pytest.raises(
        CalendarError, match=r"weekly\[0\]\[0\]: start 09:00:00 has tzinfo"
    ):
        BusinessCalendar(weekly={0: [(time(9, tzinfo=MSK), time(18))]})


def test_constructor_rejects_datetime_key():
    with pytest.raises(
        CalendarError, match="custom_dates: key .* is not a datetime.date"
    ):
        BusinessCalendar(custom_dates={local(MSK, 2026, 5, 1): []})


def test_calendar_error_is_value_error():
    assert issubclass(CalendarError, ValueError)


# Properties

# UTC instants of the 2025 offset changes of each zone (checked against tzdata
# 2025b). Zones without DST get New Year and a Russian transfer instead.
ZONE_CHANGES = {
    "Europe/Moscow": [
        datetime(2025, 12, 31, 21, tzinfo=UTC),
        datetime(2025, 10, 31, 12, tzinfo=UTC),
    ],
    "Asia/Yekaterinburg": [
        datetime(2026, 12, 31, 19, tzinfo=UTC),
        datetime(2027, 2, 19, 12, tzinfo=UTC),
    ],
    "Europe/Berlin": [
        datetime(2025, 3, 30, 1, tzinfo=UTC),
        datetime(2025, 10, 26, 1, tzinfo=UTC),
    ],
    "Europe/London": [
        datetime(2025, 3, 30, 1, tzinfo=UTC),
        datetime(2025, 10, 26, 1, tzinfo=UTC),
    ],
    "America/New_York": [
        datetime(2025, 3, 9, 7, tzinfo=UTC),
        datetime(2025, 11, 2, 6, tzinfo=UTC),
    ],
    "America/Santiago": [
        datetime(2025, 4, 6, 3, tzinfo=UTC),
        datetime(2025, 9, 7, 4, tzinfo=UTC),
    ],
    "Australia/Lord_Howe": [
        datetime(2025, 4, 5, 15, tzinfo=UTC),
        datetime(2025, 10, 4, 15, 30, tzinfo=UTC),
    ],
}


def minutes_to_time(minutes: int) -> time:
    return MIDNIGHT if minutes == 24 * 60 else time(minutes // 60, minutes % 60)


@st.composite
def day_hours(draw):
    marks = sorted(draw(st.lists(st.integers(0, 24 * 60), unique=True, max_size=6)))
    return [
        (minutes_to_time(marks[index]), minutes_to_time(marks[index + 1]))
        for index in range(0, len(marks) - 1, 2)
    ]


weeklies = st.fixed_dictionaries({day: day_hours() for day in range(7)}).filter(
    lambda weekly: any(weekly.values())
)

custom_date_maps = st.dictionaries(
    st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31)),
    day_hours(),
    max_size=6,
)


@st.composite
def calendar_and_instant(draw):
    """Draw a random calendar and an instant, often close to an offset change."""
    zone = draw(st.sampled_from(sorted(ZONE_CHANGES)))
    calendar = BusinessCalendar(
        tz=zone,
        weekly=draw(weeklies),
        country=draw(st.sampled_from(["RU", None])),
        custom_dates=draw(custom_date_maps),
    )

    anywhere = st.datetimes(
        min_value=datetime(2024, 1, 1),
        max_value=datetime(2028, 12, 31),
        timezones=st.just(UTC),
    )
    near_change = st.builds(
        lambda base, offset: base + offset,
        st.sampled_from(ZONE_CHANGES[zone]),
        st.one_of(
            st.timedeltas(
                min_value=timedelta(hours=-36), max_value=timedelta(hours=36)
            ),
            st.timedeltas(min_value=timedelta(hours=-3), max_value=timedelta(hours=3)),
        ),
    )
    return calendar, draw(st.one_of(anywhere, near_change, near_change))


durations = st.one_of(
    st.integers(0, 3 * 86400),
    st.floats(0, 3 * 86400, allow_nan=False, allow_infinity=False),
)

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@PROPERTY_SETTINGS
@given(case=calendar_and_instant(), seconds=durations)
def test_property_due_inside_open_time(case, seconds):
    calendar, start = case
    due = calendar.add_business_seconds(start, seconds)
    just_before = due - timedelta(microseconds=1)

    assert calendar.is_open(due) or calendar.is_open(just_before)


@PROPERTY_SETTINGS
@given(case=calendar_and_instant(), seconds=durations)
def test_property_due_not_before_start(case, seconds):
    calendar, start = case

    assert calendar.add_business_seconds(start, seconds) >= start


@PROPERTY_SETTINGS
@given(case=calendar_and_instant(), seconds=durations)
def test_property_between_inverts_add(case, seconds):
    calendar, start = case
    due = calendar.add_business_seconds(start, seconds)

    assert abs(calendar.business_seconds_between(start, due) - seconds) <= 1e-3


@PROPERTY_SETTINGS
@given(
    case=calendar_and_instant(),
    delay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    seconds=durations,
)
def test_property_due_monotonic_in_created(case, delay, seconds):
    calendar, start = case
    earlier = calendar.add_business_seconds(start, seconds)
    later = calendar.add_business_seconds(start + delay, seconds)

    assert earlier <= later


@PROPERTY_SETTINGS
@given(case=calendar_and_instant(), seconds=durations, extra=durations)
def test_property_due_monotonic_in_seconds(case, seconds, extra):
    calendar, start = case
    shorter = calendar.add_business_seconds(start, seconds)
    longer = calendar.add_business_seconds(start, seconds + extra)

    assert shorter <= longer


@PROPERTY_SETTINGS
@given(case=calendar_and_instant())
def test_property_is_open_matches_wall_clock(case):
    calendar, at = case
    wall = at.astimezone(calendar.tz)
    wall_time = wall.time()
    expected = any(
        start <= wall_time and (end == MIDNIGHT or wall_time < end)
        for start, end in calendar.hours_on(wall.date())
    )

    assert calendar.is_open(at) == expected


@PROPERTY_SETTINGS
@given(
    case=calendar_and_instant(),
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5)),
)
def test_property_open_intervals_sum_to_between(case, length):
    calendar, start = case
    end = start + length
    spans = list(calendar.open_intervals(start, end))
    total = sum((span_end - span_start for span_start, span_end in spans), timedelta(0))

    assert total.total_seconds() == calendar.business_seconds_between(start, end)

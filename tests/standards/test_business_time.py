from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from standards.business_time import Calendar, CalendarInvalid, business_deadline, business_seconds

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {
    "time_zone": "Europe/Berlin",
    "schedule": {str(day): [["09:00", "17:00"]] for day in range(1, 6)},
    # Monday 2025-06-09 is Whit Monday.
    "holidays": ["2025-06-09"],
}


def at(day, hour, minute=0):
    return datetime(2025, 6, day, hour, minute, tzinfo=BERLIN)


def test_around_the_clock_counts_wall_time():
    assert business_seconds(at(6, 16), at(10, 10), None) == (at(10, 10) - at(6, 16)).total_seconds()


def test_seconds_skip_the_weekend_and_the_holiday():
    # Friday 16:00 → Tuesday 10:00: one hour on Friday, none Sat/Sun/holiday Monday, one on Tuesday.
    assert business_seconds(at(6, 16), at(10, 10), OFFICE) == 2 * 3600


def test_seconds_outside_hours_are_zero():
    assert business_seconds(at(7, 10), at(8, 18), OFFICE) == 0


def test_deadline_runs_across_the_weekend_and_the_holiday():
    assert business_deadline(at(6, 16), 2 * 3600, OFFICE) == at(10, 10)


def test_deadline_from_outside_hours_starts_at_the_next_opening():
    assert business_deadline(at(7, 12), 1800, OFFICE) == at(10, 9, 30)


def test_calendar_time_zone_decides_the_hours():
    # 08:00 UTC is 10:00 in Berlin in summer: inside hours.
    start = datetime(2025, 6, 10, 8, 0, tzinfo=ZoneInfo("UTC"))
    assert business_seconds(start, start + timedelta(hours=1), OFFICE) == 3600
    tehran = {**OFFICE, "time_zone": "Asia/Tehran", "holidays": []}
    # 08:00 UTC is 11:30 in Tehran.
    assert business_deadline(start, 6 * 3600, tehran) == datetime(2025, 6, 11, 9, 30, tzinfo=ZoneInfo("Asia/Tehran"))


def test_daylight_saving_day_keeps_its_local_hours():
    # Berlin moves clocks forward on 2025-03-30 (Sunday); a Sunday shift 00:00-06:00 lasts 5 real hours.
    cal = {"time_zone": "Europe/Berlin", "schedule": {"7": [["00:00", "06:00"]]}}
    start = datetime(2025, 3, 30, 0, 0, tzinfo=BERLIN)
    assert business_seconds(start, start + timedelta(hours=12), cal) == 5 * 3600


def test_schedule_without_hours_never_reaches_a_deadline():
    assert business_deadline(at(6, 16), 60, {"time_zone": "UTC", "schedule": {}}) is None


@pytest.mark.parametrize(
    "raw",
    [
        {"time_zone": "Mars/Olympus"},
        {"schedule": {"8": [["09:00", "17:00"]]}},
        {"schedule": {"1": [["17:00", "09:00"]]}},
        {"schedule": {"1": [["9am", "5pm"]]}},
        {"holidays": ["next monday"]},
    ],
)
def test_invalid_calendars_are_refused(raw):
    with pytest.raises(CalendarInvalid):
        Calendar.from_dict(raw)

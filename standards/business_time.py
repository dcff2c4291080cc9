"""Business-time arithmetic: how many working seconds lie between two instants,
and when a number of working seconds runs out, in a calendar's own time zone.

A calendar is the plain dict a standard version stores:
``{"time_zone": "Europe/Berlin", "schedule": {"1": [["09:00", "17:00"]], …},
"holidays": ["2025-12-25", …]}``; ``None`` means around the clock. Intervals
are built from local wall-clock times and converted to UTC day by day, so a
daylight-saving change shortens or lengthens that day's hours as it does for
the people working them.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = ZoneInfo("UTC")
# A schedule with no working hours at all would never reach a deadline.
MAX_DAYS = 3 * 366


class CalendarInvalid(ValueError):
    pass


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    schedule: dict  # ISO weekday -> [(time, time)]
    holidays: frozenset

    @classmethod
    def from_dict(cls, raw):
        if raw is None:
            return None
        try:
            zone = ZoneInfo(raw.get("time_zone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarInvalid(f"Unknown time zone {raw.get('time_zone')!r}.") from exc
        schedule = {}
        for day, intervals in (raw.get("schedule") or {}).items():
            try:
                weekday = int(day)
            except (TypeError, ValueError):
                raise CalendarInvalid(f"Weekday {day!r} is not 1 (Monday) … 7 (Sunday).") from None
            if not 1 <= weekday <= 7:
                raise CalendarInvalid(f"Weekday {day!r} is not 1 (Monday) … 7 (Sunday).")
            parsed = []
            for interval in intervals or []:
                try:
                    start, end = (time.fromisoformat(part) for part in interval)
                except (TypeError, ValueError):
                    raise CalendarInvalid(f"{interval!r} is not a pair of HH:MM times.") from None
                if end != time(0, 0) and end <= start:
                    raise CalendarInvalid(f"{interval!r} ends before it starts.")
                parsed.append((start, end))
            schedule[weekday] = sorted(parsed)
        try:
            holidays = frozenset(date.fromisoformat(day) for day in raw.get("holidays") or [])
        except (TypeError, ValueError):
            raise CalendarInvalid("Holidays must be YYYY-MM-DD dates.") from None
        return cls(zone=zone, schedule=schedule, holidays=holidays)

    def day_intervals(self, day):
        """The working intervals of one local date, as aware UTC datetimes."""
        if day in self.holidays:
            return []
        result = []
        for start, end in self.schedule.get(day.isoweekday(), []):
            local_start = datetime.combine(day, start, tzinfo=self.zone)
            # "24:00" cannot be written; "00:00" as an end means midnight after.
            end_day = day + timedelta(days=1) if end == time(0, 0) else day
            local_end = datetime.combine(end_day, end, tzinfo=self.zone)
            result.append((local_start.astimezone(UTC), local_end.astimezone(UTC)))
        return result

    def intervals(self, start, end):
        """Working intervals clipped to [start, end)."""
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        while day <= last:
            for a, b in self.day_intervals(day):
                a, b = max(a, start), min(b, end)
                if a < b:
                    yield a, b
            day += timedelta(days=1)


def business_seconds(start, end, calendar=None):
    """Working seconds between two aware instants (0 if end is before start)."""
    if end <= start:
        return 0.0
    cal = calendar if isinstance(calendar, Calendar) or calendar is None else Calendar.from_dict(calendar)
    if cal is None:
        return (end - start).total_seconds()
    return sum((b - a).total_seconds() for a, b in cal.intervals(start, end))


def business_deadline(start, seconds, calendar=None):
    """The instant at which `seconds` working seconds after `start` have passed; None if never."""
    cal = calendar if isinstance(calendar, Calendar) or calendar is None else Calendar.from_dict(calendar)
    if cal is None:
        return start + timedelta(seconds=seconds)
    remaining = timedelta(seconds=seconds)
    day = start.astimezone(cal.zone).date() - timedelta(days=1)
    for _ in range(MAX_DAYS):
        for a, b in cal.day_intervals(day):
            a = max(a, start)
            if a >= b:
                continue
            if b - a >= remaining:
                return a + remaining
            remaining -= b - a
        day += timedelta(days=1)
    return None

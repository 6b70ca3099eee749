"""The time axis, in one home: the Korean time zone, a forecast day's 24 hours, the deadline.

Inside the service every datetime is aware and in UTC; at the edges where people see days
(target dates, schedules, API responses, logs) times are shown in Korea Standard Time, always
as ISO 8601 with an explicit offset (``2024-01-09T00:00:00+09:00``). Korea has kept UTC+09:00
all year since 1988, so the zone and a fixed offset agree for every date the service sees.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")
UTC = dt.UTC
HOURS = 24
"""A forecast day is the 24 hours 00:00-23:00 KST of the target date D (D-1 15:00-D 14:00 UTC)."""


def day_start(date: dt.date) -> dt.datetime:
    """00:00 KST of ``date`` as an aware UTC datetime.

    >>> day_start(dt.date(2024, 1, 9)).isoformat()
    '2024-01-08T15:00:00+00:00'
    """
    return dt.datetime.combine(date, dt.time(0), tzinfo=KST).astimezone(UTC)


def forecast_hours(date: dt.date) -> list[dt.datetime]:
    """The 24 valid times of KST day ``date`` as aware UTC datetimes (D-1 15:00 .. D 14:00).

    >>> [t.isoformat() for t in forecast_hours(dt.date(2024, 1, 9))[::23]]
    ['2024-01-08T15:00:00+00:00', '2024-01-09T14:00:00+00:00']
    """
    start = day_start(date)
    return [start + dt.timedelta(hours=h) for h in range(HOURS)]


def valid_times_kst(date: dt.date) -> list[dt.datetime]:
    """The 24 valid times of ``date`` as aware KST datetimes (how users see them).

    >>> [t.isoformat() for t in valid_times_kst(dt.date(2024, 1, 9))[::23]]
    ['2024-01-09T00:00:00+09:00', '2024-01-09T23:00:00+09:00']
    """
    return [t.astimezone(KST) for t in forecast_hours(date)]


def today_kst(now: dt.datetime | None = None) -> dt.date:
    """The current date in Korea (``now`` must be aware; default: the clock)."""
    return (now or dt.datetime.now(UTC)).astimezone(KST).date()


def tomorrow_kst(now: dt.datetime | None = None) -> dt.date:
    """Tomorrow in Korea: the target date of the forecast made today."""
    return today_kst(now) + dt.timedelta(days=1)


def deadline_of(date: dt.date, deadline: dt.time) -> dt.datetime:
    """When the forecast of target date ``date`` must be published: D-1 at ``deadline`` KST.

    >>> deadline_of(dt.date(2024, 1, 9), dt.time(23, 0)).isoformat()
    '2024-01-08T23:00:00+09:00'
    """
    return dt.datetime.combine(date - dt.timedelta(days=1), deadline, tzinfo=KST)


def kst_iso(value: dt.datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in KST with its offset (None stays None).

    Naive datetimes are refused: inside the service they do not exist.

    >>> kst_iso(dt.datetime(2024, 1, 8, 15, tzinfo=UTC))
    '2024-01-09T00:00:00+09:00'
    """
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the service uses aware datetimes only")
    return value.astimezone(KST).isoformat()

"""Calendar arithmetic in a program's time zone (months, years, month ends)."""

import calendar
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def add_months(moment: datetime, months: int) -> datetime:
    """Same day-of-month `months` later, clamped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def start_of_next_month(moment: datetime, tz: str) -> datetime:
    """The first instant of the month after `moment`'s month, in zone `tz`."""
    local = moment.astimezone(ZoneInfo(tz))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=ZoneInfo(tz))


def start_of_day(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(tz))


def local_date(moment: datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date()


def month_bounds(moment: datetime, tz: str) -> tuple[datetime, datetime]:
    local = moment.astimezone(ZoneInfo(tz))
    start = datetime(local.year, local.month, 1, tzinfo=ZoneInfo(tz))
    return start, start_of_next_month(start, tz)


def year_bounds(year: int, tz: str) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=ZoneInfo(tz)), datetime(year + 1, 1, 1, tzinfo=ZoneInfo(tz))


def day_before(moment: datetime) -> datetime:
    return moment - timedelta(days=1)


def period_start(moment: datetime, period: str, tz: str) -> datetime | None:
    """Start of the day, month or year containing `moment` in zone `tz`; None for "ever"."""
    local = moment.astimezone(ZoneInfo(tz))
    if period == "day":
        return datetime(local.year, local.month, local.day, tzinfo=ZoneInfo(tz))
    if period == "month":
        return datetime(local.year, local.month, 1, tzinfo=ZoneInfo(tz))
    if period == "year":
        return datetime(local.year, 1, 1, tzinfo=ZoneInfo(tz))
    return None

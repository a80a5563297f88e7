"""Cron schedules in a time zone, correct across daylight-saving changes. Pure (stdlib only).

Five fields, ``minute hour day-of-month month day-of-week``, each ``*``, a number, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those; months and weekdays also
by name (``jan``, ``mon``); ``7`` is Sunday too; ``@hourly``, ``@daily``, ``@weekly``,
``@monthly`` and ``@yearly`` are shorthands. As in Vixie cron, when both day fields are
restricted a day matching either one counts.

Times are wall-clock times in the schedule's zone. Across a DST change each matching wall
time fires once: a time skipped when clocks go forward fires right after the jump (at
the same offset from it), a time that happens twice when clocks go back fires at its first
occurrence. Written here rather than taken from PyPI: the whole rule set is ~150 lines,
and the DST behaviour is ours to state and test.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC
SEARCH_DAYS = 366 * 5  # a schedule with no match in five years never fires (Feb 30)

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_MONTHS = {name: i for i, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DAYS = {name: i for i, name in enumerate("sun mon tue wed thu fri sat".split())}
# (name, lowest, highest, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the allowed values of each field."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # the day-of-month field starts with '*'
    any_weekday: bool  # the day-of-week field starts with '*'

    def matches_date(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow


def parse_cron(text: str) -> Cron:
    """Parse a five-field expression (or a ``@`` shorthand); raises ``CronError``.

    >>> c = parse_cron("*/20 9-17 * * mon-fri")
    >>> c.minutes, c.hours[:3], sorted(c.weekdays)
    ((0, 20, 40), (9, 10, 11), [1, 2, 3, 4, 5])
    """
    source = text.strip()
    expanded = MACROS.get(source.lower(), source)
    parts = expanded.split()
    if len(parts) != 5:
        raise CronError(f"{text!r} has {len(parts)} fields; cron needs 5 (minute hour day month weekday)")
    values = [_parse_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(0 if d == 7 else d for d in values[4])
    return Cron(
        text=source, minutes=tuple(sorted(values[0])), hours=tuple(sorted(values[1])), days=frozenset(values[2]),
        months=frozenset(values[3]), weekdays=weekdays, any_day=parts[2].startswith("*"),
        any_weekday=parts[4].startswith("*"),
    )


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    found: set[int] = set()
    for item in text.lower().split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} step {step_text!r} must be a whole number above 0")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise CronError(f"{name} range {base!r} runs backwards")
        else:
            first = _value(base, name, low, high, names)
            last = high if step_text else first
        found.update(range(first, last + 1, step))
    return found


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        raise CronError(f"{name} value {text!r} is not a number" + (" or a name" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} value {value} is outside {low}-{high}")
    return value


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``); raises ``CronError``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin or UTC)") from None


@dataclass(frozen=True)
class Schedule:
    """A cron expression read in a time zone. Instants in and out are aware datetimes."""

    cron: Cron
    tz: ZoneInfo

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> Schedule:
        return cls(parse_cron(text), zone(timezone))

    def _instants(self, day: dt.date) -> list[dt.datetime]:
        """Every firing instant (UTC) of one local date, ascending, each wall time once."""
        if not self.cron.matches_date(day):
            return []
        found = set()
        for hour in self.cron.hours:
            for minute in self.cron.minutes:
                # fold=0: a repeated wall time is its first occurrence; a skipped one is read
                # with the offset before the jump, which lands it just after the jump.
                local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz)
                found.add(local.astimezone(UTC))
        return sorted(found)

    def next_after(self, moment: dt.datetime) -> dt.datetime | None:
        """The first firing strictly after ``moment``, or None if there is none in 5 years.

        >>> s = Schedule.parse("0 3 * * *", "Europe/Berlin")
        >>> s.next_after(dt.datetime(2024, 7, 1, 12, tzinfo=UTC)).isoformat()
        '2024-07-02T01:00:00+00:00'
        """
        start = moment.astimezone(self.tz).date() - dt.timedelta(days=1)
        for offset in range(SEARCH_DAYS):
            day = start + dt.timedelta(days=offset)
            later = [t for t in self._instants(day) if t > moment]
            if later:
                # A skipped time moved past midnight may follow the next day's first one.
                tomorrow = [t for t in self._instants(day + dt.timedelta(days=1)) if t > moment]
                return min(later + tomorrow)
        return None

    def latest_at_or_before(self, moment: dt.datetime) -> dt.datetime | None:
        """The last firing at or before ``moment``, or None if there is none in 5 years.

        >>> s = Schedule.parse("@hourly")
        >>> s.latest_at_or_before(dt.datetime(2024, 7, 1, 12, 59, tzinfo=UTC)).isoformat()
        '2024-07-01T12:00:00+00:00'
        """
        start = moment.astimezone(self.tz).date() + dt.timedelta(days=1)
        for offset in range(SEARCH_DAYS):
            day = start - dt.timedelta(days=offset)
            earlier = [t for t in self._instants(day) if t <= moment]
            if earlier:
                yesterday = [t for t in self._instants(day - dt.timedelta(days=1)) if t <= moment]
                return max(earlier + yesterday)
        return None


def due_slot(schedule: Schedule, last_slot: float, now: float) -> float | None:
    """The one slot to fire now (unix time), or None: the latest firing at or before ``now``
    if it is after ``last_slot``. However many slots were missed, one fires. Pure.

    >>> s = Schedule.parse("@hourly")
    >>> base = dt.datetime(2024, 7, 1, tzinfo=UTC).timestamp()
    >>> due_slot(s, base, base + 3 * 3600 + 5) - base, due_slot(s, base, base + 3599)
    (10800.0, None)
    """
    latest = schedule.latest_at_or_before(dt.datetime.fromtimestamp(now, UTC))
    if latest is None or latest.timestamp() <= last_slot:
        return None
    return latest.timestamp()


def next_run(schedule: Schedule, now: float) -> float | None:
    """The next firing after ``now`` as unix time (None: never)."""
    found = schedule.next_after(dt.datetime.fromtimestamp(now, UTC))
    return None if found is None else found.timestamp()

"""Cron schedules in a time zone: parsing, next and latest firing, DST, missed runs. Pure."""

from __future__ import annotations

import datetime as dt

import pytest

from gastown.triggers.cron import CronError, Schedule, due_slot, next_run, parse_cron

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    """``2024-03-31 00:30`` read as UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(moment: dt.datetime | None, zone: str) -> str:
    assert moment is not None
    return moment.astimezone(Schedule.parse("* * * * *", zone).tz).strftime("%Y-%m-%d %H:%M %Z")


@pytest.mark.parametrize(
    "text,problem",
    [
        pytest.param("* * * *", "has 4 fields", id="too few fields"),
        pytest.param("60 * * * *", "minute value 60 is outside 0-59", id="minute too big"),
        pytest.param("* 24 * * *", "hour value 24 is outside 0-23", id="hour too big"),
        pytest.param("* * 0 * *", "day of month value 0 is outside 1-31", id="day zero"),
        pytest.param("* * * 13 *", "month value 13 is outside 1-12", id="month 13"),
        pytest.param("*/0 * * * *", "step '0' must be a whole number above 0", id="step zero"),
        pytest.param("5-1 * * * *", "runs backwards", id="backwards range"),
        pytest.param("* * * * funday", "is not a number or a name", id="unknown weekday name"),
        pytest.param("@fortnightly", "has 1 fields", id="unknown shorthand"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(CronError, match=problem):
        parse_cron(text)


def test_unknown_time_zone() -> None:
    with pytest.raises(CronError, match="unknown time zone 'Mars/Olympus'"):
        Schedule.parse("* * * * *", "Mars/Olympus")


@pytest.mark.parametrize(
    "expr,zone,after,expected",
    [
        pytest.param("0 3 * * 1", "Europe/Berlin", "2026-11-30 02:30", "2026-12-07 03:00 CET", id="monday 3am, a week on"),
        pytest.param("0 3 * * mon", "Europe/Berlin", "2026-11-29 12:00", "2026-11-30 03:00 CET", id="weekday by name"),
        pytest.param("*/15 * * * *", "UTC", "2026-01-01 10:07", "2026-01-01 10:15 UTC", id="step"),
        pytest.param("0 0 1,15 * *", "UTC", "2026-01-01 00:00", "2026-01-15 00:00 UTC", id="list, strictly after"),
        pytest.param("0 9 13 * 5", "UTC", "2026-02-06 10:00", "2026-02-13 09:00 UTC",
                     id="both day fields restricted: either matches (friday the 13th is both)"),
        pytest.param("0 9 13 * 5", "UTC", "2026-02-02 10:00", "2026-02-06 09:00 UTC",
                     id="both day fields restricted: a friday counts"),
        pytest.param("0 9 */10 * 5", "UTC", "2026-02-02 10:00", "2026-05-01 09:00 UTC",
                     id="a day field starting with * does not OR: a friday that is the 1st, 11th, 21st or 31st"),
        pytest.param("0 12 29 2 *", "UTC", "2026-03-01 00:00", "2028-02-29 12:00 UTC", id="leap day, two years on"),
        pytest.param("0 0 * * 7", "UTC", "2026-11-30 00:00", "2026-12-06 00:00 UTC", id="7 is sunday"),
        pytest.param("@daily", "America/New_York", "2026-07-01 12:00", "2026-07-02 00:00 EDT", id="shorthand in a zone"),
    ],
)
def test_next_firing(expr: str, zone: str, after: str, expected: str) -> None:
    assert local(Schedule.parse(expr, zone).next_after(at(after)), zone) == expected


@pytest.mark.parametrize(
    "expr,zone,start,expected",
    [
        # Berlin springs forward on 2024-03-31 at 02:00 CET -> 03:00 CEST.
        pytest.param("30 2 * * *", "Europe/Berlin", "2024-03-30 12:00",
                     ["2024-03-31 03:30 CEST", "2024-04-01 02:30 CEST", "2024-04-02 02:30 CEST"],
                     id="a skipped time fires once, right after the jump"),
        pytest.param("0 * * * *", "Europe/Berlin", "2024-03-30 23:30",
                     ["2024-03-31 01:00 CET", "2024-03-31 03:00 CEST", "2024-03-31 04:00 CEST"],
                     id="hourly across the gap: 02:00 does not exist and fires with 03:00, once"),
        # Berlin falls back on 2024-10-27 at 03:00 CEST -> 02:00 CET.
        pytest.param("30 2 * * *", "Europe/Berlin", "2024-10-26 12:00",
                     ["2024-10-27 02:30 CEST", "2024-10-28 02:30 CET"],
                     id="a repeated time fires once, at its first occurrence"),
        pytest.param("0 3 * * *", "Europe/Berlin", "2024-10-26 12:00",
                     ["2024-10-27 03:00 CET", "2024-10-28 03:00 CET"], id="3am right after the fall back, once"),
        # New York springs forward on 2024-03-10 at 02:00 EST -> 03:00 EDT.
        pytest.param("0 9 * * *", "America/New_York", "2024-03-09 00:00",
                     ["2024-03-09 09:00 EST", "2024-03-10 09:00 EDT", "2024-03-11 09:00 EDT"],
                     id="9am stays 9am local across the change (UTC moves)"),
    ],
)
def test_daylight_saving_changes(expr: str, zone: str, start: str, expected: list[str]) -> None:
    schedule = Schedule.parse(expr, zone)
    moment: dt.datetime | None = at(start)
    seen = []
    for _ in expected:
        moment = schedule.next_after(moment)  # type: ignore[arg-type]
        seen.append(local(moment, zone))
    assert seen == expected


def test_a_time_never_fires_twice_and_utc_instants_stay_in_order() -> None:
    schedule = Schedule.parse("*/30 * * * *", "Europe/Berlin")
    moment = at("2024-10-26 20:00")
    fired = []
    while moment < at("2024-10-27 06:00"):
        moment = schedule.next_after(moment)  # type: ignore[assignment]
        fired.append(moment)
    assert fired == sorted(set(fired))
    # 02:00 and 02:30 happen twice on the wall clock; each fires once.
    walls = [local(m, "Europe/Berlin")[11:16] for m in fired]
    assert walls.count("02:00") == 1 and walls.count("02:30") == 1


@pytest.mark.parametrize(
    "expr,zone,moment,expected",
    [
        pytest.param("0 3 * * *", "Europe/Berlin", "2026-11-30 10:00", "2026-11-30 03:00 CET", id="today's"),
        pytest.param("0 3 * * *", "Europe/Berlin", "2026-11-30 01:59", "2026-11-29 03:00 CET", id="yesterday's"),
        pytest.param("0 3 * * *", "Europe/Berlin", "2026-11-30 02:00", "2026-11-30 03:00 CET", id="at the slot itself"),
        pytest.param("0 0 1 1 *", "UTC", "2026-11-30 10:00", "2026-01-01 00:00 UTC", id="yearly, far back"),
    ],
)
def test_latest_firing(expr: str, zone: str, moment: str, expected: str) -> None:
    assert local(Schedule.parse(expr, zone).latest_at_or_before(at(moment)), zone) == expected


def test_a_missed_run_fires_once_however_many_slots_passed() -> None:
    hourly = Schedule.parse("@hourly")
    last = at("2026-11-30 03:00").timestamp()
    now = at("2026-11-30 09:20").timestamp()  # six slots missed while the town was down
    slot = due_slot(hourly, last, now)
    assert slot == at("2026-11-30 09:00").timestamp()
    assert due_slot(hourly, slot, now) is None  # once fired, nothing more until the next slot
    assert due_slot(hourly, slot, at("2026-11-30 10:00").timestamp()) == at("2026-11-30 10:00").timestamp()
    assert next_run(hourly, now) == at("2026-11-30 10:00").timestamp()


def test_a_schedule_that_never_fires_has_no_next_run() -> None:
    assert next_run(Schedule.parse("0 0 31 2 *"), at("2026-01-01 00:00").timestamp()) is None

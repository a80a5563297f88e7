"""Schedules: the Mayor's trigger desk on an injected clock, and a missed run firing once at `gt up`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gastown.context import Context
from gastown.ledger import triggers as trigger_rows
from gastown.roles.trigger_desk import TriggerDesk
from gastown.town import Town
from tests.helpers import gt_json, ledger_rows, retry_until, run_gt, set_config

EVERY_FIVE = '''
[triggers.every5]
rig = "app"
kind = "schedule"
schedule = "*/5 * * * *"
timezone = "Europe/Berlin"
title = "Sweep {{scheduledTime}}"
prompt = "Sweep the slot {{scheduledTime}} (fired {{timestamp}})."
'''
YEARLY = '''
[triggers.yearly]
rig = "app"
kind = "schedule"
agent = "demo"
schedule = "0 0 1 1 *"
title = "New year {{scheduledTime}}"
prompt = "Happy new year."
'''


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def requests(town: Path, trigger: str) -> list[dict[str, object]]:
    return ledger_rows(town, "SELECT * FROM trigger_requests WHERE trigger = ? ORDER BY received_at, rowid", trigger)


def test_a_schedule_fires_each_slot_once_on_an_injected_clock(rig_town: Path) -> None:
    with (rig_town / "gastown.toml").open("a") as handle:
        handle.write(EVERY_FIVE)
    now = [ts("2026-11-30 10:00:10")]
    ctx = Context(Town(rig_town), clock=lambda: now[0])
    desk = TriggerDesk(ctx)
    assert desk.step().fired == []  # first seen: its slots start now, none is owed
    now[0] = ts("2026-11-30 10:04:59")
    assert desk.step().fired == []
    now[0] = ts("2026-11-30 10:05:03")
    report = desk.step()
    assert len(report.fired) == 1 and report.queued == report.fired
    [row] = requests(rig_town, "every5")
    assert row["source"] == "schedule" and row["scheduled_for"] == ts("2026-11-30 10:05:00")
    assert row["state"] == "in_progress"  # its issue went to the sling queue in the same step
    issue = gt_json("issue", "show", str(row["issue"]), cwd=rig_town)
    assert issue["title"] == "Sweep 2026-11-30T10:05:00Z"
    assert issue["body"] == "Sweep the slot 2026-11-30T10:05:00Z (fired 2026-11-30T10:05:03Z)."
    assert [q["issue"] for q in ledger_rows(rig_town, "SELECT issue FROM sling_queue")] == [row["issue"]]
    assert desk.step().fired == []  # the same slot never fires twice

    # `gt trigger fire` runs it now, through the same door, and does not shift the schedule.
    fired = gt_json("trigger", "fire", "every5", cwd=rig_town)
    assert requests(rig_town, "every5")[-1]["source"] == "fire" and fired["issue"].startswith("app-")
    state = trigger_rows.get_trigger(ctx.ledger.connection(), "every5")
    assert state is not None and state.last_slot == ts("2026-11-30 10:05:00")

    # Paused, its slots pass unfired; resumed, the next slot fires (the skipped one is not made up).
    trigger_rows.pause(ctx.ledger, "every5", paused=True)
    now[0] = ts("2026-11-30 10:10:02")
    assert desk.step().skipped == ["every5@2026-11-30T10:10:00Z: paused"]
    trigger_rows.pause(ctx.ledger, "every5", paused=False)
    now[0] = ts("2026-11-30 10:12:00")
    assert desk.step().fired == []
    now[0] = ts("2026-11-30 10:15:01")
    assert len(desk.step().fired) == 1
    assert [r["scheduled_for"] for r in requests(rig_town, "every5") if r["source"] == "schedule"] == [
        ts("2026-11-30 10:05:00"), ts("2026-11-30 10:15:00")]


def test_a_schedule_at_its_in_flight_limit_skips_the_slot_and_says_so(rig_town: Path) -> None:
    with (rig_town / "gastown.toml").open("a") as handle:
        handle.write(EVERY_FIVE + "max_in_flight = 1\n")
    now = [ts("2026-11-30 10:00:10")]
    ctx = Context(Town(rig_town), clock=lambda: now[0])
    desk = TriggerDesk(ctx)
    desk.step()
    now[0] = ts("2026-11-30 10:05:01")
    assert len(desk.step().fired) == 1
    now[0] = ts("2026-11-30 10:10:01")  # the first is still in progress
    report = desk.step()
    assert report.fired == [] and "1 requests in flight" in report.skipped[0]
    events = ledger_rows(rig_town, "SELECT message FROM events WHERE kind = 'trigger' AND message LIKE '%skipped%'")
    assert len(events) == 1 and "2026-11-30T10:10:00Z" in str(events[0]["message"])


@pytest.mark.tmux
@pytest.mark.slow
def test_runs_missed_while_the_town_was_down_fire_once_at_gt_up(rig_town: Path, tmux_socket: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with (rig_town / "gastown.toml").open("a") as handle:
        handle.write(YEARLY)
    set_config(rig_town, "witness", {"patrol_interval": "0.5s"})
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    ctx = Context(Town(rig_town))
    with ctx.ledger.write() as conn:  # the town last ran three new years ago
        trigger_rows.ensure_trigger(conn, "yearly", now=ts("2023-06-01 00:00:00"))
        trigger_rows.set_last_slot(conn, "yearly", ts("2023-06-01 00:00:00"))
    try:
        run_gt("up", cwd=rig_town, check=True)
        [fired] = retry_until(lambda: requests(rig_town, "yearly"), timeout=60, what="the missed run to fire")
        newest = dt.datetime.now(dt.UTC).replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        assert fired["scheduled_for"] == newest.timestamp() and fired["source"] == "schedule"
        # Let the desk run several more cycles: nothing else fires for the slots before.
        retry_until(lambda: _desk_cycled_after(rig_town, float(str(fired["received_at"])) + 6), timeout=60,
                    what="later cycles of the trigger desk")
        assert len(requests(rig_town, "yearly")) == 1
        state = trigger_rows.get_trigger(ctx.ledger.connection(), "yearly")
        assert state is not None and state.last_slot == newest.timestamp()
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)


def _desk_cycled_after(town: Path, moment: float) -> bool:
    beats = ledger_rows(town, "SELECT at FROM heartbeats WHERE loop = 'triggers'")
    return bool(beats) and float(str(beats[0]["at"])) > moment

"""The Witness policy as a table: one snapshot in, the actions out. Pure, no tmux."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import pytest

from gastown.ledger.work import Hook, Spawn
from gastown.roles import witness_policy as wp
from gastown.screen import Screen

NOW = 10_000.0
POLICY = wp.Policy(spawn_grace=180, stall_after=900, idle_after=120, max_nudges=2, max_restarts=3, rate_limit_backoff=600)

SPAWN = Spawn(
    id="sp-1", issue="app-aaaaa", rig="app", polecat="ace", agent="demo", attempt=1, kind="fresh", status="running",
    observed="working", pane_id="%1", pid=1, log_path="/x.log", prompt_path="/x.md", started_at=NOW - 1000,
    ready_at=None, prompted_at=None, done_at=None, ended_at=None, end_reason=None, nudges=0, last_nudge_at=None,
    log_size=10, last_output_at=NOW - 5, last_line=None, last_lines=None,
)
HOOK = Hook(issue="app-aaaaa", rig="app", polecat="ace", branch="polecat/ace/app-aaaaa", agent="demo", spawn="sp-1",
            kind="fresh", note=None, restarts=0, created_at=NOW - 1000)
IDLE = Screen(ready=True, busy=False, dialog_keys=None, dialog=None, rate_limit=None)
BUSY = Screen(ready=True, busy=True, dialog_keys=None, dialog=None, rate_limit=None)
TRUST = Screen(ready=False, busy=False, dialog_keys=("Enter",), dialog="Trust this folder?", rate_limit=None)


def obs(**changes: object) -> wp.AgentObs:
    spawn_changes = {k[6:]: v for k, v in changes.items() if k.startswith("spawn_")}
    rest = {k: v for k, v in changes.items() if not k.startswith("spawn_")}
    base = dict(spawn=replace(SPAWN, **spawn_changes), current=True, pane_alive=True, exit_status=None,
                last_output_at=NOW - 5, screen=BUSY, idle_since=None, limited=None)
    base.update(rest)
    return wp.AgentObs(**base)  # type: ignore[arg-type]


def snap(*agents: wp.AgentObs, **changes: object) -> wp.Snapshot:
    base: dict[str, object] = dict(rig="app", agents=agents, orphan_hooks=(), restarts={"app-aaaaa": 0})
    base.update(changes)
    return wp.Snapshot(**base)  # type: ignore[arg-type]


def kinds(actions: list[wp.Action]) -> list[str]:
    return [type(a).__name__ + (f":{a.state}" if isinstance(a, wp.Observe) else "") for a in actions]


class Row(NamedTuple):
    test_id: str
    snapshot: wp.Snapshot
    expected: list[str]


ROWS = [
    Row("busy-and-talking", snap(obs()), ["Observe:working"]),
    Row("pane-died", snap(obs(pane_alive=False, exit_status=3)), ["Observe:dead", "Restart"]),
    Row("died-too-often", snap(obs(pane_alive=False), restarts={"app-aaaaa": 3}), ["Observe:dead", "Block"]),
    Row("died-while-paused", snap(obs(pane_alive=False), paused=True), ["Observe:dead"]),
    Row("silent-first-nudge", snap(obs(last_output_at=NOW - 901)), ["Observe:stalled", "Nudge"]),
    Row("silent-after-nudges", snap(obs(last_output_at=NOW - 2000, spawn_nudges=2, spawn_last_nudge_at=NOW - 950)), ["Observe:stalled", "Restart"]),
    Row("silent-since-a-slow-start-but-just-prompted", snap(obs(last_output_at=NOW - 2000, spawn_prompted_at=NOW - 1)), ["Observe:working"]),
    Row("silent-long-after-the-prompt", snap(obs(last_output_at=NOW - 2000, spawn_prompted_at=NOW - 901)), ["Observe:stalled", "Nudge"]),
    Row("idle-before-the-prompt-arrived", snap(obs(screen=IDLE, idle_since=NOW - 200, spawn_prompted_at=NOW - 2)), ["Observe:idle"]),
    Row("nudged-recently", snap(obs(last_output_at=NOW - 2000, spawn_nudges=1, spawn_last_nudge_at=NOW - 10)), ["Observe:working"]),
    Row("idle-briefly", snap(obs(screen=IDLE, idle_since=NOW - 30)), ["Observe:idle"]),
    Row("idle-long-with-work", snap(obs(screen=IDLE, idle_since=NOW - 200)), ["Observe:idle", "Nudge"]),
    Row("idle-nudged-out", snap(obs(screen=IDLE, idle_since=NOW - 2000, spawn_nudges=2, spawn_last_nudge_at=NOW - 500)), ["Observe:idle", "Restart"]),
    Row("dialog-while-running", snap(obs(screen=TRUST)), ["Observe:working", "AnswerDialog"]),
    Row("rate-limited", snap(obs(limited="usage limit reached · resets in 60s")), ["Observe:idle", "Hold"]),
    Row("held-stays-quiet", snap(obs(last_output_at=NOW - 5000), holds={"demo": NOW + 100}), ["Observe:idle"]),
    Row("hold-expired", snap(obs(), holds={"demo": NOW - 1}, wake_after_hold=frozenset({"sp-1"})), ["Release", "Observe:working", "Nudge"]),
    Row("starting-in-starters-window", snap(obs(spawn_status="starting", spawn_started_at=NOW - 5)), ["Observe:spawning"]),
    Row("starting-dialog", snap(obs(spawn_status="starting", spawn_started_at=NOW - 60, screen=TRUST)), ["Observe:spawning", "AnswerDialog"]),
    Row("never-ready", snap(obs(spawn_status="starting", spawn_started_at=NOW - 200, screen=None)), ["Observe:stalled", "Restart"]),
    Row("done-lingering", snap(obs(spawn_status="done", spawn_done_at=NOW - 61)), ["Observe:done", "EndPane"]),
    Row("done-just-now", snap(obs(spawn_status="done", spawn_done_at=NOW - 1)), ["Observe:done"]),
    Row("done-finishing-its-turn", snap(obs(spawn_status="done", spawn_done_at=NOW - 10)), ["Observe:done"]),
    Row("replaced-run", snap(obs(current=False)), ["EndPane"]),
    Row("issue-blocked", snap(obs(), blocked=frozenset({"sp-1"})), ["Observe:done", "EndPane"]),
    Row("exited-clean-after-work", snap(obs(pane_alive=False, exit_status=0, new_work=True)), ["Observe:done", "Submit"]),
    # Seen between its row and its window (no pane yet): it is being launched, not dead.
    Row("starting-without-a-pane-yet", snap(obs(pane_alive=False, spawn_status="starting", spawn_started_at=NOW - 1,
                                                spawn_pane_id=None)), ["Observe:spawning"]),
    Row("starting-without-a-pane-for-too-long", snap(obs(pane_alive=False, spawn_status="starting",
                                                         spawn_started_at=NOW - 60, spawn_pane_id=None)),
        ["Observe:dead", "Restart"]),
    # A headless run that worked and exited before its starter marked it running (a loaded machine).
    Row("exited-clean-after-work-while-starting", snap(obs(pane_alive=False, exit_status=0, new_work=True,
                                                           spawn_status="starting")), ["Observe:done", "Submit"]),
    Row("exited-clean-without-work", snap(obs(pane_alive=False, exit_status=0)), ["Observe:dead", "Restart"]),
    Row("cannot-submit-idle-after-work", snap(obs(screen=IDLE, idle_since=NOW - 6, new_work=True, gastown_submits=True)), ["Observe:idle", "Submit"]),
    Row("cannot-submit-idle-no-work", snap(obs(screen=IDLE, idle_since=NOW - 6, gastown_submits=True)), ["Observe:idle"]),
    Row("can-submit-itself-idle-after-work", snap(obs(screen=IDLE, idle_since=NOW - 6, new_work=True)), ["Observe:idle"]),
    Row("orphan-hook", snap(orphan_hooks=(HOOK,)), ["Restart"]),
    Row("orphan-hook-held", snap(orphan_hooks=(HOOK,), holds={"demo": NOW + 60}), []),
    Row("orphan-hook-paused", snap(orphan_hooks=(HOOK,), paused=True), []),
]


@pytest.mark.parametrize(list(Row._fields), ROWS, ids=[r.test_id for r in ROWS])
def test_assess(test_id: str, snapshot: wp.Snapshot, expected: list[str]) -> None:
    assert kinds(wp.assess(snapshot, NOW, POLICY)) == expected


def test_rate_limit_hold_lasts_until_the_reset_the_notice_names() -> None:
    [_, hold] = wp.assess(snap(obs(limited="demo: usage limit reached · resets in 42s")), NOW, POLICY)
    assert isinstance(hold, wp.Hold) and hold.until == NOW + 42 and hold.runtime == "demo"


def test_rate_limit_without_a_time_backs_off() -> None:
    [_, hold] = wp.assess(snap(obs(limited="Rate limit reached")), NOW, POLICY)
    assert isinstance(hold, wp.Hold) and hold.until == NOW + POLICY.rate_limit_backoff

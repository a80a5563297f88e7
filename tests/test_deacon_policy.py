"""The Deacon's pure policy: a table of named rows."""

from __future__ import annotations

import pytest

from gastown.roles import deacon_policy as dp
from gastown.states import SpawnStatus

NOW = 1_800_000_000.0
POLICY = dp.DeaconPolicy(idle_reap_after=600.0)
FRESH_BACKUP = {"last_backup_at": NOW - 60}


def snap(**fields: object) -> dp.DeaconSnapshot:
    return dp.DeaconSnapshot(**{**FRESH_BACKUP, **fields})  # type: ignore[arg-type]


PANE = dp.TaggedPane("%3", "app:rivet", "sp-1")


@pytest.mark.parametrize(
    "snapshot,expected",
    [
        pytest.param(snap(), [], id="nothing to do"),
        pytest.param(snap(stale_loops=("witness:app",)), [dp.RestartLoop("witness:app")], id="stale loop"),
        pytest.param(snap(tagged_panes=(PANE,), spawn_status={"sp-1": SpawnStatus.RUNNING}), [],
                     id="window of a running spawn is left alone"),
        pytest.param(snap(tagged_panes=(PANE,), spawn_status={"sp-1": SpawnStatus.DONE}), [],
                     id="window of a finished spawn is the Witness's to end"),
        pytest.param(snap(tagged_panes=(PANE,), spawn_status={"sp-1": SpawnStatus.ENDED}),
                     [dp.CloseWindow("%3", "app:rivet", "sp-1")], id="window of an ended spawn"),
        pytest.param(snap(tagged_panes=(PANE,)), [dp.CloseWindow("%3", "app:rivet", "sp-1")],
                     id="window of an unknown spawn"),
        pytest.param(snap(finished=(dp.Finished("sp-2", "app", "rivet", NOW - 601),)),
                     [dp.EndFinished("sp-2", "app", "rivet")], id="finished and idle too long"),
        pytest.param(snap(finished=(dp.Finished("sp-2", "app", "rivet", NOW - 30),)), [], id="finished just now"),
        pytest.param(snap(finished=(dp.Finished("sp-2", "app", "rivet", None),)), [], id="finished, no time"),
        pytest.param(snap(launch_files={"/l/old.json": NOW - 601, "/l/new.json": NOW - 5}),
                     [dp.RemoveLaunchFile("/l/old.json")], id="stale launch file only"),
        pytest.param(snap(ended_runs=(dp.EndedRun("sp-3", NOW - 601), dp.EndedRun("sp-4", NOW - 10))),
                     [dp.RemoveHome("sp-3")], id="private home of an old run only"),
        pytest.param(snap(lost_worktrees=(dp.LostWorktree("app", "/t/app/polecats/ghost", "main"),)),
                     [dp.ReapWorktree("app", "/t/app/polecats/ghost", "main")], id="worktree of an unknown polecat"),
        pytest.param(snap(open_escalations=(dp.OpenEscalation("esc-1", NOW - 5 * 3600),
                                            dp.OpenEscalation("esc-2", NOW - 60))),
                     [dp.AgeEscalation("esc-1")], id="only the old escalation ages"),
        pytest.param(snap(convoys_due=True), [dp.LandConvoys()], id="a convoy to land"),
        pytest.param(dp.DeaconSnapshot(), [dp.BackupLedger()], id="no backup yet"),
        pytest.param(dp.DeaconSnapshot(last_backup_at=NOW - 7 * 3600), [dp.BackupLedger()], id="backup too old"),
    ],
)
def test_assess(snapshot: dp.DeaconSnapshot, expected: list[dp.Action]) -> None:
    assert dp.assess(snapshot, NOW, POLICY) == expected


def test_assess_orders_loops_first_and_backups_last() -> None:
    everything = dp.DeaconSnapshot(stale_loops=("deacon",), convoys_due=True, tagged_panes=(PANE,))
    kinds = [type(a).__name__ for a in dp.assess(everything, NOW, POLICY)]
    assert kinds == ["RestartLoop", "CloseWindow", "LandConvoys", "BackupLedger"]

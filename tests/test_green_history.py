"""Green history: every commit on the target's first-parent history passed the gates,
so `git bisect --first-parent` never stops on a commit the merge queue knew was red."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gastown.ledger.mrs import get_mr
from gastown.refinery.engine import Refinery
from gastown.states import MRState
from tests.helpers import git
from tests.refinery_support import RecordingSlinger, check_gate, commit_on, configure_rig, open_ctx, plumb, submit


def gate_every_first_parent_commit(upstream: Path, tmp_path: Path, gate: str) -> list[str]:
    """Re-run ``gate`` on each commit of ``main``'s first-parent history; returns the red ones."""
    clone = tmp_path / "bisect"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    red = []
    for sha in plumb(upstream, "rev-list", "--first-parent", "main").splitlines():
        git(clone, "checkout", "-q", "--detach", sha)
        if subprocess.run(["sh", "-c", gate], cwd=clone, capture_output=True).returncode != 0:
            red.append(sha)
    return red


@pytest.mark.parametrize("strategy", ["rebase", "squash", "merge"])
def test_a_fix_cycle_never_lands_the_commit_that_failed(rig_town: Path, upstream: Path, tmp_path: Path,
                                                         strategy: str) -> None:
    gate = check_gate(tmp_path / "runs.txt")
    configure_rig(rig_town, gates=[gate], merge=strategy, batch=1)
    ctx = open_ctx(rig_town)
    slinger = RecordingSlinger()
    refinery = Refinery(ctx, "app", slinger=slinger, hold_probe_interval=0)
    red = submit(ctx, {"feature.txt": "BROKEN first try\n"}, polecat="ace")
    assert refinery.run_once().failed == [red.id]
    assert slinger.calls and slinger.calls[0]["kind"] == "fix"
    # The fix cycle: the polecat starts from the failed commit and commits the fix on top.
    fixed = submit(ctx, {"feature.txt": "works now\n"}, issue=red.issue, polecat="ace", parent=red.commit_sha,
                   message="fix the feature")
    assert refinery.run_once().merged == [fixed.id]

    assert gate_every_first_parent_commit(upstream, tmp_path, gate) == []
    first_parent = plumb(upstream, "rev-list", "--first-parent", "main").splitlines()
    assert red.commit_sha not in first_parent
    assert len(first_parent) == 2, "one commit for the whole MR on top of the initial one"
    assert get_mr(ctx.ledger.connection(), red.id).state == MRState.REJECTED, "the failed MR leaves `gt mq list`"


def test_rebase_keeps_a_one_commit_mr_as_it_is_and_squashes_several(rig_town: Path, upstream: Path,
                                                                      tmp_path: Path) -> None:
    configure_rig(rig_town, gates=[check_gate(tmp_path / "runs.txt")], merge="rebase", batch=4)
    ctx = open_ctx(rig_town)
    hub = ctx.town.hub_path("app")
    base = plumb(hub, "rev-parse", "refs/remotes/origin/main")
    single = submit(ctx, {"one.txt": "one\n"}, message="a single commit")
    step = commit_on(hub, base, {"two.txt": "half\n"}, "step one")
    several = submit(ctx, {"two.txt": "whole\n"}, parent=step, message="step two")

    report = Refinery(ctx, "app", slinger=RecordingSlinger(), hold_probe_interval=0).run_once()

    assert report.merged == [single.id, several.id]
    log = plumb(upstream, "log", "--first-parent", "--format=%s%x00%b%x01", f"{base}..main").split("\x01")
    entries = [e.strip("\n") for e in log if e.strip()]
    assert len(entries) == 2
    newest_subject, newest_body = entries[0].split("\x00")
    assert newest_subject == "step two" and "* step one" in newest_body and f"Gastown-MR: {several.id}" in newest_body
    assert entries[1].split("\x00")[0] == "a single commit"
    assert plumb(upstream, "log", "-1", "--format=%P", "main^").split() == [base], "linear, no merge commits"

"""`gt demo` end to end: a fresh town, six issues, demo agents, the merge queue, green upstream."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_gt

pytestmark = [pytest.mark.tmux, pytest.mark.slow]


def test_gt_demo_merges_everything_and_cleans_up(tmp_path: Path) -> None:
    result = run_gt("demo", "--json", "--think", "0.5", cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["merged"] == summary["issues"] == 6
    assert summary["upstream_tests_green"] is True
    assert summary["conflicts"] >= 1 and summary["red_gates"] >= 1, "the demo shows a conflict and a red gate fixed"
    assert summary["changes_requested"] >= 1 and summary["reviews_blocked"] >= 1, "and an MR stopped by review"
    assert summary["reviews"] >= 7, "every MR is reviewed (six issues, plus the fix cycles)"
    assert any("eval" in line for line in summary["roast"]), summary["roast"]
    assert summary["problems"] == []
    assert summary["tokens"] > 0
    assert summary["convoy"].startswith("cv-") and summary["convoy_landed"] is True, "the demo's issues travel as one convoy"
    # cleaned up: the temp town is gone and so is its tmux server
    assert not Path(summary["town"]).exists()
    listed = subprocess.run(["tmux", "-L", summary["socket"], "ls"], capture_output=True, text=True)
    assert listed.returncode != 0


def test_gt_demo_keep_leaves_a_town_to_look_around(tmp_path: Path) -> None:
    result = run_gt("demo", "--keep", "--think", "0.3", cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    town = next(line.split("cd ", 1)[1] for line in result.stdout.splitlines() if line.strip().startswith("cd "))
    try:
        status = json.loads(run_gt("status", "--json", cwd=Path(town), check=True).stdout)
        assert status["issues"]["closed"] == 6 and status["mayor"]["running"]
        assert "6 of 6 issues merged" in result.stdout and "gt attach" in result.stdout
        [convoy] = json.loads(run_gt("convoy", "list", "--json", cwd=Path(town), check=True).stdout)
        assert (convoy["name"], convoy["status"], convoy["closed"], convoy["total"]) == ("gastown demo", "closed", 6, 6)
        assert f"convoy       {convoy['id']} (landed" in result.stdout
        assert "stopped by review" in result.stdout and "calc/multiply.py:3 [critical]" in result.stdout
    finally:
        run_gt("down", "--timeout", "1", cwd=Path(town), env={"GT_TMUX_SOCKET": _socket_of(Path(town))})
        subprocess.run(["tmux", "-L", _socket_of(Path(town)), "kill-server"], capture_output=True)


def _socket_of(town: Path) -> str:
    from gastown.town import socket_name_for

    return socket_name_for(town)

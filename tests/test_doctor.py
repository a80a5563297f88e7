"""`gt doctor`: each problem named, with its fix, and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import gt_json, run_gt, set_config


def doctor(town: Path) -> tuple[int, dict[str, dict[str, object]]]:
    result = run_gt("doctor", "--json", cwd=town)
    doc = json.loads(result.stdout)
    assert doc["ok"] == (result.returncode == 0)
    return result.returncode, {c["name"]: c for c in doc["checks"]}


def test_healthy_town_passes(rig_town: Path) -> None:
    set_config(rig_town, "town", {"default_agent": "demo"})
    code, checks = doctor(rig_town)
    assert code == 0, checks
    assert checks["rig app"]["ok"] and checks["runtime demo"]["ok"] and checks["tmux"]["ok"]


def test_missing_runtime_and_unreachable_upstream_are_named_with_fixes(rig_town: Path, tmp_path: Path) -> None:
    set_config(rig_town, "rigs.app", {"agent": "ghostbot"})
    set_config(rig_town, "agents.ghostbot", {"command": ["no-such-ghostbot"]})
    hub = rig_town / "app" / "hub.git"
    (hub / "config").write_text((hub / "config").read_text().replace(str(tmp_path / "up" / "upstream.git"), "/nonexistent/x.git"))
    code, checks = doctor(rig_town)
    assert code == 1
    assert not checks["runtime ghostbot"]["ok"] and "no-such-ghostbot" in checks["runtime ghostbot"]["detail"]
    assert not checks["rig app"]["ok"] and checks["rig app"]["fix"]


@pytest.mark.tmux
def test_hooked_work_without_a_mayor_says_gt_up(rig_town: Path, tmux_socket: str) -> None:
    set_config(rig_town, "town", {"default_agent": "demo"})
    issue = gt_json("issue", "create", "parked", "--body", "~~~demo\nthink 30\n~~~", cwd=rig_town)["id"]
    gt_json("sling", issue, cwd=rig_town)
    run_gt("down", "--polecats", "--timeout", "1", cwd=rig_town, check=True)
    code, checks = doctor(rig_town)
    assert code == 1
    assert "gt up" in str(checks["hooked work"]["fix"])


def test_bad_config_is_one_failing_check(town: Path) -> None:
    (town / "gastown.toml").write_text("[town]\nmax_polecats = 0\n")
    code, checks = doctor(town)
    assert code == 1 and "town.max_polecats: must be ≥ 1" in str(checks["config"]["detail"])

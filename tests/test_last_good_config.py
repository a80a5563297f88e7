"""A broken gastown.toml never locks the user out (issue 11, defect 3).

The commands that only read or stop run on the last config that validated and say, in one
line on stderr, that the file has an error and where; commands that would act on the new
config refuse; the Mayor and its helpers (the prompt-pasting `gt _start`, `gt done`) carry
on with the last good one, and `gt status` / `gt feed` show the broken state.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import gt_json, ledger_rows, retry_until, run_gt, set_config

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

BROKEN = "\n[[[\n"
EXIT_CONFIG = 3


def break_config(town: Path) -> str:
    """Append a TOML syntax error; return the line it is on."""
    config = town / "gastown.toml"
    text = config.read_text()
    config.write_text(text + BROKEN)
    return f"line {len((text + BROKEN).splitlines())}"


def test_reading_and_stopping_commands_run_on_the_last_good_config(rig_town: Path) -> None:
    issue = gt_json("issue", "create", "still listed", cwd=rig_town)["id"]
    where = break_config(rig_town)

    for args in (["status"], ["agents"], ["issue", "list"], ["issue", "show", issue], ["mq", "list"],
                 ["feed", "--once", "--plain"], ["polecat", "list"], ["down"]):
        done = run_gt(*args, cwd=rig_town)
        assert done.returncode == 0, (args, done.stderr)
        warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert len(warning) == 1 and where in warning[0] and "last good gastown.toml" in warning[0], (args, done.stderr)
        assert "Traceback" not in done.stderr

    shown = gt_json("status", cwd=rig_town)
    assert where in shown["config_error"]
    assert [r["name"] for r in shown["rigs"]] == ["app"], "the last good config's rigs"
    page = run_gt("status", cwd=rig_town).stdout
    assert "gastown.toml has an error, so the last good config is in force" in page

    # Commands that would act on the new config refuse, with the error and its spot.
    for args in (["up"], ["sling", issue], ["rig", "add", "other", str(rig_town)], ["issue", "create", "x"]):
        refused = run_gt(*args, cwd=rig_town)
        assert refused.returncode == EXIT_CONFIG, (args, refused.stdout, refused.stderr)
        assert where in refused.stderr and "Traceback" not in refused.stderr

    # Fixed again: no warning, no config_error.
    config = rig_town / "gastown.toml"
    config.write_text(config.read_text().replace(BROKEN, "\n"))
    again = run_gt("status", "--json", cwd=rig_town)
    assert again.returncode == 0 and "warning" not in again.stderr
    assert gt_json("status", cwd=rig_town)["config_error"] is None


def test_a_town_whose_file_never_validated_refuses_everything(town: Path) -> None:
    (town / ".gastown" / "run" / "config.json").unlink(missing_ok=True)  # no last good config
    where = break_config(town)
    done = run_gt("status", cwd=town)
    assert done.returncode == EXIT_CONFIG and where in done.stderr and "Traceback" not in done.stderr


def test_the_mayor_and_its_helpers_carry_on_with_a_broken_file(rig_town: Path, tmux_socket: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A crashed agent is restarted and given its prompt by `gt _start`, and its `gt done`
    is taken, while gastown.toml does not parse; the Mayor says so in the feed."""
    set_config(rig_town, "witness", {"patrol_interval": "0.3s", "spawn_grace": "30s", "stop_timeout": "2s"})
    set_config(rig_town, "rigs.app", {"agent": "demo"})
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    try:
        run_gt("up", cwd=rig_town, check=True)
        body = "~~~demo\nthink 60 @first\n~~~\n~~~demo\nwrite after.txt @retry\nwritten on the last good config\n~~~"
        issue = gt_json("issue", "create", "survive a typo", "--body", body, cwd=rig_town)["id"]
        slung = gt_json("sling", issue, cwd=rig_town)
        retry_until(lambda: ledger_rows(rig_town, "SELECT 1 FROM spawns WHERE issue = ? AND status = 'running'", issue),
                    timeout=30, what="the agent to get its task")
        break_config(rig_town)
        retry_until(lambda: ledger_rows(rig_town, "SELECT 1 FROM events WHERE message LIKE 'config change rejected%'"),
                    timeout=30, what="the Mayor to reject the edit")

        pid = int(subprocess.run(["tmux", "-L", tmux_socket, "display", "-p", "-t", slung["pane"], "#{pane_pid}"],
                                 capture_output=True, text=True, check=True).stdout)
        os.kill(pid, signal.SIGKILL)

        retry_until(lambda: gt_json("issue", "show", issue, cwd=rig_town)["status"] in ("in_review", "closed"),
                    timeout=90, what="the restarted agent to finish and submit on the last good config")
        runs = ledger_rows(rig_town, "SELECT attempt, kind FROM spawns WHERE issue = ? ORDER BY started_at", issue)
        assert [(r["attempt"], r["kind"]) for r in runs] == [(1, "fresh"), (2, "resume")]
        [mr] = ledger_rows(rig_town, "SELECT * FROM mrs WHERE issue = ?", issue)
        assert mr["branch"] == slung["branch"]
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)

"""`gt down --polecats` never takes the town's tmux server (and the Mayor) down with it.

The cause, found by reproducing it: tmux up to 3.4 crashes when ``paste-buffer`` targets
a dead pane (tmux/tmux#3830). `gt down --polecats` kills agents whose panes stay dead
(remain-on-exit) until their windows are closed; a prompt being pasted by the starter in
that moment crashed the whole server, so the Mayor got SIGHUP and stopped.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from gastown.errors import NotRunning
from gastown.tmux.driver import Tmux
from tests.helpers import gt_json, ledger_rows, retry_until, run_gt, set_config

pytestmark = pytest.mark.tmux


def server_pid(socket: str) -> str:
    return subprocess.run(["tmux", "-L", socket, "display-message", "-p", "#{pid}"],
                          capture_output=True, text=True).stdout.strip()


def test_a_paste_into_a_dead_pane_leaves_the_server_running(tmux_socket: str, tmp_path: Path) -> None:
    tmux = Tmux(tmux_socket, conf_path=tmp_path / "tmux.conf")
    tmux.new_window("keep", "alive", cwd=tmp_path, env={}, argv=["sleep", "600"])
    dead = tmux.new_window("keep", "dead", cwd=tmp_path, env={}, argv=["true"])
    retry_until(lambda: tmux.display(dead, "#{pane_dead}") == "1", timeout=10, what="the pane to die")
    before = server_pid(tmux_socket)
    with pytest.raises(NotRunning, match="nothing was pasted"):
        tmux.paste(dead, "a prompt\nof two lines")
    assert server_pid(tmux_socket) == before, "the tmux server crashed"
    assert tmux.cmd("list-buffers", "-F", "#{buffer_name}").stdout.strip() == "", "the private buffer is left behind"
    live = tmux.new_window("keep", "live", cwd=tmp_path, env={}, argv=["cat"])
    tmux.paste(live, "hello there")
    retry_until(lambda: "hello there" in tmux.capture(live), timeout=10, what="the paste into a live pane")


@pytest.mark.slow
def test_sling_then_down_polecats_in_a_loop_keeps_the_mayor(rig_town: Path, tmux_socket: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop that reproduced it: sling, at once `gt down --polecats`, four times over."""
    set_config(rig_town, "rigs.app", {"agent": "demo"})
    set_config(rig_town, "witness", {"patrol_interval": "0.3s", "stop_timeout": "2s"})
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    try:
        run_gt("up", cwd=rig_town, check=True)
        mayor = int((rig_town / ".gastown" / "run" / "mayor.pid").read_text())
        server = server_pid(tmux_socket)
        for n in range(4):
            issue = gt_json("issue", "create", f"try {n}", cwd=rig_town)["id"]
            gt_json("sling", issue, cwd=rig_town)
            down = gt_json("down", "--polecats", cwd=rig_town)
            assert down["mayor_stopped"] is False
            time.sleep(0.5)  # let a starter that was mid-paste reach tmux
            assert server_pid(tmux_socket) == server, f"try {n}: the town's tmux server died"
            os.kill(mayor, 0)
            run_gt("up", cwd=rig_town, check=True)
        messages = [row["message"] for row in ledger_rows(rig_town, "SELECT message FROM events")]
        assert not [m for m in messages if "server exited" in m or m.startswith("Mayor stopped")]
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)

"""Time from `gt sling` to the agent process running in its pane, against a floor measured
in the same run: `git worktree add` + `tmux new-window` + the process starting.

Run: .venv/bin/python bench/spawn.py
Targets: in-process sling() <= 2x the floor; `gt sling` from a shell <= 8x (issue 10).

The agent is a one-line runtime that touches a marker file as its first act, so "running"
is observed from outside without polling tmux. Four figures are printed:
- floor: the bare git + tmux + process start, nothing else;
- sling(): gastown's spawn path as the Mayor's scheduler runs it (ledger, name pool,
  fresh-fetch check, worktree, prompt, tagged and piped window, exec trampoline);
- `gt sling`, Mayor up: the installed `gt` from a shell, the town's Mayor running (the
  normal case after `gt up`): the CLI starts, hands the sling to the Mayor over its
  socket, and the Mayor, with config, git and tmux warm, runs the same sling();
- `gt sling`, no Mayor: the CLI does all of it itself (config validation, imports).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _town import bench_town, git, machine  # noqa: E402

TRIALS = 8
RUNTIME = """
[agents.marker]
command = ["sh", "-c", "touch \\"$GT_TOWN/started-$GT_ISSUE\\"; exec sleep 600"]
prompt = "paste"
ready_delay = "1h"
"""


def wait_for(path: Path, started: float, timeout: float = 20.0) -> float:
    """Seconds from ``started`` (``time.time()``) to ``path`` appearing, read from its mtime:
    exact however lazily we poll, so the polling steals no CPU from what is measured."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.005)
    return path.stat().st_mtime - started


def floor(town: Path, socket: str) -> list[float]:
    hub = town / "app" / "hub.git"
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "floor", "--", "sleep", "600"], check=True)
    times = []
    for n in range(TRIALS):
        marker = town / f"floor-{n}"
        started = time.time()
        git(hub, "worktree", "add", "-q", "-b", f"floor/{n}", str(town / "floor" / str(n)), "refs/remotes/origin/main")
        subprocess.run(
            ["tmux", "-L", socket, "new-window", "-d", "-t", "=floor:", "-c", str(town / "floor" / str(n)),
             "--", "sh", "-c", f"touch {marker}; exec sleep 600"],
            check=True,
        )
        times.append(wait_for(marker, started))
    return times


def in_process(town: Path) -> list[float]:
    from gastown.ledger import issues
    from gastown.context import Context
    from gastown.roles.polecat import sling
    from gastown.town import Town

    ctx = Context(Town(town))
    ids = [issues.create(ctx.ledger, title=f"bench {n}", body="", rig="app", priority=2, prefixes=ctx.config.rig_prefixes()).id for n in range(TRIALS + 1)]
    sling(ctx, ids[0], agent="marker")  # warm: imports, first fetch, tmux session
    times = []
    for issue in ids[1:]:
        started = time.time()
        sling(ctx, issue, agent="marker")
        # sling() returns only after its start-up check; the marker's mtime says when the agent ran.
        times.append(wait_for(town / f"started-{issue}", started))
        time.sleep(0.5)  # let the detached starter settle so runs do not overlap
    return times


def from_cli(town: Path, label: str) -> list[float]:
    from gastown.ledger import issues
    from gastown.context import Context
    from gastown.town import Town

    gt = str(Path(sys.executable).parent / "gt")
    ctx = Context(Town(town))
    times = []
    for n in range(TRIALS):
        issue = issues.create(ctx.ledger, title=f"cli {label} {n}", body="", rig="app", priority=2,
                              prefixes=ctx.config.rig_prefixes()).id
        started = time.time()
        proc = subprocess.Popen([gt, "sling", issue, "--agent", "marker"], cwd=town, stdout=subprocess.DEVNULL)
        times.append(wait_for(town / f"started-{issue}", started))
        proc.wait()
        time.sleep(0.5)
    return times


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what users run: compiled modules
    with bench_town(RUNTIME) as town:
        socket = os.environ["GT_TMUX_SOCKET"]
        base = statistics.median(floor(town, socket))
        inproc = statistics.median(in_process(town))
        alone = statistics.median(from_cli(town, "alone"))
        gt = [sys.executable, "-m", "gastown"]
        subprocess.run([*gt, "up"], cwd=town, check=True, capture_output=True)
        try:
            mayor = statistics.median(from_cli(town, "mayor"))
        finally:
            subprocess.run([*gt, "down"], cwd=town, capture_output=True)
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.1f}; median of {TRIALS} spawns each")
    print(f"floor (worktree add + new-window + start) {base * 1000:7.1f} ms   1.00x")
    print(f"sling() to agent running                  {inproc * 1000:7.1f} ms   {inproc / base:4.2f}x   target <= 2x")
    verdict = "OK" if mayor / base <= 8 else "MISSED"
    print(f"`gt sling` to agent running, Mayor up     {mayor * 1000:7.1f} ms   {mayor / base:4.2f}x   target <= 8x {verdict}")
    print(f"`gt sling` to agent running, no Mayor     {alone * 1000:7.1f} ms   {alone / base:4.2f}x")


if __name__ == "__main__":
    main()

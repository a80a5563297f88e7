"""What one Witness patrol costs at 10 and 50 live agents, and the Mayor's CPU while they idle.

Run: .venv/bin/python bench/patrol.py
Targets: a patrol of 50 agents ≤ 50 ms, made of ONE tmux call plus file stats;
the Mayor ≤ 3% of one core while 50 agents idle.

The floor, measured in the same run, is the unavoidable part: one `tmux list-panes -a`
plus a stat of every agent's log.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _town import bench_town, machine  # noqa: E402

RUNTIME = """
[agents.idler]
command = ["tail", "-f", "/dev/null", "{prompt_file}"]
prompt = "arg"
ready_delay = "0.1s"
"""
PATROLS = 30
IDLE_SECONDS = 20.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    from gastown.ledger import issues
    from gastown.context import Context
    from gastown.roles.polecat import sling
    from gastown.roles.witness import Witness
    from gastown.town import Town

    rows = []
    with bench_town(RUNTIME) as town:
        ctx = Context(Town(town))
        calls = {"n": 0}
        original = ctx.tmux.cmd

        def counted(*args: str, **kwargs: object):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            return original(*args, **kwargs)  # type: ignore[arg-type]

        live = 0
        for size in (10, 50):
            for n in range(live, size):
                issue = issues.create(ctx.ledger, title=f"idle {n}", body="", rig="app", priority=2, prefixes=ctx.config.rig_prefixes()).id
                sling(ctx, issue, agent="idler")
            live = size
            time.sleep(3)  # starters mark them running; logs settle
            witness = Witness(ctx, "app")
            witness.patrol()  # first look reads every screen once
            ctx.tmux.cmd = counted  # type: ignore[method-assign]
            times, tmux_calls, captures = [], [], witness.captures
            for _ in range(PATROLS):
                calls["n"] = 0
                started = time.perf_counter()
                witness.patrol()
                times.append(time.perf_counter() - started)
                tmux_calls.append(calls["n"])
            ctx.tmux.cmd = original  # type: ignore[method-assign]
            logs = [s for s in Path(town / ".gastown" / "logs" / "app").rglob("*.log")]
            floors = []
            for _ in range(PATROLS):
                started = time.perf_counter()
                ctx.tmux.list_panes()
                for log in logs:
                    log.stat()
                floors.append(time.perf_counter() - started)
            rows.append((size, statistics.median(times), statistics.median(floors), max(tmux_calls), witness.captures - captures))

        subprocess.run([sys.executable, "-m", "gastown", "up"], cwd=town, check=True, capture_output=True)
        pid = int((town / ".gastown" / "run" / "mayor.pid").read_text())
        time.sleep(3)
        before, started = cpu_seconds(pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        cpu = (cpu_seconds(pid) - before) / (time.monotonic() - started)
        subprocess.run([sys.executable, "-m", "gastown", "down", "--timeout", "1"], cwd=town, capture_output=True)

    print(f"machine: {machine()}; median of {PATROLS} patrols")
    for size, patrol, floor, tmux_calls, captures in rows:
        print(
            f"{size:3d} agents: patrol {patrol * 1000:6.1f} ms   floor {floor * 1000:5.1f} ms   "
            f"{patrol / floor:4.1f}x floor   tmux calls/patrol {tmux_calls}   pane reads {captures}"
            + ("   target <= 50 ms" if size == 50 else "")
        )
    print(f"Mayor CPU with 50 idle agents: {cpu * 100:.2f}% of one core over {IDLE_SECONDS:.0f}s   target <= 3%")


if __name__ == "__main__":
    main()

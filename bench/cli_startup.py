"""How fast everyday `gt` commands run, as ratios to a bare Python start measured in the same run.

Run: .venv/bin/python bench/cli_startup.py

Targets (issue 10): `gt --version` <= 2.5x `python -c pass`; `gt issue list`, `gt status`,
`gt agents` and `gt mq list` <= 4x. The town is realistic: one rig, 40 issues, three
agents running in tmux (a one-line runtime that sleeps), merge requests in the queue.
Each command runs the way a user runs it: the installed `gt` script, in the town's
directory, output to a pipe. A figure is the median of the faster half of the runs, so a
burst of load from elsewhere on the machine does not decide it.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _town import bench_town, machine  # noqa: E402

RUNS = 20
RUNTIME = """
[agents.sleeper]
command = ["sleep", "600"]
prompt = "paste"
ready_delay = "1h"
"""
COMMANDS: list[tuple[list[str], float | None]] = [
    (["--version"], 2.5),
    (["--help"], None),
    (["issue", "list"], 4.0),
    (["status"], 4.0),
    (["agents"], 4.0),
    (["mq", "list"], 4.0),
]


def best_of(argv: list[str], cwd: Path | None = None, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(sorted(times)[: max(3, runs // 2)])


def populate(town: Path) -> None:
    """40 issues, 3 of them slung to sleeping agents, 2 merge requests queued."""
    from gastown.context import Context
    from gastown.ledger import issues
    from gastown.ledger.mrs import record_mr
    from gastown.roles.polecat import sling
    from gastown.town import Town

    ctx = Context(Town(town))
    ids = [issues.create(ctx.ledger, title=f"bench issue {n}", body="x" * 200, rig="app", priority=n % 5,
                         prefixes=ctx.config.rig_prefixes()).id for n in range(40)]
    for issue in ids[:3]:
        sling(ctx, issue, agent="sleeper")
    with ctx.ledger.write() as conn:
        for n, issue in enumerate(ids[3:5]):
            record_mr(conn, rig="app", issue=issue, polecat=None, spawn=None, branch=f"polecat/x/{issue}",
                      commit_sha=f"{n:040d}", target="main", priority=2, fix_cycle=0, now=ctx.now())


def main() -> None:
    gt = shutil.which("gt", path=str(Path(sys.executable).parent))
    if gt is None:
        sys.exit("gt is not installed in this environment: pip install -e . first")
    with bench_town(RUNTIME) as town:
        populate(town)
        for args, _ in COMMANDS:  # warm: the settings cache, the page cache
            subprocess.run([gt, *args], cwd=town, capture_output=True, check=True)
        floor = best_of([sys.executable, "-c", "pass"])
        figures = [(args, best_of([gt, *args], cwd=town), target) for args, target in COMMANDS]
    print(f"machine: {machine()}; median of the faster half of {RUNS} runs")
    print(f"{'python -c pass':<18} {floor * 1000:7.1f} ms   1.00x (floor)")
    for args, seconds, target in figures:
        ratio = seconds / floor
        verdict = "" if target is None else f"   target <= {target:g}x {'OK' if ratio <= target else 'MISSED'}"
        print(f"{'gt ' + ' '.join(args):<18} {seconds * 1000:7.1f} ms   {ratio:4.2f}x{verdict}")


if __name__ == "__main__":
    main()

"""How fast everyday `gt` commands run, as ratios to a bare Python start measured in the same run.

Run: .venv/bin/python bench/cli_startup.py

Targets (issue 10): `gt --version` <= 2.5x `python -c pass`; `gt issue list`, `gt status`,
`gt agents` and `gt mq list` <= 4x. The listings are measured twice: with no Mayor (the
command does everything in its own process) and with the town up (`gt up`: the running
Mayor answers them, ``gastown/cli/relay.py``). In the second case the CPU figure is the
command's own plus the Mayor's CPU during the runs divided by the runs: an upper bound,
since the Mayor's patrol loops run meanwhile too. The town is realistic: one rig, 40 issues, three
agents running in tmux (a one-line runtime that sleeps), merge requests in the queue.
Each command runs the way a user runs it: the installed `gt` script, in the town's
directory, output to a pipe, modules compiled (PYTHONDONTWRITEBYTECODE is dropped: a
user's installation has its .pyc files). A figure is the median of the faster half of
the runs, so a burst of load from elsewhere on the machine does not decide it. Two
figures per command: wall time, and CPU time (user + system of the process and the
children it waited for, e.g. the tmux client), which a loaded machine disturbs far less.
"""

from __future__ import annotations

import os
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
LISTINGS = [["issue", "list"], ["status"], ["agents"], ["mq", "list"]]
COMMANDS: list[tuple[list[str], float | None]] = [
    (["--version"], 2.5),
    (["--help"], None),
    (["issue", "list"], 4.0),
    (["status"], 4.0),
    (["agents"], 4.0),
    (["mq", "list"], 4.0),
]


def best_of(argv: list[str], cwd: Path | None = None, runs: int = RUNS) -> tuple[float, float]:
    """(wall, cpu) seconds: the median of the faster half of ``runs`` runs of each."""
    walls, cpus = [], []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode})")
    half = max(3, runs // 2)
    return statistics.median(sorted(walls)[:half]), statistics.median(sorted(cpus)[:half])


def process_cpu(pid: int) -> float:
    """User + system seconds process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_mayor(gt: str, town: Path) -> list[tuple[list[str], tuple[float, float]]]:
    """Each listing with the town's Mayor up: (wall, own CPU + the Mayor's share)."""
    subprocess.run([gt, "up"], cwd=town, check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 30
        while not (town / ".gastown" / "run" / "mayor.sock").exists():
            if time.monotonic() > deadline:
                raise SystemExit("the Mayor's socket did not appear")
            time.sleep(0.05)
        mayor = int((town / ".gastown" / "run" / "mayor.pid").read_text().split()[0])
        figures = []
        for args in LISTINGS:
            subprocess.run([gt, *args], cwd=town, capture_output=True, check=True)  # warm the Mayor's side
            before = process_cpu(mayor)
            wall, cpu = best_of([gt, *args], cwd=town)
            figures.append((args, (wall, cpu + (process_cpu(mayor) - before) / RUNS)))
        return figures
    finally:
        subprocess.run([gt, "down"], cwd=town, capture_output=True)


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
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with bench_town(RUNTIME) as town:
        populate(town)
        for args, _ in COMMANDS:  # warm: compiled modules, the settings cache, the page cache
            subprocess.run([gt, *args], cwd=town, capture_output=True, check=True)
        floor = best_of([sys.executable, "-c", "pass"])
        figures = [(args, best_of([gt, *args], cwd=town), target) for args, target in COMMANDS]
        relayed = with_mayor(gt, town)
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.1f}; median of the faster half of {RUNS} runs")
    print(f"{'':18} {'wall':>9} {'':7} {'cpu':>9}")
    print(f"{'python -c pass':<18} {floor[0] * 1000:6.1f} ms  1.00x  {floor[1] * 1000:6.1f} ms  1.00x (floor)")
    for args, (wall, cpu), target in figures:
        ratios = (wall / floor[0], cpu / floor[1] if floor[1] else 0.0)
        verdict = "" if target is None else "   target <= {:g}x: wall {}, cpu {}".format(
            target, *("OK" if r <= target else "MISSED" for r in ratios))
        line = f"{'gt ' + ' '.join(args):<18} {wall * 1000:6.1f} ms {ratios[0]:5.2f}x  {cpu * 1000:6.1f} ms {ratios[1]:5.2f}x"
        print(line + verdict)
    print("with the town up (`gt up`): the Mayor answers the listings; cpu includes the Mayor's")
    for args, (wall, cpu) in relayed:
        ratios = (wall / floor[0], cpu / floor[1] if floor[1] else 0.0)
        verdict = "   target <= 4x: wall {}, cpu {}".format(*("OK" if r <= 4.0 else "MISSED" for r in ratios))
        print(f"{'gt ' + ' '.join(args):<18} {wall * 1000:6.1f} ms {ratios[0]:5.2f}x  {cpu * 1000:6.1f} ms {ratios[1]:5.2f}x"
              + verdict)


if __name__ == "__main__":
    main()

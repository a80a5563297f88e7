"""How fast `gt` starts, as a ratio to a bare Python start measured in the same run.

Run: .venv/bin/python bench/cli_startup.py   (target: `gt --version` ≤ 2.5× `python -c pass`)

Also prints `gt --help` and `gt issue list` (in a temp town) for context; those pay for
typer, pydantic and the config, but never for GitPython, libtmux or httpx.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 20


def best_of(argv: list[str], cwd: Path | None = None, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(sorted(times)[: max(3, runs // 2)])


def main() -> None:
    gt = shutil.which("gt", path=str(Path(sys.executable).parent)) or shutil.which("gt")
    if gt is None:
        sys.exit("gt is not installed in this environment: pip install -e . first")
    floor = best_of([sys.executable, "-c", "pass"])
    version = best_of([gt, "--version"])
    with tempfile.TemporaryDirectory() as tmp:
        env_town = Path(tmp) / "town"
        subprocess.run([gt, "init", str(env_town)], stdout=subprocess.DEVNULL, check=True)
        help_t = best_of([gt, "--help"], runs=8)
        listing = best_of([gt, "issue", "list"], cwd=env_town, runs=8)
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cpus, Python {sys.version.split()[0]}")
    print(f"python -c pass     {floor * 1000:7.1f} ms   1.00x (floor)")
    print(f"gt --version       {version * 1000:7.1f} ms   {version / floor:4.2f}x   target <= 2.5x")
    print(f"gt --help          {help_t * 1000:7.1f} ms   {help_t / floor:4.2f}x")
    print(f"gt issue list      {listing * 1000:7.1f} ms   {listing / floor:4.2f}x")


if __name__ == "__main__":
    main()

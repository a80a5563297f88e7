"""Merge-queue throughput: gate runs and wall time, batched vs one at a time, same run.

Run: .venv/bin/python bench/refinery.py [--mrs 32] [--gate-cost 0.05]

For k = 0, 1 and 3 culprits among N MRs (each MR adds one file; a culprit's file says
BROKEN, which the gate rejects after sleeping ``--gate-cost`` seconds), a fresh town
merges the whole queue twice: once with ``batch = N`` and once with ``batch = 1``.
Targets: k=0 takes at least 8x fewer gate runs batched; k=1 takes at most 12 runs
for 32 MRs. Exits 1 if a target is missed. Real git, real gates, a local upstream.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _town import git, make_upstream  # noqa: E402
from gastown.context import Context  # noqa: E402 - after the path tweak, for running from a checkout


def make_town(root: Path, n: int, culprits: set[int], batch: int, gate_cost: float) -> tuple[Context, Path]:
    import tomlkit

    from gastown.git.merge import pin_mr_commit
    from gastown.ledger.issues import create_issue
    from gastown.ledger.mrs import record_mr
    from gastown.rigs import add_rig, init_town

    bare = make_upstream(root)
    town = init_town(root / "town").town
    ctx = Context(town)
    add_rig(ctx, "app", str(bare), branch="main", prefix="app", agent=None, cwd=root)
    doc = tomlkit.parse(town.config_path.read_text())
    gate = f"sleep {gate_cost}; if grep -rl --exclude=.git BROKEN .; then exit 1; fi"
    doc["rigs"]["app"]["gates"] = [gate]
    doc["rigs"]["app"]["batch"] = batch
    town.config_path.write_text(tomlkit.dumps(doc))
    ctx = Context(town)
    hub = town.hub_path("app")
    base = git(hub, "rev-parse", "refs/remotes/origin/main")
    for i in range(n):
        index = {"GIT_INDEX_FILE": str(root / "bench-index")}
        git(hub, "read-tree", base, env=index)
        blob = git(hub, "hash-object", "-w", "--stdin", input="BROKEN\n" if i in culprits else f"ok {i}\n")
        git(hub, "update-index", "--add", "--cacheinfo", f"100644,{blob},src/f{i:03d}.txt", env=index)
        sha = git(hub, "commit-tree", git(hub, "write-tree", env=index), "-p", base, "-m", f"change {i}")
        with ctx.ledger.write() as conn:
            issue = create_issue(conn, rig="app", prefix="app", title=f"change {i}", body="", priority=2, now=ctx.now())
            branch = f"polecat/p{i}/{issue.id}"
            git(hub, "update-ref", f"refs/heads/{branch}", sha)
            mr, _ = record_mr(conn, rig="app", issue=issue.id, polecat=None, spawn=None, branch=branch, commit_sha=sha,
                              target="main", priority=2, fix_cycle=0, now=ctx.now() + i * 1e-3)
        pin_mr_commit(hub, mr.id, sha)
    return ctx, bare


def measure(n: int, culprits: set[int], batch: int, gate_cost: float) -> tuple[int, float, int]:
    from gastown.refinery.engine import Refinery

    with tempfile.TemporaryDirectory(prefix="gt-bench-") as tmp:
        ctx, _ = make_town(Path(tmp), n, culprits, batch, gate_cost)
        refinery = Refinery(ctx, "app", slinger=lambda *a, **k: None)
        started = time.perf_counter()
        reports = refinery.run_until_empty()
        wall = time.perf_counter() - started
        runs = sum(r.gate_runs for r in reports)
        merged = sum(len(r.merged) for r in reports)
    return runs, wall, merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mrs", type=int, default=32)
    parser.add_argument("--gate-cost", type=float, default=0.05)
    args = parser.parse_args()
    n = args.mrs
    print(f"{n} MRs, gate = sleep {args.gate_cost}s + grep; batch={n} vs batch=1, same run")
    print(f"{'k':>2}  {'culprits at':<14} {'mode':<10} {'gate runs':>9} {'wall':>7} {'merged':>6}")
    results: dict[tuple[int, int], int] = {}
    for k in (0, 1, 3):
        culprits = set(random.Random(k).sample(range(n), k))
        where = ",".join(str(c) for c in sorted(culprits)) or "-"
        for batch in (n, 1):
            runs, wall, merged = measure(n, culprits, batch, args.gate_cost)
            results[(k, batch)] = runs
            mode = f"batch={batch}"
            print(f"{k:>2}  {where:<14} {mode:<10} {runs:>9} {wall:>6.2f}s {merged:>6}")
    ratio = results[(0, 1)] / max(1, results[(0, n)])
    ok0, ok1 = ratio >= 8, results[(1, n)] <= 12
    print(f"target k=0: >= 8x fewer gate runs batched: {ratio:.0f}x {'OK' if ok0 else 'MISSED'}")
    print(f"target k=1: <= 12 gate runs for {n} MRs: {results[(1, n)]} {'OK' if ok1 else 'MISSED'}")
    return 0 if ok0 and ok1 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The review gate's cost: parallel reviews to merged, and gastown's own overhead per review.

Run: .venv/bin/python bench/review.py [--latency 2.0] [--mrs 8] [--gate-cost 0.1]

1. Throughput. A reviewer of fixed latency L (a command that waits L seconds, then
   prints an approving findings document, like a model behind an API) reviews N = 8 MRs while the refinery merges what it approves, stepped like the
   Mayor's two loops; wall time from the first review to all merged, with
   ``max_reviews = 4`` and with ``max_reviews = 1``, in the same run. Floors measured in
   the same run: L itself (one bare run of the reviewer process, outside gastown), one
   refinery round of one MR (fetch, stack, gate, push), and gastown's own cost per
   review o (part 2). Targets: max_reviews = 4
   within 1.25x of 2·(L + o) + its rounds; four at a time at least 2x faster than one
   at a time (the ideal is 2·L against 8·L; rounds and o narrow it).
2. Overhead. gastown's own work per review of a 1,000-line diff (the diff, the prompt,
   the read-only proof, parsing and filtering: everything but the reviewer and the
   analyzers), best and median of 5 (best: the cost without the scheduler's noise on a
   shared machine), against a floor of one ``git rev-parse`` in the hub. Target: best
   <= 200 ms. The throwaway checkout's cost is printed beside it.

Exits 1 if a target is missed. Real git, real gates, a local upstream, no tmux.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _town import IDENTITY, git, make_upstream  # noqa: E402
from gastown.context import Context  # noqa: E402 - after the path tweak, for running from a checkout


def make_town(root: Path, *, latency: float, max_reviews: int, gate_cost: float, review: bool = True) -> Context:
    import tomlkit

    from gastown.rigs import add_rig, init_town

    bare = make_upstream(root)
    town = init_town(root / "town").town
    ctx = Context(town)
    add_rig(ctx, "app", str(bare), branch="main", prefix="app", agent=None, cwd=root)
    doc = tomlkit.parse(town.config_path.read_text())
    doc["rigs"]["app"]["gates"] = [f"sleep {gate_cost}"]
    doc["rigs"]["app"]["batch"] = 8
    if review:
        doc["rigs"]["app"]["review"] = {"agent": "timed", "max_reviews": max_reviews}
    reviewer = reviewer_argv(root, latency)
    doc["agents"] = {"timed": {"command": reviewer, "headless": reviewer}}
    town.config_path.write_text(tomlkit.dumps(doc))
    return Context(town)


def reviewer_argv(root: Path, latency: float) -> list[str]:
    """A reviewer of fixed latency: it waits ``latency`` seconds, then prints an approving
    findings document. No CPU to speak of, like a model behind an API."""
    answer = root / "answer.md"
    answer.write_text('```json\n{"verdict": "approve", "summary": "fine", "praise": "", "findings": []}\n```\n')
    return ["sh", "-c", f"sleep {latency}; cat {answer}"]


def add_mr(ctx: Context, root: Path, i: int, content: str, path: str) -> str:
    from gastown.git.merge import pin_mr_commit
    from gastown.ledger.issues import create_issue, set_issue_status
    from gastown.ledger.mrs import record_mr
    from gastown.states import IssueStatus

    hub = ctx.town.hub_path("app")
    base = git(hub, "rev-parse", "refs/remotes/origin/main")
    index = {"GIT_INDEX_FILE": str(root / f"bench-index-{i}")}
    git(hub, "read-tree", base, env=index)
    blob = git(hub, "hash-object", "-w", "--stdin", input=content)
    git(hub, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
    sha = git(hub, "commit-tree", git(hub, "write-tree", env=index), "-p", base, "-m", f"change {i}")
    with ctx.ledger.write() as conn:
        issue = create_issue(conn, rig="app", prefix="app", title=f"change {i}", body="", priority=2, now=ctx.now())
        set_issue_status(conn, issue.id, IssueStatus.HOOKED, now=ctx.now())
        set_issue_status(conn, issue.id, IssueStatus.IN_REVIEW, now=ctx.now())
        branch = f"polecat/p{i}/{issue.id}"
        git(hub, "update-ref", f"refs/heads/{branch}", sha)
        mr, _ = record_mr(conn, rig="app", issue=issue.id, polecat=None, spawn=None, branch=branch, commit_sha=sha,
                          target="main", priority=2, fix_cycle=0, now=ctx.now() + i * 1e-3)
    pin_mr_commit(hub, mr.id, sha)
    return mr.id


def no_slinger(*args: object, **kwargs: object) -> None:
    raise AssertionError("nothing should be sent back in this benchmark")


def to_merged(ctx: Context, mrs: list[str]) -> tuple[float, int]:
    """Step the review stage and the refinery like the Mayor's loops until every MR merged;
    returns (seconds, gate runs)."""
    from gastown.ledger.mrs import get_mr
    from gastown.refinery.engine import Refinery
    from gastown.refinery.review.stage import ReviewStage
    from gastown.states import MRState

    import threading

    stage = ReviewStage(ctx, "app", slinger=no_slinger)
    refinery = Refinery(ctx, "app", slinger=no_slinger)
    done = threading.Event()

    def refine() -> None:  # the Mayor's refinery loop, on its own thread
        while not done.is_set():
            report = refinery.run_once()
            if report.outcome == "idle":
                done.wait(0.05)

    started = time.monotonic()
    thread = threading.Thread(target=refine, daemon=True)
    thread.start()
    try:
        while not all(get_mr(ctx.ledger.connection(), m).state == MRState.MERGED for m in mrs):
            stage.step()  # the Mayor's review loop: starts reviews, never blocks
            time.sleep(0.05)
            if time.monotonic() - started > 600:
                raise SystemExit("gave up after 600 s")
        elapsed = time.monotonic() - started
    finally:
        done.set()
        thread.join()
    from gastown.ledger.rounds import total_gate_runs

    return elapsed, total_gate_runs(ctx.ledger.connection())


def reviewer_floor(root: Path, latency: float) -> float:
    """One bare run of the reviewer (the 'model' of this benchmark), outside gastown."""
    began = time.monotonic()
    subprocess.run(reviewer_argv(root, latency), check=True, capture_output=True)
    return time.monotonic() - began


def round_floor(root: Path, gate_cost: float) -> float:
    """One refinery round of one MR with no review gate (fetch, stack, the gate, push): what
    each round adds to a review's wall time."""
    from gastown.refinery.engine import Refinery

    root.mkdir()
    ctx = make_town(root, latency=0.0, max_reviews=1, gate_cost=gate_cost, review=False)
    add_mr(ctx, root, 0, "X = 0\n", "src/x.py")
    began = time.monotonic()
    report = Refinery(ctx, "app", slinger=no_slinger).run_once()
    assert report.merged, report
    return time.monotonic() - began


def throughput(args: argparse.Namespace, per_review: float) -> bool:
    results = {}
    with tempfile.TemporaryDirectory(prefix="gt-bench-review-") as tmp:
        root = Path(tmp)
        floor = reviewer_floor(root, args.latency)
        gate_floor = round_floor(root / "floor", args.gate_cost)
        for max_reviews in (4, 1):
            sub = root / f"max{max_reviews}"
            sub.mkdir()
            ctx = make_town(sub, latency=args.latency, max_reviews=max_reviews, gate_cost=args.gate_cost)
            mrs = [add_mr(ctx, sub, i, f"VALUE_{i} = {i}\n", f"src/f{i}.py") for i in range(args.mrs)]
            results[max_reviews] = to_merged(ctx, mrs)
    (t4, runs4), (t1, runs1) = results[4], results[1]
    waves4, waves1 = -(-args.mrs // 4), args.mrs
    ideal4 = waves4 * floor + runs4 * gate_floor
    ideal1 = waves1 * floor + runs1 * gate_floor
    print(f"reviewer floor L {floor:6.2f}s   round floor {gate_floor:5.2f}s   gastown per review o {per_review:5.2f}s"
          f"   {args.mrs} MRs")
    print(f"max_reviews = 4   {t4:6.2f}s  {t4 / floor:5.2f} L   gate runs {runs4}   vs {waves4}·L + rounds = "
          f"{ideal4:5.2f}s: {t4 / ideal4:4.2f}x   (with o per wave: {t4 / (ideal4 + waves4 * per_review):4.2f}x, "
          "target <= 1.25x)")
    print(f"max_reviews = 1   {t1:6.2f}s  {t1 / floor:5.2f} L   gate runs {runs1}   vs {waves1}·L + rounds = "
          f"{ideal1:5.2f}s: {t1 / ideal1:4.2f}x   (with o per wave: {t1 / (ideal1 + waves1 * per_review):4.2f}x)")
    print(f"one at a time / four at a time: {t1 / t4:4.2f}x   target >= 2x")
    return t4 <= 1.25 * (ideal4 + waves4 * per_review) and t1 / t4 >= 2.0


def overhead(args: argparse.Namespace) -> tuple[bool, float]:
    """Returns (target met, gastown's whole cost per review in seconds: core + checkout)."""
    from gastown.ledger.reviews import start_review
    from gastown.refinery.review.runner import ReviewSubject, execute
    from gastown.refinery.review.settings import gate_settings

    with tempfile.TemporaryDirectory(prefix="gt-bench-review-") as tmp:
        root = Path(tmp)
        ctx = make_town(root, latency=0.0, max_reviews=4, gate_cost=0.0)
        settings = gate_settings(ctx.config, "app")
        assert settings is not None
        big = "".join(f"value_{n} = compute({n}, {n * 7 % 13})\n" for n in range(1000))
        add_mr(ctx, root, 0, big, "src/big.py")
        hub = ctx.town.hub_path("app")
        commit = git(hub, "rev-parse", "refs/gastown/mr/" + git(hub, "for-each-ref", "--format=%(refname:short)",
                                                                  "refs/gastown/mr/").rsplit("/", 1)[-1])
        subject = ReviewSubject(rig="app", branch="big", commit=commit, target="main")
        core, checkout, floors = [], [], []
        for _ in range(5):
            began = time.perf_counter()
            git(hub, "rev-parse", "HEAD")
            floors.append(time.perf_counter() - began)
            with ctx.ledger.write() as conn:
                review = start_review(conn, rig="app", mr=None, issue=None, branch="big", commit_sha=commit,
                                      target="main", agent="timed", style="balanced", block_on="critical",
                                      trigger="manual", owner="bench", now=ctx.now(),
                                      log_dir=str(ctx.town.logs_dir / "app" / "reviews"))
            result = execute(ctx, review, subject, settings, environ={**IDENTITY, "PATH": "/usr/bin:/bin"})
            assert result.state == "done" and result.diff_lines == 1000, (result.state, result.error)
            t = result.timings
            core.append(sum(t.get(k, 0.0) for k in ("diff", "prompt", "verify", "parse", "filter")))
            checkout.append(t.get("checkout", 0.0) + t.get("cleanup", 0.0))
    best, ms = min(core) * 1000, statistics.median(core) * 1000
    floor, co = min(floors) * 1000, statistics.median(checkout) * 1000
    print(f"overhead per review, 1,000-line diff: best {best:6.1f} ms, median {ms:6.1f} ms of 5  "
          f"({best / floor:4.1f}x one git call of {floor:.1f} ms)   target <= 200 ms (best)")
    print(f"  throwaway checkout (worktree add + remove, home cleanup): {co:6.1f} ms")
    return best <= 200.0, (ms + co) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the reviewer takes (L)")
    parser.add_argument("--mrs", type=int, default=8)
    parser.add_argument("--gate-cost", type=float, default=0.1, help="seconds one gate run takes")
    args = parser.parse_args()
    import os

    for name, value in IDENTITY.items():
        os.environ.setdefault(name, value)
    ok, per_review = overhead(args)
    ok = throughput(args, per_review) and ok
    print("all targets met" if ok else "a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

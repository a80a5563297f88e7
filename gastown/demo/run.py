"""Run the demo: build a town around the sample project, sling its issues to demo agents,
run the Mayor, show the work landing, and end with a summary and where to look."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gastown.context import Context
from gastown.demo.project import FILES, GATE, ISSUES
from gastown.errors import GastownError
from gastown.town import Town

CONVOY_NAME = "gastown demo"
DEMO_IDENTITY = {
    "GIT_AUTHOR_NAME": "gastown demo",
    "GIT_AUTHOR_EMAIL": "demo@gastown.invalid",
    "GIT_COMMITTER_NAME": "gastown demo",
    "GIT_COMMITTER_EMAIL": "demo@gastown.invalid",
}


@dataclass
class DemoSummary:
    town: str
    upstream: str
    issues: int
    merged: int
    fix_cycles: int
    conflicts: int
    red_gates: int
    gate_runs: int
    seconds: float
    upstream_commits: int
    upstream_tests_green: bool
    tokens: int
    kept: bool
    socket: str
    convoy: str | None = None
    convoy_landed: bool = False
    reviews: int = 0
    reviews_blocked: int = 0
    changes_requested: int = 0
    roast: list[str] = field(default_factory=list)  # the blocking findings of the first MR the review stopped
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _git(cwd: Path, *args: str) -> str:
    from gastown.git.cmd import Git

    return Git(cwd).out(*args)


def make_upstream(root: Path) -> Path:
    """A bare upstream holding the sample project, one commit on main."""
    work, bare = root / "calc-work", root / "calc.git"
    work.mkdir(parents=True)
    for name, text in FILES.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(root, "init", "-q", "-b", "main", str(work))
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "calc: a tiny calculator")
    _git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    _git(work, "push", "-q", str(bare), "HEAD:main")
    shutil.rmtree(work)
    return bare


def build_town(root: Path, *, think: float) -> Context:
    from gastown.config.edit import rewrite_config, set_values
    from gastown.rigs import add_rig, init_town

    upstream = make_upstream(root)
    town = init_town(root / "town").town
    ctx = Context(town)
    add_rig(ctx, "calc", str(upstream), branch="main", prefix="calc", agent="demo", cwd=root)
    gate = f"{shlex.quote(sys.executable)} {GATE}"
    text = town.config_path.read_text(encoding="utf-8")
    text = set_values(text, "witness", {"patrol_interval": "1s", "spawn_grace": "60s"})
    text = set_values(text, "rigs.calc", {"gates": [gate], "gate_timeout": "2m", "batch": 4})
    text = set_values(text, "rigs.calc.review", {"agent": "demo", "style": "roast"})
    text = set_values(text, "server", {"port": 0})  # any free port: never clash with a real town's 8470
    rewrite_config(town.config_path, text)
    ctx.reload_config()
    os.environ.setdefault("GT_DEMO_THINK", str(think))
    return ctx


def git_identity_missing() -> bool:
    from gastown._internal.proc import run

    return any(not run(["git", "var", v], timeout=10).ok for v in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"))


def run_demo(
    *,
    keep: bool,
    think: float = 2.0,
    timeout: float = 300.0,
    show: Callable[[Context, list[str], float], None] | None = None,
    base_dir: Path | None = None,
) -> DemoSummary:
    """Build, run and (unless ``keep``) clean up a demo town. ``show`` is called about
    twice a second with the progress to draw."""
    from gastown.ledger import convoys, issues
    from gastown.roles import lifecycle
    from gastown.roles.polecat import sling

    root = Path(tempfile.mkdtemp(prefix="gastown-demo-", dir=base_dir))
    os.environ.pop("GT_TMUX_SOCKET", None)  # the demo town's own socket, derived from its path
    if git_identity_missing():
        os.environ.update(DEMO_IDENTITY)
    started = time.monotonic()
    ctx = build_town(root, think=think)
    summary_problems: list[str] = []
    try:
        prefixes = ctx.config.rig_prefixes()
        ids = [
            issues.create(ctx.ledger, title=i.title, body=i.body, rig="calc", priority=i.priority, prefixes=prefixes).id
            for i in ISSUES
        ]
        convoy = convoys.create(ctx.ledger, CONVOY_NAME, ids).convoy.id
        lifecycle.up(ctx)
        for issue in ids:
            sling(ctx, issue)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if show is not None:
                show(ctx, ids, time.monotonic() - started)
            if _settled(ctx, ids):
                break
            time.sleep(0.5)
        else:
            summary_problems.append(f"not everything landed within {int(timeout)}s")
        if show is not None:
            show(ctx, ids, time.monotonic() - started)
        summary = summarize(ctx, ids, convoy, time.monotonic() - started, keep=keep)
        summary.problems += summary_problems
        return summary
    finally:
        if not keep:
            try:
                lifecycle.down(ctx, timeout=2.0)
            except GastownError:
                pass
            ctx.tmux.kill_server()
            shutil.rmtree(root, ignore_errors=True)


def _settled(ctx: Context, ids: list[str]) -> bool:
    from gastown.ledger.issues import count_with_status

    return count_with_status(ctx.ledger.connection(), ids, ("closed", "blocked")) == len(ids)


def summarize(ctx: Context, ids: list[str], convoy: str | None, seconds: float, *, keep: bool) -> DemoSummary:
    from gastown.costs import collect
    from gastown.ledger.convoys import close_finished, get_convoy
    from gastown.ledger.events import count_events
    from gastown.ledger.issues import count_with_status
    from gastown.ledger.reviews import count_by_verdict
    from gastown.ledger.rounds import total_gate_runs
    from gastown.ledger.usage import total_tokens

    collect(ctx)
    close_finished(ctx.ledger)
    conn = ctx.ledger.connection()
    merged = count_with_status(conn, ids, ("closed",))
    # Counted from the event log: an MR that came back is retired (rejected) once a later MR
    # of its issue merges, so the states left at the end no longer tell.
    conflicts, red = (count_events(conn, kinds=(kind,), since=0.0) for kind in ("conflict", "failed"))
    blocked = max(0, count_events(conn, kinds=("sendback",), since=0.0) - conflicts - red)
    verdicts = count_by_verdict(conn)
    upstream = Path(ctx.config.rigs["calc"].repo)
    commits = int(_git(upstream, "rev-list", "--count", "main"))
    landed = convoy is not None and get_convoy(conn, convoy).status == "closed"
    return DemoSummary(
        town=str(ctx.town.root), upstream=str(upstream), issues=len(ids), merged=merged,
        fix_cycles=conflicts + red + blocked, conflicts=conflicts, red_gates=red, gate_runs=total_gate_runs(conn),
        seconds=round(seconds, 1), upstream_commits=commits, upstream_tests_green=upstream_green(upstream),
        tokens=total_tokens(conn), kept=keep, socket=ctx.tmux.socket, convoy=convoy, convoy_landed=landed,
        reviews=sum(verdicts.values()), reviews_blocked=verdicts["do_not_merge"], changes_requested=blocked,
        roast=roast_lines(conn),
    )


def roast_lines(conn: Any) -> list[str]:
    """The blocking findings of the first review that stopped a merge, as the summary shows them."""
    from gastown.ledger.reviews import findings_of, list_reviews

    stopped = [r for r in list_reviews(conn) if r.verdict == "do_not_merge"]
    if not stopped:
        return []
    first = stopped[-1]
    lines = [f"{first.id} of {first.mr} ({first.style}): {first.summary or ''}".rstrip()]
    for f in findings_of(conn, first.id):
        if f.blocking:
            lines += [f"{f.file}:{f.start_line} [{f.severity}] {f.title}", f"  {f.explanation}", f"  fix: {f.fix}"]
    return lines


def upstream_green(upstream: Path) -> bool:
    """Clone the upstream's main and run its tests: the proof that main only moved to green."""
    with tempfile.TemporaryDirectory(prefix="gastown-demo-check-") as tmp:
        _git(Path(tmp), "clone", "-q", str(upstream), "calc")
        result = subprocess.run(
            [sys.executable, *shlex.split(GATE)], cwd=Path(tmp) / "calc", capture_output=True, timeout=120
        )
        return result.returncode == 0


def town_of(summary: DemoSummary) -> Town:
    return Town(Path(summary.town))

"""One review, from diff to verdict: ``execute`` runs it, the stage records it.

Steps, for a subject (an MR, or a branch reviewed on demand) at one commit:

1. the diff against the merge-base with the target, from the rig's hub; over
   ``max_diff_lines`` changed lines the review ends ``too_large`` (no reviewer runs);
2. ``REVIEW.md`` read from the target branch in the hub (never from the MR);
3. a throwaway checkout of the commit: a detached worktree off the hub at
   ``<town>/<rig>/reviews/<review id>``, repository hooks off; the analyzers run in it;
4. its state is taken (HEAD and ``git status --porcelain`` with untracked and ignored
   files); the reviewer (the runtime's headless command, through
   ``roles.launch.run_headless``) runs in it; the state is taken again: any change and
   the review is an ``error`` (the checkout, and with it the change, is thrown away);
5. the findings document is read from the reviewer's stdout; without one the reviewer
   runs once more, then the review is an ``error``;
6. model and analyzer findings outside the diff are dropped and counted; gastown's
   verdict comes from the severities left and ``block_on``.

The checkout and the reviewer's private home are removed whatever happens (the home
after its token usage is read). ``execute`` never raises for a reviewer's failure (it
is an ``error`` result); it raises ``GastownError`` when git or the config fails.
Timing: at most two reviewer runs of ``timeout`` each, plus git and the analyzers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gastown.context import Context
from gastown.errors import GastownError, GitError
from gastown.git.cmd import Git
from gastown.git.worktrees import target_ref
from gastown.ledger.reviews import Review
from gastown.refinery.review.diff import Diff, parse_diff
from gastown.refinery.review.document import (
    DocumentError, Finding, by_severity, effective_verdict, keep_in_diff, model_findings, parse_document,
)
from gastown.refinery.review.prompt import ReviewFacts, render_review_prompt
from gastown.refinery.review.sarif import SarifError, parse_sarif
from gastown.refinery.review.settings import ReviewSettings
from gastown.runtimes.usage import TokenUsage
from gastown.states import ReviewState

RUNS = 2  # a reviewer that gives no usable document is run once more, then the review fails
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
_DROP_FROM_ANALYZERS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")


@dataclass(frozen=True)
class ReviewSubject:
    """What is reviewed: a branch at one commit, for an MR (with its issue) or on its own."""

    rig: str
    branch: str
    commit: str
    target: str
    mr: str | None = None
    issue: str | None = None
    issue_title: str | None = None
    issue_body: str | None = None

    @property
    def label(self) -> str:
        if self.mr:
            return f"merge request {self.mr}" + (f" (issue {self.issue})" if self.issue else "")
        return f"branch {self.branch}"


@dataclass
class ReviewResult:
    """How one review ended (``execute``), before it is recorded."""

    state: ReviewState
    verdict: str | None = None
    model_verdict: str | None = None
    summary: str | None = None
    praise: str | None = None
    findings: list[Finding] = field(default_factory=list)
    dropped: int = 0
    diff_lines: int | None = None
    base: str | None = None
    runs: int = 0
    error: str | None = None
    usage: TokenUsage | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def overhead(self) -> float:
        """Seconds gastown itself spent (everything but the reviewer's runs and the analyzers)."""
        return sum(v for k, v in self.timings.items() if k not in ("reviewer", "analyzers"))


class _Timer:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.into[name] = self.into.get(name, 0.0) + time.perf_counter() - started


def checkout_path(ctx: Context, rig: str, review_id: str) -> Path:
    return ctx.town.rig_dir(rig) / "reviews" / review_id


def execute(ctx: Context, review: Review, subject: ReviewSubject, settings: ReviewSettings,
            *, environ: Mapping[str, str] | None = None) -> ReviewResult:
    """Run ``review`` of ``subject`` to its result (see the module docstring)."""
    from gastown.runtimes.registry import require_runtime

    result = ReviewResult(ReviewState.ERROR)
    timed = _Timer(result.timings)
    hub = ctx.town.hub_path(subject.rig)
    with timed("diff"):
        base = merge_base(hub, subject.commit, target_ref(subject.target))
        diff_text = diff_of(hub, base, subject.commit)
        diff = parse_diff(diff_text)
    result.base, result.diff_lines = base, diff.changed_lines
    if diff.changed_lines > settings.max_diff_lines:
        result.state = ReviewState.TOO_LARGE
        result.error = (f"the diff has {diff.changed_lines} changed lines, over max_diff_lines = "
                        f"{settings.max_diff_lines}: too large to review")
        return result
    runtime = require_runtime(ctx.config, settings.agent)
    env = dict(environ if environ is not None else ctx.environ)
    path = checkout_path(ctx, subject.rig, review.id)
    try:
        with timed("checkout"):
            review_md = read_blob(hub, target_ref(subject.target), "REVIEW.md")
            create_checkout(hub, path, subject.commit)
        with timed("analyzers"):
            analyzed = run_analyzers(settings, path, env, review.id)
        if isinstance(analyzed, str):
            result.error = analyzed
            return result
        with timed("verify"):
            before = checkout_state(path)
        with timed("prompt"):
            prompt = render_review_prompt(ReviewFacts(
                rig=subject.rig, subject=subject.label, branch=subject.branch, commit=subject.commit, base=base,
                target=subject.target, style=settings.style, focus=settings.focus, diff=diff_text,
                review_md=review_md, issue_title=subject.issue_title, issue_body=subject.issue_body,
            ))
            prompt_path = Path(review.prompt_path or checkout_path(ctx, subject.rig, review.id).with_suffix(".md"))
            prompt_path.parent.mkdir(parents=True, exist_ok=True)
            prompt_path.write_text(prompt, encoding="utf-8")
        _reviewer_runs(ctx, review, subject, settings, runtime, result, timed, path=path, prompt=prompt,
                       prompt_path=prompt_path, env=env, before=before, diff=diff, analyzed=analyzed)
        return result
    finally:
        with timed("cleanup"):
            result.usage = _read_usage(ctx, runtime.cli, review.id)
            remove_checkout(hub, path)


def _reviewer_runs(ctx: Context, review: Review, subject: ReviewSubject, settings: ReviewSettings, runtime: object,
                   result: ReviewResult, timed: _Timer, *, path: Path, prompt: str, prompt_path: Path,
                   env: Mapping[str, str], before: tuple[str, str], diff: Diff, analyzed: list[Finding]) -> None:
    from gastown.roles.launch import run_headless

    log_path = Path(review.log_path) if review.log_path else None
    problem = "the reviewer gave no answer"
    for attempt in range(1, RUNS + 1):
        result.runs = attempt
        with timed("reviewer"):
            run = run_headless(
                ctx.town, ctx.config, runtime, run_id=review.id, cwd=path, prompt=prompt,  # type: ignore[arg-type]
                prompt_file=prompt_path, base_env=env, timeout=settings.timeout,
                identity={"GT_ROLE": "review", "GT_REVIEW": review.id, "GT_RIG": subject.rig},
                oversize_prompt=(f"Your complete instructions are in the file {prompt_path}. Read that file now "
                                 "and follow it exactly; it ends with the shape of the answer it expects."),
            )
        _log_run(log_path, attempt, run.result)
        with timed("verify"):
            after = checkout_state(path)
        if after != before:
            result.error = f"the reviewer changed its checkout ({describe_change(before, after)}); its changes were discarded"
            return
        if run.result.timed_out:
            problem = f"the reviewer timed out after {settings.timeout:g}s"
            continue
        try:
            with timed("parse"):
                document = parse_document(run.result.stdout)
        except DocumentError as exc:
            problem = str(exc) + (f" (exit status {run.result.returncode})" if run.result.returncode else "")
            continue
        with timed("filter"):
            kept, dropped = keep_in_diff([*model_findings(document), *analyzed], diff, root=str(path))
        result.state = ReviewState.DONE
        result.findings = by_severity(kept)
        result.dropped = dropped
        result.verdict = effective_verdict(kept, settings.block_on)
        result.model_verdict, result.summary, result.praise = document.verdict, document.summary, document.praise
        return
    result.error = f"no usable findings document after {RUNS} runs: {problem}"


def _log_run(log_path: Path | None, attempt: int, run: object) -> None:
    if log_path is None:
        return
    from gastown._internal.proc import Result

    assert isinstance(run, Result)
    ending = "timed out" if run.timed_out else f"exit {run.returncode}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"=== run {attempt}: {Path(run.argv[0]).name} ({ending} after {run.duration:.2f}s)\n")
        log.write(f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\n")


def _read_usage(ctx: Context, cli: str | None, review_id: str) -> TokenUsage | None:
    """The reviewer's token usage from its private home, which is then removed (it holds
    copied credentials)."""
    from gastown.roles.launch import home_path
    from gastown.runtimes.usage import read_spawn_usage

    home = home_path(ctx.town, review_id)
    if not home.is_dir():
        return None
    try:
        return read_spawn_usage(cli, home) if cli else None  # type: ignore[arg-type]
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- git --------------------------------------------------------------------------------


def merge_base(hub: Path, commit: str, target: str) -> str:
    """The merge-base of ``commit`` and ``target`` in ``hub``; ``GitError`` if they share none."""
    result = Git(hub).run("merge-base", commit, target, check=False)
    base = result.stdout.strip()
    if not result.ok or not base:
        raise GitError(f"{commit[:12]} has no merge-base with {target} (unrelated histories, or a missing commit)",
                       hint="rebase the branch onto the target")
    return base


def diff_of(hub: Path, base: str, commit: str) -> str:
    """``git diff base commit`` as a reviewer reads it: plain text, renames found, a/ b/ prefixes."""
    return Git(hub).run(
        "-c", "core.quotepath=off", "diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M", "-U3",
        "--src-prefix=a/", "--dst-prefix=b/", base, commit,
    ).stdout


def read_blob(hub: Path, ref: str, path: str) -> str | None:
    """The text of ``path`` at ``ref`` in ``hub``, or None when it is not there."""
    result = Git(hub).run("show", f"{ref}:{path}", check=False)
    return result.stdout if result.ok else None


def create_checkout(hub: Path, path: Path, commit: str) -> None:
    """A detached worktree of ``hub`` at ``commit`` (hooks off); a leftover at ``path`` is removed first."""
    if path.exists():
        remove_checkout(hub, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Git(hub).run(*_NO_HOOKS, "worktree", "add", "--detach", "--quiet", str(path), commit)


def remove_checkout(hub: Path, path: Path) -> None:
    """Remove the throwaway checkout and its worktree record. Never raises."""
    try:
        if hub.is_dir():
            removed = Git(hub).run("worktree", "remove", "--force", "--force", str(path), check=False).ok
            if not removed:
                shutil.rmtree(path, ignore_errors=True)
                Git(hub).run("worktree", "prune", check=False)
        shutil.rmtree(path, ignore_errors=True)
    except GastownError:
        shutil.rmtree(path, ignore_errors=True)


def checkout_state(path: Path) -> tuple[str, str]:
    """HEAD and ``git status --porcelain`` (untracked and ignored files included), in one
    git call (porcelain v2 names HEAD in its ``# branch.oid`` header)."""
    status = Git(path).run("status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all",
                           "--ignored=matching", check=False)
    if not status.ok:
        return "", f"(git status failed: {status.stderr.strip()})"
    entries = [e for e in status.stdout.split("\0") if e]
    head = next((e.split()[-1] for e in entries if e.startswith("# branch.oid ")), "")
    return head, "\0".join(e for e in entries if not e.startswith("# ")) + ("\0" if entries else "")


def describe_change(before: tuple[str, str], after: tuple[str, str]) -> str:
    """What differs between two ``checkout_state`` snapshots, in a few words.

    >>> describe_change(("a" * 40, ""), ("b" * 40, "? new.txt\\0"))
    'HEAD moved from aaaaaaaaaaaa to bbbbbbbbbbbb; status: ? new.txt'
    """
    parts = []
    if before[0] != after[0]:
        parts.append(f"HEAD moved from {before[0][:12]} to {after[0][:12]}")
    if before[1] != after[1]:
        old = set(before[1].split("\0"))
        new = [entry for entry in after[1].split("\0") if entry and entry not in old]
        gone = [entry for entry in before[1].split("\0") if entry and entry not in set(after[1].split("\0"))]
        shown = new[:5] + [f"(gone) {g}" for g in gone[:3]]
        parts.append("status: " + ", ".join(shown) if shown else "status changed")
    return "; ".join(parts)


# -- analyzers --------------------------------------------------------------------------


def run_analyzers(settings: ReviewSettings, path: Path, environ: Mapping[str, str], review_id: str) -> list[Finding] | str:
    """Run each analyzer (``sh -c``, the user's own command) in the checkout and read its
    SARIF from stdout; returns the findings, or the problem of the first analyzer whose
    output is not SARIF (the review then fails closed)."""
    from gastown._internal.proc import run

    env = {k: v for k, v in environ.items() if not k.startswith("GT_") and k not in _DROP_FROM_ANALYZERS}
    env |= {"GT_ROLE": "review", "GT_REVIEW": review_id}
    findings: list[Finding] = []
    root = os.path.realpath(path)
    for command in settings.analyzers:
        outcome = run(["sh", "-c", command], cwd=path, env=env, timeout=settings.timeout, new_session=True)
        if outcome.timed_out:
            return f"analyzer `{command}` timed out after {settings.timeout:g}s"
        try:
            found = parse_sarif(outcome.stdout, levels=settings.analyzer_levels, root=root,
                                analyzer=command.split()[0] if command.split() else "analyzer")
        except SarifError as exc:
            last = outcome.stderr.strip().splitlines()[-1:] or [f"exit status {outcome.returncode}"]
            return f"analyzer `{command}` printed no SARIF: {exc} ({last[0]})"
        findings += [_relative_to(f, str(path)) for f in found]
    return findings


def _relative_to(finding: Finding, path: str) -> Finding:
    from dataclasses import replace

    if finding.file.startswith(path.rstrip("/") + "/"):
        return replace(finding, file=finding.file[len(path.rstrip("/")) + 1:])
    return finding


def safe_execute(ctx: Context, review: Review, subject: ReviewSubject, settings: ReviewSettings,
                 *, environ: Mapping[str, str] | None = None) -> ReviewResult:
    """``execute``, with any failure of gastown's own (git, config, the runtime's program)
    turned into an ``error`` result naming it: a review never breaks the caller."""
    try:
        return execute(ctx, review, subject, settings, environ=environ)
    except GastownError as exc:
        return ReviewResult(ReviewState.ERROR, error=exc.message + (f" ({exc.hint})" if exc.hint else ""))
    except Exception as exc:  # noqa: BLE001 - a reviewer thread must always end its review
        return ReviewResult(ReviewState.ERROR, error=f"the review failed unexpectedly: {type(exc).__name__}: {exc}")

"""`gt review run/show/list`: AI code reviews of merge requests and branches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, print_table, say
from gastown.safetext import one_line

if TYPE_CHECKING:
    from gastown.refinery.review.records import ReviewDetail

app = command_group("AI code reviews: run one on an MR or a branch, show one, list them.")

StyleOpt = Annotated[str | None, typer.Option("--style", help="balanced, strict, lenient or roast (tone only; default: the rig's).")]


@app.command("run")
def run(
    what: Annotated[str, typer.Argument(
        metavar="MR|BRANCH", help="A merge request id (mr-…), or a branch or commit of the rig.",
        autocompletion=complete.merge_requests,
    )],
    rig: Annotated[str | None, typer.Option(
        "--rig", "-r", help="The rig of BRANCH (needed when the town has several).", autocompletion=complete.rigs
    )] = None,
    style: StyleOpt = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Review an MR or a branch now, and show the result (exit 1 if the review failed)."""
    from gastown.refinery.review.records import detail
    from gastown.refinery.review.stage import review_now

    ctx = open_context(town)
    review = review_now(ctx, what, rig=rig, style=style)
    shown = detail(ctx, review.id)
    if json_out:
        print_json(shown.to_json())
    else:
        _print_detail(shown)
    if review.state == "error":
        raise typer.Exit(1)


@app.command("show")
def show(
    what: Annotated[str, typer.Argument(
        metavar="REVIEW|MR", help="A review id (rv-…), or an MR id for its latest review.",
        autocompletion=complete.merge_requests,
    )],
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a review: verdicts, findings, dropped count, style, tokens and duration."""
    from gastown.refinery.review.records import detail

    shown = detail(open_context(town, last_good=True), what)
    if json_out:
        print_json(shown.to_json())
    else:
        _print_detail(shown)


@app.command("list")
def list_(
    rig: Annotated[str | None, typer.Option("--rig", "-r", help="Only this rig's reviews.", autocompletion=complete.rigs)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many, newest first.")] = 50,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List recent reviews, newest first."""
    from gastown.ledger.timefmt import iso
    from gastown.refinery.review.records import listing

    rows = listing(open_context(town, last_good=True), rig=rig, limit=limit)
    if json_out:
        print_json([{**b.review.to_json(), "findings": b.findings, "blocking": b.blocking} for b in rows])
        return
    print_table(
        ["REVIEW", "MR", "OUTCOME", "FINDINGS", "STYLE", "AGENT", "STARTED", "SUBJECT"],
        [[b.review.id, b.review.mr or "-", b.outcome, f"{b.findings} ({b.blocking} blocking)", b.review.style,
          b.review.agent, (iso(b.review.started_at) or "")[:19].replace("T", " "),
          one_line(b.review.branch + (f" @ {b.review.commit_sha[:10]}"), 60)] for b in rows],
        empty="no reviews yet",
    )


def _print_detail(shown: ReviewDetail) -> None:
    r = shown.review
    subject = f"merge request {r.mr}" + (f" (issue {r.issue})" if r.issue else "") if r.mr else f"branch {r.branch}"
    say(f"{r.id}  [{r.state}]  {subject}  rig {r.rig}")
    if r.verdict:
        say(f"verdict: {r.verdict}  (the model said {r.model_verdict})  style {r.style}  blocks on {r.block_on}")
    else:
        say(f"no verdict: {r.error}")
    base = f", merge-base {r.base_sha[:12]}" if r.base_sha else ""
    lines = f", {r.diff_lines} changed line(s)" if r.diff_lines is not None else ""
    say(f"commit {r.commit_sha[:12]} of {r.branch} against {r.target}{base}{lines}")
    took = f"{r.duration:.1f}s" if r.duration is not None else "running"
    tally = shown.tally
    tokens = f", tokens {tally.input:,} in / {tally.output:,} out" if tally is not None else ""
    say(f"reviewer {r.agent} ({r.trigger}), {r.runs} run(s), {took}{tokens}")
    say(f"{len(shown.findings)} finding(s), {shown.blocking} blocking, {r.dropped} dropped (outside the diff)")
    if shown.findings:
        say("")
        print_table(
            ["SEVERITY", "WHERE", "CATEGORY", "TITLE"],
            [[("✗ " if f.blocking else "  ") + f.severity, _where(f.file, f.start_line, f.end_line), f.category,
              one_line(f.title, 70)] for f in shown.findings],
        )
        for f in shown.findings:
            say("")
            say(f"{_where(f.file, f.start_line, f.end_line)}  [{f.severity}] {f.title}")
            if f.explanation:
                say(f"  {f.explanation}")
            if f.fix:
                say(f"  fix: {f.fix}")
    if r.summary:
        say("")
        say(f"summary: {r.summary}")
    if r.praise:
        say(f"praise: {r.praise}")
    if r.log_path:
        say(f"log: {r.log_path}")


def _where(file: str, start: int, end: int) -> str:
    return f"{file}:{start}" + (f"-{end}" if end != start else "")

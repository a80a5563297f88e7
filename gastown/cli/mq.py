"""`gt mq list/show/retry/reject`: the merge queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import JsonOpt, TownOpt, command_group, open_context
from gastown.cli._output import print_json, print_table, say
from gastown.safetext import one_line
from gastown.states import MRState

if TYPE_CHECKING:
    from gastown.ledger.mrs import MR

app = command_group("The merge queue: list, show, retry and reject merge requests.")

MrArg = Annotated[str, typer.Argument(metavar="MR", help="Merge request id, e.g. mr-k3x9q2.", autocompletion=complete.merge_requests)]


@app.command("list")
def list_(
    rig: Annotated[str | None, typer.Option("--rig", "-r", help="Only this rig's merge requests.", autocompletion=complete.rigs)] = None,
    state: Annotated[list[MRState] | None, typer.Option("--state", "-s", help="Only these states (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include merged and rejected ones.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List merge requests: testing, then queued in merge order, then the rest."""
    from gastown.ledger.timefmt import iso
    from gastown.refinery import queue

    from gastown.refinery.review.records import latest_briefs

    ctx = open_context(town, last_good=True)
    mrs = queue.listing(ctx, rig=rig, states=state, include_done=all_)
    reviews = latest_briefs(ctx, [m.id for m in mrs])
    if json_out:
        print_json(queue.documents(ctx, mrs))
        return
    from gastown.ledger.github import pulls_by_mr

    pulls = pulls_by_mr(ctx.ledger.connection(), [m.id for m in mrs])  # rigs merging through GitHub PRs
    rows = [[m.id, str(m.state), str(m.priority), m.issue, f"{m.rig}/{m.polecat}" if m.polecat else m.rig,
             m.commit_sha[:10], reviews[m.id].cell() if m.id in reviews else "-",
             (iso(m.updated_at) or "")[:19].replace("T", " "), one_line(_detail(m), 50)]
            for m in mrs]
    headers = ["MR", "STATE", "P", "ISSUE", "POLECAT", "COMMIT", "REVIEW", "UPDATED", "DETAIL"]
    if pulls:
        headers.insert(7, "PR")
        for row, m in zip(rows, mrs, strict=True):
            pr = pulls.get(m.id)
            row.insert(7, f"#{pr.number} {one_line(pr.checks or pr.state, 30)}" if pr else "-")
    print_table(headers, rows,
                empty="the merge queue is empty" + ("" if all_ else " (--all shows merged and rejected ones)"))


def _detail(mr: MR) -> str:
    """The DETAIL cell: for a red gate, why it was red rather than the log's first line."""
    from gastown.refinery.gates import verdict

    if mr.state is MRState.FAILED and mr.gate_log and mr.detail:
        return f"red, {verdict(mr.detail)}"
    return mr.detail or ""


@app.command("show")
def show(mr_id: MrArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Show one merge request, with its conflict or gate output."""
    from gastown.refinery import queue

    from gastown.refinery.review.records import latest_briefs

    ctx = open_context(town, last_good=True)
    mr = queue.show(ctx, mr_id)
    review = latest_briefs(ctx, [mr.id]).get(mr.id)
    if json_out:
        print_json({**mr.to_json(), "review": review.to_json() if review else None})
        return
    say(f"{mr.id}  [{mr.state}]  priority {mr.priority}  rig {mr.rig}  issue {mr.issue}")
    say(f"branch: {mr.branch} at {mr.commit_sha}  -> {mr.target}")
    if mr.polecat:
        say(f"polecat: {mr.polecat}" + (f"  spawn {mr.spawn}" if mr.spawn else ""))
    say(f"fix cycle: {mr.fix_cycle}  rounds taken into: {mr.attempts}")
    if mr.merged_sha:
        say(f"merged as: {mr.merged_sha}")
    if mr.gate_log:
        say(f"gate log: {mr.gate_log}")
    if review is not None:
        say(f"review: {review.review.id} {review.cell()} ({review.findings} finding(s); gt review show {review.review.id})")
    if mr.detail:
        say("")
        say(mr.detail)


@app.command("retry")
def retry(mr_id: MrArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Queue a conflicted, failed, blocked or rejected merge request again (its review is redone)."""
    from gastown.refinery import queue

    mr = queue.retry(open_context(town), mr_id)
    if json_out:
        print_json(mr.to_json())
    else:
        say(f"{mr.id} is {mr.state}")


@app.command("reject")
def reject(
    mr_id: MrArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why it must not merge.")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Take a merge request out of the queue (it can be retried later)."""
    from gastown.refinery import queue

    mr = queue.reject(open_context(town), mr_id, reason=reason)
    if json_out:
        print_json(mr.to_json())
    else:
        say(f"rejected {mr.id}")

"""`gt mq list/show/retry/reject`: the merge queue."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli import bodies, complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, say
from gastown.states import MRState

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
    bodies.mq_list(rig, state, all_, town, json_out)


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

"""`gt github sync`."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, say
from gastown.safetext import one_line

app = command_group("GitHub: import labelled issues, follow pull requests, post comments back.")


@app.command("sync")
def sync(
    rig: Annotated[str | None, typer.Argument(metavar="[RIG]", help="Only this rig (default: every rig with a [rigs.X.github] table).",
                                              autocompletion=complete.rigs)] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import open issues carrying the rig's label (idempotent), follow its pull requests, post comments owed."""
    from gastown.github.desk import sync_now

    reports = sync_now(open_context(town), rig)
    if json_out:
        print_json([r.to_json() for r in reports])
        return
    for r in reports:
        head = f"{r.rig} ({r.repo}): "
        if r.unchanged and not r.pulls:
            say(head + "no change since the last sync")
        else:
            say(head + f"{len(r.imported)} imported, {len(r.updated)} updated, {len(r.closed)} closed, "
                f"{len(r.slung)} slung, {len(r.pulls)} pull request(s) open, {r.comments} comment(s) posted")
        for item in r.imported:
            say(f"  {item['id']}  #{item['number']}  {one_line(item['url'], 120)}")
        for problem in r.problems:
            say(f"  problem: {one_line(problem, 200)}")

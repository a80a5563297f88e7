"""`gt convoy create/add/list/show`: named groups of issues tracked to completion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, print_table, say
from gastown.safetext import one_line

if TYPE_CHECKING:
    from gastown.ledger.convoys import ConvoyView

app = command_group("Group issues into convoys and watch them land.")

ConvoyArg = Annotated[str, typer.Argument(metavar="CONVOY", help="Convoy id (cv-...) or its exact name.")]


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Any name; stored exactly as given.")],
    issues: Annotated[list[str] | None, typer.Argument(metavar="[ISSUE]...", help="Issues to put in it.", autocompletion=complete.any_issue)] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a convoy and print its id."""
    from gastown.ledger import convoys

    made = convoys.create(open_context(town).ledger, name, issues or [])
    if json_out:
        print_json(made.to_json())
    else:
        say(made.convoy.id)


@app.command("add")
def add(
    convoy: ConvoyArg,
    issues: Annotated[list[str], typer.Argument(metavar="ISSUE...", help="Issues to add.", autocompletion=complete.any_issue)],
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add issues to a convoy (reopening it if it had landed)."""
    from gastown.ledger import convoys

    shown, added = convoys.add(open_context(town).ledger, convoy, issues)
    if json_out:
        print_json({**shown.to_json(), "added": added})
        return
    already = [i for i in dict.fromkeys(issues) if i not in added]
    note = f" ({', '.join(already)} already in it)" if already else ""
    say(f"{shown.convoy.id}: added {', '.join(added) or 'nothing'}{note}")
    say(f"{shown.closed} of {shown.total} closed; the convoy is {shown.convoy.status}")


@app.command("list")
def list_(town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """List convoys, open ones first, with their progress."""
    from gastown.ledger import convoys

    views = convoys.listing(open_context(town, last_good=True).ledger)
    if json_out:
        print_json([v.to_json(with_issues=False) for v in views])
        return
    print_table(
        ["ID", "STATUS", "PROGRESS", "NAME"],
        [[v.convoy.id, v.convoy.status, f"{v.closed}/{v.total} closed", one_line(v.convoy.name, 70)] for v in views],
        empty="no convoys yet: gt convoy create NAME ISSUE...",
    )


@app.command("show")
def show(convoy: ConvoyArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Show a convoy's progress and, per issue, what it waits on."""
    from gastown.ledger import convoys

    shown = convoys.show(open_context(town, last_good=True).ledger, convoy)
    if json_out:
        print_json(shown.to_json())
        return
    render(shown)


def render(shown: ConvoyView) -> None:
    from gastown.ledger.convoys import waiting_on

    c = shown.convoy
    say(f"{c.id}  [{c.status}]  {shown.closed} of {shown.total} closed ({shown.merged} merged)")
    say(f"name: {c.name}")
    say("")
    print_table(
        ["ISSUE", "STATUS", "TITLE", "WAITING ON"],
        [[i.id, i.status, one_line(i.title, 40), one_line(waiting_on(i), 90)] for i in shown.issues],
        empty="no issues yet: gt convoy add " + c.id + " ISSUE...",
    )

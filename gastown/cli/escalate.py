"""`gt escalate MESSAGE`, `gt escalate list`, `gt escalate ack ID`."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from gastown.cli import complete
from gastown.cli._common import JsonOpt, TownOpt, command_group, open_context
from gastown.cli._output import print_json, print_table, say
from gastown.safetext import one_line


class _DefaultToRaise(TyperGroup):
    """`gt escalate "message"` raises; `gt escalate list|ack` are subcommands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["raise", *args]
        return super().parse_args(ctx, args)


app = command_group(
    'Raise a blocker: gt escalate "MESSAGE" [--severity low|medium|high|critical]; or list / ack them.',
    cls=_DefaultToRaise,
)


@app.command("raise", hidden=True)
def raise_(
    message: Annotated[str, typer.Argument(help="What blocks the work.")],
    severity: Annotated[str, typer.Option("--severity", "-s", help="low | medium | high | critical")] = "medium",
    issue: Annotated[str | None, typer.Option(
        "--issue", help="The issue it is about (agents: their own).", autocompletion=complete.any_issue
    )] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Raise an escalation (from an agent: about its own issue, which becomes blocked)."""
    from gastown.ledger.escalations import escalate_from

    ctx = open_context(town)
    esc = escalate_from(ctx.ledger, os.environ, message, severity=severity, issue=issue)
    if json_out:
        print_json(esc.to_json())
    else:
        say(f"escalated {esc.id} [{esc.severity}]" + (f" about {esc.issue} (now blocked)" if esc.issue and esc.polecat else ""))


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include acknowledged ones.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List open escalations (newest first)."""
    from gastown.ledger.escalations import list_escalations

    rows = list_escalations(open_context(town).ledger.connection(), open_only=not all_)
    if json_out:
        print_json([e.to_json() for e in rows])
        return
    print_table(
        ["ID", "SEVERITY", "ISSUE", "FROM", "MESSAGE"],
        [[e.id, e.severity + (" (acked)" if e.acked_at else ""), e.issue or "-", e.source, one_line(e.message, 70)] for e in rows],
        empty="no open escalations",
    )


@app.command("ack")
def ack(escalation: Annotated[str, typer.Argument(metavar="ID")], town: TownOpt = None) -> None:
    """Acknowledge an escalation: it stops counting as open and stops aging."""
    from gastown.ledger.escalations import acknowledge

    esc = acknowledge(open_context(town).ledger, escalation)
    say(f"acknowledged {esc.id}")

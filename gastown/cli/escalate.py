"""`gt escalate MESSAGE`, `gt escalate list`, `gt escalate ack ID`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from gastown.cli import complete
from gastown.cli._common import chosen_town, open_context
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, print_table, say
from gastown.safetext import one_line

if TYPE_CHECKING:
    from gastown.ledger.escalations import Escalation


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
    from gastown.hosts.hub_client import is_remote_agent

    if chosen_town(town) is None and is_remote_agent(os.environ):
        from gastown.hosts.hub_client import remote_escalate

        doc = remote_escalate(os.environ, message, severity=severity, issue=issue)  # an agent on another host
    else:
        from gastown.ledger.escalations import escalate_from

        ctx = open_context(town)
        doc = escalate_from(ctx.ledger, os.environ, message, severity=severity, issue=issue).to_json()
    if json_out:
        print_json(doc)
    else:
        about = f" about {doc['issue']} (now blocked)" if doc.get("issue") and doc.get("polecat") else ""
        say(f"escalated {doc['id']} [{doc['severity']}]{about}")


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include acknowledged and resolved ones.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List open escalations (newest first)."""
    from gastown.ledger.escalations import list_escalations

    rows = list_escalations(open_context(town, last_good=True).ledger.connection(), open_only=not all_)
    if json_out:
        print_json([e.to_json() for e in rows])
        return
    print_table(
        ["ID", "SEVERITY", "ISSUE", "FROM", "MESSAGE"],
        [[e.id, e.severity + _state(e), e.issue or "-", e.source, one_line(e.message, 70)] for e in rows],
        empty="no open escalations",
    )


def _state(esc: Escalation) -> str:
    if esc.resolved_at is not None:
        return " (resolved)"
    return " (acked)" if esc.acked_at is not None else ""


@app.command("ack")
def ack(
    escalation: Annotated[str | None, typer.Argument(metavar="[ID]", help="The escalation to acknowledge.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Acknowledge every open escalation.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Acknowledge an escalation (or --all): it stops counting as open and stops aging."""
    from gastown.errors import InvalidInput
    from gastown.ledger.escalations import acknowledge, acknowledge_all

    if (escalation is None) == (not all_):
        raise InvalidInput("give one escalation id, or --all", hint="see `gt escalate list`")
    ledger = open_context(town).ledger
    acked = acknowledge_all(ledger) if all_ else [acknowledge(ledger, escalation or "")]
    if json_out:
        print_json([e.to_json() for e in acked])
    elif all_:
        say(f"acknowledged {len(acked)} escalation(s)" + (": " + ", ".join(e.id for e in acked) if acked else ""))
    else:
        say(f"acknowledged {acked[0].id}")

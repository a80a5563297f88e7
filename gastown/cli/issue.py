"""`gt issue create/list/show/edit/close/reopen`."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli import bodies, complete
from gastown.cli._common import open_context, read_body
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, say
from gastown.safetext import one_line
from gastown.states import IssueStatus

app = command_group("Create, list, show, edit, close and reopen issues.")


@app.command("create")
def create(
    title: Annotated[str, typer.Argument(help="One-line title.")],
    body: Annotated[str | None, typer.Option("--body", "-b", help="Body text, or - to read it from standard input.")] = None,
    rig: Annotated[str | None, typer.Option(
        "--rig", "-r", help="Rig the issue belongs to (needed when there are several).", autocompletion=complete.rigs
    )] = None,
    priority: Annotated[int, typer.Option("--priority", "-p", min=0, max=4, help="0 (most urgent) to 4.")] = 2,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an issue and print its id."""
    from gastown.ledger import issues

    ctx = open_context(town)
    issue = issues.create(
        ctx.ledger, title=title, body=read_body(body), rig=rig, priority=priority, prefixes=ctx.settings.rig_prefixes()
    )
    if json_out:
        print_json({"id": issue.id})
    else:
        say(issue.id)


@app.command("list")
def list_(
    rig: Annotated[str | None, typer.Option("--rig", "-r", help="Only this rig's issues.", autocompletion=complete.rigs)] = None,
    status: Annotated[IssueStatus | None, typer.Option("--status", "-s", help="Only issues in this status.")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List issues, most urgent first."""
    bodies.issue_list(rig, status, town, json_out)


@app.command("show")
def show(
    issue_id: Annotated[str, typer.Argument(metavar="ID", help="Issue id, e.g. app-k3x9q.", autocompletion=complete.any_issue)],
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one issue, title and body exactly as stored."""
    from gastown.ledger.github import link_of_issue, pull_of_issue
    from gastown.ledger.issues import get_issue

    conn = open_context(town, last_good=True).ledger.connection()
    issue = get_issue(conn, issue_id)
    link, pull = link_of_issue(conn, issue.id), pull_of_issue(conn, issue.id)
    if json_out:
        print_json({**issue.to_json(), "github": link.to_json() if link else None,
                    "pull_request": pull.to_json() if pull else None})
        return
    say(f"{issue.id}  [{issue.status}]  priority {issue.priority}  rig {issue.rig}")
    say(f"title: {issue.title}")
    if link is not None:
        say(f"github: {link.repo}#{link.number}  {one_line(link.url, 200)}")
    if pull is not None:
        say(f"pull request: #{pull.number} [{pull.state}] {one_line(pull.checks or '', 80)}  {one_line(pull.url, 200)}")
    if issue.close_reason:
        say(f"reason: {issue.close_reason}")
    if issue.body:
        say("")
        say(issue.body)


@app.command("close")
def close(
    issue_id: Annotated[str, typer.Argument(metavar="ID", autocompletion=complete.unclosed_issues)],
    reason: Annotated[str | None, typer.Option("--reason", help="Why it is closed.")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Close an issue: its agent is stopped, unmerged work archived, waiting merge requests rejected."""
    from gastown.ledger.issues import get_issue
    from gastown.roles.by_hand import close_issue

    ctx = open_context(town)
    result = close_issue(ctx, issue_id, reason=reason)
    if json_out:
        print_json({**get_issue(ctx.ledger.connection(), issue_id).to_json(), "released": result.to_json()})
    else:
        say(result.message)


@app.command("reopen")
def reopen(
    issue_id: Annotated[str, typer.Argument(metavar="ID", autocompletion=complete.reopenable_issues)],
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Reopen a closed or blocked issue; its restart and fix-cycle counts start afresh."""
    from gastown.ledger.issues import get_issue
    from gastown.roles.by_hand import reopen_issue

    ctx = open_context(town)
    result = reopen_issue(ctx, issue_id)
    if json_out:
        print_json({**get_issue(ctx.ledger.connection(), issue_id).to_json(), "reopened": result.to_json()})
    else:
        say(result.message)


@app.command("edit")
def edit(
    issue_id: Annotated[str, typer.Argument(metavar="ID")],
    title: Annotated[str | None, typer.Option("--title", "-t", help="New one-line title.")] = None,
    body: Annotated[str | None, typer.Option("--body", "-b", help="New body text, or - to read it from standard input.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", "-p", min=0, max=4, help="0 (most urgent) to 4.")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change an issue's title, body or priority (a running agent sees it on its next start)."""
    from gastown.errors import InvalidInput
    from gastown.ledger import issues

    if title is None and body is None and priority is None:
        raise InvalidInput("nothing to change", hint="give --title, --body (or --body - for standard input) or --priority")
    ctx = open_context(town)
    issue, changed = issues.edit(ctx.ledger, issue_id, title=title, body=None if body is None else read_body(body),
                                 priority=priority)
    if json_out:
        print_json({**issue.to_json(), "changed": changed})
        return
    if not changed:
        say(f"{issue.id} unchanged")
        return
    note = ""
    if issue.status == IssueStatus.HOOKED and ({"title", "body"} & set(changed)):
        note = "; its agent gets the new text on its next start (`gt restart` to start it now)"
    say(f"edited {issue.id}: {', '.join(changed)}{note}")

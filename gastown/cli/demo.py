"""`gt demo`: a whole town on demo agents, live, in about a minute."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from gastown.cli._options import JsonOpt
from gastown.cli._output import print_json, say


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the town, its agents' tmux server and the Mayor afterwards.")] = False,
    think: Annotated[float, typer.Option("--think", help="Seconds each demo agent 'thinks'.")] = 2.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Give up after this many seconds.")] = 300.0,
    json_out: JsonOpt = False,
) -> None:
    """Run a complete demo town in a temp dir: six issues, demo agents in tmux, the merge queue, a summary."""
    from gastown.demo.run import run_demo

    live = _LiveView() if sys.stdout.isatty() and not json_out else _LineView(quiet=json_out)
    if not json_out:
        say("gastown demo: building a town with a tiny calculator project, six issues and demo agents…")
    try:
        summary = run_demo(keep=keep, think=think, timeout=timeout, show=live.show)
    finally:
        live.close()
    if json_out:
        print_json(summary.to_json())
    else:
        _print_summary(summary)
    if summary.merged != summary.issues or not summary.upstream_tests_green:
        raise typer.Exit(1)


class _LineView:
    """Non-terminal output: one line per event, as it happens."""

    def __init__(self, quiet: bool) -> None:
        self.after = 0
        self.quiet = quiet

    def show(self, ctx: Any, ids: list[str], elapsed: float) -> None:
        from gastown.ledger.events import list_events

        for event in list_events(ctx.ledger.connection(), after_id=self.after):
            self.after = event.id
            if not self.quiet:
                where = f"{event.rig}/{event.polecat}" if event.polecat else (event.rig or "town")
                say(f"{elapsed:5.0f}s  {event.kind:<10} {where:<16} {event.issue or '':<11} {event.message}")

    def close(self) -> None:
        pass


class _LiveView:
    """A terminal: a table of the six issues redrawn in place, plus the latest events."""

    def __init__(self) -> None:
        from rich.live import Live

        from gastown.cli._output import console

        self.console = console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def show(self, ctx: Any, ids: list[str], elapsed: float) -> None:
        self.live.update(progress_table(ctx, ids, elapsed))

    def close(self) -> None:
        self.live.stop()


STATUS_STYLE = {"open": "dim", "hooked": "yellow", "in_review": "cyan", "closed": "green", "blocked": "red"}


def progress_table(ctx: Any, ids: list[str], elapsed: float) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from gastown.ledger.events import list_events
    from gastown.ledger.issues import get_issue
    from gastown.ledger.mrs import latest_for_issue
    from gastown.ledger.rounds import total_gate_runs
    from gastown.roles.fleet import list_agents
    from gastown.views.text import literal

    conn = ctx.ledger.connection()
    agents = {a.issue: a for a in list_agents(ctx)}
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    for column in ("ISSUE", "STATUS", "AGENT", "MERGE REQUEST", "TITLE"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=44 if column == "TITLE" else None)
    merged = 0
    for issue_id in ids:
        issue = get_issue(conn, issue_id)
        mr = latest_for_issue(conn, issue_id)
        merged += issue.status == "closed"
        agent = agents.get(issue_id)
        table.add_row(
            issue_id,
            Text(str(issue.status), style=STATUS_STYLE.get(str(issue.status), "")),
            Text(f"{agent.rig}/{agent.polecat} {agent.state}" if agent else "-"),
            Text(str(mr.state) if mr else "-"),
            Text(literal(issue.title)),
        )
    gate_runs = total_gate_runs(conn)
    head = Text(f"gastown demo · {elapsed:4.0f}s · merged {merged}/{len(ids)} · gate runs {gate_runs}", style="bold")
    recent = list_events(conn, limit=6, newest_first=True)
    lines = [Text(f"  {e.kind:<10} {(e.polecat or e.rig or ''):<10} {literal(e.message)}", style="dim", overflow="ellipsis", no_wrap=True)
             for e in reversed(recent)]
    return Group(head, table, Text(""), *lines)


def _print_summary(summary: Any) -> None:
    tests = "green" if summary.upstream_tests_green else "RED"
    say("")
    say(f"gastown demo: {summary.merged} of {summary.issues} issues merged in {summary.seconds:.0f}s")
    say(f"  fix cycles   {summary.fix_cycles} ({summary.conflicts} merge conflict(s), {summary.red_gates} red gate(s), "
        f"{summary.changes_requested} stopped by review)")
    say(f"  gate runs    {summary.gate_runs}")
    say(f"  reviews      {summary.reviews} by the demo reviewer, {summary.reviews_blocked} said do_not_merge")
    for line in summary.roast:
        say(f"               {line}")
    say(f"  tokens       {summary.tokens:,} (demo agents cost nothing; `gt costs` shows real ones)")
    say(f"  upstream     {summary.upstream_commits} commits on main, its tests {tests}")
    if summary.convoy:
        landed = "landed" if summary.convoy_landed else "not landed"
        say(f"  convoy       {summary.convoy} ({landed}; gt convoy show {summary.convoy})")
    for problem in summary.problems:
        say(f"  problem      {problem}")
    if summary.kept:
        town = summary.town
        say("")
        say("The town is still running. Look around:")
        say(f"  cd {town}")
        say("  gt status                 # the town at a glance")
        say("  gt feed                   # live view of agents, queue and events")
        say("  gt agents; gt peek calc/<polecat>; gt attach   # the Mayor's log, or an agent's pane")
        say("  gt mq list --all          # what the merge queue did")
        say("  gt review list            # every review; gt review show <id> for the roast")
        say(f"  git -C {summary.upstream} log --oneline main")
        say("  gt down                   # stop it; then delete the directory")
    else:
        say("")
        say("Everything was cleaned up. Run `gt demo --keep` to keep the town and look around (gt attach, gt feed).")
    time.sleep(0)

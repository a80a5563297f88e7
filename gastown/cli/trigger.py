"""`gt trigger list/show/requests/pause/resume/fire/rotate`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import print_json, print_table, say
from gastown.safetext import one_line

if TYPE_CHECKING:
    from gastown.roles.trigger_ops import TriggerView

app = typer.Typer(help="Webhook and schedule triggers: their URLs, request history, pause, fire, rotate.",
                  no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The trigger's name, as in gastown.toml.")]


def _when(ts: float | None) -> str:
    from gastown.views.text import clock_time

    if ts is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d ") + clock_time(ts)


@app.command("list")
def list_(town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """List the triggers of gastown.toml with their state and last request."""
    from gastown.roles.trigger_ops import describe

    views = describe(open_context(town))
    if json_out:
        print_json([v.to_json() for v in views])
        return
    rows = []
    for v in views:
        last = v.last_request
        rows.append([
            v.name, v.kind, v.rig, "paused" if v.paused else "active", f"{v.in_flight}/{v.max_in_flight}",
            f"{last.id} {last.state}" if last else "-",
            (f"next {_when(v.next_run)}" if v.kind == "schedule" else "webhook")
            + (f" · {one_line(v.problems[0], 50)}" if v.problems else ""),
        ])
    print_table(["NAME", "KIND", "RIG", "STATE", "IN FLIGHT", "LAST REQUEST", "WHEN"], rows,
                empty="no triggers; add a [triggers.NAME] table to gastown.toml (docs/triggers.md)")


def _show(v: TriggerView) -> None:
    from gastown.views.text import literal

    say(f"{v.name}: {v.kind} trigger for rig {v.rig}" + (f", agent {v.agent}" if v.agent else "")
        + (" (PAUSED)" if v.paused else ""))
    if v.url:
        say(f"  url:        {v.url}")
        say(f"  auth:       {v.auth}" + (f" (secret in ${v.secret_env})" if v.secret_env else ""))
    if v.schedule:
        say(f"  schedule:   {v.schedule} ({v.timezone}); next run {_when(v.next_run)}; last {_when(v.last_slot)}")
    say(f"  in flight:  {v.in_flight} of {v.max_in_flight}")
    if v.last_request:
        last = v.last_request
        say(f"  last:       {last.id} {last.state} {_when(last.received_at)}"
            + (f" → {last.issue}" if last.issue else "") + (f": {literal(last.outcome, 80)}" if last.outcome else ""))
    for problem in v.problems:
        say(f"  problem:    {literal(problem)}")


@app.command("show")
def show(name: NameArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Show one trigger: its URL (the token is in it), schedule, state and last request."""
    from gastown.roles.trigger_ops import describe

    view = describe(open_context(town), [name])[0]
    if json_out:
        print_json(view.to_json())
    else:
        _show(view)


@app.command("requests")
def requests(
    name: NameArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="How many, newest first.")] = 100,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A trigger's last requests (100 are kept): state, issue, MR, outcome; --json adds payloads."""
    from gastown.roles.trigger_ops import requests as history
    from gastown.views.text import literal

    rows = history(open_context(town), name, limit=limit)
    if json_out:
        print_json([r.to_json() for r in rows])
        return
    print_table(
        ["ID", "STATE", "SOURCE", "RECEIVED", "ISSUE", "MR", "OUTCOME"],
        [[r.id, str(r.state), r.source, _when(r.received_at), r.issue or "-", r.mr or "-",
          literal(r.outcome, 70) if r.outcome else "-"] for r in rows],
        empty=f"no requests for {name} yet",
    )


@app.command("pause")
def pause(name: NameArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Pause a trigger: its URL answers 409, its schedule skips its runs."""
    from gastown.roles.trigger_ops import set_paused

    view = set_paused(open_context(town), name, True)
    print_json(view.to_json()) if json_out else say(f"{name} paused; `gt trigger resume {name}` undoes it")


@app.command("resume")
def resume(name: NameArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Resume a paused trigger (runs a schedule skipped while paused are not made up)."""
    from gastown.roles.trigger_ops import set_paused

    view = set_paused(open_context(town), name, False)
    print_json(view.to_json()) if json_out else say(f"{name} resumed")


@app.command("fire")
def fire(
    name: NameArg,
    body: Annotated[Path | None, typer.Option("--body", help="File whose text is the request body (- for standard input).")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Invoke a trigger now: same template, queue and in-flight limit; a schedule is not shifted."""
    from gastown.roles.trigger_ops import fire as fire_now

    result = fire_now(open_context(town), name, _read_body_file(body))
    if json_out:
        print_json(result.to_json())
    else:
        say(f"{name}: request {result.request} recorded as issue {result.issue}; the Mayor slings it")


def _read_body_file(path: Path | None) -> str:
    import sys

    from gastown.errors import InvalidInput

    if path is None:
        return ""
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start})", hint="the body must be text") from None


@app.command("rotate")
def rotate(name: NameArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Give a webhook trigger a new URL token; the old URL stops working at once."""
    from gastown.roles.trigger_ops import rotate as rotate_token

    view = rotate_token(open_context(town), name)
    if json_out:
        print_json(view.to_json())
    else:
        say(f"{name}: new URL {view.url}")
        say("the old URL now answers 404; update the sender")

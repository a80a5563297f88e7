"""`gt refinery status/run/release`: each rig's merge-queue engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, print_table, say

if TYPE_CHECKING:
    from gastown.refinery.engine import RecoveryReport, RoundReport

app = command_group("The refinery: run, inspect and release each rig's merge queue.")

RigArg = Annotated[str, typer.Argument(metavar="RIG", help="The rig whose queue to act on.", autocompletion=complete.rigs)]
LOCK_WAIT_S = 5.0


@app.command("status")
def status(
    rig: Annotated[str | None, typer.Argument(metavar="[RIG]", help="One rig (default: all).", autocompletion=complete.rigs)] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Queue depth, hold, running and last round, gate runs, per rig."""
    from gastown.refinery import queue

    rows = queue.status(open_context(town), rig)
    if json_out:
        print_json([r.to_json() for r in rows])
        return
    table = []
    for r in rows:
        last = r.last_round
        last_text = f"#{last.id} {last.outcome} ({last.gate_runs} runs)" if last else "-"
        state = f"HELD: {r.hold.reason}" if r.hold else (f"round #{r.running} running" if r.running else "ready")
        table.append([r.rig, r.settings.target, str(r.counts.get("queued", 0)), str(r.counts.get("testing", 0)),
                      str(r.counts.get("conflict", 0) + r.counts.get("failed", 0)), last_text,
                      str(r.recent_gate_runs), state])
    print_table(["RIG", "TARGET", "QUEUED", "TESTING", "SENT BACK", "LAST ROUND", "GATE RUNS", "STATE"], table,
                empty="no rigs yet: add one with `gt rig add NAME REPO`")


@app.command("run")
def run(rig: RigArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Recover from any crash, review what needs it, then merge RIG's queue until it is empty (prints each round)."""
    from gastown.errors import Conflict
    from gastown.refinery.engine import Refinery

    refinery = Refinery(open_context(town), rig)
    recovered = refinery.recover(wait=LOCK_WAIT_S)
    if not json_out and (recovered.interrupted or recovered.merged):
        say(describe_recovery(recovered))
    reports = refinery.run_until_empty(wait=LOCK_WAIT_S, on_round=None if json_out else lambda r: say(describe_round(r)),
                                       review=True)
    if json_out:
        print_json({"recovered": recovered.to_json(), "rounds": [r.to_json() for r in reports]})
    elif not reports:
        say(f"nothing to merge in rig {rig}")
    last = reports[-1] if reports else None
    if last is not None and last.outcome == "held":
        raise Conflict(f"the merge queue of rig {rig} is on hold: {last.message}",
                       hint=f"make the target pass its gates, then `gt refinery release {rig}`")
    if last is not None and last.outcome == "busy":
        raise Conflict(f"another refinery round of rig {rig} is running", hint="wait for it, or see `gt refinery status`")


@app.command("release")
def release(rig: RigArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Lift the hold on RIG's merge queue."""
    from gastown.refinery import queue

    hold = queue.release(open_context(town), rig)
    if json_out:
        print_json({"rig": rig, "released": hold is not None, "hold": hold.to_json() if hold else None})
    elif hold is None:
        say(f"the merge queue of rig {rig} was not on hold")
    else:
        say(f"released the merge queue of rig {rig} (was: {hold.reason})")


def describe_round(report: RoundReport) -> str:
    """One line per round, for `gt refinery run`."""
    head = f"round #{report.round_id}" if report.round_id is not None else "queue"
    if report.outcome == "held":
        return f"{head}: on hold: {report.message}"
    if report.outcome == "busy":
        return f"{head}: busy: {report.message}"
    parts = [f"{head}: {len(report.merged)}/{len(report.mrs)} merged"]
    if report.tip and report.merged:
        parts.append(f"tip {report.tip[:12]}")
    if report.conflicts:
        parts.append("conflict: " + " ".join(report.conflicts))
    if report.failed:
        parts.append("failed: " + " ".join(report.failed))
    if report.outcome == "raced":
        parts.append(f"upstream kept moving; requeued {len(report.requeued)}")
    parts.append(f"{report.gate_runs} gate run(s)")
    parts.append(f"{report.duration:.1f}s")
    return ", ".join(parts)


def describe_recovery(report: RecoveryReport) -> str:
    bits = []
    if report.merged:
        bits.append(f"marked merged (already on the upstream): {' '.join(report.merged)}")
    if report.interrupted:
        bits.append(f"interrupted round(s) {', '.join(f'#{i}' for i in report.interrupted)}; requeued {len(report.requeued)}")
    return "recovered: " + "; ".join(bits)

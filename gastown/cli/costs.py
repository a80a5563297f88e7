"""`gt costs`: token usage and what it cost, from each agent CLI's own records."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import print_json, print_table, say


def register(app: typer.Typer) -> None:
    app.command("costs")(costs)


def costs(
    by: Annotated[str, typer.Option(
        "--by", help="Group by rig, day, issue, agent (rig/polecat), runtime, convoy or role (polecat, review).",
        autocompletion=complete.fixed("rig", "day", "issue", "agent", "runtime", "convoy", "role"),
    )] = "rig",
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Tokens and dollars per rig, day, issue, agent, runtime, convoy or role (read from the CLIs' own usage logs)."""
    from gastown.costs import collect, grand_total, local_day, spent, totals

    ctx = open_context(town, last_good=True)
    collect(ctx)
    rows = totals(ctx, by)
    total = grand_total(rows)
    if json_out:
        print_json({
            "by": by, "rows": [r.to_json() for r in rows], "total": total.to_json(),
            "today_usd": round(spent(ctx), 6), "budget_usd": ctx.config.town.budget, "day": local_day(ctx.now()),
        })
        return
    print_table(
        [by.upper(), "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST", "RUNS"],
        [[r.key, f"{r.input:,}", f"{r.output:,}", f"{r.cache_read:,}", f"{r.cache_write:,}",
          f"${r.cost:.4f}" + (" *" if r.unpriced else ""), str(r.spawns)] for r in rows + ([total] if rows else [])],
        empty="no token usage recorded yet",
    )
    if total.unpriced:
        say("* some runs used a model with no price: add it under [prices] in gastown.toml")
    budget = ctx.config.town.budget
    if budget is not None:
        say(f"today: ${spent(ctx):.2f} of the ${budget:.2f} daily budget")

"""What the agents cost: token usage read from each CLI's own records, priced, and budgets.

Every spawn's usage is read from its private home (``runtimes/usage.py``) into the
``usage`` table, keyed by spawn: while it runs (the scheduler loop refreshes it every
couple of seconds), and once more when it ends (``final``). Cost comes from a price
table: gastown's defaults below, overridden by ``[prices."<model>"]`` in gastown.toml;
a model priced nowhere uses the cost its CLI recorded, if any, and is flagged unpriced.

A daily budget (``[town] budget``, ``[rigs.<name>] budget``, in US dollars, per local
calendar day) stops new spawns when reached (running ones finish); a hold, an event and
an escalation say so, and dispatch resumes by itself the next day or when the budget is
raised.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastown.context import Context
from gastown.errors import GastownError, InvalidInput
from gastown.ledger import work
from gastown.ledger.events import record_event

if TYPE_CHECKING:
    from gastown.config.schema import Price, TownConfig


@cache
def default_prices() -> dict[str, Price]:
    """US dollars per million tokens (input, output, cache read, cache write), list prices
    as of late 2026; override or extend them with [prices."<model>"]. Matched by longest
    prefix. Built on first use, since pydantic costs a command that imports this ~130 ms."""
    from gastown.config.schema import Price

    return {
        "claude-opus-4": Price(input=15.0, output=75.0, cache_read=1.5, cache_write=18.75),
        "claude-sonnet-4": Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75),
        "claude-haiku-4": Price(input=1.0, output=5.0, cache_read=0.1, cache_write=1.25),
        "claude-3-5-haiku": Price(input=0.8, output=4.0, cache_read=0.08, cache_write=1.0),
        "gpt-5": Price(input=1.25, output=10.0, cache_read=0.125),
        "gpt-5-mini": Price(input=0.25, output=2.0, cache_read=0.025),
        "gpt-4.1": Price(input=2.0, output=8.0, cache_read=0.5),
        "gpt-4o": Price(input=2.5, output=10.0, cache_read=1.25),
        "o3": Price(input=2.0, output=8.0, cache_read=0.5),
        "gemini-2.5-pro": Price(input=1.25, output=10.0, cache_read=0.31),
        "gemini-2.5-flash": Price(input=0.3, output=2.5, cache_read=0.075),
        "demo": Price(),
    }


GROUPINGS = ("rig", "day", "issue", "agent", "runtime", "convoy")


def price_for(config: TownConfig, model: str) -> Price | None:
    """The price of ``model``: the user's table first, then the defaults; exact, else the
    longest entry the model name starts with (``claude-sonnet-4-5-2025…`` → ``claude-sonnet-4``).

    >>> from gastown.config.schema import TownConfig
    >>> price_for(TownConfig(), "claude-sonnet-4-5-20250929").input
    3.0
    """
    for table in (config.prices, default_prices()):
        if model in table:
            return table[model]
        matches = [name for name in table if model.startswith(name)]
        if matches:
            return table[max(matches, key=len)]
    return None


def cost_of(tokens: dict[str, int], price: Price) -> float:
    """Dollars for the four token counts at ``price`` (cache reads default to the input
    price, cache writes to 1.25 × input, when the table leaves them out).

    >>> from gastown.config.schema import Price
    >>> cost_of({"input": 1_000_000, "output": 100_000, "cache_read": 0, "cache_write": 0}, Price(input=3, output=15))
    4.5
    """
    read = price.cache_read if price.cache_read is not None else price.input
    write = price.cache_write if price.cache_write is not None else price.input * 1.25
    total = (
        tokens["input"] * price.input
        + tokens["output"] * price.output
        + tokens["cache_read"] * read
        + tokens["cache_write"] * write
    )
    return round(total / 1_000_000, 6)


def local_day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d")


def collect(ctx: Context, *, spawns: list[work.Spawn] | None = None) -> int:
    """Read the usage of active spawns and of ended ones not read a last time; returns
    how many rows changed. Cheap when nothing runs. Never raises for a bad usage file."""
    from gastown.roles.launch import home_path
    from gastown.runtimes.registry import spawn_runtime
    from gastown.runtimes.usage import read_spawn_usage

    conn = ctx.ledger.connection()
    if spawns is None:
        spawns = work.spawns_with_status(conn, work.ACTIVE_STATUSES)
        spawns += [
            s for s in (work.get_spawn(conn, row[0]) for row in conn.execute(
                "SELECT spawns.id FROM spawns LEFT JOIN usage ON usage.spawn = spawns.id"
                " WHERE spawns.status IN ('ended', 'failed') AND (usage.final IS NULL OR usage.final = 0)"
                " AND spawns.ended_at > ?", (ctx.now() - 86400,),
            )) if s
        ]
    changed = 0
    for spawn in spawns:
        try:
            runtime = spawn_runtime(ctx.config, spawn.rig, spawn.agent)
        except GastownError:
            continue
        home = home_path(ctx.town, spawn.id)
        if runtime.cli is None or not home.is_dir():
            continue
        usage = read_spawn_usage(runtime.cli, home)  # type: ignore[arg-type]
        tokens = usage.tokens()
        price = next((p for p in (price_for(ctx.config, m) for m in usage.models) if p is not None), None)
        cost = cost_of(tokens, price) if price is not None else (usage.cost_usd or 0.0)
        final = spawn.status in ("ended", "failed")
        with ctx.ledger.write() as conn:
            row = conn.execute("SELECT * FROM usage WHERE spawn = ?", (spawn.id,)).fetchone()
            values = (tokens["input"], tokens["output"], tokens["cache_read"], tokens["cache_write"], cost,
                      int(price is not None or not usage.models), ",".join(usage.models), int(final))
            if row is not None and tuple(row[k] for k in (
                "input", "output", "cache_read", "cache_write", "cost", "priced", "models", "final")) == values:
                continue
            conn.execute(
                "INSERT INTO usage (spawn, issue, rig, polecat, agent, day, input, output, cache_read, cache_write,"
                " cost, priced, models, final, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (spawn) DO UPDATE SET input = excluded.input, output = excluded.output,"
                " cache_read = excluded.cache_read, cache_write = excluded.cache_write, cost = excluded.cost,"
                " priced = excluded.priced, models = excluded.models, final = excluded.final,"
                " updated_at = excluded.updated_at",
                (spawn.id, spawn.issue, spawn.rig, spawn.polecat, spawn.agent, local_day(spawn.started_at),
                 *values, ctx.now()),
            )
        changed += 1
    return changed


@dataclass(frozen=True)
class CostRow:
    key: str
    input: int
    output: int
    cache_read: int
    cache_write: int
    cost: float
    spawns: int
    unpriced: int

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "cost": round(self.cost, 6)}


def totals(ctx: Context, by: str = "rig", *, since_day: str | None = None) -> list[CostRow]:
    """Usage summed by ``rig``, ``day``, ``issue``, ``agent`` (rig/polecat), ``runtime`` or ``convoy``."""
    if by not in GROUPINGS:
        raise InvalidInput(f"cannot group costs by {by!r}", hint="use one of: " + ", ".join(GROUPINGS))
    key = {
        "rig": "usage.rig", "day": "usage.day", "issue": "usage.issue", "runtime": "usage.agent",
        "agent": "usage.rig || '/' || usage.polecat", "convoy": "COALESCE(convoy_issues.convoy, '(none)')",
    }[by]
    join = " LEFT JOIN convoy_issues ON convoy_issues.issue = usage.issue" if by == "convoy" else ""
    where, args = "", []
    if since_day:
        where, args = " WHERE usage.day >= ?", [since_day]
    rows = ctx.ledger.connection().execute(
        f"SELECT {key} AS k, SUM(input), SUM(output), SUM(cache_read), SUM(cache_write), SUM(cost),"
        f" COUNT(DISTINCT usage.spawn), SUM(1 - priced) FROM usage{join}{where} GROUP BY k ORDER BY k",
        args,
    ).fetchall()
    return [CostRow(str(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0), float(r[5] or 0.0),
                    int(r[6] or 0), int(r[7] or 0)) for r in rows]


def grand_total(rows: list[CostRow]) -> CostRow:
    return CostRow(
        "total", sum(r.input for r in rows), sum(r.output for r in rows), sum(r.cache_read for r in rows),
        sum(r.cache_write for r in rows), sum(r.cost for r in rows), sum(r.spawns for r in rows),
        sum(r.unpriced for r in rows),
    )


def spent(ctx: Context, *, day: str | None = None, rig: str | None = None) -> float:
    day = day or local_day(ctx.now())
    sql, args = "SELECT COALESCE(SUM(cost), 0) FROM usage WHERE day = ?", [day]
    if rig is not None:
        sql, args = sql + " AND rig = ?", [*args, rig]
    return float(ctx.ledger.connection().execute(sql, args).fetchone()[0])


def budget_block(ctx: Context, rig: str) -> str | None:
    """Why no new agent may start in ``rig`` today (its or the town's budget is spent), else None."""
    cfg = ctx.config
    if cfg.town.budget is not None and spent(ctx) >= cfg.town.budget:
        return f"the town's daily budget of ${cfg.town.budget:.2f} is spent"
    rig_budget = cfg.rigs[rig].budget if rig in cfg.rigs else None
    if rig_budget is not None and spent(ctx, rig=rig) >= rig_budget:
        return f"rig {rig}'s daily budget of ${rig_budget:.2f} is spent"
    return None


def check_budgets(ctx: Context) -> None:
    """Hold (with an event and an escalation) each budget that is spent; release each hold
    whose budget has room again (a new day, or a raised budget), with an event."""
    from gastown.escalations import raise_escalation

    cfg = ctx.config
    scopes: dict[str, tuple[float | None, float]] = {"budget:town": (cfg.town.budget, spent(ctx))}
    for rig, rig_cfg in cfg.rigs.items():
        scopes[f"budget:{rig}"] = (rig_cfg.budget, spent(ctx, rig=rig))
    conn = ctx.ledger.connection()
    held = {row[0] for row in conn.execute("SELECT scope FROM holds WHERE scope LIKE 'budget:%'")}
    for scope, (budget, used) in scopes.items():
        scope_rig: str | None = None if scope == "budget:town" else scope.split(":", 1)[1]
        who = "the town" if scope_rig is None else f"rig {scope_rig}"
        if budget is not None and used >= budget and scope not in held:
            message = f"{who} reached its daily budget (${used:.2f} of ${budget:.2f}): no new agents start today"
            with ctx.ledger.write() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO holds (scope, until, reason, created_at) VALUES (?, NULL, ?, ?)",
                    (scope, message, ctx.now()),
                )
                record_event(conn, "hold", message, now=ctx.now(), rig=scope_rig, data={"budget": budget, "spent": used})
            raise_escalation(ctx, message + "; raise the budget to go on", severity="high", source="budget", rig=scope_rig)
        elif scope in held and (budget is None or used < budget):
            message = f"{who} has budget again (${used:.2f} spent of ${budget or 0:.2f}): dispatch resumes"
            if budget is None:
                message = f"{who} has no budget any more: dispatch resumes"
            with ctx.ledger.write() as conn:
                conn.execute("DELETE FROM holds WHERE scope = ?", (scope,))
                record_event(conn, "resume", message, now=ctx.now(), rig=scope_rig)
    for scope in held - set(scopes):
        with ctx.ledger.write() as conn:
            conn.execute("DELETE FROM holds WHERE scope = ?", (scope,))


def reap_homes(ctx: Context, *, older_than: float = 600.0) -> int:
    """Delete the private homes of runs that ended a while ago and whose usage was read a
    last time: they hold copied credentials. Returns how many were removed."""
    import shutil

    from gastown.roles.launch import home_path

    removed = 0
    rows = ctx.ledger.connection().execute(
        "SELECT spawns.id FROM spawns LEFT JOIN usage ON usage.spawn = spawns.id"
        " WHERE spawns.status IN ('ended', 'failed') AND spawns.ended_at < ?"
        " AND usage.final = 1",
        (ctx.now() - older_than,),
    ).fetchall()
    for row in rows:
        home: Path = home_path(ctx.town, row[0])
        if home.is_dir():
            shutil.rmtree(home, ignore_errors=True)
            removed += 1
    return removed

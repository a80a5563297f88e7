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
from typing import TYPE_CHECKING

from gastown.config.settings import PriceSettings as Price
from gastown.context import Context
from gastown.errors import GastownError, InvalidInput
from gastown.ledger import holds, work
from gastown.ledger import usage as usage_rows
from gastown.ledger.events import record_event
from gastown.ledger.holds import HoldKind, HoldScope
from gastown.ledger.usage import GROUPINGS, CostRow
from gastown.states import SpawnStatus

if TYPE_CHECKING:
    from gastown.runtimes.registry import AnyConfig
    from gastown.runtimes.usage import TokenUsage


@cache
def default_prices() -> dict[str, Price]:
    """US dollars per million tokens (input, output, cache read, cache write), list prices
    as of late 2026; override or extend them with [prices."<model>"]. Matched by longest
    prefix."""

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
        "demo": Price(0.0, 0.0),
    }


def price_for(config: AnyConfig, model: str) -> Price | None:
    """The price of ``model``: the user's table first, then the defaults; exact, else the
    longest entry the model name starts with (``claude-sonnet-4-5-2025…`` → ``claude-sonnet-4``).

    >>> from gastown.config.schema import TownConfig
    >>> price_for(TownConfig(), "claude-sonnet-4-5-20250929").input
    3.0
    """
    for table in (config.prices, default_prices()):
        matches = [model] if model in table else [name for name in table if model.startswith(name)]
        if matches:
            found = table[max(matches, key=len)]
            return Price(found.input, found.output, found.cache_read, found.cache_write)
    return None


def cost_of(tokens: dict[str, int], price: Price) -> float:
    """Dollars for the four token counts at ``price`` (cache reads default to the input
    price, cache writes to 1.25 × input, when the table leaves them out).

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
        unread = usage_rows.unread_ended_spawns(conn, ended_after=ctx.now() - 86400)
        spawns += [s for s in (work.get_spawn(conn, spawn_id) for spawn_id in unread) if s]
    changed = 0
    for spawn in spawns:
        try:
            # The settings say which CLI it is (demo agents keep no records: no pydantic for them).
            runtime = spawn_runtime(ctx.settings, spawn.rig, spawn.agent)
        except GastownError:
            continue
        home = home_path(ctx.town, spawn.id)
        if runtime.cli is None or not home.is_dir():
            continue
        usage = read_spawn_usage(runtime.cli, home)  # type: ignore[arg-type]
        tally = tally_of(ctx.settings, usage, final=spawn.status in (SpawnStatus.ENDED, SpawnStatus.FAILED))
        with ctx.ledger.write() as conn:
            if usage_rows.get_tally(conn, spawn.id) == tally:
                continue
            usage_rows.record_tally(
                conn, spawn=spawn.id, issue=spawn.issue, rig=spawn.rig, polecat=spawn.polecat, agent=spawn.agent,
                day=local_day(spawn.started_at), tally=tally, now=ctx.now(),
            )
        changed += 1
    return changed


def tally_of(config: AnyConfig, usage: TokenUsage, *, final: bool) -> usage_rows.Tally:
    """What one run used, priced (``price_for`` the first model with a price, else the
    cost the CLI recorded, flagged unpriced). Pure."""
    tokens = usage.tokens()
    price = next((p for p in (price_for(config, m) for m in usage.models) if p is not None), None)
    return usage_rows.Tally(
        input=tokens["input"], output=tokens["output"], cache_read=tokens["cache_read"],
        cache_write=tokens["cache_write"],
        cost=cost_of(tokens, price) if price is not None else (usage.cost_usd or 0.0),
        priced=price is not None or not usage.models, models=",".join(usage.models), final=final,
    )


REVIEW_POLECAT = "(review)"  # the "polecat" of a review's usage row: no polecat did it


def record_review_usage(
    ctx: Context, *, review_id: str, rig: str, issue: str | None, agent: str, started_at: float, usage: TokenUsage,
) -> usage_rows.Tally:
    """Record what one AI review used, under the role ``review`` (final: the reviewer
    has exited). Idempotent per review."""
    tally = tally_of(ctx.settings, usage, final=True)
    with ctx.ledger.write() as conn:
        usage_rows.record_tally(
            conn, spawn=review_id, issue=issue or "", rig=rig, polecat=REVIEW_POLECAT, agent=agent,
            day=local_day(started_at), tally=tally, now=ctx.now(), role="review",
        )
    return tally


def totals(ctx: Context, by: str = "rig", *, since_day: str | None = None) -> list[CostRow]:
    """Usage summed by ``rig``, ``day``, ``issue``, ``agent`` (rig/polecat), ``runtime``,
    ``convoy`` or ``role`` (``polecat`` work, ``review``)."""
    if by not in GROUPINGS:
        raise InvalidInput(f"cannot group costs by {by!r}", hint="use one of: " + ", ".join(GROUPINGS))
    return usage_rows.totals(ctx.ledger.connection(), by, since_day=since_day)


def grand_total(rows: list[CostRow]) -> CostRow:
    return CostRow(
        "total", sum(r.input for r in rows), sum(r.output for r in rows), sum(r.cache_read for r in rows),
        sum(r.cache_write for r in rows), sum(r.cost for r in rows), sum(r.spawns for r in rows),
        sum(r.unpriced for r in rows),
    )


def spent(ctx: Context, *, day: str | None = None, rig: str | None = None) -> float:
    return usage_rows.spent(ctx.ledger.connection(), day=day or local_day(ctx.now()), rig=rig)


# -- budgets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Budgets:
    """Today's budgets and spending, read at one moment (``read_budgets``)."""

    town_budget: float | None
    town_spent: float
    rig_budgets: dict[str, float | None]  # every configured rig
    rig_spent: dict[str, float]

    def scopes(self) -> dict[HoldScope, tuple[float | None, float]]:
        """``{scope: (budget, spent)}`` for the town and every rig."""
        out: dict[HoldScope, tuple[float | None, float]] = {HoldScope.town_budget(): (self.town_budget, self.town_spent)}
        for rig, budget in self.rig_budgets.items():
            out[HoldScope.rig_budget(rig)] = (budget, self.rig_spent.get(rig, 0.0))
        return out


def read_budgets(ctx: Context) -> Budgets:
    conn = ctx.ledger.connection()
    by_rig = usage_rows.spent_by_rig(conn, day=local_day(ctx.now()))
    return Budgets(
        town_budget=ctx.config.town.budget, town_spent=sum(by_rig.values()),
        rig_budgets={rig: cfg.budget for rig, cfg in ctx.config.rigs.items()}, rig_spent=by_rig,
    )


def budget_blocks(budgets: Budgets) -> dict[str, str]:
    """``{rig: why no new agent may start there today}`` for every rig whose budget, or the
    town's, is spent. Pure.

    >>> budget_blocks(Budgets(None, 5.0, {"town": 4.0, "app": None}, {"town": 5.0}))
    {'town': "rig town's daily budget of $4.00 is spent"}
    """
    blocks: dict[str, str] = {}
    town_spent = budgets.town_budget is not None and budgets.town_spent >= budgets.town_budget
    for rig, budget in budgets.rig_budgets.items():
        if town_spent:
            blocks[rig] = f"the town's daily budget of ${budgets.town_budget:.2f} is spent"
        elif budget is not None and budgets.rig_spent.get(rig, 0.0) >= budget:
            blocks[rig] = f"rig {rig}'s daily budget of ${budget:.2f} is spent"
    return blocks


@dataclass(frozen=True)
class HoldBudget:
    scope: HoldScope
    message: str
    budget: float
    spent: float


@dataclass(frozen=True)
class ReleaseBudget:
    scope: HoldScope
    message: str | None  # None: the hold of a rig that is gone, removed quietly


BudgetAction = HoldBudget | ReleaseBudget


def assess_budgets(budgets: Budgets, held: set[HoldScope]) -> list[BudgetAction]:
    """Hold each spent budget that is not held yet; release each hold whose budget has
    room again (a new day, a raised or removed budget) or whose rig is gone. Pure."""
    actions: list[BudgetAction] = []
    scopes = budgets.scopes()
    for scope, (budget, used) in scopes.items():
        who = "the town" if scope.subject is None else f"rig {scope.subject}"
        if budget is not None and used >= budget and scope not in held:
            message = f"{who} reached its daily budget (${used:.2f} of ${budget:.2f}): no new agents start today"
            actions.append(HoldBudget(scope, message, budget, used))
        elif scope in held and (budget is None or used < budget):
            message = (f"{who} has no budget any more: dispatch resumes" if budget is None
                       else f"{who} has budget again (${used:.2f} spent of ${budget:.2f}): dispatch resumes")
            actions.append(ReleaseBudget(scope, message))
    actions += [ReleaseBudget(scope, None) for scope in sorted(held - set(scopes), key=str)]
    return actions


def check_budgets(ctx: Context) -> list[BudgetAction]:
    """Hold (with an event and an escalation) each budget that is spent; release each hold
    whose budget has room again, with an event. Returns what it decided."""
    from gastown.ledger.escalations import cause_hold, record_escalation

    held = {h.scope for h in holds.list_holds(ctx.ledger.connection(), HoldKind.BUDGET)}
    actions = assess_budgets(read_budgets(ctx), held)
    for action in actions:
        with ctx.ledger.write() as conn:
            now = ctx.now()
            if isinstance(action, HoldBudget):
                if not holds.place_hold(conn, action.scope, reason=action.message, now=now, replace=False):
                    continue  # another process held it meanwhile
                record_event(conn, "hold", action.message, now=now, rig=action.scope.rig,
                             data={"budget": action.budget, "spent": action.spent})
                record_escalation(conn, action.message + "; raise the budget to go on", now=now, severity="high",
                                  source="budget", rig=action.scope.rig, cause=cause_hold(action.scope))
            elif holds.release_hold(conn, action.scope) and action.message:
                record_event(conn, "resume", action.message, now=now, rig=action.scope.rig)
    return actions

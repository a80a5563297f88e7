"""Token usage and cost per spawn (table ``usage``, one row per spawn).

Rows are written by ``gastown.costs.collect`` while a spawn runs and once more when it
ends (``final``); a spawn counts on the local day it started (``day``). An AI review is
a run too: its row is keyed by the review id, with ``role`` ``review`` (agents'
rows are ``polecat``). Writes belong inside ``Ledger.write()``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

GROUPINGS = ("rig", "day", "issue", "agent", "runtime", "convoy", "role")

_GROUP_KEYS = {
    "rig": "usage.rig", "day": "usage.day", "issue": "usage.issue", "runtime": "usage.agent",
    "agent": "usage.rig || '/' || usage.polecat", "convoy": "COALESCE(first_convoy.convoy, '(none)')",
    "role": "usage.role",
}
# Each issue counts in one convoy only, the first it joined (ties: the lower id), so the
# convoy rows add up to the same total as any other grouping.
_FIRST_CONVOY = (
    " LEFT JOIN (SELECT ci.issue AS issue, ci.convoy AS convoy FROM convoy_issues AS ci WHERE NOT EXISTS"
    " (SELECT 1 FROM convoy_issues AS other WHERE other.issue = ci.issue AND (other.added_at < ci.added_at"
    " OR (other.added_at = ci.added_at AND other.convoy < ci.convoy)))) AS first_convoy"
    " ON first_convoy.issue = usage.issue"
)


@dataclass(frozen=True)
class Tally:
    """What a spawn used: the four token counts, the cost, and how it was priced."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    cost: float
    priced: bool
    models: str
    final: bool


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

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "cost": round(self.cost, 6)}


def get_tally(conn: sqlite3.Connection, spawn: str) -> Tally | None:
    row = conn.execute("SELECT * FROM usage WHERE spawn = ?", (spawn,)).fetchone()
    if row is None:
        return None
    return Tally(row["input"], row["output"], row["cache_read"], row["cache_write"], row["cost"],
                 bool(row["priced"]), row["models"], bool(row["final"]))


def record_tally(
    conn: sqlite3.Connection, *, spawn: str, issue: str, rig: str, polecat: str, agent: str, day: str,
    tally: Tally, now: float, role: str = "polecat",
) -> None:
    conn.execute(
        "INSERT INTO usage (spawn, issue, rig, polecat, agent, day, input, output, cache_read, cache_write,"
        " cost, priced, models, final, updated_at, role) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (spawn) DO UPDATE SET input = excluded.input, output = excluded.output,"
        " cache_read = excluded.cache_read, cache_write = excluded.cache_write, cost = excluded.cost,"
        " priced = excluded.priced, models = excluded.models, final = excluded.final,"
        " updated_at = excluded.updated_at",
        (spawn, issue, rig, polecat, agent, day, tally.input, tally.output, tally.cache_read, tally.cache_write,
         tally.cost, int(tally.priced), tally.models, int(tally.final), now, role),
    )


def unread_ended_spawns(conn: sqlite3.Connection, *, ended_after: float) -> list[str]:
    """Spawns that ended after ``ended_after`` whose usage was not yet read a last time."""
    rows = conn.execute(
        "SELECT spawns.id FROM spawns LEFT JOIN usage ON usage.spawn = spawns.id"
        " WHERE spawns.status IN ('ended', 'failed') AND (usage.final IS NULL OR usage.final = 0)"
        " AND spawns.ended_at > ?", (ended_after,),
    )
    return [row[0] for row in rows]


def finally_read_spawns(conn: sqlite3.Connection, *, ended_before: float) -> list[str]:
    """Spawns that ended before ``ended_before`` and whose usage was read a last time."""
    rows = conn.execute(
        "SELECT spawns.id FROM spawns JOIN usage ON usage.spawn = spawns.id"
        " WHERE spawns.status IN ('ended', 'failed') AND spawns.ended_at < ? AND usage.final = 1",
        (ended_before,),
    )
    return [row[0] for row in rows]


def totals(conn: sqlite3.Connection, by: str, *, since_day: str | None = None) -> list[CostRow]:
    """Usage summed by one of ``GROUPINGS`` (``ValueError`` for another). By ``convoy``, an
    issue in several convoys counts once, in the first convoy it joined; the rows of every
    grouping add up to the same total."""
    key = _GROUP_KEYS.get(by)
    if key is None:
        raise ValueError(f"cannot group usage by {by!r}")
    join = _FIRST_CONVOY if by == "convoy" else ""
    where, args = "", []
    if since_day:
        where, args = " WHERE usage.day >= ?", [since_day]
    rows = conn.execute(
        f"SELECT {key} AS k, SUM(input), SUM(output), SUM(cache_read), SUM(cache_write), SUM(cost),"
        f" COUNT(DISTINCT usage.spawn), SUM(1 - priced) FROM usage{join}{where} GROUP BY k ORDER BY k",
        args,
    ).fetchall()
    return [CostRow(str(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0), float(r[5] or 0.0),
                    int(r[6] or 0), int(r[7] or 0)) for r in rows]


def spent(conn: sqlite3.Connection, *, day: str, rig: str | None = None) -> float:
    """Dollars spent on ``day`` (a local ``YYYY-MM-DD``), town-wide or in one rig."""
    sql, args = "SELECT COALESCE(SUM(cost), 0) FROM usage WHERE day = ?", [day]
    if rig is not None:
        sql, args = sql + " AND rig = ?", [*args, rig]
    return float(conn.execute(sql, args).fetchone()[0])


def spent_by_rig(conn: sqlite3.Connection, *, day: str) -> dict[str, float]:
    rows = conn.execute("SELECT rig, COALESCE(SUM(cost), 0) FROM usage WHERE day = ? GROUP BY rig", (day,))
    return {row[0]: float(row[1]) for row in rows}


def total_tokens(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COALESCE(SUM(input + output + cache_read + cache_write), 0) FROM usage").fetchone()
    return int(row[0])

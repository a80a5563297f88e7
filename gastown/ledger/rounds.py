"""The refinery's own ledger records: round rows and the queue hold.

A round row (table ``refinery_rounds``) is written before the round touches git and
is finished (``ended_at``, ``outcome``) when the round is over, so an unfinished row
always means a round was cut short. Its ``mrs`` column holds a JSON document:

    {"batch": ["mr-…", …],          MRs taken into the round, in queue order
     "tip": "<sha>" | null,          the stack about to be pushed (set before the push)
     "merging": [["mr-…", "<sha>"]]} each MR of that stack and its commit on it

A hold (``ledger.holds``, scope ``refinery:<rig>``) stops a rig's rounds until it is
released, expires (``until``), or the upstream target moves off the held base.
All functions take a connection; writes belong inside ``Ledger.write()``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from gastown.ledger.holds import Hold, HoldScope, place_hold, release_hold
from gastown.ledger.holds import get_hold as get_any_hold
from gastown.ledger.timefmt import iso

OUTCOMES = ("merged", "pr", "nothing", "held", "raced", "interrupted", "error")


@dataclass(frozen=True)
class Round:
    id: int
    rig: str
    started_at: float
    ended_at: float | None
    base_sha: str | None
    batch: tuple[str, ...]
    tip: str | None
    merging: tuple[tuple[str, str], ...]
    gate_runs: int
    outcome: str | None
    log_path: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Round:
        doc = _doc(row["mrs"])
        return cls(
            id=row["id"],
            rig=row["rig"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            base_sha=row["base_sha"],
            batch=tuple(doc.get("batch", [])),
            tip=doc.get("tip"),
            merging=tuple((m, s) for m, s in doc.get("merging", [])),
            gate_runs=row["gate_runs"],
            outcome=row["outcome"],
            log_path=row["log_path"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rig": self.rig,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "base": self.base_sha,
            "mrs": list(self.batch),
            "tip": self.tip,
            "gate_runs": self.gate_runs,
            "outcome": self.outcome,
            "log": self.log_path,
        }


def _doc(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"batch": value}


def insert_round(conn: sqlite3.Connection, *, rig: str, base_sha: str, batch: list[str], now: float, log_dir: str) -> Round:
    cur = conn.execute(
        "INSERT INTO refinery_rounds (rig, started_at, base_sha, mrs) VALUES (?, ?, ?, ?)",
        (rig, now, base_sha, json.dumps({"batch": batch, "tip": None, "merging": []})),
    )
    round_id = int(cur.lastrowid or 0)
    conn.execute("UPDATE refinery_rounds SET log_path = ? WHERE id = ?", (f"{log_dir}/round-{round_id}.log", round_id))
    return get_round(conn, round_id)


def get_round(conn: sqlite3.Connection, round_id: int) -> Round:
    row = conn.execute("SELECT * FROM refinery_rounds WHERE id = ?", (round_id,)).fetchone()
    if row is None:
        raise LookupError(f"no refinery round {round_id}")
    return Round.from_row(row)


def set_round_plan(conn: sqlite3.Connection, round_id: int, *, tip: str | None, merging: list[tuple[str, str]]) -> None:
    """Record the stack about to be pushed (or clear it with ``tip=None``)."""
    current = get_round(conn, round_id)
    doc = {"batch": list(current.batch), "tip": tip, "merging": [list(pair) for pair in merging]}
    conn.execute("UPDATE refinery_rounds SET mrs = ? WHERE id = ?", (json.dumps(doc), round_id))


def count_gate_run(conn: sqlite3.Connection, round_id: int) -> None:
    conn.execute("UPDATE refinery_rounds SET gate_runs = gate_runs + 1 WHERE id = ?", (round_id,))


def finish_round(conn: sqlite3.Connection, round_id: int, outcome: str, *, now: float) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown round outcome {outcome!r}")
    conn.execute("UPDATE refinery_rounds SET ended_at = ?, outcome = ? WHERE id = ?", (now, outcome, round_id))


def unfinished_rounds(conn: sqlite3.Connection, rig: str) -> list[Round]:
    rows = conn.execute("SELECT * FROM refinery_rounds WHERE rig = ? AND ended_at IS NULL ORDER BY id", (rig,))
    return [Round.from_row(row) for row in rows]


def last_round(conn: sqlite3.Connection, rig: str, *, outcome: str | None = None) -> Round | None:
    sql = "SELECT * FROM refinery_rounds WHERE rig = ?" + (" AND outcome = ?" if outcome else "") + " ORDER BY id DESC LIMIT 1"
    row = conn.execute(sql, (rig, outcome) if outcome else (rig,)).fetchone()
    return Round.from_row(row) if row else None


def list_rounds(conn: sqlite3.Connection, rig: str, *, limit: int = 20) -> list[Round]:
    rows = conn.execute("SELECT * FROM refinery_rounds WHERE rig = ? ORDER BY id DESC LIMIT ?", (rig, limit))
    return [Round.from_row(row) for row in rows]


def total_gate_runs(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(gate_runs), 0) FROM refinery_rounds").fetchone()[0])


# -- the queue's hold --------------------------------------------------------------------


def get_hold(conn: sqlite3.Connection, rig: str) -> Hold | None:
    return get_any_hold(conn, HoldScope.refinery(rig))


def set_hold(conn: sqlite3.Connection, rig: str, *, reason: str, now: float, until: float | None = None) -> Hold:
    place_hold(conn, HoldScope.refinery(rig), reason=reason, now=now, until=until)
    hold = get_hold(conn, rig)
    assert hold is not None
    return hold


def clear_hold(conn: sqlite3.Connection, rig: str) -> bool:
    return release_hold(conn, HoldScope.refinery(rig))

"""Escalation rows: blockers raised by agents, patrols, the refinery or people."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from gastown.ledger.ids import new_id
from gastown.ledger.timefmt import iso

SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Escalation:
    id: str
    issue: str | None
    rig: str | None
    polecat: str | None
    spawn: str | None
    severity: str
    message: str
    source: str
    created_at: float
    aged_at: float | None
    acked_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Escalation:
        return cls(**{key: row[key] for key in row.keys()})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "issue": self.issue,
            "rig": self.rig,
            "polecat": self.polecat,
            "spawn": self.spawn,
            "severity": self.severity,
            "message": self.message,
            "source": self.source,
            "created_at": iso(self.created_at),
            "aged_at": iso(self.aged_at),
            "acked_at": iso(self.acked_at),
            "open": self.acked_at is None,
        }


def insert_escalation(
    conn: sqlite3.Connection,
    *,
    message: str,
    severity: str,
    source: str,
    now: float,
    issue: str | None = None,
    rig: str | None = None,
    polecat: str | None = None,
    spawn: str | None = None,
) -> Escalation:
    esc_id = new_id("esc")
    conn.execute(
        "INSERT INTO escalations (id, issue, rig, polecat, spawn, severity, message, source, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (esc_id, issue, rig, polecat, spawn, severity, message, source, now),
    )
    row = conn.execute("SELECT * FROM escalations WHERE id = ?", (esc_id,)).fetchone()
    return Escalation.from_row(row)


def list_escalations(conn: sqlite3.Connection, *, open_only: bool = False) -> list[Escalation]:
    sql = "SELECT * FROM escalations"
    if open_only:
        sql += " WHERE acked_at IS NULL"
    sql += " ORDER BY created_at DESC"
    return [Escalation.from_row(row) for row in conn.execute(sql)]

"""Numbered schema migrations, recorded in the ledger itself.

Rules: append only; never edit a migration after it has landed; each one runs inside
the same write transaction that records it, so a crash half-way leaves nothing behind.
``PRAGMA user_version`` mirrors the highest applied number so that opening an
up-to-date ledger costs one pragma.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "issues and events",
        """
        CREATE TABLE issues (
            id          TEXT PRIMARY KEY,
            rig         TEXT NOT NULL,
            title       TEXT NOT NULL,
            body        TEXT NOT NULL DEFAULT '',
            priority    INTEGER NOT NULL DEFAULT 2,
            status      TEXT NOT NULL DEFAULT 'open',
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL,
            closed_at   REAL,
            close_reason TEXT
        );
        CREATE INDEX issues_rig_status ON issues (rig, status);

        CREATE TABLE events (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            at       REAL NOT NULL,
            kind     TEXT NOT NULL,
            rig      TEXT,
            polecat  TEXT,
            spawn    TEXT,
            issue    TEXT,
            message  TEXT NOT NULL,
            data     TEXT
        );
        CREATE INDEX events_at ON events (at);
        CREATE INDEX events_issue ON events (issue);
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1].version


def apply_migrations(conn: sqlite3.Connection, *, now: float) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied.

    Takes the write lock first, so concurrent first opens apply each migration once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now),
            )
            applied.append(migration.version)
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def _statements(sql: str) -> list[str]:
    # executescript() would commit our transaction; split on ';' instead (no ';' inside our DDL).
    return [part.strip() for part in sql.split(";") if part.strip()]

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
    Migration(
        2,
        "polecats, hooks, spawns, merge requests, queue, holds, heartbeats, escalations",
        """
        CREATE TABLE polecats (
            rig         TEXT NOT NULL,
            name        TEXT NOT NULL,
            created_at  REAL NOT NULL,
            PRIMARY KEY (rig, name)
        );

        CREATE TABLE hooks (
            issue       TEXT PRIMARY KEY REFERENCES issues (id),
            rig         TEXT NOT NULL,
            polecat     TEXT NOT NULL,
            branch      TEXT NOT NULL,
            agent       TEXT NOT NULL,
            spawn       TEXT,
            kind        TEXT NOT NULL DEFAULT 'fresh',
            note        TEXT,
            restarts    INTEGER NOT NULL DEFAULT 0,
            created_at  REAL NOT NULL,
            UNIQUE (rig, polecat)
        );

        CREATE TABLE spawns (
            id          TEXT PRIMARY KEY,
            issue       TEXT NOT NULL,
            rig         TEXT NOT NULL,
            polecat     TEXT NOT NULL,
            agent       TEXT NOT NULL,
            attempt     INTEGER NOT NULL,
            kind        TEXT NOT NULL,
            status      TEXT NOT NULL,
            observed    TEXT NOT NULL DEFAULT 'spawning',
            pane_id     TEXT,
            pid         INTEGER,
            log_path    TEXT NOT NULL,
            prompt_path TEXT NOT NULL,
            started_at  REAL NOT NULL,
            ready_at    REAL,
            prompted_at REAL,
            done_at     REAL,
            ended_at    REAL,
            end_reason  TEXT,
            nudges      INTEGER NOT NULL DEFAULT 0,
            last_nudge_at REAL,
            log_size    INTEGER NOT NULL DEFAULT 0,
            last_output_at REAL,
            last_line   TEXT,
            last_lines  TEXT
        );
        CREATE INDEX spawns_status ON spawns (status);
        CREATE INDEX spawns_issue ON spawns (issue);

        CREATE TABLE mrs (
            id          TEXT PRIMARY KEY,
            rig         TEXT NOT NULL,
            issue       TEXT NOT NULL,
            polecat     TEXT,
            spawn       TEXT,
            branch      TEXT NOT NULL,
            commit_sha  TEXT NOT NULL,
            target      TEXT NOT NULL,
            priority    INTEGER NOT NULL,
            state       TEXT NOT NULL DEFAULT 'queued',
            fix_cycle   INTEGER NOT NULL DEFAULT 0,
            attempts    INTEGER NOT NULL DEFAULT 0,
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL,
            detail      TEXT,
            gate_log    TEXT,
            merged_sha  TEXT,
            UNIQUE (branch, commit_sha)
        );
        CREATE INDEX mrs_rig_state ON mrs (rig, state);

        CREATE TABLE refinery_rounds (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            rig         TEXT NOT NULL,
            started_at  REAL NOT NULL,
            ended_at    REAL,
            base_sha    TEXT,
            mrs         TEXT NOT NULL,
            gate_runs   INTEGER NOT NULL DEFAULT 0,
            outcome     TEXT,
            log_path    TEXT
        );

        CREATE TABLE sling_queue (
            issue       TEXT PRIMARY KEY REFERENCES issues (id),
            rig         TEXT NOT NULL,
            polecat     TEXT,
            agent       TEXT,
            priority    INTEGER NOT NULL,
            kind        TEXT NOT NULL DEFAULT 'fresh',
            start_point TEXT,
            note        TEXT,
            enqueued_at REAL NOT NULL,
            failures    INTEGER NOT NULL DEFAULT 0,
            last_error  TEXT
        );

        CREATE TABLE holds (
            scope       TEXT PRIMARY KEY,
            until       REAL,
            reason      TEXT NOT NULL,
            created_at  REAL NOT NULL
        );

        CREATE TABLE heartbeats (
            loop        TEXT PRIMARY KEY,
            at          REAL NOT NULL,
            pid         INTEGER NOT NULL,
            detail      TEXT
        );

        CREATE TABLE escalations (
            id          TEXT PRIMARY KEY,
            issue       TEXT,
            rig         TEXT,
            polecat     TEXT,
            spawn       TEXT,
            severity    TEXT NOT NULL,
            message     TEXT NOT NULL,
            source      TEXT NOT NULL,
            created_at  REAL NOT NULL,
            aged_at     REAL,
            acked_at    REAL
        );
        """,
    ),
    Migration(
        3,
        "convoys and mail",
        """
        CREATE TABLE convoys (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            status      TEXT NOT NULL DEFAULT 'open',
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL,
            closed_at   REAL
        );
        CREATE INDEX convoys_status ON convoys (status);

        CREATE TABLE convoy_issues (
            convoy      TEXT NOT NULL REFERENCES convoys (id),
            issue       TEXT NOT NULL REFERENCES issues (id),
            added_at    REAL NOT NULL,
            PRIMARY KEY (convoy, issue)
        );
        CREATE INDEX convoy_issues_issue ON convoy_issues (issue);

        CREATE TABLE mail (
            id           TEXT PRIMARY KEY,
            sender       TEXT NOT NULL,
            recipient    TEXT NOT NULL,
            subject      TEXT NOT NULL,
            body         TEXT NOT NULL DEFAULT '',
            created_at   REAL NOT NULL,
            read_at      REAL,
            announced_at REAL
        );
        CREATE INDEX mail_recipient ON mail (recipient, read_at);
        CREATE INDEX mail_unannounced ON mail (announced_at, read_at)
        """,
    ),
    Migration(
        4,
        "token usage and cost per spawn",
        """
        CREATE TABLE usage (
            spawn       TEXT PRIMARY KEY,
            issue       TEXT NOT NULL,
            rig         TEXT NOT NULL,
            polecat     TEXT NOT NULL,
            agent       TEXT NOT NULL,
            day         TEXT NOT NULL,
            input       INTEGER NOT NULL DEFAULT 0,
            output      INTEGER NOT NULL DEFAULT 0,
            cache_read  INTEGER NOT NULL DEFAULT 0,
            cache_write INTEGER NOT NULL DEFAULT 0,
            cost        REAL NOT NULL DEFAULT 0,
            priced      INTEGER NOT NULL DEFAULT 1,
            models      TEXT NOT NULL DEFAULT '',
            final       INTEGER NOT NULL DEFAULT 0,
            updated_at  REAL NOT NULL
        );
        CREATE INDEX usage_day ON usage (day, rig)
        """,
    ),
    Migration(
        5,
        "typed hold scopes: rig budgets as budget:rig:<rig>, the pause as pause:polecats",
        """
        UPDATE holds SET scope = 'pause:polecats' WHERE scope = 'town:polecats';
        UPDATE holds SET scope = 'budget:rig:' || substr(scope, 8)
            WHERE scope LIKE 'budget:%' AND scope != 'budget:town' AND scope NOT LIKE 'budget:rig:%'
        """,
    ),
    Migration(
        6,
        "ways out: stopped hooks, counters reset on reopen, escalation causes and resolutions, notifier cursors",
        """
        ALTER TABLE hooks ADD COLUMN stopped_at REAL;
        ALTER TABLE hooks ADD COLUMN stop_reason TEXT;
        ALTER TABLE issues ADD COLUMN counters_reset_at REAL;
        ALTER TABLE escalations ADD COLUMN cause TEXT;
        ALTER TABLE escalations ADD COLUMN resolved_at REAL;
        ALTER TABLE escalations ADD COLUMN resolution TEXT;
        CREATE INDEX escalations_cause ON escalations (cause);
        CREATE TABLE notify_cursors (
            notifier      TEXT PRIMARY KEY,
            last_event    INTEGER NOT NULL,
            failing_since REAL,
            last_error    TEXT,
            updated_at    REAL NOT NULL
        )
        """,
    ),
    Migration(
        7,
        "AI reviews and their findings; token usage by role",
        """
        CREATE TABLE reviews (
            id            TEXT PRIMARY KEY,
            rig           TEXT NOT NULL,
            mr            TEXT,
            issue         TEXT,
            branch        TEXT NOT NULL,
            commit_sha    TEXT NOT NULL,
            base_sha      TEXT,
            target        TEXT NOT NULL,
            agent         TEXT NOT NULL,
            style         TEXT NOT NULL,
            block_on      TEXT NOT NULL,
            trigger       TEXT NOT NULL,
            state         TEXT NOT NULL DEFAULT 'running',
            verdict       TEXT,
            model_verdict TEXT,
            summary       TEXT,
            praise        TEXT,
            dropped       INTEGER NOT NULL DEFAULT 0,
            diff_lines    INTEGER,
            runs          INTEGER NOT NULL DEFAULT 0,
            error         TEXT,
            owner         TEXT,
            started_at    REAL NOT NULL,
            ended_at      REAL,
            dismissed_at  REAL,
            prompt_path   TEXT,
            log_path      TEXT
        );
        CREATE INDEX reviews_mr ON reviews (mr, started_at);
        CREATE INDEX reviews_rig_state ON reviews (rig, state);

        CREATE TABLE review_findings (
            review       TEXT NOT NULL REFERENCES reviews (id),
            seq          INTEGER NOT NULL,
            source       TEXT NOT NULL,
            file         TEXT NOT NULL,
            start_line   INTEGER NOT NULL,
            end_line     INTEGER NOT NULL,
            severity     TEXT NOT NULL,
            category     TEXT NOT NULL,
            title        TEXT NOT NULL,
            explanation  TEXT NOT NULL,
            fix          TEXT NOT NULL,
            blocking     INTEGER NOT NULL,
            PRIMARY KEY (review, seq)
        );

        ALTER TABLE usage ADD COLUMN role TEXT NOT NULL DEFAULT 'polecat'
        """,
    ),
    Migration(
        8,
        "triggers: tokens, pause and schedule state, requests and delivery ids; retry time of queued slings",
        """
        CREATE TABLE triggers (
            name        TEXT PRIMARY KEY,
            token       TEXT NOT NULL,
            paused      INTEGER NOT NULL DEFAULT 0,
            paused_at   REAL,
            created_at  REAL NOT NULL,
            rotated_at  REAL,
            last_slot   REAL NOT NULL
        );

        CREATE TABLE trigger_requests (
            id          TEXT PRIMARY KEY,
            trigger     TEXT NOT NULL,
            state       TEXT NOT NULL DEFAULT 'captured',
            source      TEXT NOT NULL,
            issue       TEXT,
            mr          TEXT,
            outcome     TEXT,
            method      TEXT,
            path        TEXT,
            query       TEXT,
            headers     TEXT,
            body        TEXT NOT NULL DEFAULT '',
            source_ip   TEXT,
            delivery    TEXT,
            scheduled_for REAL,
            received_at REAL NOT NULL,
            started_at  REAL,
            finished_at REAL
        );
        CREATE INDEX trigger_requests_flight ON trigger_requests (trigger, state);
        CREATE INDEX trigger_requests_state ON trigger_requests (state, received_at);

        CREATE TABLE trigger_deliveries (
            trigger     TEXT NOT NULL,
            delivery    TEXT NOT NULL,
            request     TEXT NOT NULL,
            issue       TEXT,
            at          REAL NOT NULL,
            PRIMARY KEY (trigger, delivery)
        );
        CREATE INDEX trigger_deliveries_at ON trigger_deliveries (at);

        ALTER TABLE sling_queue ADD COLUMN not_before REAL
        """,
    ),
    Migration(
        9,
        "GitHub: imported issues, pull requests, comments posted, conditional-request tags",
        """
        CREATE TABLE github_issues (
            issue       TEXT PRIMARY KEY REFERENCES issues (id),
            rig         TEXT NOT NULL,
            repo        TEXT NOT NULL,
            number      INTEGER NOT NULL,
            url         TEXT NOT NULL,
            state       TEXT NOT NULL,
            synced_at   REAL NOT NULL,
            UNIQUE (repo, number)
        );

        CREATE TABLE github_prs (
            issue       TEXT PRIMARY KEY REFERENCES issues (id),
            rig         TEXT NOT NULL,
            repo        TEXT NOT NULL,
            number      INTEGER NOT NULL,
            url         TEXT NOT NULL,
            branch      TEXT NOT NULL,
            mr          TEXT NOT NULL,
            head_sha    TEXT NOT NULL,
            state       TEXT NOT NULL DEFAULT 'open',
            checks      TEXT,
            handled     TEXT NOT NULL DEFAULT '[]',
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL,
            UNIQUE (repo, number)
        );
        CREATE INDEX github_prs_rig_state ON github_prs (rig, state);

        CREATE TABLE github_posts (
            issue       TEXT NOT NULL,
            kind        TEXT NOT NULL,
            key         TEXT NOT NULL,
            posted_at   REAL NOT NULL,
            PRIMARY KEY (issue, kind, key)
        );

        CREATE TABLE github_etags (
            url         TEXT PRIMARY KEY,
            etag        TEXT NOT NULL,
            polled_at   REAL NOT NULL
        )
        """,
    ),
    Migration(
        10,
        "Hosts: where each hook and spawn runs, a spawn's hashed report-back token, each host's reachability",
        """
        ALTER TABLE hooks ADD COLUMN host TEXT NOT NULL DEFAULT 'local';
        ALTER TABLE spawns ADD COLUMN host TEXT NOT NULL DEFAULT 'local';
        ALTER TABLE spawns ADD COLUMN token_hash TEXT;
        CREATE INDEX spawns_host_status ON spawns (host, status);

        CREATE TABLE host_status (
            host                TEXT PRIMARY KEY,
            last_ok_at          REAL,
            unreachable_since   REAL,
            detail              TEXT
        )
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

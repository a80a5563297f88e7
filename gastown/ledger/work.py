"""Polecats, hooks and spawns: who works on what, and every run of an agent.

A *hook* binds an issue to a polecat (one issue per polecat, one polecat per issue,
both enforced by the schema). A *spawn* is one run of an agent for a hook; every
lifecycle record is keyed by spawn id, so a stale report about an old run can never be
mistaken for the current one.

Spawn statuses are ``states.SpawnStatus`` with their allowed moves in
``states.SPAWN_TRANSITIONS``; ``update_spawn`` refuses any other move.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import Any

from gastown.ledger.timefmt import iso
from gastown.states import ACTIVE_SPAWN_STATUSES, LIVE_SPAWN_STATUSES, SpawnStatus, check_spawn_transition

LIVE_STATUSES = LIVE_SPAWN_STATUSES
ACTIVE_STATUSES = ACTIVE_SPAWN_STATUSES


@dataclass(frozen=True)
class Hook:
    issue: str
    rig: str
    polecat: str
    branch: str
    agent: str
    spawn: str | None
    kind: str
    note: str | None
    restarts: int
    created_at: float
    stopped_at: float | None = None  # `gt stop`: the agent was let go on purpose; the work waits
    stop_reason: str | None = None
    host: str = "local"  # where the polecat's worktree and agent are (`[hosts.*]`)

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def to_json(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "created_at": iso(self.created_at),
                "stopped_at": iso(self.stopped_at)}


@dataclass(frozen=True)
class Spawn:
    id: str
    issue: str
    rig: str
    polecat: str
    agent: str
    attempt: int
    kind: str
    status: SpawnStatus
    observed: str
    pane_id: str | None
    pid: int | None
    log_path: str
    prompt_path: str
    started_at: float
    ready_at: float | None
    prompted_at: float | None
    done_at: float | None
    ended_at: float | None
    end_reason: str | None
    nudges: int
    last_nudge_at: float | None
    log_size: int
    last_output_at: float | None
    last_line: str | None
    last_lines: str | None
    host: str = "local"
    token_hash: str | None = None  # sha256 of a remote spawn's report-back token (the token is never stored)

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def active(self) -> bool:
        """It still holds a capacity slot (live, or finished but its pane not yet closed)."""
        return self.status in ACTIVE_STATUSES

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["status"] = str(self.status)
        for key in ("started_at", "ready_at", "prompted_at", "done_at", "ended_at", "last_nudge_at", "last_output_at"):
            out[key] = iso(out[key])
        return out


def _hook(row: sqlite3.Row | None) -> Hook | None:
    return Hook(**{k: row[k] for k in row.keys()}) if row else None


def _spawn(row: sqlite3.Row | None) -> Spawn | None:
    if row is None:
        return None
    values = {k: row[k] for k in row.keys()}
    values["status"] = SpawnStatus(values["status"])
    return Spawn(**values)


# -- polecats ---------------------------------------------------------------------------


def polecat_names(conn: sqlite3.Connection, rig: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM polecats WHERE rig = ? ORDER BY created_at, name", (rig,))]


def add_polecat(conn: sqlite3.Connection, rig: str, name: str, now: float) -> None:
    conn.execute("INSERT INTO polecats (rig, name, created_at) VALUES (?, ?, ?)", (rig, name, now))


def remove_polecat(conn: sqlite3.Connection, rig: str, name: str) -> None:
    conn.execute("DELETE FROM polecats WHERE rig = ? AND name = ?", (rig, name))


# -- hooks ------------------------------------------------------------------------------


def get_hook(conn: sqlite3.Connection, issue: str) -> Hook | None:
    return _hook(conn.execute("SELECT * FROM hooks WHERE issue = ?", (issue,)).fetchone())


def hook_of_polecat(conn: sqlite3.Connection, rig: str, polecat: str) -> Hook | None:
    return _hook(conn.execute("SELECT * FROM hooks WHERE rig = ? AND polecat = ?", (rig, polecat)).fetchone())


def list_hooks(conn: sqlite3.Connection, rig: str | None = None) -> list[Hook]:
    if rig is None:
        rows = conn.execute("SELECT * FROM hooks ORDER BY created_at")
    else:
        rows = conn.execute("SELECT * FROM hooks WHERE rig = ? ORDER BY created_at", (rig,))
    return [h for h in (_hook(r) for r in rows) if h]


def insert_hook(
    conn: sqlite3.Connection, *, issue: str, rig: str, polecat: str, branch: str, agent: str,
    kind: str, note: str | None, now: float, host: str = "local",
) -> Hook:
    conn.execute(
        "INSERT INTO hooks (issue, rig, polecat, branch, agent, kind, note, created_at, host)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (issue, rig, polecat, branch, agent, kind, note, now, host),
    )
    hook = get_hook(conn, issue)
    assert hook is not None
    return hook


def set_hook_spawn(conn: sqlite3.Connection, issue: str, spawn: str | None, *, restarted: bool = False) -> None:
    conn.execute(
        "UPDATE hooks SET spawn = ?, restarts = restarts + ? WHERE issue = ?",
        (spawn, 1 if restarted else 0, issue),
    )


def delete_hook(conn: sqlite3.Connection, issue: str) -> None:
    conn.execute("DELETE FROM hooks WHERE issue = ?", (issue,))


def mark_hook_stopped(conn: sqlite3.Connection, issue: str, *, reason: str, now: float) -> None:
    """The hook's agent was stopped on purpose (`gt stop`): no patrol resumes it, and it
    holds no capacity slot, until ``clear_hook_stopped`` (`gt restart`, `gt sling`)."""
    conn.execute("UPDATE hooks SET stopped_at = ?, stop_reason = ? WHERE issue = ?", (now, reason, issue))


def clear_hook_stopped(conn: sqlite3.Connection, issue: str) -> None:
    conn.execute("UPDATE hooks SET stopped_at = NULL, stop_reason = NULL WHERE issue = ?", (issue,))


def reset_restarts(conn: sqlite3.Connection, issue: str) -> None:
    """Forget the restarts the Witness counted for the issue's hook (a person reopened it)."""
    conn.execute("UPDATE hooks SET restarts = 0 WHERE issue = ?", (issue,))


# -- spawns -----------------------------------------------------------------------------


def insert_spawn(
    conn: sqlite3.Connection, *, spawn_id: str, issue: str, rig: str, polecat: str, agent: str, attempt: int,
    kind: str, log_path: str, prompt_path: str, now: float, host: str = "local", token_hash: str | None = None,
) -> Spawn:
    conn.execute(
        "INSERT INTO spawns (id, issue, rig, polecat, agent, attempt, kind, status, log_path, prompt_path, started_at,"
        " host, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, 'starting', ?, ?, ?, ?, ?)",
        (spawn_id, issue, rig, polecat, agent, attempt, kind, log_path, prompt_path, now, host, token_hash),
    )
    spawn = get_spawn(conn, spawn_id)
    assert spawn is not None
    return spawn


def get_spawn(conn: sqlite3.Connection, spawn_id: str) -> Spawn | None:
    return _spawn(conn.execute("SELECT * FROM spawns WHERE id = ?", (spawn_id,)).fetchone())


def update_spawn(conn: sqlite3.Connection, spawn_id: str, **values: Any) -> None:
    if not values:
        return
    allowed = {f.name for f in fields(Spawn)} - {"id"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown spawn fields: {sorted(unknown)}")
    if "status" in values:
        row = conn.execute("SELECT status FROM spawns WHERE id = ?", (spawn_id,)).fetchone()
        if row is not None:
            new = SpawnStatus(values["status"])
            check_spawn_transition(spawn_id, SpawnStatus(row[0]), new)
            values["status"] = str(new)
    assignments = ", ".join(f"{key} = ?" for key in values)
    conn.execute(f"UPDATE spawns SET {assignments} WHERE id = ?", (*values.values(), spawn_id))


def spawns_with_status(
    conn: sqlite3.Connection, statuses: tuple[SpawnStatus | str, ...], rig: str | None = None
) -> list[Spawn]:
    sql = f"SELECT * FROM spawns WHERE status IN ({','.join('?' * len(statuses))})"
    args: list[Any] = [str(s) for s in statuses]
    if rig is not None:
        sql += " AND rig = ?"
        args.append(rig)
    sql += " ORDER BY started_at"
    return [s for s in (_spawn(r) for r in conn.execute(sql, args)) if s]


def ended_spawns(conn: sqlite3.Connection, *, since: float | None = None) -> list[Spawn]:
    """Spawns that ended or failed (after ``since``), oldest first."""
    sql = "SELECT * FROM spawns WHERE status IN ('ended', 'failed')"
    args: list[Any] = []
    if since is not None:
        sql += " AND ended_at > ?"
        args.append(since)
    return [s for s in (_spawn(r) for r in conn.execute(sql + " ORDER BY ended_at", args)) if s]


def attempts_for(conn: sqlite3.Connection, issue: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM spawns WHERE issue = ? AND status != 'failed'", (issue,)).fetchone()[0])


def spawns_of_issue(conn: sqlite3.Connection, issue: str, *, limit: int = 50) -> list[Spawn]:
    """The issue's runs, newest first (its restarts and fix cycles): the dashboard's history."""
    rows = conn.execute(
        "SELECT * FROM spawns WHERE issue = ? ORDER BY started_at DESC, rowid DESC LIMIT ?", (issue, int(limit))
    )
    return [s for s in (_spawn(r) for r in rows) if s]


def spawns_left_on_hosts(conn: sqlite3.Connection, rig: str) -> list[Spawn]:
    """The rig's runs whose work moved off a host that stopped answering, and whose agent
    may still run there (``observed`` stays ``unreachable`` until it was stopped)."""
    rows = conn.execute(
        "SELECT * FROM spawns WHERE rig = ? AND host != 'local' AND status = 'ended' AND observed = 'unreachable'"
        " ORDER BY started_at", (rig,),
    )
    return [s for s in (_spawn(r) for r in rows) if s]


def latest_spawn(conn: sqlite3.Connection, rig: str, polecat: str) -> Spawn | None:
    row = conn.execute(
        "SELECT * FROM spawns WHERE rig = ? AND polecat = ? ORDER BY started_at DESC, rowid DESC LIMIT 1", (rig, polecat)
    ).fetchone()
    return _spawn(row)


# -- capacity ---------------------------------------------------------------------------


def slots_by_host(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """``(rig, host)`` per capacity slot in use: each hook whose agent is starting, running
    or about to be resumed (not blocked, closed or stopped by hand), plus each spawn whose
    pane is still open (finished but not yet closed, or still being stopped)."""
    rows = conn.execute(
        "SELECT hooks.rig, hooks.host FROM hooks JOIN issues ON issues.id = hooks.issue"
        " WHERE issues.status NOT IN ('blocked', 'closed') AND hooks.stopped_at IS NULL"
        " UNION ALL SELECT rig, host FROM spawns WHERE status = 'done'"
    )
    return [(row[0], row[1]) for row in rows]


def set_hook_host(conn: sqlite3.Connection, issue: str, host: str) -> None:
    """Move a hook to another host (its host stayed unreachable past its grace)."""
    conn.execute("UPDATE hooks SET host = ? WHERE issue = ?", (host, issue))


def waiting_hooked_issues(conn: sqlite3.Connection, rig: str | None = None) -> dict[str, str]:
    """Issues on a hook whose agent must not run: ``{issue: why}`` with why ``blocked``
    (escalated; a person looks), ``stopped`` (`gt stop`) or ``closed`` (closed while
    hooked by an older gastown: the hook is to be released)."""
    sql = ("SELECT hooks.issue, issues.status, hooks.stopped_at FROM hooks JOIN issues ON issues.id = hooks.issue"
           " WHERE (issues.status IN ('blocked', 'closed') OR hooks.stopped_at IS NOT NULL)")
    args: list[Any] = []
    if rig is not None:
        sql += " AND hooks.rig = ?"
        args.append(rig)
    waiting = {}
    for row in conn.execute(sql, args):
        waiting[row[0]] = row[1] if row[1] in ("blocked", "closed") else "stopped"
    return waiting


def blocked_hooked_issues(conn: sqlite3.Connection, rig: str | None = None) -> set[str]:
    """Issues that are on a hook but blocked (their agent was let go; the worktree waits)."""
    return {issue for issue, why in waiting_hooked_issues(conn, rig).items() if why == "blocked"}


def count_hooks(conn: sqlite3.Connection, rig: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM hooks WHERE rig = ?", (rig,)).fetchone()[0])

"""Each host's reachability as the Witness last saw it (``host_status``).

A host that did not answer a patrol's look is *unreachable since* that moment, never
"dead": its agents are not restarted into the void, and after the host's ``grace`` its
hooked issues move elsewhere (``roles/hosts_patrol.py``). One answer clears it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class HostStatus:
    host: str
    last_ok_at: float | None
    unreachable_since: float | None
    detail: str | None

    @property
    def reachable(self) -> bool:
        return self.unreachable_since is None


def _status(row: sqlite3.Row) -> HostStatus:
    return HostStatus(row["host"], row["last_ok_at"], row["unreachable_since"], row["detail"])


def host_statuses(conn: sqlite3.Connection) -> dict[str, HostStatus]:
    return {row["host"]: _status(row) for row in conn.execute("SELECT * FROM host_status ORDER BY host")}


def get_host_status(conn: sqlite3.Connection, host: str) -> HostStatus | None:
    row = conn.execute("SELECT * FROM host_status WHERE host = ?", (host,)).fetchone()
    return _status(row) if row else None


def mark_reachable(conn: sqlite3.Connection, host: str, *, now: float) -> HostStatus | None:
    """The host answered; returns its status *before* (to tell a return from a usual look)."""
    before = get_host_status(conn, host)
    conn.execute(
        "INSERT INTO host_status (host, last_ok_at, unreachable_since, detail) VALUES (?, ?, NULL, NULL)"
        " ON CONFLICT (host) DO UPDATE SET last_ok_at = excluded.last_ok_at, unreachable_since = NULL, detail = NULL",
        (host, now),
    )
    return before


def mark_unreachable(conn: sqlite3.Connection, host: str, *, detail: str, now: float) -> HostStatus:
    """The host did not answer; the first such look starts its grace period."""
    conn.execute(
        "INSERT INTO host_status (host, last_ok_at, unreachable_since, detail) VALUES (?, NULL, ?, ?)"
        " ON CONFLICT (host) DO UPDATE SET unreachable_since = COALESCE(host_status.unreachable_since, excluded.unreachable_since),"
        " detail = excluded.detail",
        (host, now, detail),
    )
    status = get_host_status(conn, host)
    assert status is not None
    return status

"""Ids and names a shell completes: issues, polecats, merge requests. Read-only and fast.

``read_only(path)`` opens the ledger with ``mode=ro`` and a short busy timeout and never
migrates anything: completion must not write to a town or wait on it. Every ``sqlite3``
error (no ledger, locked, damaged) comes out as a ``LedgerError``; completion treats it
as "nothing to complete".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from gastown.errors import LedgerError

LIMIT = 200


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the ledger at ``path``, closed afterwards; ``LedgerError``
    for a missing, locked or damaged ledger (also from the queries run in the block)."""
    from gastown.ledger.db import describe_error

    if not path.is_file():
        raise LedgerError(f"there is no ledger at {path}", hint="run `gt init` to create the town")
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error as exc:
        raise describe_error(exc, path, doing="read") from None
    try:
        yield conn
    except sqlite3.Error as exc:
        raise describe_error(exc, path, doing="read") from None
    finally:
        conn.close()


def issues(conn: sqlite3.Connection, prefix: str, statuses: Sequence[str] = ()) -> list[tuple[str, str, str]]:
    """``(id, status, title)`` of issues whose id starts with ``prefix``, newest first."""
    sql = "SELECT id, status, title FROM issues WHERE id LIKE ? ESCAPE '\\'"
    args: list[object] = [_like(prefix)]
    if statuses:
        sql += f" AND status IN ({', '.join('?' * len(statuses))})"
        args += list(statuses)
    rows = conn.execute(sql + " ORDER BY updated_at DESC LIMIT ?", [*args, LIMIT]).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def polecats(conn: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    """``(rig, name, issue on its hook)`` of every polecat."""
    rows = conn.execute(
        "SELECT polecats.rig, polecats.name, hooks.issue FROM polecats"
        " LEFT JOIN hooks ON hooks.rig = polecats.rig AND hooks.polecat = polecats.name"
        " ORDER BY polecats.rig, polecats.name LIMIT ?",
        (LIMIT,),
    ).fetchall()
    return [(str(r[0]), str(r[1]), r[2]) for r in rows]


def merge_requests(conn: sqlite3.Connection, prefix: str) -> list[tuple[str, str, str]]:
    """``(id, state, issue)`` of merge requests whose id starts with ``prefix``, newest first."""
    rows = conn.execute(
        "SELECT id, state, issue FROM mrs WHERE id LIKE ? ESCAPE '\\' ORDER BY updated_at DESC LIMIT ?",
        (_like(prefix), LIMIT),
    ).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

"""Merge-request rows: record, read, list, order and move between states.

An MR is a polecat branch at one commit, queued for its rig's refinery. Rows are keyed by
id (``mr-xxxxxx``) and unique per (branch, commit): ``record_mr`` is idempotent, so a
``gt done`` that is interrupted and run again never queues the same work twice.

States and the moves between them live in ``gastown.states`` (``MR_TRANSITIONS``);
``set_mr_state`` refuses any other move with ``Conflict``. Every function here runs on a
connection the caller owns; writes belong inside ``Ledger.write()``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gastown.errors import NotFound
from gastown.ledger.events import record_event
from gastown.ledger.ids import new_id
from gastown.ledger.timefmt import iso
from gastown.states import MRState, check_mr_transition

# One priority level is earned per hour of waiting, so a p4 MR outranks fresh p0 work
# after four hours: priority orders the queue, but nothing starves.
AGE_STEP_S = 3600.0

ACTIVE_STATES: tuple[MRState, ...] = (MRState.QUEUED, MRState.REVIEWING, MRState.TESTING, MRState.PR_OPEN,
                                      MRState.CHANGES_REQUESTED, MRState.CONFLICT, MRState.FAILED)
# Sent back to a polecat as a fix cycle: each one counts toward max_fix_cycles.
SENT_BACK_STATES: tuple[MRState, ...] = (MRState.CONFLICT, MRState.FAILED, MRState.CHANGES_REQUESTED)
_SENT_BACK_SQL = ", ".join(f"'{s}'" for s in SENT_BACK_STATES)


@dataclass(frozen=True)
class MR:
    id: str
    rig: str
    issue: str
    polecat: str | None
    spawn: str | None
    branch: str
    commit_sha: str
    target: str
    priority: int
    state: MRState
    fix_cycle: int
    attempts: int
    created_at: float
    updated_at: float
    detail: str | None
    gate_log: str | None
    merged_sha: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MR:
        return cls(
            id=row["id"],
            rig=row["rig"],
            issue=row["issue"],
            polecat=row["polecat"],
            spawn=row["spawn"],
            branch=row["branch"],
            commit_sha=row["commit_sha"],
            target=row["target"],
            priority=row["priority"],
            state=MRState(row["state"]),
            fix_cycle=row["fix_cycle"],
            attempts=row["attempts"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            detail=row["detail"],
            gate_log=row["gate_log"],
            merged_sha=row["merged_sha"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rig": self.rig,
            "issue": self.issue,
            "polecat": self.polecat,
            "spawn": self.spawn,
            "branch": self.branch,
            "commit": self.commit_sha,
            "target": self.target,
            "priority": self.priority,
            "state": str(self.state),
            "fix_cycle": self.fix_cycle,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "detail": self.detail,
            "gate_log": self.gate_log,
            "merged_sha": self.merged_sha,
        }


def record_mr(
    conn: sqlite3.Connection,
    *,
    rig: str,
    issue: str,
    polecat: str | None,
    spawn: str | None,
    branch: str,
    commit_sha: str,
    target: str,
    priority: int,
    fix_cycle: int,
    now: float,
) -> tuple[MR, bool]:
    """Queue ``branch`` at ``commit_sha``; returns ``(mr, created)``.

    Idempotent per (branch, commit): a repeat returns the existing row, whatever its
    state, and ``False``. A new MR supersedes the issue's older MRs that are still
    ``queued`` (they become ``rejected``; the new commit carries their work), so a
    polecat that submits twice is merged once. Run inside ``Ledger.write()``.
    """
    row = conn.execute(
        "SELECT * FROM mrs WHERE branch = ? AND commit_sha = ?", (branch, commit_sha)
    ).fetchone()
    if row is not None:
        return MR.from_row(row), False
    for _ in range(20):
        mr_id = new_id("mr")
        try:
            conn.execute(
                "INSERT INTO mrs (id, rig, issue, polecat, spawn, branch, commit_sha, target, priority,"
                " state, fix_cycle, attempts, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, 0, ?, ?)",
                (mr_id, rig, issue, polecat, spawn, branch, commit_sha, target, priority, fix_cycle, now, now),
            )
        except sqlite3.IntegrityError:
            continue  # id clash (the (branch, commit) pair was checked above)
        break
    else:  # pragma: no cover - 20 clashes in a 36^6 space
        raise NotFound("could not find a free merge request id")
    for older in conn.execute(
        "SELECT id FROM mrs WHERE issue = ? AND state = 'queued' AND id != ?", (issue, mr_id)
    ).fetchall():
        set_mr_state(conn, older["id"], MRState.REJECTED, now=now, detail=f"superseded by {mr_id}")
        record_event(
            conn, "rejected", f"{older['id']} superseded by {mr_id}", now=now, rig=rig, issue=issue,
            polecat=polecat, data={"mr": older["id"], "by": mr_id},
        )
    return get_mr(conn, mr_id), True


def find_mr(conn: sqlite3.Connection, mr_id: str) -> MR | None:
    row = conn.execute("SELECT * FROM mrs WHERE id = ?", (mr_id,)).fetchone()
    return MR.from_row(row) if row else None


def get_mr(conn: sqlite3.Connection, mr_id: str) -> MR:
    """The MR ``mr_id``; raises ``NotFound`` with a hint."""
    mr = find_mr(conn, mr_id)
    if mr is None:
        raise NotFound(f"no merge request {mr_id} in this town", hint="list them with `gt mq list --all`")
    return mr


def list_mrs(
    conn: sqlite3.Connection,
    rig: str | None = None,
    states: Iterable[MRState | str] | None = None,
    *,
    issue: str | None = None,
) -> list[MR]:
    """MRs oldest first, optionally of one rig, one issue and some states."""
    where: list[str] = []
    args: list[Any] = []
    if rig is not None:
        where.append("rig = ?")
        args.append(rig)
    if issue is not None:
        where.append("issue = ?")
        args.append(issue)
    if states is not None:
        wanted = [str(s) for s in states]
        if not wanted:
            return []
        where.append(f"state IN ({','.join('?' * len(wanted))})")
        args.extend(wanted)
    sql = "SELECT * FROM mrs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at, id"
    return [MR.from_row(row) for row in conn.execute(sql, args)]


def set_mr_state(
    conn: sqlite3.Connection,
    mr_id: str,
    new: MRState,
    *,
    now: float,
    detail: str | None = None,
    gate_log: str | None = None,
    merged_sha: str | None = None,
    count_attempt: bool = False,
) -> MR:
    """Move ``mr_id`` to ``new`` (``Conflict`` if the table forbids it).

    ``detail``, ``gate_log`` and ``merged_sha`` replace the stored values (None clears
    them); ``count_attempt`` adds one to ``attempts`` (the refinery does so as it takes
    the MR into a round). Run inside ``Ledger.write()``.
    """
    mr = get_mr(conn, mr_id)
    check_mr_transition(mr_id, mr.state, new)
    conn.execute(
        "UPDATE mrs SET state = ?, updated_at = ?, detail = ?, gate_log = ?, merged_sha = ?,"
        " attempts = attempts + ? WHERE id = ?",
        (str(new), now, detail, gate_log, merged_sha, 1 if count_attempt else 0, mr_id),
    )
    return get_mr(conn, mr_id)


def queue_key(mr: MR, now: float, age_step: float = AGE_STEP_S) -> tuple[float, float, str]:
    """Sort key of a queued MR: effective priority (aged), then age, then id.

    Waiting ``age_step`` seconds lowers the number by one level (never below 0), so an
    old low-priority MR eventually ranks with urgent ones and wins on age.

    >>> old = _example(priority=4, created_at=0.0)
    >>> fresh = _example(priority=0, created_at=4 * AGE_STEP_S)
    >>> [m.priority for m in sorted([fresh, old], key=lambda m: queue_key(m, now=4 * AGE_STEP_S))]
    [4, 0]
    """
    waited = max(0.0, now - mr.created_at)
    return (max(0.0, mr.priority - waited // age_step), mr.created_at, mr.id)


def queue_order(mrs: Sequence[MR], now: float, age_step: float = AGE_STEP_S) -> list[MR]:
    """``mrs`` in the order the refinery takes them (see ``queue_key``). Pure."""
    return sorted(mrs, key=lambda mr: queue_key(mr, now, age_step))


def next_batch(conn: sqlite3.Connection, rig: str, *, limit: int, now: float) -> list[MR]:
    """The first ``limit`` queued MRs of ``rig`` in queue order."""
    return queue_order(list_mrs(conn, rig, [MRState.QUEUED]), now)[:limit]


def latest_for_issue(conn: sqlite3.Connection, issue: str) -> MR | None:
    """The issue's newest MR, whatever its state."""
    row = conn.execute("SELECT * FROM mrs WHERE issue = ? ORDER BY created_at DESC, id DESC LIMIT 1", (issue,)).fetchone()
    return MR.from_row(row) if row else None


def latest_of_spawn(conn: sqlite3.Connection, spawn: str) -> MR | None:
    """The newest MR a spawn submitted, if any."""
    row = conn.execute("SELECT * FROM mrs WHERE spawn = ? ORDER BY created_at DESC LIMIT 1", (spawn,)).fetchone()
    return MR.from_row(row) if row else None


def count_sent_back(conn: sqlite3.Connection, issue: str, *, since: float | None = None) -> int:
    """How many of the issue's MRs came back from the queue (conflict, failed, changes
    requested): its fix cycles so far, counting MRs created after ``since`` (the issue's
    last reopen) only. MRs retired when the issue merged or closed (``rejected``) no longer
    count."""
    row = conn.execute(
        f"SELECT COUNT(*) FROM mrs WHERE issue = ? AND state IN ({_SENT_BACK_SQL}) AND created_at > ?",
        (issue, since if since is not None else float("-inf")),
    ).fetchone()
    return int(row[0])


def retire_for_issue(
    conn: sqlite3.Connection, issue: str, states: Iterable[MRState], *, detail: str, now: float,
) -> list[str]:
    """Reject the issue's MRs in ``states`` (each with an event); returns their ids.

    Used when an issue is done with: a newer MR of it merged (its sent-back MRs would
    otherwise stay in `gt mq list` for ever), or a person closed it (nothing of it may
    merge any more). Run inside ``Ledger.write()``."""
    retired = []
    for mr in list_mrs(conn, states=list(states), issue=issue):
        set_mr_state(conn, mr.id, MRState.REJECTED, now=now, detail=detail)
        record_event(conn, "rejected", f"{mr.id} {detail}", now=now, rig=mr.rig, issue=issue, polecat=mr.polecat,
                     data={"mr": mr.id})
        retired.append(mr.id)
    return retired


def sent_back_awaiting_fix(conn: sqlite3.Connection, rig: str) -> list[MR]:
    """Conflicted, failed or changes-requested MRs of ``rig`` whose issue is still in review,
    oldest first."""
    rows = conn.execute(
        "SELECT mrs.* FROM mrs JOIN issues ON issues.id = mrs.issue"
        f" WHERE mrs.rig = ? AND mrs.state IN ({_SENT_BACK_SQL}) AND issues.status = 'in_review'"
        " ORDER BY mrs.created_at, mrs.id",
        (rig,),
    )
    return [MR.from_row(row) for row in rows]


def stranded_in_review(conn: sqlite3.Connection) -> list[MR]:
    """For each issue in review with nothing on its way (no hook, no queued sling, no MR
    queued, in review or testing), its newest MR, if that MR came back (conflict, failed,
    changes requested)."""
    rows = conn.execute(
        "SELECT mrs.* FROM mrs JOIN issues ON issues.id = mrs.issue"
        " WHERE issues.status = 'in_review'"
        " AND NOT EXISTS (SELECT 1 FROM hooks WHERE hooks.issue = issues.id)"
        " AND NOT EXISTS (SELECT 1 FROM sling_queue WHERE sling_queue.issue = issues.id)"
        " AND NOT EXISTS (SELECT 1 FROM mrs AS live WHERE live.issue = issues.id"
        "                 AND live.state IN ('queued', 'reviewing', 'testing', 'pr_open'))"
        " AND mrs.id = (SELECT newest.id FROM mrs AS newest WHERE newest.issue = issues.id"
        "               ORDER BY newest.created_at DESC, newest.id DESC LIMIT 1)"
        f" AND mrs.state IN ({_SENT_BACK_SQL})"
        " ORDER BY mrs.updated_at"
    )
    return [MR.from_row(row) for row in rows]


def merged_commit_shas(conn: sqlite3.Connection, shas: Collection[str]) -> set[str]:
    """Which of ``shas`` were submitted as MRs that merged (whatever commit landed for them)."""
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return set()
    rows = conn.execute(
        f"SELECT commit_sha FROM mrs WHERE state = 'merged' AND commit_sha IN ({','.join('?' * len(wanted))})", wanted
    )
    return {row[0] for row in rows}


def count_by_state(conn: sqlite3.Connection, rig: str | None = None) -> dict[str, int]:
    counts = {str(s): 0 for s in MRState}
    sql = "SELECT state, COUNT(*) FROM mrs" + (" WHERE rig = ?" if rig else "") + " GROUP BY state"
    for row in conn.execute(sql, (rig,) if rig else ()):
        counts[row[0]] = row[1]
    return counts


def _example(**overrides: Any) -> MR:
    """An MR for doctests."""
    fields: dict[str, Any] = dict(
        id="mr-000000", rig="app", issue="app-00000", polecat=None, spawn=None, branch="b", commit_sha="0" * 40,
        target="main", priority=2, state=MRState.QUEUED, fix_cycle=0, attempts=0, created_at=0.0, updated_at=0.0,
        detail=None, gate_log=None, merged_sha=None,
    )
    fields.update(overrides)
    if "id" not in overrides:
        fields["id"] = f"mr-{int(fields['created_at']) % 1000000:06d}"
    return MR(**fields)

"""AI reviews of merge requests (and of branches reviewed on demand), with their findings.

A review row is written ``running`` before the reviewer starts, owned by the process
that runs it (``owner``: ``<pid>:<start time>``, read from /proc, so a pid reused by
another program never passes for the owner); it ends ``done`` (with gastown's
``verdict`` beside the model's own ``model_verdict``), ``error``, ``too_large`` or
``interrupted``. Findings are stored with the review, in the order they were given,
each marked ``blocking`` or not; findings dropped for pointing outside the diff are
only counted (``dropped``).

A review is *dismissed* (``dismissed_at``) when a person retries its merge request by
hand: the merge queue then ignores it and reviews the MR afresh. States and their moves
live in ``gastown.states`` (``REVIEW_TRANSITIONS``). Writes belong inside
``Ledger.write()``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gastown.errors import NotFound
from gastown.ledger.ids import new_id
from gastown.ledger.timefmt import iso
from gastown.states import ReviewState, check_review_transition


@dataclass(frozen=True)
class FindingRow:
    """One finding as stored: where (file, new-side lines), how bad, and what to do."""

    seq: int
    source: str  # "model" or "analyzer:<tool>"
    file: str
    start_line: int
    end_line: int
    severity: str
    category: str
    title: str
    explanation: str
    fix: str
    blocking: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FindingRow:
        return cls(row["seq"], row["source"], row["file"], row["start_line"], row["end_line"], row["severity"],
                   row["category"], row["title"], row["explanation"], row["fix"], bool(row["blocking"]))

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "start_line": self.start_line, "end_line": self.end_line,
                "severity": self.severity, "category": self.category, "title": self.title,
                "explanation": self.explanation, "fix": self.fix, "blocking": self.blocking, "source": self.source}


@dataclass(frozen=True)
class Review:
    id: str
    rig: str
    mr: str | None
    issue: str | None
    branch: str
    commit_sha: str
    base_sha: str | None
    target: str
    agent: str
    style: str
    block_on: str
    trigger: str  # queue | manual
    state: ReviewState
    verdict: str | None
    model_verdict: str | None
    summary: str | None
    praise: str | None
    dropped: int
    diff_lines: int | None
    runs: int
    error: str | None
    owner: str | None
    started_at: float
    ended_at: float | None
    dismissed_at: float | None
    prompt_path: str | None
    log_path: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Review:
        values = {key: row[key] for key in row.keys()}
        values["state"] = ReviewState(values["state"])
        return cls(**values)

    @property
    def finished(self) -> bool:
        return self.state != ReviewState.RUNNING

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else max(0.0, self.ended_at - self.started_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "rig": self.rig, "mr": self.mr, "issue": self.issue, "branch": self.branch,
            "commit": self.commit_sha, "base": self.base_sha, "target": self.target, "agent": self.agent,
            "style": self.style, "block_on": self.block_on, "trigger": self.trigger, "state": str(self.state),
            "verdict": self.verdict, "model_verdict": self.model_verdict, "summary": self.summary,
            "praise": self.praise, "dropped": self.dropped, "diff_lines": self.diff_lines, "runs": self.runs,
            "error": self.error, "started_at": iso(self.started_at), "ended_at": iso(self.ended_at),
            "duration": None if self.duration is None else round(self.duration, 3),
            "dismissed": self.dismissed_at is not None, "prompt": self.prompt_path, "log": self.log_path,
        }


def start_review(
    conn: sqlite3.Connection,
    *,
    rig: str,
    mr: str | None,
    issue: str | None,
    branch: str,
    commit_sha: str,
    target: str,
    agent: str,
    style: str,
    block_on: str,
    trigger: str,
    owner: str,
    now: float,
    log_dir: str,
) -> Review:
    """Record a review about to run (state ``running``); returns it. Its log path is
    ``<log_dir>/<id>.log`` and its prompt is written next to it."""
    for _ in range(20):
        review_id = new_id("rv")
        try:
            conn.execute(
                "INSERT INTO reviews (id, rig, mr, issue, branch, commit_sha, target, agent, style, block_on, trigger,"
                " state, owner, started_at, prompt_path, log_path)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (review_id, rig, mr, issue, branch, commit_sha, target, agent, style, block_on, trigger, owner, now,
                 f"{log_dir}/{review_id}.prompt.md", f"{log_dir}/{review_id}.log"),
            )
        except sqlite3.IntegrityError:
            continue  # id clash
        return get_review(conn, review_id)
    raise NotFound("could not find a free review id")  # pragma: no cover - 20 clashes in 36^6


def finish_review(
    conn: sqlite3.Connection,
    review_id: str,
    state: ReviewState,
    *,
    now: float,
    verdict: str | None = None,
    model_verdict: str | None = None,
    summary: str | None = None,
    praise: str | None = None,
    dropped: int = 0,
    diff_lines: int | None = None,
    base_sha: str | None = None,
    runs: int = 0,
    error: str | None = None,
    findings: Sequence[FindingRow] = (),
) -> Review:
    """End a running review with its outcome and findings (``Conflict`` if it already
    ended: the first end wins, so a late thread cannot overwrite a recovery)."""
    review = get_review(conn, review_id)
    check_review_transition(review_id, review.state, state)
    conn.execute(
        "UPDATE reviews SET state = ?, verdict = ?, model_verdict = ?, summary = ?, praise = ?, dropped = ?,"
        " diff_lines = ?, base_sha = COALESCE(?, base_sha), runs = ?, error = ?, ended_at = ? WHERE id = ?",
        (str(state), verdict, model_verdict, summary, praise, dropped, diff_lines, base_sha, runs, error, now,
         review_id),
    )
    conn.executemany(
        "INSERT INTO review_findings (review, seq, source, file, start_line, end_line, severity, category, title,"
        " explanation, fix, blocking) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(review_id, f.seq, f.source, f.file, f.start_line, f.end_line, f.severity, f.category, f.title,
          f.explanation, f.fix, int(f.blocking)) for f in findings],
    )
    return get_review(conn, review_id)


def find_review(conn: sqlite3.Connection, review_id: str) -> Review | None:
    row = conn.execute("SELECT * FROM reviews WHERE id = ?", (review_id,)).fetchone()
    return Review.from_row(row) if row else None


def get_review(conn: sqlite3.Connection, review_id: str) -> Review:
    review = find_review(conn, review_id)
    if review is None:
        raise NotFound(f"no review {review_id} in this town", hint="list them with `gt review list`")
    return review


def findings_of(conn: sqlite3.Connection, review_id: str) -> list[FindingRow]:
    rows = conn.execute("SELECT * FROM review_findings WHERE review = ? ORDER BY seq", (review_id,))
    return [FindingRow.from_row(row) for row in rows]


def list_reviews(
    conn: sqlite3.Connection,
    *,
    rig: str | None = None,
    mr: str | None = None,
    states: Iterable[ReviewState] | None = None,
    limit: int | None = None,
) -> list[Review]:
    """Reviews newest first, optionally of one rig, one MR, some states."""
    where: list[str] = []
    args: list[Any] = []
    if rig is not None:
        where.append("rig = ?")
        args.append(rig)
    if mr is not None:
        where.append("mr = ?")
        args.append(mr)
    if states is not None:
        wanted = [str(s) for s in states]
        if not wanted:
            return []
        where.append(f"state IN ({','.join('?' * len(wanted))})")
        args.extend(wanted)
    sql = "SELECT * FROM reviews" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY started_at DESC, rowid DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [Review.from_row(row) for row in conn.execute(sql, args)]


def running_reviews(conn: sqlite3.Connection, rig: str | None = None) -> list[Review]:
    return list_reviews(conn, rig=rig, states=[ReviewState.RUNNING])


def latest_for_mrs(conn: sqlite3.Connection, mr_ids: Sequence[str], *, dismissed: bool = False) -> dict[str, Review]:
    """The newest review of each MR (of any commit), skipping dismissed ones unless asked;
    MRs never reviewed are absent. One query."""
    if not mr_ids:
        return {}
    marks = ",".join("?" * len(mr_ids))
    extra = "" if dismissed else " AND dismissed_at IS NULL"
    rows = conn.execute(
        f"SELECT * FROM reviews WHERE mr IN ({marks}){extra} ORDER BY started_at, rowid", list(mr_ids)
    ).fetchall()
    return {row["mr"]: Review.from_row(row) for row in rows}  # later rows win


def blocking_counts(conn: sqlite3.Connection, review_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``{review: (findings, blocking findings)}`` for the given reviews (one query)."""
    if not review_ids:
        return {}
    marks = ",".join("?" * len(review_ids))
    rows = conn.execute(
        f"SELECT review, COUNT(*), SUM(blocking) FROM review_findings WHERE review IN ({marks}) GROUP BY review",
        list(review_ids),
    )
    return {row[0]: (int(row[1]), int(row[2] or 0)) for row in rows}


def dismiss_for_mr(conn: sqlite3.Connection, mr_id: str, *, now: float) -> int:
    """Dismiss every finished review of ``mr_id`` (a person retried it): returns how many."""
    cur = conn.execute(
        "UPDATE reviews SET dismissed_at = ? WHERE mr = ? AND dismissed_at IS NULL AND state != 'running'",
        (now, mr_id),
    )
    return cur.rowcount


def count_by_verdict(conn: sqlite3.Connection, *, rig: str | None = None) -> dict[str, int]:
    """How many reviews ended each way: ``approve``, ``do_not_merge``, ``error``, ``too_large``,
    ``interrupted``, ``running`` (zeros included)."""
    counts = dict.fromkeys(("approve", "do_not_merge", "error", "too_large", "interrupted", "running"), 0)
    sql = ("SELECT CASE WHEN state = 'done' THEN verdict ELSE state END AS k, COUNT(*) FROM reviews"
           + (" WHERE rig = ?" if rig else "") + " GROUP BY k")
    for row in conn.execute(sql, (rig,) if rig else ()):
        if row[0] is not None:
            counts[row[0]] = counts.get(row[0], 0) + int(row[1])
    return counts

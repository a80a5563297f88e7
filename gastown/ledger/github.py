"""GitHub's side of the ledger: which town issue is which GitHub issue, the pull request
that carries an issue's work, the comments already posted, and the ETags of polls.

- ``github_issues``: one row per imported issue (town id, repo, number, URL, the state
  GitHub last showed). ``(repo, number)`` is unique: an import is idempotent.
- ``github_prs``: one pull request per town issue (``merge = "pr"``): its number, branch,
  the MR it carries now and the commit pushed for it, its state (``open``, ``merged``,
  ``closed``), a checks summary for `gt mq list`, and ``handled``: the review and check
  ids already acted on, so a poll and a webhook never start the same fix cycle twice.
- ``github_posts``: comments posted to GitHub, by (issue, kind, key), so a retried step
  never comments twice.
- ``github_etags``: the ``ETag`` of each polled URL; a poll sends it back and a 304 costs
  no rate limit.

No token, header or payload is ever stored here. Row functions take a connection and run
inside the caller's ``Ledger.write()``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IssueLink:
    issue: str
    rig: str
    repo: str
    number: int
    url: str
    state: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> IssueLink:
        return cls(row["issue"], row["rig"], row["repo"], row["number"], row["url"], row["state"])

    def to_json(self) -> dict[str, Any]:
        return {"repo": self.repo, "number": self.number, "url": self.url, "state": self.state}


@dataclass(frozen=True)
class PullRequest:
    issue: str
    rig: str
    repo: str
    number: int
    url: str
    branch: str
    mr: str
    head_sha: str
    state: str  # open | merged | closed
    checks: str | None
    handled: frozenset[str]

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PullRequest:
        return cls(row["issue"], row["rig"], row["repo"], row["number"], row["url"], row["branch"], row["mr"],
                   row["head_sha"], row["state"], row["checks"], frozenset(json.loads(row["handled"] or "[]")))

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "url": self.url, "branch": self.branch, "state": self.state,
                "head_sha": self.head_sha, "checks": self.checks}


# -- issues ------------------------------------------------------------------------------


def link_issue(conn: sqlite3.Connection, *, issue: str, rig: str, repo: str, number: int, url: str, state: str,
               now: float) -> None:
    conn.execute(
        "INSERT INTO github_issues (issue, rig, repo, number, url, state, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (issue, rig, repo, number, url, state, now),
    )


def set_issue_link_state(conn: sqlite3.Connection, issue: str, state: str, *, now: float) -> None:
    conn.execute("UPDATE github_issues SET state = ?, synced_at = ? WHERE issue = ?", (state, now, issue))


def link_by_number(conn: sqlite3.Connection, repo: str, number: int) -> IssueLink | None:
    row = conn.execute("SELECT * FROM github_issues WHERE repo = ? AND number = ?", (repo, number)).fetchone()
    return IssueLink.from_row(row) if row else None


def link_of_issue(conn: sqlite3.Connection, issue: str) -> IssueLink | None:
    row = conn.execute("SELECT * FROM github_issues WHERE issue = ?", (issue,)).fetchone()
    return IssueLink.from_row(row) if row else None


# -- pull requests -----------------------------------------------------------------------


def record_pull(conn: sqlite3.Connection, *, issue: str, rig: str, repo: str, number: int, url: str, branch: str,
                mr: str, head_sha: str, now: float) -> PullRequest:
    """The issue's PR now carries ``mr`` at ``head_sha`` (insert, or update the one row)."""
    conn.execute(
        "INSERT INTO github_prs (issue, rig, repo, number, url, branch, mr, head_sha, state, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)"
        " ON CONFLICT (issue) DO UPDATE SET number = excluded.number, url = excluded.url, branch = excluded.branch,"
        " mr = excluded.mr, head_sha = excluded.head_sha, state = 'open', checks = NULL, updated_at = excluded.updated_at",
        (issue, rig, repo, number, url, branch, mr, head_sha, now, now),
    )
    found = pull_of_issue(conn, issue)
    assert found is not None
    return found


def pull_of_issue(conn: sqlite3.Connection, issue: str) -> PullRequest | None:
    row = conn.execute("SELECT * FROM github_prs WHERE issue = ?", (issue,)).fetchone()
    return PullRequest.from_row(row) if row else None


def pull_of_mr(conn: sqlite3.Connection, mr: str) -> PullRequest | None:
    row = conn.execute("SELECT * FROM github_prs WHERE mr = ?", (mr,)).fetchone()
    return PullRequest.from_row(row) if row else None


def pulls_by_mr(conn: sqlite3.Connection, mrs: list[str]) -> dict[str, PullRequest]:
    """The PRs carrying any of ``mrs`` (for `gt mq list`), by MR id."""
    found: dict[str, PullRequest] = {}
    for start in range(0, len(mrs), 500):
        chunk = mrs[start:start + 500]
        rows = conn.execute(f"SELECT * FROM github_prs WHERE mr IN ({','.join('?' * len(chunk))})", chunk)
        found.update((row["mr"], PullRequest.from_row(row)) for row in rows)
    return found


def open_pulls(conn: sqlite3.Connection, rig: str) -> list[PullRequest]:
    rows = conn.execute("SELECT * FROM github_prs WHERE rig = ? AND state = 'open' ORDER BY number", (rig,))
    return [PullRequest.from_row(row) for row in rows]


def update_pull(conn: sqlite3.Connection, issue: str, *, now: float, state: str | None = None,
                checks: str | None = None, handled: frozenset[str] | None = None) -> None:
    current = pull_of_issue(conn, issue)
    if current is None:
        return
    conn.execute(
        "UPDATE github_prs SET state = ?, checks = ?, handled = ?, updated_at = ? WHERE issue = ?",
        (state or current.state, checks if checks is not None else current.checks,
         json.dumps(sorted(handled if handled is not None else current.handled)), now, issue),
    )


# -- comments posted ---------------------------------------------------------------------


def claim_post(conn: sqlite3.Connection, *, issue: str, kind: str, key: str, now: float) -> bool:
    """Record that the comment (issue, kind, key) is being posted; False if it already was."""
    cursor = conn.execute("INSERT OR IGNORE INTO github_posts (issue, kind, key, posted_at) VALUES (?, ?, ?, ?)",
                          (issue, kind, key, now))
    return cursor.rowcount == 1


def release_post(conn: sqlite3.Connection, *, issue: str, kind: str, key: str) -> None:
    """Forget a claimed comment whose post failed, so the next pass posts it."""
    conn.execute("DELETE FROM github_posts WHERE issue = ? AND kind = ? AND key = ?", (issue, kind, key))


# -- ETags -------------------------------------------------------------------------------


def etag_of(conn: sqlite3.Connection, url: str) -> str | None:
    row = conn.execute("SELECT etag FROM github_etags WHERE url = ?", (url,)).fetchone()
    return row[0] if row else None


def remember_etag(conn: sqlite3.Connection, url: str, etag: str, *, now: float) -> None:
    conn.execute("INSERT INTO github_etags (url, etag, polled_at) VALUES (?, ?, ?)"
                 " ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, polled_at = excluded.polled_at",
                 (url, etag, now))


def links_of_rig(conn: sqlite3.Connection, rig: str) -> list[IssueLink]:
    rows = conn.execute("SELECT * FROM github_issues WHERE rig = ? ORDER BY number", (rig,))
    return [IssueLink.from_row(row) for row in rows]

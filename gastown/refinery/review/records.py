"""What `gt review show/list`, `gt mq list` and the status views read about reviews.

Reads only; each call is a handful of indexed queries, whatever the number of MRs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gastown.context import Context
from gastown.errors import NotFound
from gastown.ledger import reviews as review_rows
from gastown.ledger.reviews import FindingRow, Review
from gastown.ledger.usage import Tally, get_tally


@dataclass(frozen=True)
class ReviewDetail:
    """One review with its findings and what its reviewer used."""

    review: Review
    findings: list[FindingRow]
    tally: Tally | None

    @property
    def blocking(self) -> int:
        return sum(f.blocking for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        tally = self.tally
        tokens = None if tally is None else {
            "input": tally.input, "output": tally.output, "cache_read": tally.cache_read,
            "cache_write": tally.cache_write, "cost": round(tally.cost, 6), "models": tally.models,
        }
        return {**self.review.to_json(), "findings": [f.to_json() for f in self.findings],
                "blocking": self.blocking, "tokens": tokens}


@dataclass(frozen=True)
class ReviewBrief:
    """A review as a listing row shows it: its outcome and how many findings block."""

    review: Review
    findings: int
    blocking: int

    @property
    def outcome(self) -> str:
        """``approve``/``do_not_merge`` for a finished review, else its state."""
        return (self.review.verdict or str(self.review.state)) if self.review.finished else "running"

    def to_json(self) -> dict[str, Any]:
        r = self.review
        return {"id": r.id, "state": str(r.state), "verdict": r.verdict, "model_verdict": r.model_verdict,
                "style": r.style, "findings": self.findings, "blocking": self.blocking, "dropped": r.dropped,
                "error": r.error}

    def cell(self) -> str:
        """The REVIEW cell of `gt mq list`: ``approve``, ``do_not_merge 2✗``, ``running``, ``error``."""
        if not self.review.finished:
            return "running"
        if self.review.verdict is None:
            return str(self.review.state)
        return self.review.verdict + (f" {self.blocking}✗" if self.blocking else "")


def detail(ctx: Context, what: str) -> ReviewDetail:
    """A review by id (``rv-…``), or the latest review of an MR (``mr-…``)."""
    conn = ctx.ledger.connection()
    if what.startswith("mr-"):
        found = review_rows.list_reviews(conn, mr=what, limit=1)
        if not found:
            from gastown.ledger.mrs import get_mr

            get_mr(conn, what)  # NotFound for an unknown MR
            raise NotFound(f"merge request {what} has not been reviewed", hint=f"review it: gt review run {what}")
        review = found[0]
    else:
        review = review_rows.get_review(conn, what)
    return ReviewDetail(review, review_rows.findings_of(conn, review.id), get_tally(conn, review.id))


def briefs(ctx: Context, reviews: Sequence[Review]) -> list[ReviewBrief]:
    counts = review_rows.blocking_counts(ctx.ledger.connection(), [r.id for r in reviews])
    return [ReviewBrief(r, *counts.get(r.id, (0, 0))) for r in reviews]


def listing(ctx: Context, *, rig: str | None = None, limit: int = 50) -> list[ReviewBrief]:
    """Recent reviews, newest first (``NotFound`` for an unknown rig)."""
    if rig is not None and rig not in ctx.config.rigs:
        known = ", ".join(sorted(ctx.config.rigs)) or "none yet"
        raise NotFound(f"no rig named {rig!r} in this town (rigs: {known})", hint="see `gt rig list`")
    return briefs(ctx, review_rows.list_reviews(ctx.ledger.connection(), rig=rig, limit=limit))


def latest_briefs(ctx: Context, mr_ids: Sequence[str]) -> dict[str, ReviewBrief]:
    """The latest review of each MR (dismissed ones too: they still say what was found)."""
    latest = review_rows.latest_for_mrs(ctx.ledger.connection(), mr_ids, dismissed=True)
    return {b.review.mr or "": b for b in briefs(ctx, list(latest.values()))}

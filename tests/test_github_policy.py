"""The pull-request state machine (github/pr_policy.assess_pr): named rows, one parametrize."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gastown.github.pr_policy import (
    ChangesRequested, Check, CheckFailed, Closed, MergeNow, Merged, Policy, PRSnapshot, Review, assess_pr,
)

HEAD = "a" * 40
GREEN = Check("check:1", "ci", True, "success")
RED = Check("check:2", "ci", True, "failure", "1 failed", "FAILED test_x")
RUNNING = Check("check:3", "e2e", False, None)
ASK = Review(10, "ann", "CHANGES_REQUESTED", HEAD, "rename it")
ASK_OLD = Review(11, "ann", "CHANGES_REQUESTED", "b" * 40, "old")
APPROVE = Review(12, "ann", "APPROVED", HEAD)

BASE = PRSnapshot(number=7, state="open", merged=False, merge_sha=None, head_sha=HEAD, pushed_sha=HEAD, draft=False,
                  checks=(GREEN,), reviews=(), handled=frozenset(), age=5.0)

ROWS = {
    "merged by anyone": (replace(BASE, state="closed", merged=True, merge_sha="m" * 40), Policy(), [Merged("m" * 40)]),
    "closed unmerged": (replace(BASE, state="closed"), Policy(), [Closed()]),
    "all green, auto-merge": (BASE, Policy(), [MergeNow()]),
    "all green, auto-merge off": (BASE, Policy(auto_merge=False), []),
    "draft never merged": (replace(BASE, draft=True), Policy(), []),
    "a check still running": (replace(BASE, checks=(GREEN, RUNNING)), Policy(), []),
    "a red check: fix cycle": (replace(BASE, checks=(GREEN, RED)), Policy(), [CheckFailed(RED)]),
    "a red check already handled: wait": (replace(BASE, checks=(RED,), handled=frozenset({"check:2"})), Policy(), []),
    "head moved (not ours): nothing": (replace(BASE, head_sha="c" * 40, checks=(RED,)), Policy(), []),
    "changes requested: fix cycle": (replace(BASE, reviews=(ASK,)), Policy(), [ChangesRequested(ASK)]),
    "red check wins over review": (replace(BASE, checks=(RED,), reviews=(ASK,)), Policy(), [CheckFailed(RED)]),
    "handled request on this head holds the merge": (
        replace(BASE, reviews=(ASK,), handled=frozenset({"review:10"})), Policy(), []),
    "handled request on an older head: merge": (
        replace(BASE, reviews=(ASK_OLD,), handled=frozenset({"review:11"})), Policy(), [MergeNow()]),
    "approved after asking: merge": (
        replace(BASE, reviews=(ASK, APPROVE), handled=frozenset({"review:10"})), Policy(), [MergeNow()]),
    "no checks yet, just pushed: wait": (replace(BASE, checks=()), Policy(), []),
    "no checks after the grace: merge": (replace(BASE, checks=(), age=600.0), Policy(), [MergeNow()]),
}


@pytest.mark.parametrize("snap,policy,expected", ROWS.values(), ids=ROWS.keys())
def test_assess_pr(snap: PRSnapshot, policy: Policy, expected: list[object]) -> None:
    assert assess_pr(snap, policy) == expected

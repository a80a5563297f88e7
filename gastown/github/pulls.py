"""Pull requests out (``merge = "pr"``) and followed back.

``open_or_update`` is the Refinery's last step for a rig that merges through GitHub: the
gated stack (one MR) is force-pushed to ``gastown/<issue>`` on the upstream (gastown's
own branch) and the issue's ONE pull request is opened, or updated when a fix cycle
pushed new commits; the review's non-blocking findings become line comments; the MR
becomes ``pr_open``.

``follow_rig`` looks at each open PR of a rig (conditional requests: a poll that finds
nothing new costs no rate limit), asks ``pr_policy.assess_pr`` what it means and acts:
merged → MR ``merged``, issue closed, a comment and the issue closed on GitHub; closed →
MR ``rejected`` and an escalation; a red check or a review requesting changes → the MR
``failed`` / ``changes_requested`` with the evidence, sent back as a fix cycle; all green
with ``auto_merge`` → merged through the API (GitHub's protection rules still apply).

Idempotent: every action checks the MR's state first and records what it handled, so a
webhook and a poll seeing the same event act once.
"""

from __future__ import annotations

from typing import Any

from gastown._internal.log import logger
from gastown.config.schema import GitHubConfig
from gastown.context import Context
from gastown.errors import GitError, GitHubError
from gastown.github import pr_policy
from gastown.github.api import Repo
from gastown.ledger import github as gh
from gastown.ledger.escalations import raise_escalation
from gastown.ledger.events import record_event
from gastown.ledger.issues import Issue, find_issue, get_issue, set_issue_status
from gastown.ledger.mrs import (
    MR,
    SENT_BACK_STATES,
    get_mr,
    retire_for_issue,
    set_mr_state,
)
from gastown.states import IssueStatus, MRState

log = logger(__name__)

LOG_EXCERPT_LINES = 40
LOG_EXCERPT_CHARS = 4000


def pr_branch(issue_id: str) -> str:
    """The upstream branch carrying an issue's pull request.

    >>> pr_branch("app-k3x9q")
    'gastown/app-k3x9q'
    """
    return f"gastown/{issue_id}"


def pr_title(issue: Issue) -> str:
    """The issue's title on one line, as GitHub takes it (at most 256 characters).

    >>> pr_title(Issue("app-1", "app", "Fix\\nthe  bug", "", 2, IssueStatus.HOOKED, 0, 0, None, None))
    'Fix the bug'
    """
    line = " ".join(issue.title.split())
    return line if len(line) <= 256 else line[:255] + "…"


def pr_body(*, issue: Issue, link: gh.IssueLink | None, mr: MR, commits: list[str], diffstat: str,
            gates: tuple[str, ...], round_id: int | None, review: dict[str, Any] | None) -> str:
    """The PR's description: the issue link (``Closes #N``), the change, the gate results,
    the review verdict. Pure; every outside text on it is put on one line, backticks defused."""
    closes = f"Closes #{link.number}." if link is not None else f"Town issue `{issue.id}`."
    lines = [f"{closes} Work of gastown merge request `{mr.id}` (commit `{mr.commit_sha[:12]}`).", "", "## Change", ""]
    lines += [f"- {_one_line(c)}" for c in commits[:20]] or ["- (no commit messages)"]
    if diffstat.strip():
        lines += ["", "```", diffstat.strip()[:3000], "```"]
    lines += ["", "## Gates", ""]
    if gates:
        lines += [f"- ✅ `{_one_line(g)}`" for g in gates]
        lines.append(f"- all green on this exact commit (refinery round {round_id})")
    else:
        lines.append("- no gates configured for this rig")
    lines += ["", "## Review", ""]
    if review is None:
        lines.append("- no AI review for this rig")
    else:
        lines.append(f"- verdict: **{review['verdict']}** ({review['style']} style), "
                     f"{review['findings']} finding(s), {review['blocking']} blocking")
        if review.get("summary"):
            lines.append(f"- {_one_line(review['summary'])}")
    lines += ["", "_Opened by gastown. New commits from fix cycles update this pull request._"]
    return "\n".join(lines)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split()).replace("`", "'")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def check_detail(number: int, check: pr_policy.Check) -> str:
    """What a red check sends back to the agent: its name, summary and the log's last lines. Pure.

    >>> print(check_detail(7, pr_policy.Check("check:1", "ci", True, "failure", "1 test failed", "a\\nb\\nFAILED x")))
    GitHub check `ci` failed (failure) on pull request #7.
    Summary: 1 test failed
    Log excerpt (last lines):
    a
    b
    FAILED x
    """
    text = "\n".join(check.text.splitlines()[-LOG_EXCERPT_LINES:])[-LOG_EXCERPT_CHARS:]
    lines = [f"GitHub check `{check.name}` failed ({check.conclusion}) on pull request #{number}."]
    if check.summary:
        lines.append(f"Summary: {check.summary[:1000]}")
    lines.append("Log excerpt (last lines):" if text else "No log text was reported.")
    if text:
        lines.append(text)
    return "\n".join(lines)


def review_detail(number: int, review: pr_policy.Review, comments: list[dict[str, Any]]) -> str:
    """What a review requesting changes sends back: its body and every line comment. Pure.

    >>> print(review_detail(7, pr_policy.Review(1, "ann", "CHANGES_REQUESTED", "abc", "Please rename."),
    ...                     [{"path": "x.py", "line": 3, "body": "use a constant"}]))
    GitHub review by @ann requests changes on pull request #7.
    Please rename.
    - x.py:3: use a constant
    """
    lines = [f"GitHub review by @{review.user} requests changes on pull request #{number}."]
    if review.body.strip():
        lines.append(review.body.strip()[:4000])
    for c in comments[:50]:
        where = f"{c.get('path')}:{c.get('line') or c.get('original_line') or '?'}"
        lines.append(f"- {where}: {str(c.get('body') or '').strip()[:1000]}")
    return "\n".join(lines)


# -- out ---------------------------------------------------------------------------------


def open_or_update(ctx: Context, rig: str, repo: Repo, cfg: GitHubConfig, mr: MR, tip: str, *, base: str,
                   target: str, gates: tuple[str, ...], round_id: int | None) -> gh.PullRequest:
    """Push ``tip`` to ``gastown/<issue>`` and open (or update) the issue's pull request;
    the MR becomes ``pr_open``. Raises ``GitError`` when the push is refused and
    ``GitHubError`` when GitHub refuses; the MR is then left to the caller (still ``testing``)."""
    from gastown.git.merge import push_branch

    branch = pr_branch(mr.issue)
    remote = ctx.config.rigs[rig].repo
    pushed = push_branch(ctx.town.hub_path(rig), tip, branch, env=repo.client.git_auth_env(remote))
    if not pushed.ok:
        raise GitError(f"pushing {branch} to the upstream failed: {pushed.message}",
                       hint="check that the rig's git credentials (or the token: Contents read and write) "
                            "may push to the upstream (docs/github.md)")
    conn = ctx.ledger.connection()
    issue, link = get_issue(conn, mr.issue), gh.link_of_issue(conn, mr.issue)
    review = _review_of(ctx, mr)
    commits, diffstat = _change_of(ctx, rig, base, tip)
    title = pr_title(issue)
    body = pr_body(issue=issue, link=link, mr=mr, commits=commits, diffstat=diffstat, gates=gates, round_id=round_id,
                   review=review[0] if review else None)
    known = gh.pull_of_issue(conn, mr.issue)
    if known is not None and known.state == "open":
        existing: int | None = known.number
    else:  # none yet, or the last one merged or closed: one may still be open for the branch
        found = repo.open_pull_for(branch)
        existing = int(found["number"]) if found else None
    if existing is not None:
        data = repo.update_pull(existing, title=title, body=body)
    else:
        data = repo.create_pull(title=title, body=body, head=branch, base=target, draft=cfg.draft)
    number, url = int(data["number"]), str(data.get("html_url") or "")
    with ctx.ledger.write() as conn:
        now = ctx.now()
        pr = gh.record_pull(conn, issue=mr.issue, rig=rig, repo=cfg.repo, number=number, url=url, branch=branch,
                            mr=mr.id, head_sha=tip, now=now)
        if get_mr(conn, mr.id).state == MRState.TESTING:
            set_mr_state(conn, mr.id, MRState.PR_OPEN, now=now, detail=f"pull request #{number} ({url})")
        record_event(conn, "pr", f"{mr.id} {'updated' if existing else 'opened'} pull request #{number}", now=now,
                     rig=rig, polecat=mr.polecat, spawn=mr.spawn, issue=mr.issue,
                     data={"mr": mr.id, "pr": number, "url": url, "sha": tip})
    if review is not None:
        _comment_findings(ctx, repo, number, tip, review[0]["id"], review[1])
    if link is not None:
        _post_safely(ctx, repo, link, kind="pr", key=str(number),
                     body=f"gastown: opened pull request #{number} for this issue.")
    return pr


def _review_of(ctx: Context, mr: MR) -> tuple[dict[str, Any], list[Any]] | None:
    from gastown.ledger.reviews import findings_of, latest_for_mrs

    conn = ctx.ledger.connection()
    review = latest_for_mrs(conn, [mr.id]).get(mr.id)
    if review is None or review.verdict is None:
        return None
    findings = findings_of(conn, review.id)
    return ({"id": review.id, "verdict": review.verdict, "style": review.style, "summary": review.summary,
             "findings": len(findings), "blocking": sum(1 for f in findings if f.blocking)},
            [f for f in findings if not f.blocking])


def _comment_findings(ctx: Context, repo: Repo, number: int, tip: str, review_id: str, findings: list[Any]) -> None:
    """The review's non-blocking findings as line comments on the PR, each once per review.

    The commit is the stack's tip, whose lines match the MR's (one MR per PR). A finding
    GitHub refuses (a line outside its diff view) is logged and skipped."""
    for f in findings:
        key = f"{review_id}:{f.seq}"
        with ctx.ledger.write() as conn:
            if not gh.claim_post(conn, issue=f"pr#{number}", kind="finding", key=key, now=ctx.now()):
                continue
        body = f"**{f.severity}** ({f.category}): {f.title}\n\n{f.explanation}" + (f"\n\nSuggested fix: {f.fix}" if f.fix else "")
        try:
            repo.review_comment(number, commit=tip, path=f.file, line=f.end_line, body=body)
        except GitHubError as exc:
            log.warning("github: line comment on #%s %s:%s refused: %s", number, f.file, f.end_line, exc.message)


def _change_of(ctx: Context, rig: str, base: str, tip: str) -> tuple[list[str], str]:
    from gastown.git.cmd import Git

    git = Git(ctx.town.hub_path(rig))
    try:
        subjects = git.run("log", "--format=%s", f"{base}..{tip}").stdout.splitlines()
        stat = git.run("diff", "--stat", f"{base}..{tip}").stdout
    except GitError:
        return [], ""
    return subjects, stat


def _post_safely(ctx: Context, repo: Repo, link: gh.IssueLink, *, kind: str, key: str, body: str) -> None:
    from gastown.github.sync import post_once

    try:
        post_once(ctx, repo, link, kind=kind, key=key, body=body)
    except GitHubError as exc:
        log.warning("github: comment on %s#%s not posted (retried on the next pass): %s", link.repo, link.number,
                    exc.message)


# -- back --------------------------------------------------------------------------------


def snapshot(ctx: Context, repo: Repo, pr: gh.PullRequest) -> pr_policy.PRSnapshot:
    """One look at a PR: the pull, its head's check runs and statuses, its reviews."""
    data = repo.client.get_fresh(repo.path(f"/pulls/{pr.number}")).data or {}
    head = str((data.get("head") or {}).get("sha") or "")
    runs = repo.client.get_fresh(repo.path(f"/commits/{head}/check-runs"), params={"per_page": 100}).data if head else None
    status = repo.client.get_fresh(repo.path(f"/commits/{head}/status")).data if head else None
    reviews = repo.client.get_fresh(repo.path(f"/pulls/{pr.number}/reviews"), params={"per_page": 100}).data
    return pr_policy.PRSnapshot(
        number=pr.number, state=str(data.get("state") or "open"), merged=bool(data.get("merged")),
        merge_sha=data.get("merge_commit_sha"), head_sha=head, pushed_sha=pr.head_sha, draft=bool(data.get("draft")),
        checks=pr_policy.checks_from_api(runs, status), reviews=pr_policy.reviews_from_api(reviews),
        handled=pr.handled, age=ctx.now() - _pushed_at(ctx, pr))


def _pushed_at(ctx: Context, pr: gh.PullRequest) -> float:
    from gastown.ledger.mrs import find_mr

    mr = find_mr(ctx.ledger.connection(), pr.mr)
    return mr.updated_at if mr is not None else ctx.now()


def follow_rig(ctx: Context, rig: str, repo: Repo, cfg: GitHubConfig, *, slinger: Any = None) -> list[gh.PullRequest]:
    """Follow every open PR of ``rig`` once; send back what came back red. Returns the PRs
    as they stand afterwards. A PR GitHub fails to answer for is skipped this pass."""
    policy = pr_policy.Policy(auto_merge=cfg.auto_merge)
    sent_back = False
    for pr in gh.open_pulls(ctx.ledger.connection(), rig):
        try:
            if _abandoned(ctx, pr):
                _close_abandoned(ctx, repo, pr)
                continue
            snap = snapshot(ctx, repo, pr)
            for action in pr_policy.assess_pr(snap, policy):
                sent_back |= _apply(ctx, repo, cfg, pr, snap, action)
            with ctx.ledger.write() as conn:
                gh.update_pull(conn, pr.issue, now=ctx.now(), checks=pr_policy.checks_summary(snap.checks))
        except GitHubError as exc:
            log.warning("github: following pull request #%s failed this pass: %s", pr.number, exc.message)
    if sent_back:
        _send_back(ctx, rig, slinger)
    conn = ctx.ledger.connection()
    return [p for p in (gh.pull_of_issue(conn, i.issue) for i in gh.open_pulls(conn, rig)) if p is not None]


def _apply(ctx: Context, repo: Repo, cfg: GitHubConfig, pr: gh.PullRequest, snap: pr_policy.PRSnapshot,
           action: pr_policy.Action) -> bool:
    """Act on one decision; returns whether an MR was sent back (a fix cycle is due)."""
    if isinstance(action, pr_policy.Merged):
        settle_merged(ctx, repo, pr, action.sha)
    elif isinstance(action, pr_policy.Closed):
        _settle_closed(ctx, pr)
    elif isinstance(action, pr_policy.MergeNow):
        if get_mr(ctx.ledger.connection(), pr.mr).state != MRState.PR_OPEN:
            return False  # sent back or rejected meanwhile: not ours to merge now
        answer = repo.merge_pull(pr.number, sha=pr.head_sha, method=cfg.merge_method)
        if answer.status == 200:
            settle_merged(ctx, repo, pr, (answer.data or {}).get("sha"))
        else:
            log.info("github: #%s not merged yet: %s", pr.number, (answer.data or {}).get("message"))
    elif isinstance(action, pr_policy.CheckFailed):
        return _send_back_mr(ctx, pr, action.check.key, MRState.FAILED, check_detail(pr.number, action.check),
                             gate_log=action.check.url or f"check {action.check.name} on pull request #{pr.number}")
    elif isinstance(action, pr_policy.ChangesRequested):
        comments = repo.comments_of_review(pr.number, action.review.id)
        return _send_back_mr(ctx, pr, action.review.key, MRState.CHANGES_REQUESTED,
                             review_detail(pr.number, action.review, comments), gate_log=None)
    else:  # pragma: no cover - a new action type must be handled here
        raise TypeError(f"unknown pull request action {action!r}")
    return False


def _abandoned(ctx: Context, pr: gh.PullRequest) -> bool:
    """The town let the work go: its MR was rejected (`gt mq reject`, `gt issue close`, the
    GitHub issue closed), so the PR must not stay open to be merged."""
    from gastown.ledger.mrs import find_mr

    mr = find_mr(ctx.ledger.connection(), pr.mr)
    return mr is None or mr.state == MRState.REJECTED


def _close_abandoned(ctx: Context, repo: Repo, pr: gh.PullRequest) -> None:
    repo.close_pull(pr.number)
    with ctx.ledger.write() as conn:
        gh.update_pull(conn, pr.issue, now=ctx.now(), state="closed")
        record_event(conn, "pr", f"closed pull request #{pr.number}: {pr.mr} was rejected in the town", now=ctx.now(),
                     rig=pr.rig, issue=pr.issue, data={"mr": pr.mr, "pr": pr.number})


def _send_back_mr(ctx: Context, pr: gh.PullRequest, key: str, state: MRState, detail: str, *,
                  gate_log: str | None) -> bool:
    with ctx.ledger.write() as conn:
        now = ctx.now()
        current = gh.pull_of_issue(conn, pr.issue)
        handled = (current.handled if current else pr.handled) | {key}
        gh.update_pull(conn, pr.issue, now=now, handled=handled)
        mr = get_mr(conn, pr.mr)
        if mr.state != MRState.PR_OPEN:
            return False
        set_mr_state(conn, mr.id, state, now=now, detail=detail, gate_log=gate_log)
        kind = "failed" if state == MRState.FAILED else "review"
        record_event(conn, kind, f"{mr.id}: {detail.splitlines()[0]}", now=now, rig=mr.rig, polecat=mr.polecat,
                     spawn=mr.spawn, issue=mr.issue, data={"mr": mr.id, "pr": pr.number, "github": key})
    return True


def _send_back(ctx: Context, rig: str, slinger: Any) -> None:
    from gastown.refinery import fixes
    from gastown.refinery.settings import resolve_settings

    settings = resolve_settings(ctx.config, rig)
    fixes.send_back_pending(ctx, rig, target=settings.target, max_fix_cycles=settings.max_fix_cycles, slinger=slinger)


def settle_merged(ctx: Context, repo: Repo, pr: gh.PullRequest, sha: str | None) -> None:
    """The PR merged: MR ``merged``, issue closed, sent-back MRs retired; then a comment on
    the GitHub issue and the issue closed there (each once)."""
    with ctx.ledger.write() as conn:
        now = ctx.now()
        gh.update_pull(conn, pr.issue, now=now, state="merged")
        mr = get_mr(conn, pr.mr)
        if mr.state == MRState.PR_OPEN:
            set_mr_state(conn, mr.id, MRState.MERGED, now=now, merged_sha=sha or pr.head_sha,
                         detail=f"merged on GitHub in pull request #{pr.number}")
            record_event(conn, "merged", f"{mr.id} merged in pull request #{pr.number}", now=now, rig=mr.rig,
                         polecat=mr.polecat, spawn=mr.spawn, issue=mr.issue,
                         data={"mr": mr.id, "pr": pr.number, "sha": sha})
        issue = find_issue(conn, pr.issue)
        reason = f"merged in {mr.id} (#{pr.number})"
        hooked = issue is not None and issue.status == IssueStatus.HOOKED
        if issue is not None and issue.status != IssueStatus.CLOSED and not hooked:
            set_issue_status(conn, pr.issue, IssueStatus.CLOSED, now=now, reason=reason)
        retire_for_issue(conn, pr.issue, SENT_BACK_STATES, detail=f"retired: pull request #{pr.number} merged", now=now)
    if hooked:  # merged by a person while a fix cycle ran: that agent's work is moot
        from gastown.roles.by_hand import close_issue

        close_issue(ctx, pr.issue, reason=reason)
    link = gh.link_of_issue(ctx.ledger.connection(), pr.issue)
    if link is None:
        return
    _post_safely(ctx, repo, link, kind="merged", key=str(pr.number),
                 body=f"gastown: merged in pull request #{pr.number}" + (f" as {sha[:12]}." if sha else "."))
    try:
        if link.state != "closed":
            repo.close_issue(link.number)
            with ctx.ledger.write() as conn:
                gh.set_issue_link_state(conn, link.issue, "closed", now=ctx.now())
    except GitHubError as exc:
        log.warning("github: closing %s#%s failed: %s", link.repo, link.number, exc.message)


def _settle_closed(ctx: Context, pr: gh.PullRequest) -> None:
    """Closed without merging: the MR is rejected and a person is asked what next."""
    with ctx.ledger.write() as conn:
        now = ctx.now()
        gh.update_pull(conn, pr.issue, now=now, state="closed")
        mr = get_mr(conn, pr.mr)
        if mr.state == MRState.PR_OPEN:
            set_mr_state(conn, mr.id, MRState.REJECTED, now=now, detail=f"pull request #{pr.number} was closed unmerged")
            record_event(conn, "rejected", f"{mr.id}: pull request #{pr.number} was closed unmerged", now=now,
                         rig=mr.rig, issue=mr.issue, data={"mr": mr.id, "pr": pr.number})
        issue = find_issue(conn, pr.issue)
        if issue is not None and issue.status not in (IssueStatus.CLOSED, IssueStatus.BLOCKED):
            raise_escalation(ctx.ledger, f"pull request #{pr.number} of {pr.issue} was closed without merging; "
                             "reopen it on GitHub, or close the issue", severity="medium", source="github",
                             issue=pr.issue, rig=pr.rig, block_issue=True)

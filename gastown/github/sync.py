"""Issues in, comments back: one rig's GitHub issues and the town's copies kept in step.

``sync_rig`` is what `gt github sync RIG`, the Mayor's GitHub loop and a webhook's
wake-up all run:

1. **issues in**: the open issues carrying the rig's label, asked for conditionally (the
   ``ETag`` of the last listing fully handled; a 304 costs no rate limit). A new one is
   created in the town (title and body verbatim, the GitHub number and URL linked) and,
   with ``sling = true``, slung; a known one whose title or body changed on GitHub is
   edited in the town; one that left the listing is looked at alone, and closed in the
   town if it was closed on GitHub;
2. **pull requests**: each open PR is followed (``pulls.follow_rig``);
3. **comments back**: short, factual comments on the GitHub issue — slung (agent and
   polecat), blocked (the escalation's sentence) — each posted once (``github_posts``).

Idempotent: a second run with nothing changed makes one conditional request per listing
and changes nothing. Failures of GitHub raise ``GitHubError`` after the client's retries;
what was done before stays done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gastown._internal.log import logger
from gastown.config.schema import GitHubConfig
from gastown.context import Context
from gastown.errors import GitHubError
from gastown.github.api import Repo
from gastown.ledger import github as gh
from gastown.ledger.events import record_event
from gastown.ledger.issues import create_issue, edit, find_issue
from gastown.states import IssueStatus

log = logger(__name__)

Slinger = Callable[..., Any]


@dataclass
class SyncReport:
    rig: str
    repo: str
    unchanged: bool = False
    imported: list[dict[str, Any]] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    slung: list[str] = field(default_factory=list)
    comments: int = 0
    pulls: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"rig": self.rig, "repo": self.repo, "unchanged": self.unchanged, "imported": self.imported,
                "updated": self.updated, "closed": self.closed, "slung": self.slung, "comments": self.comments,
                "pulls": self.pulls, "problems": self.problems}


def sync_rig(ctx: Context, rig: str, repo: Repo, cfg: GitHubConfig, *, slinger: Slinger | None = None) -> SyncReport:
    """Issues in, PRs followed, comments back, for one rig (see the module's docstring)."""
    from gastown.github.pulls import follow_rig

    report = SyncReport(rig, cfg.repo)
    import_issues(ctx, rig, repo, cfg, report, slinger=slinger)
    report.pulls = [p.to_json() for p in follow_rig(ctx, rig, repo, cfg, slinger=slinger)]
    report.comments += post_comments(ctx, rig, repo)
    return report


def import_issues(ctx: Context, rig: str, repo: Repo, cfg: GitHubConfig, report: SyncReport, *,
                  slinger: Slinger | None = None) -> None:
    key = f"issues:{cfg.repo}:{cfg.label}"
    conn = ctx.ledger.connection()
    first = repo.labelled_issues(cfg.label, etag=gh.etag_of(conn, key))
    if first.not_modified:
        report.unchanged = True
        return
    items = first.data or []
    if 'rel="next"' in first.headers.get("link", ""):  # more than one page: read them all
        items = repo.all_labelled_issues(cfg.label)
    listed: set[int] = set()
    for item in items:
        if "pull_request" in item:
            continue  # GitHub lists pull requests among issues
        listed.add(int(item["number"]))
        _take_issue(ctx, rig, cfg, item, report, slinger=slinger)
    for link in gh.links_of_rig(ctx.ledger.connection(), rig):
        if link.state == "open" and link.number not in listed and link.repo == cfg.repo:
            _recheck_unlisted(ctx, repo, link, report)
    if first.etag:
        with ctx.ledger.write() as conn:
            gh.remember_etag(conn, key, first.etag, now=ctx.now())


def _take_issue(ctx: Context, rig: str, cfg: GitHubConfig, item: dict[str, Any], report: SyncReport, *,
                slinger: Slinger | None) -> None:
    number, title, body = int(item["number"]), str(item.get("title") or ""), str(item.get("body") or "")
    conn = ctx.ledger.connection()
    link = gh.link_by_number(conn, cfg.repo, number)
    if link is not None:
        issue = find_issue(conn, link.issue)
        if issue is not None and (issue.title, issue.body) != (title, body) and title.strip():
            edit(ctx.ledger, issue.id, title=title, body=body)
            report.updated.append(issue.id)
        if issue is not None and link.state == "closed":
            _reopen_from_github(ctx, rig, cfg, link, report, slinger=slinger)
        return
    with ctx.ledger.write() as conn:
        if gh.link_by_number(conn, cfg.repo, number) is not None:
            return  # another sync imported it meanwhile
        now = ctx.now()
        issue = create_issue(conn, rig=rig, prefix=ctx.config.rig_prefix(rig), title=title.strip() or f"GitHub #{number}",
                             body=body, priority=2, now=now)
        url = str(item.get("html_url") or "")
        gh.link_issue(conn, issue=issue.id, rig=rig, repo=cfg.repo, number=number, url=url, state="open", now=now)
        record_event(conn, "issue", f"imported from GitHub {cfg.repo}#{number}", now=now, rig=rig, issue=issue.id,
                     data={"github": number, "url": url})
    report.imported.append({"id": issue.id, "number": number, "url": url})
    if cfg.sling:
        _sling(ctx, rig, issue.id, report, slinger=slinger)


def _reopen_from_github(ctx: Context, rig: str, cfg: GitHubConfig, link: gh.IssueLink, report: SyncReport, *,
                        slinger: Slinger | None) -> None:
    """An issue closed on GitHub is open (and labelled) again: so is the town's copy, slung
    again with ``sling = true``."""
    from gastown.roles.by_hand import reopen_issue

    with ctx.ledger.write() as conn:
        gh.set_issue_link_state(conn, link.issue, "open", now=ctx.now())
    issue = find_issue(ctx.ledger.connection(), link.issue)
    if issue is None or issue.status != IssueStatus.CLOSED:
        return
    reopen_issue(ctx, link.issue)
    report.updated.append(link.issue)
    if cfg.sling:
        _sling(ctx, rig, link.issue, report, slinger=slinger)


def _sling(ctx: Context, rig: str, issue_id: str, report: SyncReport, *, slinger: Slinger | None) -> None:
    try:
        sling = slinger or _default_slinger()
        sling(ctx, issue_id, rig)
        report.slung.append(issue_id)
    except Exception as exc:  # noqa: BLE001 - the import stands; `gt sling` can retry it
        log.warning("github: slinging %s failed: %s", issue_id, exc)
        report.problems.append(f"could not sling {issue_id}: {exc}")


def _recheck_unlisted(ctx: Context, repo: Repo, link: gh.IssueLink, report: SyncReport) -> None:
    """An issue that left the labelled listing: closed on GitHub closes it in the town; an
    issue only unlabelled is left as it is."""
    try:
        data = repo.issue(link.number).data or {}
    except GitHubError as exc:
        report.problems.append(f"could not read {link.repo}#{link.number}: {exc.message}")
        return
    if data.get("state") != "closed":
        return
    close_from_github(ctx, link, report)


def close_from_github(ctx: Context, link: gh.IssueLink, report: SyncReport | None = None) -> None:
    """The GitHub issue was closed by someone: release and close the town's copy (agent
    stopped, unmerged work archived, waiting MRs rejected), unless it is closed already."""
    from gastown.roles.by_hand import close_issue

    with ctx.ledger.write() as conn:
        gh.set_issue_link_state(conn, link.issue, "closed", now=ctx.now())
    issue = find_issue(ctx.ledger.connection(), link.issue)
    if issue is None or issue.status == IssueStatus.CLOSED:
        return
    close_issue(ctx, link.issue, reason=f"closed on GitHub ({link.repo}#{link.number})")
    if report is not None:
        report.closed.append(link.issue)


def post_once(ctx: Context, repo: Repo, link: gh.IssueLink, *, kind: str, key: str, body: str) -> bool:
    """Comment ``body`` on the linked GitHub issue unless (issue, kind, key) was posted before.

    The claim is written first and withdrawn if GitHub refuses, so a crash in between
    loses a comment at worst and never posts one twice. Returns whether it posted."""
    with ctx.ledger.write() as conn:
        if not gh.claim_post(conn, issue=link.issue, kind=kind, key=key, now=ctx.now()):
            return False
    try:
        repo.comment(link.number, body)
    except GitHubError:
        with ctx.ledger.write() as conn:
            gh.release_post(conn, issue=link.issue, kind=kind, key=key)
        raise
    return True


def post_comments(ctx: Context, rig: str, repo: Repo) -> int:
    """Comments the town owes GitHub for the rig's linked issues: slung, blocked."""
    from gastown.ledger.escalations import latest_for_issue
    from gastown.ledger.work import get_hook

    posted = 0
    conn = ctx.ledger.connection()
    for link in gh.links_of_rig(conn, rig):
        issue = find_issue(conn, link.issue)
        if issue is None or issue.status == IssueStatus.CLOSED:
            continue
        hook = get_hook(conn, link.issue)
        if issue.status == IssueStatus.HOOKED and hook is not None:
            posted += post_once(ctx, repo, link, kind="slung", key=f"{hook.rig}/{hook.polecat}/{hook.agent}",
                                body=f"gastown: slung to agent `{hook.agent}` as polecat `{hook.rig}/{hook.polecat}` "
                                     f"(town issue `{link.issue}`).")
        if issue.status == IssueStatus.BLOCKED:
            esc = latest_for_issue(conn, link.issue)
            reason = esc.message if esc is not None else (issue.close_reason or "blocked")
            posted += post_once(ctx, repo, link, kind="blocked", key=esc.id if esc is not None else str(issue.updated_at),
                                body=f"gastown: blocked: {_quote(reason)}")
    return posted


def _quote(text: str, limit: int = 500) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _default_slinger() -> Slinger:
    from gastown.roles.polecat import sling

    return sling

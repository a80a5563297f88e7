"""The issue tracker: create, list, show, close and reopen issues, each with an event."""

from __future__ import annotations

from gastown.context import Context
from gastown.errors import Conflict, NotFound
from gastown.ledger.events import record_event
from gastown.ledger.ids import issue_prefix
from gastown.ledger.issues import Issue, create_issue, get_issue, list_issues, set_issue_status
from gastown.states import IssueStatus


def resolve_rig(ctx: Context, rig: str | None) -> str:
    """The rig an issue goes to: the one named, else the only rig there is."""
    rigs = ctx.settings.rigs
    if rig is not None:
        require_rig(ctx, rig)
        return rig
    if len(rigs) == 1:
        return next(iter(rigs))
    if not rigs:
        raise NotFound("this town has no rigs yet", hint="add one with `gt rig add NAME REPO`")
    raise NotFound(
        f"this town has {len(rigs)} rigs; say which one with --rig",
        hint="rigs: " + ", ".join(sorted(rigs)),
    )


def require_rig(ctx: Context, rig: str) -> None:
    if rig not in ctx.settings.rigs:
        known = ", ".join(sorted(ctx.settings.rigs)) or "none yet"
        raise NotFound(f"no rig named {rig!r} in this town (rigs: {known})", hint="add it with `gt rig add`")


def rig_of_issue(ctx: Context, issue_id: str) -> str | None:
    """The rig whose prefix the id carries, if any rig has it."""
    prefix = issue_prefix(issue_id)
    for name in ctx.settings.rigs:
        if ctx.settings.rig_prefix(name) == prefix:
            return name
    return None


def create(ctx: Context, *, title: str, body: str, rig: str | None, priority: int) -> Issue:
    rig_name = resolve_rig(ctx, rig)
    prefix = ctx.settings.rig_prefix(rig_name)
    with ctx.ledger.write() as conn:
        now = ctx.now()
        issue = create_issue(conn, rig=rig_name, prefix=prefix, title=title, body=body, priority=priority, now=now)
        record_event(conn, "issue", f"created: {_short(title)}", now=now, rig=rig_name, issue=issue.id)
    return issue


def show(ctx: Context, issue_id: str) -> Issue:
    return get_issue(ctx.ledger.connection(), issue_id)


def listing(ctx: Context, *, rig: str | None, status: IssueStatus | None) -> list[Issue]:
    if rig is not None:
        require_rig(ctx, rig)
    return list_issues(ctx.ledger.connection(), rig=rig, status=status)


def close(ctx: Context, issue_id: str, *, reason: str | None) -> Issue:
    with ctx.ledger.write() as conn:
        issue = get_issue(conn, issue_id)
        if issue.status == IssueStatus.CLOSED:
            return issue
        now = ctx.now()
        issue = set_issue_status(conn, issue_id, IssueStatus.CLOSED, now=now, reason=reason or "closed by hand")
        record_event(conn, "issue", f"closed: {reason or 'by hand'}", now=now, rig=issue.rig, issue=issue_id)
    return issue


def reopen(ctx: Context, issue_id: str) -> Issue:
    with ctx.ledger.write() as conn:
        issue = get_issue(conn, issue_id)
        if issue.status == IssueStatus.OPEN:
            return issue
        if issue.status not in (IssueStatus.CLOSED, IssueStatus.BLOCKED):
            raise Conflict(
                f"issue {issue_id} is {issue.status}, not closed or blocked",
                hint="only closed or blocked issues can be reopened",
            )
        now = ctx.now()
        hooked = conn.execute("SELECT 1 FROM hooks WHERE issue = ?", (issue_id,)).fetchone() is not None
        # A blocked issue keeps its polecat and branch: reopening it lets its agent resume there.
        issue = set_issue_status(conn, issue_id, IssueStatus.HOOKED if hooked else IssueStatus.OPEN, now=now)
        record_event(conn, "issue", "reopened" + (" (its agent resumes)" if hooked else ""), now=now, rig=issue.rig, issue=issue_id)
    return issue


def _short(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"

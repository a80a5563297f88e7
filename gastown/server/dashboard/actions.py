"""The dashboard's actions: each a form POST with the viewer's CSRF token, calling the same
domain function as the CLI (never a shell), then redirecting back with a one-line notice.

- ``/sling``: hook an issue and start (or queue) its agent (``gt sling``);
- ``/agents/<rig>/<polecat>/nudge``: type a message into the agent, in the background,
  once it is idle unless ``now`` (``gt nudge``);
- ``/escalations/<id>/ack``: acknowledge an escalation (``gt escalate ack``);
- ``/mq/<mr>/retry``: queue a sent-back or rejected MR again (``gt mq retry``);
- ``/mq/<mr>/reject``: take an MR out of the queue, after a confirmation page
  (``gt mq reject``);
- ``/triggers/<name>/pause`` and ``…/resume``: when ``gt serve`` provides triggers.

A refused token is 403; the domain's errors keep their meaning (404 unknown, 409 the
state forbids it, 400 bad input), shown as a page with what to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from gastown.errors import Conflict, InvalidInput, NotRunning
from gastown.server.dashboard.hub import Hub
from gastown.server.dashboard.pages import Site
from gastown.server.dashboard.rendering import render
from gastown.server.dashboard.web import (
    csrf_refusal,
    page,
    read_form,
    redirect_with_notice,
)

Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]
MAX_MESSAGE = 8000  # characters of a nudge


def action(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler`` so it runs only for a form carrying this viewer's CSRF token."""

    async def endpoint(request: Request) -> Response:
        unreadable: InvalidInput | None = None
        try:
            form = await read_form(request)
        except InvalidInput as exc:
            form, unreadable = {}, exc
        refusal = csrf_refusal(request, form)
        if refusal is not None:
            return refusal
        if unreadable is not None:
            raise unreadable
        return await handler(request, form)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _site(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _back(form: dict[str, str], default: str) -> str:
    return form.get("next") or default


def _kick(request: Request) -> None:
    _hub(request).wake()


@action
async def sling(request: Request, form: dict[str, str]) -> Response:
    """Sling ``issue`` (to ``target``: RIG or RIG/POLECAT, optional) with runtime ``agent`` (optional)."""
    from gastown.roles.polecat import sling as do_sling

    issue = form.get("issue", "").strip()
    if not issue:
        raise InvalidInput("say which issue to sling", hint="pick one from the open issues")
    target = form.get("target", "").strip() or None
    agent = form.get("agent", "").strip() or None
    ctx = _site(request).handle.ctx
    result = await _hub(request).act(lambda: do_sling(ctx, issue, target, agent=agent))
    _kick(request)
    where = f"{result.rig}/{result.polecat}" if result.polecat else result.rig
    text = {
        "queued": f"{result.issue} is queued for rig {result.rig}; it starts when a polecat frees up",
        "already": f"{result.issue} is already being worked on by {where}",
    }.get(result.status, f"{result.issue} {result.status} on {where}")
    return redirect_with_notice(request, _back(form, "/"), "ok", text)


@action
async def nudge(request: Request, form: dict[str, str]) -> Response:
    """Type ``message`` into the agent once it is idle (``now``: at once). Answers before
    the typing is done; its outcome arrives as a notice on every open page."""
    from gastown.roles.fleet import find_spawn
    from gastown.roles.fleet import nudge as do_nudge

    target = f"{request.path_params['rig']}/{request.path_params['polecat']}"
    message = form.get("message", "")
    if not message.strip():
        raise InvalidInput("the message is empty", hint="write what the agent should hear")
    if len(message) > MAX_MESSAGE:
        raise InvalidInput(f"the message is {len(message)} characters; the limit is {MAX_MESSAGE}")
    now = form.get("now") in ("1", "on", "yes", "true")
    ctx = _site(request).handle.ctx
    spawn = await asyncio.to_thread(find_spawn, ctx, target)
    if not spawn.live or not spawn.pane_id:
        raise NotRunning(f"the agent {target} is not running ({spawn.status})",
                         hint="sling its issue again to resume it")

    def deliver() -> str:
        do_nudge(ctx, target, message, now=now)
        return f"nudge delivered to {target}"

    _hub(request).run_job(deliver, failed=f"nudge to {target} failed")
    when = "now" if now else "as soon as it is idle"
    return redirect_with_notice(request, _back(form, f"/agents/{target}"), "ok",
                                f"typing the nudge into {target} {when}; its delivery shows here")


@action
async def ack(request: Request, form: dict[str, str]) -> Response:
    """Acknowledge escalation ``id``: it stops counting as open and stops aging."""
    from gastown.ledger.escalations import acknowledge

    esc_id = request.path_params["esc"]
    esc = await _hub(request).act(lambda: acknowledge(_site(request).handle.ctx.ledger, esc_id))
    _kick(request)
    return redirect_with_notice(request, _back(form, "/"), "ok", f"acknowledged {esc.id}")


@action
async def retry(request: Request, form: dict[str, str]) -> Response:
    """Queue a conflicted, failed or rejected merge request again."""
    from gastown.refinery import queue

    mr = await _hub(request).act(lambda: queue.retry(_site(request).handle.ctx, request.path_params["mr"]))
    _kick(request)
    return redirect_with_notice(request, _back(form, "/mq"), "ok", f"{mr.id} is {mr.state}")


@action
async def reject(request: Request, form: dict[str, str]) -> Response:
    """Take a merge request out of the queue, once ``confirm`` says so (else: a page asking)."""
    from gastown.refinery import queue

    mr_id = request.path_params["mr"]
    reason = form.get("reason", "").strip() or None
    if form.get("confirm") != "yes":
        ctx = _site(request).handle.ctx
        mr = await asyncio.to_thread(queue.show, ctx, mr_id)
        html = render("confirm.html", title=f"Reject {mr.id}?", mr=mr, reason=reason or "",
                      action=f"/mq/{mr.id}/reject", back=_back(form, "/mq"))
        return page(request, html)
    mr = await _hub(request).act(lambda: queue.reject(_site(request).handle.ctx, mr_id, reason=reason))
    _kick(request)
    return redirect_with_notice(request, _back(form, "/mq"), "ok", f"rejected {mr.id}")


@action
async def trigger(request: Request, form: dict[str, str]) -> Response:
    """Pause or resume trigger ``name`` through ``gt serve``'s trigger functions."""
    source = _site(request).triggers
    if source is None:
        raise Conflict("triggers are not available in this dashboard",
                       hint="they come with `gt serve`; use `gt trigger pause|resume` where it is installed")
    name, verb = request.path_params["name"], request.path_params["verb"]
    if verb not in ("pause", "resume"):
        raise InvalidInput(f"a trigger can be paused or resumed, not {verb!r}")
    await _hub(request).act(lambda: (source.pause if verb == "pause" else source.resume)(name))
    _kick(request)
    return redirect_with_notice(request, _back(form, "/triggers"), "ok", f"trigger {name} {verb}d")

"""Bringing a fresh agent to work: answer its start-up dialogs, wait until it is ready,
deliver the prompt (paste mode), and mark the spawn ``running``.

Runs in a short-lived detached helper (`gt _start SPAWN`) so `gt sling` returns as soon
as the agent process runs. If the helper dies, the Witness restarts the spawn after the
spawn grace period; nothing is lost.
"""

from __future__ import annotations

import time

from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger import work
from gastown.ledger.events import record_event
from gastown.runtimes.registry import Runtime, spawn_runtime
from gastown.screen import read_screen
from gastown.tmux.delivery import deliver


def still_current(ctx: Context, spawn_id: str) -> bool:
    """The spawn is still the hook's current one and its pane still carries its tag."""
    conn = ctx.ledger.connection()
    spawn = work.get_spawn(conn, spawn_id)
    if spawn is None or spawn.status not in work.LIVE_STATUSES or not spawn.pane_id:
        return False
    hook = work.get_hook(conn, spawn.issue)
    if hook is None or hook.spawn != spawn_id:
        return False
    return ctx.tmux_on(spawn.host).display(spawn.pane_id, "#{@gt_spawn}") == spawn_id


def answer_dialog(ctx: Context, spawn: work.Spawn, keys: tuple[str, ...], dialog: str) -> None:
    assert spawn.pane_id
    for key in keys:
        ctx.tmux_on(spawn.host).send_keys(spawn.pane_id, key)
        time.sleep(0.2)
    with ctx.ledger.write() as conn:
        record_event(
            conn, "dialog", f"answered start-up screen {dialog!r} with {'+'.join(keys)}", now=ctx.now(),
            rig=spawn.rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
        )


def bring_up(ctx: Context, spawn_id: str, *, timeout: float | None = None) -> bool:
    """Drive one starting spawn to ``running``; returns True if it got there."""
    conn = ctx.ledger.connection()
    spawn = work.get_spawn(conn, spawn_id)
    if spawn is None or spawn.status != "starting" or not spawn.pane_id:
        return False
    runtime = spawn_runtime(ctx.settings, spawn.rig, spawn.agent)  # no pydantic in this helper
    deadline = time.monotonic() + (timeout if timeout is not None else ctx.settings.witness.spawn_grace)
    started = time.monotonic()
    while time.monotonic() < deadline:
        if not still_current(ctx, spawn_id):
            return False
        try:
            screen = read_screen(ctx.tmux_on(spawn.host).capture(spawn.pane_id), runtime)
        except GastownError:
            return False
        if screen.dialog_keys:
            answer_dialog(ctx, spawn, screen.dialog_keys, screen.dialog or "dialog")
            time.sleep(0.5)
            continue
        waited = time.monotonic() - started
        ready = screen.ready or screen.busy if runtime.ready_re else waited >= runtime.ready_delay
        if ready:
            return _go(ctx, spawn, runtime)
        time.sleep(0.2)
    return False


def _read_prompt(ctx: Context, spawn: work.Spawn) -> str:
    """The spawn's prompt (a remote spawn's hub copy: the agent reads its own on its host)."""
    path = spawn.prompt_path if spawn.host == "local" else ctx.town.prompt_path(spawn.id)
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _go(ctx: Context, spawn: work.Spawn, runtime: Runtime) -> bool:
    assert spawn.pane_id
    now = ctx.now()
    with ctx.ledger.write() as conn:
        work.update_spawn(conn, spawn.id, ready_at=now)
    if runtime.prompt == "paste":
        prompt = _read_prompt(ctx, spawn)
        try:
            deliver(
                ctx.tmux_on(spawn.host), spawn.pane_id, prompt, runtime=runtime, locks_dir=ctx.town.locks_dir,
                wait_idle=runtime.ready_re is not None, idle_timeout=60,
                still_wanted=lambda: still_current(ctx, spawn.id),
            )
        except GastownError as exc:
            with ctx.ledger.write() as conn:
                record_event(
                    conn, "prompt", f"prompt delivery failed: {exc}", now=ctx.now(),
                    rig=spawn.rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
                )
            return False
    with ctx.ledger.write() as conn:
        current = work.get_spawn(conn, spawn.id)
        if current is None or current.status != "starting":
            return False
        work.update_spawn(conn, spawn.id, status="running", prompted_at=ctx.now())
        record_event(
            conn, "prompt", f"agent ready; prompt {'pasted' if runtime.prompt == 'paste' else 'given in argv'}",
            now=ctx.now(), rig=spawn.rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
        )
    return True

"""The mail announcer: a one-line notice of new mail, typed into each idle agent.

Called by the Witness every patrol (``announce_pending``). The mail itself is a ledger
row (``gastown.ledger.mail``); this only tells a running agent that it has some, once
per message, and only while the agent is idle.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from gastown._internal.locks import file_lock
from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import Conflict, DeliveryFailed, GastownError
from gastown.ledger import work
from gastown.ledger.events import record_event
from gastown.ledger.mail import (
    announcement,
    find_mail,
    mark_announced,
    one_line,
    unannounced,
)
from gastown.states import SpawnStatus

if TYPE_CHECKING:
    from gastown.runtimes.registry import Runtime
    from gastown.tmux.driver import Tmux

log = logger(__name__)

ANNOUNCE_IDLE_TIMEOUT = 2.0


def announce_pending(ctx: Context, rig: str, *, idle_timeout: float = ANNOUNCE_IDLE_TIMEOUT) -> int:
    """Announce unread, unannounced mail to the rig's running agents; returns how many.

    An agent that is busy (or whose pane lock is held) is skipped for this call and tried
    again on the next one, so a patrol never waits more than about ``idle_timeout`` per
    agent with pending mail; agents without pending mail cost nothing (no tmux call).
    Safe to call from several processes at once: one holds the rig's announce lock, the
    others return 0. A message read before it could be announced is never announced.
    """
    conn = ctx.ledger.connection()
    running = {
        f"{s.rig}/{s.polecat}": s for s in work.spawns_with_status(conn, (SpawnStatus.RUNNING,), rig) if s.pane_id
    }
    if not running or not unannounced(conn, list(running)):
        return 0
    with ExitStack() as stack:
        try:
            stack.enter_context(
                file_lock(ctx.town.locks_dir / f"mail-announce-{rig}.lock", timeout=0, what=f"mail announcing in {rig}")
            )
        except Conflict:
            return 0
        return _announce_each(ctx, running, idle_timeout)


def _announce_each(ctx: Context, running: dict[str, work.Spawn], idle_timeout: float) -> int:
    from gastown.runtimes.registry import spawn_runtime
    from gastown.tmux.delivery import deliver

    announced = 0
    skipped: set[str] = set()
    for mail in unannounced(ctx.ledger.connection(), list(running)):
        spawn = running[mail.recipient]
        if spawn.id in skipped:
            continue
        current = find_mail(ctx.ledger.connection(), mail.id)
        if current is None or current.read_at is not None or current.announced_at is not None:
            continue
        pane = spawn.pane_id or ""
        try:
            runtime = spawn_runtime(ctx.config, spawn.rig, spawn.agent)
            tmux = ctx.tmux_on(spawn.host)  # pane ids are only unique on their own host's server
            if not _looks_idle(tmux, pane, runtime):
                skipped.add(spawn.id)
                continue
            deliver(
                tmux, pane, announcement(mail), runtime=runtime, locks_dir=ctx.town.locks_dir,
                wait_idle=True, idle_timeout=idle_timeout, lock_timeout=idle_timeout,
                still_wanted=_still_in(tmux, pane, spawn.id),
            )
            note = ""
        except DeliveryFailed as exc:
            if not _typed(exc):
                skipped.add(spawn.id)
                continue
            # The line is on its input line but the Enter was not seen: typing it again would double it.
            note = " (Enter not confirmed)"
        except GastownError as exc:
            log.info("mail: cannot announce %s to %s: %s", mail.id, mail.recipient, exc)
            skipped.add(spawn.id)
            continue
        with ctx.ledger.write() as conn:
            if mark_announced(conn, mail.id, now=ctx.now()):
                announced += 1
                record_event(
                    conn, "mail", f"announced {mail.id} to {mail.recipient}{note}: {one_line(mail.subject)}",
                    now=ctx.now(), rig=spawn.rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
                    data={"mail": mail.id},
                )
    return announced


def _still_in(tmux: Tmux, pane: str, spawn_id: str) -> Callable[[], bool]:
    """Re-checked right before typing: the pane still runs this spawn (not a successor)."""
    return lambda: tmux.display(pane, "#{@gt_spawn}") == spawn_id


def _looks_idle(tmux: Tmux, pane: str, runtime: Runtime) -> bool:
    """One capture: skip a visibly busy agent at once instead of waiting out the timeout."""
    from gastown.screen import read_screen

    screen = read_screen(tmux.capture(pane), runtime)
    if runtime.ready_re is not None:
        return screen.idle
    return not screen.busy and screen.dialog_keys is None


def _typed(exc: DeliveryFailed) -> bool:
    # deliver() raises DeliveryFailed both before typing (busy, replaced) and after (Enter not taken).
    return "did not take the input" in exc.message

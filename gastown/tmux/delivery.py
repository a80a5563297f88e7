"""The one function that types into an agent: prompts, nudges, mail notices, dialog answers.

Protocol (see docs/architecture.md, "Typing into agents"):

1. take the pane's lock, shared by every gt process, so two messages never interleave;
2. by default wait until the agent is idle (ready marker, no busy marker, twice in a row);
3. leave copy-mode, strip escape and control characters (and frame multi-line text for a
   CLI that would take each pasted line as a message: aider);
4. paste the text as one bracketed paste (or type a short single line literally);
5. pause, then send Enter on its own;
6. verify the screen changed after Enter; resend Enter with back-off a few times;
7. report failure honestly (``DeliveryFailed``) instead of pretending.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gastown._internal.locks import file_lock
from gastown.errors import DeliveryFailed, InvalidInput, NotRunning
from gastown.runtimes.presets import frame_paste
from gastown.runtimes.registry import Runtime
from gastown.screen import read_screen, sanitize, tail
from gastown.tmux.driver import Tmux

POLL = 0.2
LITERAL_LIMIT = 200


@dataclass(frozen=True)
class Delivery:
    waited: float
    enters: int


def pane_lock_path(locks_dir: Path, socket: str, pane_id: str) -> Path:
    return locks_dir / f"pane-{socket}-{pane_id.lstrip('%')}.lock"


def deliver(
    tmux: Tmux,
    pane_id: str,
    text: str,
    *,
    runtime: Runtime,
    locks_dir: Path,
    wait_idle: bool = True,
    idle_timeout: float = 120.0,
    lock_timeout: float = 600.0,
    still_wanted: Callable[[], bool] | None = None,
    enter_tries: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Type ``text`` into ``pane_id`` and submit it, verified.

    ``wait_idle=False`` types even into a busy agent (``gt nudge --now``).
    ``still_wanted`` is re-checked after waiting, right before typing, so a message for
    a spawn that was replaced meanwhile is not typed into its successor.
    Raises ``NotRunning`` if the pane is gone or dead, ``DeliveryFailed`` if the agent
    stayed busy past ``idle_timeout`` or never took the Enter.
    """
    clean = sanitize(text).strip("\n")
    if not clean.strip():
        raise InvalidInput("the message is empty once control characters are removed")
    clean = frame_paste(runtime.cli, clean, "gt" + secrets.token_hex(6))
    started = time.monotonic()
    with file_lock(pane_lock_path(locks_dir, tmux.socket, pane_id), timeout=lock_timeout, what=f"pane {pane_id}"):
        _require_live(tmux, pane_id)
        if wait_idle:
            wait_until_idle(tmux, pane_id, runtime, timeout=idle_timeout, sleep=sleep)
        if still_wanted is not None and not still_wanted():
            raise DeliveryFailed(f"the agent in pane {pane_id} was replaced before the message could be typed")
        tmux.leave_copy_mode(pane_id)
        if "\n" in clean or len(clean) > LITERAL_LIMIT:
            tmux.paste(pane_id, clean)
        else:
            tmux.send_literal(pane_id, clean)
        # Give the TUI time to render the paste before Enter (an early Enter is swallowed).
        sleep(min(2.0, 0.35 + len(clean) / 200_000))
        typed = tail(tmux.capture(pane_id))
        for attempt in range(enter_tries):
            tmux.send_keys(pane_id, "Enter")
            if _screen_changes(tmux, pane_id, typed, within=0.6 * (2**attempt), sleep=sleep):
                return Delivery(waited=time.monotonic() - started, enters=attempt + 1)
        raise DeliveryFailed(
            f"the agent in pane {pane_id} did not take the input (Enter sent {enter_tries} times, screen unchanged)",
            hint="look at it with `gt peek`; the text may be sitting on its input line",
        )


def wait_until_idle(
    tmux: Tmux, pane_id: str, runtime: Runtime, *, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Return once the agent looks idle twice in a row (a prompt flashes between tool calls).

    Without a ready pattern, idle means: no busy marker and the screen unchanged for two polls.
    """
    deadline = time.monotonic() + timeout
    previous: str | None = None
    streak = 0
    while True:
        text = tail(tmux.capture(pane_id))
        screen = read_screen(text, runtime)
        if runtime.ready_re is not None:
            quiet = screen.idle
        else:
            quiet = not screen.busy and screen.dialog_keys is None and text == previous
        streak = streak + 1 if quiet else 0
        if streak >= 2:
            return
        if time.monotonic() > deadline:
            raise DeliveryFailed(
                f"the agent in pane {pane_id} stayed busy for {int(timeout)}s; nothing was typed",
                hint="try again later, or use --now to type into a busy agent",
            )
        previous = text
        _require_live(tmux, pane_id)
        sleep(POLL)


def _screen_changes(tmux: Tmux, pane_id: str, before: str, *, within: float, sleep: Callable[[float], None]) -> bool:
    deadline = time.monotonic() + within
    while True:
        if tail(tmux.capture(pane_id)) != before:
            return True
        if time.monotonic() > deadline:
            return False
        sleep(0.1)


def _require_live(tmux: Tmux, pane_id: str) -> None:
    dead = tmux.display(pane_id, "#{pane_dead}")
    if dead is None:
        raise NotRunning(f"pane {pane_id} no longer exists", hint="see `gt agents` for the live ones")
    if dead == "1":
        raise NotRunning(f"the agent in pane {pane_id} has exited", hint="the Witness restarts it; see `gt peek`")

"""The Witness's policy: a pure ``assess(snapshot, now, policy) -> actions``.

No I/O here. The patrol (``witness.py``) gathers the snapshot with one batched tmux
query plus log-file stats (pane text only where a screen changed), calls ``assess``,
and applies the actions, re-checking each destructive one right before it acts.

States an agent can be seen in: ``spawning, working, idle, stalled, dead, done``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gastown.ledger.work import Hook, Spawn
from gastown.screen import Screen, parse_reset

NUDGE_IDLE = (
    "gastown witness: your issue is still open on your hook. Continue the work; when it is "
    "complete and committed, run `gt done`. If you are blocked, run `gt escalate \"why\"`."
)
NUDGE_STALLED = (
    "gastown witness: no output from you for a while. If you are still working, carry on; "
    "if you are stuck, commit what you have and run `gt done`, or `gt escalate \"why\"`."
)
NUDGE_RESUME = "gastown witness: the usage limit has reset. Continue your task where you left off."


@dataclass(frozen=True)
class Policy:
    spawn_grace: float = 180.0
    stall_after: float = 900.0
    idle_after: float = 120.0
    max_nudges: int = 2
    max_restarts: int = 3
    rate_limit_backoff: float = 900.0
    # A finished agent's pane is closed by `gt _end` once its turn is over (at most 45 s
    # after `gt done`); the Witness closes it after this long if that helper died.
    done_grace: float = 60.0
    # The starter owns a fresh spawn's screen for this long; the Witness keeps out.
    starter_window: float = 20.0


@dataclass(frozen=True)
class AgentObs:
    """One active spawn as the patrol saw it."""

    spawn: Spawn
    current: bool  # it is its hook's current spawn
    pane_alive: bool  # its pane exists, carries its tag and has not exited
    exit_status: int | None
    last_output_at: float  # last time its log grew (or it started)
    screen: Screen | None  # None when the screen was not read
    idle_since: float | None  # first time it was seen idle, continuously since
    limited: str | None  # a rate-limit notice in the output it printed since the last patrol
    new_work: bool = False  # commits (or changes) made since this run started; read only when it matters
    gastown_submits: bool = False  # its CLI cannot run `gt done`: gastown submits for it


@dataclass(frozen=True)
class Snapshot:
    rig: str
    agents: tuple[AgentObs, ...]
    orphan_hooks: tuple[Hook, ...]  # hooks with no active spawn: their agent must be resumed
    restarts: dict[str, int] = field(default_factory=dict)  # issue -> restarts so far
    holds: dict[str, float | None] = field(default_factory=dict)  # runtime -> held until
    paused: bool = False  # `gt down --polecats`: no restarts or resumes
    wake_after_hold: frozenset[str] = frozenset()  # spawns that waited out a rate limit
    blocked: frozenset[str] = frozenset()  # spawns whose issue is blocked (escalated)
    waiting: Mapping[str, str] = field(default_factory=dict)  # spawn -> why its agent must not run (stopped, closed)
    closed_hooks: tuple[str, ...] = ()  # issues closed while still on a hook: the hook is to be released


# -- actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observe:
    spawn: str
    state: str


@dataclass(frozen=True)
class Restart:
    issue: str
    spawn: str | None
    reason: str
    why: str  # dead | stalled | slow-start | orphan


@dataclass(frozen=True)
class Block:
    issue: str
    spawn: str | None
    reason: str


@dataclass(frozen=True)
class Nudge:
    spawn: str
    text: str
    force: bool
    reason: str


@dataclass(frozen=True)
class AnswerDialog:
    spawn: str
    keys: tuple[str, ...]
    dialog: str


@dataclass(frozen=True)
class Hold:
    runtime: str
    until: float
    line: str
    spawn: str


@dataclass(frozen=True)
class Release:
    runtime: str


@dataclass(frozen=True)
class Submit:
    """Run `gt done` on the agent's behalf (it exited, or cannot run commands, after working)."""

    spawn: str
    reason: str


@dataclass(frozen=True)
class EndPane:
    spawn: str
    reason: str


@dataclass(frozen=True)
class ReleaseHook:
    """A closed issue still on a hook (closed by an older gastown, or mid-close when a
    command died): archive its unmerged work and free the polecat and the slot."""

    issue: str


Action = Observe | Restart | Block | Nudge | AnswerDialog | Hold | Release | EndPane | Submit | ReleaseHook

WAITING_REASONS = {
    "blocked": "its issue is blocked: waiting for a person",
    "stopped": "stopped by hand (gt stop): the work waits on its hook",
    "closed": "its issue is closed",
}

# An agent gastown submits for must sit idle this long after working before it is submitted.
SUBMIT_SETTLE = 5.0


def assess(snap: Snapshot, now: float, policy: Policy) -> list[Action]:
    """Decide what to do about every agent of one rig. Pure and deterministic."""
    actions: list[Action] = []
    expired = {rt for rt, until in snap.holds.items() if until is not None and until <= now}
    actions += [Release(rt) for rt in sorted(expired)]
    live_holds = {rt for rt in snap.holds if rt not in expired}
    for obs in snap.agents:
        actions += assess_agent(obs, snap, now, policy, live_holds)
    actions += [ReleaseHook(issue) for issue in snap.closed_hooks]
    if not snap.paused:
        for hook in snap.orphan_hooks:
            if hook.agent in live_holds:
                continue
            actions.append(_restart_or_block(hook.issue, None, snap, policy, "its agent is not running", "orphan"))
    return actions


def assess_agent(obs: AgentObs, snap: Snapshot, now: float, policy: Policy, held: set[str]) -> list[Action]:
    spawn = obs.spawn
    if spawn.status == "done":
        if spawn.done_at is not None and now - spawn.done_at >= policy.done_grace:
            return [Observe(spawn.id, "done"), EndPane(spawn.id, "finished (gt done)")]
        return [Observe(spawn.id, "done")]
    why = "blocked" if spawn.id in snap.blocked else snap.waiting.get(spawn.id)
    if why is not None:
        return [Observe(spawn.id, "done"), EndPane(spawn.id, WAITING_REASONS.get(why, why))]
    if not obs.current:
        return [EndPane(spawn.id, "replaced by a newer run")]
    if not obs.pane_alive:
        if spawn.status == "starting" and obs.exit_status is None and now - spawn.started_at < policy.starter_window:
            # Its window is still being made and tagged (no pane recorded yet): not dead.
            return [Observe(spawn.id, "spawning")]
        # A headless run (its prompt in argv) may work and exit before its starter marks
        # it running, on a loaded machine: its work counts all the same.
        if obs.exit_status == 0 and obs.new_work and spawn.status in ("starting", "running"):
            return [Observe(spawn.id, "done"), Submit(spawn.id, "it exited after working without running gt done")]
        if snap.paused:
            return [Observe(spawn.id, "dead")]
        status = f" with status {obs.exit_status}" if obs.exit_status is not None else ""
        return [Observe(spawn.id, "dead"), _restart_or_block(spawn.issue, spawn.id, snap, policy, f"its agent exited{status}", "dead")]
    screen = obs.screen
    if spawn.status == "starting":
        if now - spawn.started_at < policy.starter_window:
            return [Observe(spawn.id, "spawning")]
        if screen is not None and screen.dialog_keys:
            return [Observe(spawn.id, "spawning"), AnswerDialog(spawn.id, screen.dialog_keys, screen.dialog or "dialog")]
        if now - spawn.started_at >= policy.spawn_grace and not snap.paused:
            return [
                Observe(spawn.id, "stalled"),
                _restart_or_block(spawn.issue, spawn.id, snap, policy, "it never showed it was ready", "slow-start"),
            ]
        return [Observe(spawn.id, "spawning")]
    # running
    if screen is not None and screen.dialog_keys:
        return [Observe(spawn.id, "working"), AnswerDialog(spawn.id, screen.dialog_keys, screen.dialog or "dialog")]
    if spawn.agent in held:
        return [Observe(spawn.id, "idle")]  # waiting out its runtime's rate limit: leave it be
    if obs.limited:
        until = parse_reset(obs.limited, now) or now + policy.rate_limit_backoff
        return [Observe(spawn.id, "idle"), Hold(spawn.agent, max(until, now + 1.0), obs.limited, spawn.id)]
    if spawn.id in snap.wake_after_hold:
        return [Observe(spawn.id, "working"), Nudge(spawn.id, NUDGE_RESUME, True, "its usage limit has reset")]
    # The clocks start no earlier than the prompt: a start slower than stall_after (a
    # loaded machine) is not silence, and an idle screen before the prompt is not idling.
    since = max(spawn.last_nudge_at or 0.0, spawn.prompted_at or 0.0)
    quiet_for = now - max(obs.last_output_at, since)
    if quiet_for >= policy.stall_after:
        if spawn.nudges < policy.max_nudges:
            return [Observe(spawn.id, "stalled"), Nudge(spawn.id, NUDGE_STALLED, True, f"no output for {int(quiet_for)}s")]
        if snap.paused:
            return [Observe(spawn.id, "stalled")]
        return [
            Observe(spawn.id, "stalled"),
            _restart_or_block(spawn.issue, spawn.id, snap, policy, f"no output for {int(quiet_for)}s after {spawn.nudges} nudge(s)", "stalled"),
        ]
    if screen is not None and screen.idle and obs.idle_since is not None:
        if obs.gastown_submits and obs.new_work and now - obs.idle_since >= SUBMIT_SETTLE:
            return [Observe(spawn.id, "idle"), Submit(spawn.id, "its CLI cannot run gt done; it went idle after working")]
        idle_for = now - max(obs.idle_since, since)
        if idle_for >= policy.idle_after:
            if spawn.nudges < policy.max_nudges:
                return [Observe(spawn.id, "idle"), Nudge(spawn.id, NUDGE_IDLE, False, f"idle at its prompt for {int(idle_for)}s")]
            if not snap.paused:
                return [
                    Observe(spawn.id, "idle"),
                    _restart_or_block(spawn.issue, spawn.id, snap, policy, f"idle with work on its hook after {spawn.nudges} nudge(s)", "stalled"),
                ]
        return [Observe(spawn.id, "idle")]
    return [Observe(spawn.id, "working")]


def _restart_or_block(issue: str, spawn: str | None, snap: Snapshot, policy: Policy, reason: str, why: str) -> Action:
    done = snap.restarts.get(issue, 0)
    if done >= policy.max_restarts:
        return Block(issue, spawn, f"{reason}; gave up after {done} restart(s)")
    return Restart(issue, spawn, reason, why)

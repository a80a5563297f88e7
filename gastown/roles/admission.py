"""Admission: may another agent start now, and which queued slings start next? Pure.

One policy for both doors work comes in by: `gt sling` asks ``admit`` whether its
issue starts now or queues; the scheduler asks ``plan_dispatch`` which queued slings
to start, drop or leave waiting. Both read the same ``Capacity`` snapshot, gathered
by ``gather_capacity`` (ledger only: no tmux, no git), and decide with no I/O.

An agent holds a slot from its sling until its pane is closed (a hook whose issue is
not blocked, or a finished spawn whose pane is still open); the town cap and each
rig's cap count those slots. A held runtime (rate limit) or a spent budget (the
town's or the rig's) also keeps new agents from starting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gastown.ledger.queue import Queued
from gastown.states import IssueStatus


@dataclass(frozen=True)
class Capacity:
    """What admission needs to know, read at one moment."""

    town_cap: int
    rig_caps: Mapping[str, int]  # each configured rig's effective cap (its own, else the town's)
    slots: Mapping[str, int]  # slots in use, per rig
    runtime_holds: Mapping[str, float | None] = field(default_factory=dict)  # runtime -> held until (None: no end)
    budget_blocks: Mapping[str, str] = field(default_factory=dict)  # rig -> why its budget stops starts

    @property
    def in_use(self) -> int:
        return sum(self.slots.values())

    def taking(self, rig: str) -> Capacity:
        """This capacity with one more slot used in ``rig``."""
        slots = Counter(self.slots)
        slots[rig] += 1
        return Capacity(self.town_cap, self.rig_caps, dict(slots), self.runtime_holds, self.budget_blocks)

    def runtime_held(self, runtime: str, now: float) -> bool:
        """Whether a rate-limit hold on ``runtime`` is still in force at ``now``."""
        if runtime not in self.runtime_holds:
            return False
        until = self.runtime_holds[runtime]
        return until is None or until > now


@dataclass(frozen=True)
class Verdict:
    start: bool
    reason: str  # why not (empty when it starts)

    def __bool__(self) -> bool:
        return self.start


START = Verdict(True, "")


def admit(rig: str, runtime: str, capacity: Capacity, now: float) -> Verdict:
    """Whether one more agent of ``runtime`` may start in ``rig`` at ``now``, and if not, why.

    >>> cap = Capacity(town_cap=2, rig_caps={"app": 1, "web": 2}, slots={"app": 1})
    >>> admit("web", "claude", cap, 0.0).start, admit("app", "claude", cap, 0.0).reason
    (True, 'rig app runs 1 of its 1 agents')
    """
    if rig not in capacity.rig_caps:
        return Verdict(False, f"rig {rig} is not in gastown.toml")
    if capacity.in_use >= capacity.town_cap:
        return Verdict(False, f"the town runs {capacity.in_use} of its {capacity.town_cap} agents")
    in_rig = capacity.slots.get(rig, 0)
    if in_rig >= capacity.rig_caps[rig]:
        return Verdict(False, f"rig {rig} runs {in_rig} of its {capacity.rig_caps[rig]} agents")
    if capacity.runtime_held(runtime, now):
        return Verdict(False, f"{runtime} is rate limited")
    if rig in capacity.budget_blocks:
        return Verdict(False, capacity.budget_blocks[rig])
    return START


# -- dispatch ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    item: Queued
    runtime: str


@dataclass(frozen=True)
class Drop:
    item: Queued
    reason: str


@dataclass(frozen=True)
class Wait:
    item: Queued
    reason: str


Decision = Start | Drop | Wait


def plan_dispatch(
    queue: Sequence[Queued],
    statuses: Mapping[str, IssueStatus],
    runtimes: Mapping[str, str],
    capacity: Capacity,
    now: float,
) -> list[Decision]:
    """What to do with each queued sling, in queue order (``queue`` comes oldest-highest-
    priority first). Each ``Start`` takes its slot before the next item is judged.

    ``statuses``: each queued issue's status (missing: the issue is gone); ``runtimes``:
    the runtime each queued issue would run (missing: its rig is gone from the config).
    A closed or vanished issue is dropped; so is a fresh sling of an issue already in
    review (its work waits in the merge queue). A fix cycle of an issue in review is
    exactly what it should be, and waits for its slot like any other.
    """
    decisions: list[Decision] = []
    for item in queue:
        status = statuses.get(item.issue)
        if status is None or status == IssueStatus.CLOSED:
            decisions.append(Drop(item, "its issue is closed" if status else "its issue no longer exists"))
            continue
        if status == IssueStatus.IN_REVIEW and item.kind != "fix":
            decisions.append(Drop(item, "its work already waits in the merge queue"))
            continue
        runtime = runtimes.get(item.issue)
        if runtime is None:
            decisions.append(Wait(item, f"rig {item.rig} is not in gastown.toml"))
            continue
        verdict = admit(item.rig, runtime, capacity, now)
        if not verdict:
            decisions.append(Wait(item, verdict.reason))
            continue
        decisions.append(Start(item, runtime))
        capacity = capacity.taking(item.rig)
    return decisions

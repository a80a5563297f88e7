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
from dataclasses import dataclass, field, replace

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
    rig_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # rig -> hosts it may use (missing: local)
    host_caps: Mapping[str, int] = field(default_factory=dict)  # host -> its max_polecats (missing: no cap of its own)
    host_slots: Mapping[str, int] = field(default_factory=dict)  # slots in use, per host
    unreachable: frozenset[str] = frozenset()  # hosts the last patrol could not reach

    @property
    def in_use(self) -> int:
        return sum(self.slots.values())

    def taking(self, rig: str, host: str = "local") -> Capacity:
        """This capacity with one more slot used in ``rig``, on ``host``."""
        slots, on_hosts = Counter(self.slots), Counter(self.host_slots)
        slots[rig] += 1
        on_hosts[host] += 1
        return replace(self, slots=dict(slots), host_slots=dict(on_hosts))

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

# A sling whose start failed waits this long before its next try, doubling each time.
RETRY_BACKOFF_S = 5.0
RETRY_BACKOFF_MAX_S = 300.0


def retry_delay(failures: int) -> float:
    """How long a sling that failed to start ``failures`` times waits before the next try. Pure.

    >>> retry_delay(1), retry_delay(2), retry_delay(10)
    (5.0, 10.0, 300.0)
    """
    return min(RETRY_BACKOFF_S * 2 ** max(0, failures - 1), RETRY_BACKOFF_MAX_S)


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
    if place(rig, capacity) is None:
        hosts = capacity.rig_hosts.get(rig, ("local",))
        return Verdict(False, f"every host rig {rig} may use is full or unreachable ({', '.join(hosts)})")
    return START


def place(rig: str, capacity: Capacity) -> str | None:
    """The host a new agent of ``rig`` runs on: the least loaded of the rig's hosts that is
    reachable and has a free slot (its own ``max_polecats``), the rig's order breaking
    ties; None when there is none. Pure.

    >>> cap = Capacity(4, {"app": 4}, {"app": 2}, rig_hosts={"app": ("local", "b1", "b2")},
    ...                host_caps={"b1": 1}, host_slots={"local": 1, "b1": 1}, unreachable=frozenset({"b2"}))
    >>> place("app", cap), place("app", cap.taking("app", "local"))
    ('local', 'local')
    >>> place("app", Capacity(4, {"app": 4}, {}, rig_hosts={"app": ("local", "b1")}, host_slots={"local": 1}))
    'b1'
    """
    best: tuple[int, int, str] | None = None
    for order, host in enumerate(capacity.rig_hosts.get(rig, ("local",))):
        if host in capacity.unreachable:
            continue
        used = capacity.host_slots.get(host, 0)
        if host in capacity.host_caps and used >= capacity.host_caps[host]:
            continue
        if best is None or (used, order) < best[:2]:
            best = (used, order, host)
    return best[2] if best else None


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
    exactly what it should be, and waits for its slot like any other. A sling whose last
    start failed waits until its ``not_before`` (``retry_delay``) without taking a slot.
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
        if item.not_before is not None and item.not_before > now:
            decisions.append(Wait(item, f"retrying in {item.not_before - now:.0f}s after {item.failures} failed start(s)"))
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
        capacity = capacity.taking(item.rig, place(item.rig, capacity) or "local")
    return decisions

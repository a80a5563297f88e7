"""Admission (`gt sling` and the scheduler) and budget holds: pure policy, tables of named rows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gastown.costs import Budgets, HoldBudget, ReleaseBudget, assess_budgets, budget_blocks
from gastown.ledger.holds import HoldScope
from gastown.ledger.queue import Queued
from gastown.roles.admission import Capacity, Drop, Start, Wait, admit, plan_dispatch
from gastown.states import IssueStatus

NOW = 1_800_000_000.0

ROOM = Capacity(town_cap=4, rig_caps={"app": 2, "web": 2, "town": 2}, slots={})


@pytest.mark.parametrize(
    "rig,runtime,capacity,starts,reason",
    [
        pytest.param("app", "claude", ROOM, True, "", id="room in the town and the rig"),
        pytest.param("app", "claude", replace(ROOM, slots={"app": 1, "web": 2, "town": 1}), False,
                     "the town runs 4 of its 4 agents", id="at the town cap"),
        pytest.param("app", "claude", replace(ROOM, slots={"app": 2}), False,
                     "rig app runs 2 of its 2 agents", id="at its rig cap with room in the town"),
        pytest.param("app", "claude", replace(ROOM, slots={"app": 3}), False,
                     "rig app runs 3 of its 2 agents", id="over a rig cap (the cap was lowered)"),
        pytest.param("web", "claude", replace(ROOM, slots={"app": 2}), True, "", id="another rig's full cap"),
        pytest.param("app", "claude", replace(ROOM, runtime_holds={"claude": NOW + 60}), False,
                     "claude is rate limited", id="runtime held"),
        pytest.param("app", "claude", replace(ROOM, runtime_holds={"claude": None}), False,
                     "claude is rate limited", id="runtime held with no end"),
        pytest.param("app", "claude", replace(ROOM, runtime_holds={"claude": NOW - 1}), True, "",
                     id="hold expired"),
        pytest.param("app", "codex", replace(ROOM, runtime_holds={"claude": NOW + 60}), True, "",
                     id="another runtime held"),
        pytest.param("app", "claude", replace(ROOM, budget_blocks={"app": "rig app's daily budget of $5.00 is spent"}),
                     False, "rig app's daily budget of $5.00 is spent", id="budget reached for the rig"),
        pytest.param("web", "claude", replace(ROOM, budget_blocks={"app": "rig app's daily budget of $5.00 is spent"}),
                     True, "", id="budget reached for another rig but not the town"),
        pytest.param("ghost", "claude", ROOM, False, "rig ghost is not in gastown.toml", id="rig gone from the config"),
    ],
)
def test_admit(rig: str, runtime: str, capacity: Capacity, starts: bool, reason: str) -> None:
    verdict = admit(rig, runtime, capacity, NOW)
    assert (verdict.start, verdict.reason) == (starts, reason)


def queued(issue: str, rig: str = "app", kind: str = "fresh", failures: int = 0,
           not_before: float | None = None) -> Queued:
    return Queued(issue=issue, rig=rig, polecat=None, agent=None, priority=2, kind=kind, start_point=None,
                  note=None, enqueued_at=NOW - 60, failures=failures, last_error=None, not_before=not_before)


def outcome(decision: Start | Drop | Wait) -> tuple[str, str, str]:
    what = decision.reason if isinstance(decision, Drop | Wait) else decision.runtime
    return type(decision).__name__, decision.item.issue, what


OPEN = IssueStatus.OPEN


@pytest.mark.parametrize(
    "queue,statuses,capacity,expected",
    [
        pytest.param([queued("app-1"), queued("app-2")], {"app-1": OPEN, "app-2": OPEN},
                     replace(ROOM, rig_caps={"app": 1}), [("Start", "app-1", "demo"),
                                                          ("Wait", "app-2", "rig app runs 1 of its 1 agents")],
                     id="a start takes its slot before the next is judged"),
        pytest.param([queued("app-1")], {"app-1": IssueStatus.CLOSED}, ROOM,
                     [("Drop", "app-1", "its issue is closed")], id="closed while queued"),
        pytest.param([queued("app-1")], {}, ROOM, [("Drop", "app-1", "its issue no longer exists")],
                     id="issue gone"),
        pytest.param([queued("app-1")], {"app-1": IssueStatus.IN_REVIEW}, ROOM,
                     [("Drop", "app-1", "its work already waits in the merge queue")], id="fresh sling of work in review"),
        pytest.param([queued("app-1", kind="fix")], {"app-1": IssueStatus.IN_REVIEW},
                     replace(ROOM, slots={"app": 2}), [("Wait", "app-1", "rig app runs 2 of its 2 agents")],
                     id="a fix cycle queued at capacity waits, it is not dropped"),
        pytest.param([queued("app-1", kind="fix")], {"app-1": IssueStatus.IN_REVIEW}, ROOM,
                     [("Start", "app-1", "demo")], id="a fix cycle starts when a slot frees"),
        pytest.param([queued("app-1"), queued("web-1", rig="web")], {"app-1": OPEN, "web-1": OPEN},
                     replace(ROOM, slots={"app": 2}), [("Wait", "app-1", "rig app runs 2 of its 2 agents"),
                                                       ("Start", "web-1", "demo")],
                     id="a full rig does not hold up another rig"),
        pytest.param([queued("gone-1", rig="gone")], {"gone-1": OPEN}, ROOM,
                     [("Wait", "gone-1", "rig gone is not in gastown.toml")], id="rig removed from the config"),
        pytest.param([queued("town-1", rig="town"), queued("app-1")], {"town-1": OPEN, "app-1": OPEN},
                     replace(ROOM, budget_blocks={"town": "rig town's daily budget of $1.00 is spent"}),
                     [("Wait", "town-1", "rig town's daily budget of $1.00 is spent"), ("Start", "app-1", "demo")],
                     id="rig named town over its budget holds only that rig"),
        pytest.param([queued("app-1", failures=1, not_before=NOW + 4.2), queued("app-2")],
                     {"app-1": OPEN, "app-2": OPEN}, replace(ROOM, rig_caps={"app": 1}),
                     [("Wait", "app-1", "retrying in 4s after 1 failed start(s)"), ("Start", "app-2", "demo")],
                     id="a sling backing off after a failed start takes no slot"),
        pytest.param([queued("app-1", failures=2, not_before=NOW)], {"app-1": OPEN}, ROOM,
                     [("Start", "app-1", "demo")], id="its back-off over, it is tried again"),
    ],
)
def test_plan_dispatch(queue: list[Queued], statuses: dict[str, IssueStatus], capacity: Capacity,
                       expected: list[tuple[str, str, str]]) -> None:
    runtimes = {q.issue: "demo" for q in queue if q.rig in capacity.rig_caps}
    assert [outcome(d) for d in plan_dispatch(queue, statuses, runtimes, capacity, NOW)] == expected


# -- budgets ------------------------------------------------------------------------------

TOWN, APP, RIG_TOWN = HoldScope.town_budget(), HoldScope.rig_budget("app"), HoldScope.rig_budget("town")


def budgets(town_budget: float | None, spent: dict[str, float], /, **rig_budgets: float | None) -> Budgets:
    """The town's budget, today's spending by rig, and rig budgets (rigs app and town always exist)."""
    return Budgets(town_budget, sum(spent.values()), {"app": None, "town": None, **rig_budgets}, spent)


@pytest.mark.parametrize(
    "state,held,expected",
    [
        pytest.param(budgets(10.0, {"app": 10.0}), set(), [("hold", "budget:town")], id="town budget reached"),
        pytest.param(budgets(None, {"app": 5.0}, app=5.0), set(), [("hold", "budget:rig:app")],
                     id="budget reached for the rig but not the town"),
        pytest.param(budgets(100.0, {"town": 2.0}, town=2.0), set(), [("hold", "budget:rig:town")],
                     id="rig named town: its own scope, never the town's"),
        pytest.param(budgets(10.0, {"app": 10.0}), {TOWN}, [], id="already held, still spent"),
        pytest.param(budgets(20.0, {"app": 10.0}), {TOWN}, [("release", "budget:town")], id="budget raised"),
        pytest.param(budgets(None, {"app": 10.0}), {TOWN}, [("release", "budget:town")], id="budget removed"),
        pytest.param(budgets(10.0, {}), {TOWN}, [("release", "budget:town")], id="a new day"),
        pytest.param(budgets(None, {}), {HoldScope.rig_budget("gone")}, [("release", "budget:rig:gone")],
                     id="hold of a rig that is gone"),
        pytest.param(budgets(None, {"town": 3.0}, town=5.0), {RIG_TOWN}, [("release", "budget:rig:town")],
                     id="rig town has room again; the town scope is untouched"),
    ],
)
def test_assess_budgets(state: Budgets, held: set[HoldScope], expected: list[tuple[str, str]]) -> None:
    actions = assess_budgets(state, held)
    assert [("hold" if isinstance(a, HoldBudget) else "release", str(a.scope)) for a in actions] == expected
    assert all(a.message is None for a in actions if isinstance(a, ReleaseBudget) and a.scope.subject == "gone")


@pytest.mark.parametrize(
    "state,expected",
    [
        pytest.param(budgets(None, {}), {}, id="no budgets"),
        pytest.param(budgets(10.0, {"app": 10.0}), {"app": "the town's daily budget of $10.00 is spent",
                                                    "town": "the town's daily budget of $10.00 is spent"},
                     id="town budget spent blocks every rig"),
        pytest.param(budgets(100.0, {"town": 2.0}, town=2.0), {"town": "rig town's daily budget of $2.00 is spent"},
                     id="rig named town blocks only itself"),
    ],
)
def test_budget_blocks(state: Budgets, expected: dict[str, str]) -> None:
    assert budget_blocks(state) == expected


@pytest.mark.parametrize(
    "text,scope",
    [
        pytest.param("runtime:claude", HoldScope.runtime("claude"), id="runtime"),
        pytest.param("budget:town", HoldScope.town_budget(), id="town budget"),
        pytest.param("budget:rig:town", HoldScope.rig_budget("town"), id="budget of a rig named town"),
        pytest.param("refinery:app", HoldScope.refinery("app"), id="refinery"),
        pytest.param("pause:polecats", HoldScope.pause(), id="pause"),
    ],
)
def test_hold_scopes_round_trip(text: str, scope: HoldScope) -> None:
    assert HoldScope.parse(text) == scope and str(scope) == text


@pytest.mark.parametrize("text", ["budget:app", "town:polecats", "runtime:", "nonsense", "budget:rig:"])
def test_unknown_hold_scopes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        HoldScope.parse(text)


@pytest.mark.parametrize("failures,delay", [(1, 5.0), (2, 10.0), (3, 20.0), (7, 300.0)])
def test_retry_delay_doubles_up_to_five_minutes(failures: int, delay: float) -> None:
    from gastown.roles.admission import retry_delay

    assert retry_delay(failures) == delay


TWO_HOSTS = replace(ROOM, rig_hosts={"app": ("local", "b1", "b2")}, host_caps={"b1": 1, "b2": 2})


@pytest.mark.parametrize(
    "capacity,host,verdict",
    [
        pytest.param(TWO_HOSTS, "local", "", id="all empty: the rig's first host"),
        pytest.param(replace(TWO_HOSTS, host_slots={"local": 1}), "b1", "", id="least loaded wins"),
        pytest.param(replace(TWO_HOSTS, host_slots={"local": 1, "b1": 1}), "b2", "",
                     id="a host at its own cap is skipped"),
        pytest.param(replace(TWO_HOSTS, host_slots={"local": 1}, unreachable=frozenset({"b1"})), "b2", "",
                     id="an unreachable host is skipped"),
        pytest.param(replace(TWO_HOSTS, rig_hosts={"app": ("b1",)}, host_slots={"b1": 1}), None,
                     "every host rig app may use is full or unreachable (b1)", id="its only host full: queue"),
        pytest.param(replace(TWO_HOSTS, rig_hosts={"app": ("b1", "b2")}, unreachable=frozenset({"b1", "b2"})), None,
                     "every host rig app may use is full or unreachable (b1, b2)", id="every host away: queue"),
        pytest.param(replace(ROOM, host_slots={"local": 9}), "local", "", id="a rig without hosts: local, no host cap"),
    ],
)
def test_placement(capacity: Capacity, host: str | None, verdict: str) -> None:
    from gastown.roles.admission import place

    assert place("app", capacity) == host
    assert admit("app", "claude", capacity, NOW).reason == verdict


def test_a_dispatch_plan_never_starts_more_than_its_hosts_hold() -> None:
    queue = [Queued(issue=f"app-{n}", rig="app", polecat=None, agent=None, priority=2, kind="fresh", start_point=None,
                    note=None, enqueued_at=NOW, failures=0, last_error=None) for n in range(3)]
    cap = replace(ROOM, rig_caps={"app": 4}, rig_hosts={"app": ("b1", "b2", "b3")}, host_caps={"b1": 1, "b2": 1, "b3": 1},
                  unreachable=frozenset({"b2"}))
    decisions = plan_dispatch(queue, {q.issue: IssueStatus.OPEN for q in queue}, {q.issue: "demo" for q in queue}, cap, NOW)
    assert [type(d).__name__ for d in decisions] == ["Start", "Start", "Wait"]  # b1 and b3 take one each; b2 is away
    assert "full or unreachable" in decisions[2].reason  # type: ignore[union-attr]

"""The pure batch/bisect plan, driven by simulated gates (tables, no git)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from gastown.refinery.plan import BisectPlan, Finish, GateBase, GateStack, one_culprit_bound


@dataclass
class Sim:
    """A simulated gate. ``red_stack(stack)`` decides a stack; the base is red ``base_red`` times
    (a number, or -1 for always). Records every stack gated green, to check what merges."""

    red_stack: Callable[[tuple[str, ...]], bool]
    base_red: int = 0
    green: set[tuple[str, ...]] = field(default_factory=set)
    log: list[str] = field(default_factory=list)

    def run(self, plan: BisectPlan) -> Finish:
        for _ in range(1000):
            step = plan.step
            if isinstance(step, Finish):
                return step
            if isinstance(step, GateBase):
                ok = self.base_red == 0
                if self.base_red > 0:
                    self.base_red -= 1
                self.log.append(f"base:{'G' if ok else 'R'}")
            else:
                assert isinstance(step, GateStack)
                ok = self.base_red == 0 and not self.red_stack(step.mrs)
                if ok:
                    self.green.add(step.mrs)
                self.log.append(f"{step.why}:{len(step.mrs)}:{'G' if ok else 'R'}")
            plan.record(ok)
        raise AssertionError("the plan did not finish")


def ids(n: int) -> list[str]:
    return [f"m{i}" for i in range(n)]


def containing(*bad: str) -> Callable[[tuple[str, ...]], bool]:
    return lambda stack: any(b in stack for b in bad)


@dataclass(frozen=True)
class Row:
    n: int
    culprits: tuple[str, ...]
    max_runs: int
    base_red: int = 0


ROWS = {
    "all-green-8": Row(8, (), 1),
    "all-green-32": Row(32, (), 1),
    "one-of-one": Row(1, ("m0",), 2),
    "first-of-8": Row(8, ("m0",), 7),
    "middle-of-8": Row(8, ("m5",), 7),
    "last-of-8": Row(8, ("m7",), 7),
    "first-of-32": Row(32, ("m0",), 12),
    "last-of-32": Row(32, ("m31",), 12),
    "three-of-32": Row(32, ("m3", "m10", "m31"), 24),
    "all-bad-4": Row(4, ("m0", "m1", "m2", "m3"), 12),
    "two-adjacent-8": Row(8, ("m3", "m4"), 12),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_culprits_are_isolated_and_only_gated_stacks_merge(row: Row) -> None:
    sim = Sim(containing(*row.culprits))
    plan = BisectPlan(ids(row.n))
    finish = sim.run(plan)

    assert [b.mr for b in finish.culprits] == list(row.culprits)
    assert finish.merge == tuple(m for m in ids(row.n) if m not in row.culprits)
    assert finish.hold is None and finish.requeue == ()
    assert not finish.merge or finish.merge in sim.green, "the merged stack was never gated green as is"
    assert plan.runs <= row.max_runs, sim.log
    for blame in finish.culprits:
        assert blame.mr in blame.evidence and sim.red_stack(blame.evidence)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 32, 64])
def test_one_culprit_anywhere_stays_within_the_bound(n: int) -> None:
    for position in range(n):
        plan = BisectPlan(ids(n))
        finish = Sim(containing(f"m{position}")).run(plan)
        assert [b.mr for b in finish.culprits] == [f"m{position}"]
        assert plan.runs <= one_culprit_bound(n)


def test_the_bound_meets_the_budget() -> None:
    assert one_culprit_bound(8) <= 1 + 2 * math.ceil(math.log2(8)) == 7
    assert one_culprit_bound(32) <= 12


def test_a_red_base_holds_the_queue_and_blames_nobody() -> None:
    sim = Sim(lambda stack: False, base_red=-1)
    plan = BisectPlan(ids(8))
    finish = sim.run(plan)
    assert finish.hold is not None and finish.culprits == () and finish.merge == ()
    assert finish.requeue == tuple(ids(8))
    assert sim.log.count("base:R") == 2, "a red base is retried once before the hold"


def test_a_flaky_base_rechecks_the_suspect_before_blaming_it() -> None:
    plan = BisectPlan(ids(2))
    script = [  # (what the plan asks for, what the flaky gate answers)
        (GateStack(("m0", "m1"), "batch"), False),
        (GateStack(("m0",), "bisect"), False),
        (GateBase(1), False),
        (GateBase(2), True),
        (GateStack(("m0",), "recheck"), True),
        (GateStack(("m0", "m1"), "remainder"), True),
    ]
    for expected, ok in script:
        assert plan.step == expected
        plan.record(ok)
    assert plan.step == Finish(merge=("m0", "m1"), culprits=())


def test_a_suspect_red_again_after_a_flaky_base_is_blamed() -> None:
    sim = Sim(containing("m0"), base_red=1)
    finish = sim.run(BisectPlan(ids(2)))
    assert [b.mr for b in finish.culprits] == ["m0"] and finish.merge == ("m1",)


def test_a_lone_suspect_over_a_green_prefix_is_blamed_without_a_base_check() -> None:
    sim = Sim(containing("m1"))
    finish = sim.run(BisectPlan(ids(2)))
    assert [b.mr for b in finish.culprits] == ["m1"]
    assert not any(entry.startswith("base") for entry in sim.log)


STEPS = {
    # (candidates, outcomes fed in order) -> the stacks asked for, in order
    "green-batch": (["a", "b", "c", "d"], [True], ["batch:a b c d"]),
    "bisect-left-red": (
        ["a", "b", "c", "d"], [False, False, False, True, True],
        ["batch:a b c d", "bisect:a b", "bisect:a", "base", "remainder:b c d"],
    ),
    "bisect-left-green": (
        ["a", "b", "c", "d"], [False, True, True],
        ["batch:a b c d", "bisect:a b", "bisect:a b c"],
    ),
}


@pytest.mark.parametrize(("candidates", "outcomes", "asked"), STEPS.values(), ids=STEPS.keys())
def test_the_stacks_asked_for(candidates: list[str], outcomes: list[bool], asked: list[str]) -> None:
    plan = BisectPlan(candidates)
    seen = []
    for ok in outcomes:
        step = plan.step
        seen.append("base" if isinstance(step, GateBase) else f"{step.why}:{' '.join(step.mrs)}")  # type: ignore[union-attr]
        plan.record(ok)
    assert seen == asked


def test_dropping_a_conflicting_suspect_retests_the_others_as_the_rest() -> None:
    plan = BisectPlan(["a", "b", "c", "d"])
    plan.record(False)  # batch red; asks for a b
    assert plan.step == GateStack(("a", "b"), "bisect")
    plan.drop("b")  # b no longer stacks on its own
    assert plan.step == GateStack(("a", "c", "d"), "remainder")
    plan.record(True)
    finish: object = plan.step
    assert finish == Finish(merge=("a", "c", "d"), culprits=())


def test_dropping_from_the_pending_remainder_shrinks_it() -> None:
    plan = BisectPlan(["a", "b", "c"])
    plan.record(False)  # -> bisect a
    plan.record(False)  # a red, good empty -> base check
    plan.record(True)  # base green -> blame a -> remainder b c
    assert plan.step == GateStack(("b", "c"), "remainder")
    plan.drop("c")
    assert plan.step == GateStack(("b",), "remainder")
    plan.drop("b")
    assert isinstance(plan.step, Finish) and plan.step.merge == ()


def test_an_empty_batch_is_finished_at_once_and_refuses_results() -> None:
    plan = BisectPlan([])
    assert plan.step == Finish(merge=(), culprits=())
    with pytest.raises(RuntimeError):
        plan.record(True)


def test_duplicates_are_refused() -> None:
    with pytest.raises(ValueError):
        BisectPlan(["a", "a"])

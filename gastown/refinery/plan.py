"""Batch-then-bisect planning for one refinery round, as a pure state machine.

The engine stacks a batch of MRs on the target's tip (the *base*) and asks this plan
what to gate next; after each gate run it reports green or red, and the plan moves on.
No git, no clock, no I/O: every rule below is unit-tested with tables.

Invariants the plan keeps:

- ``good`` is a prefix of the batch (in queue order) whose exact stack, base + good,
  has been gated green (``()`` is green only once the bare base was).
- base + good + ``suspects`` has been gated red; ``rest`` follows the suspects and is
  untested.
- Every stack it asks for is base + good + a contiguous run of later MRs, so the MR
  order of the batch is kept and each combination that merges is one that was gated.

A red batch is bisected: gate good + the left half of the suspects; green extends
good and leaves the right half as suspects, red narrows the suspects to the left half
and puts the right half back with the untested rest. A lone suspect on top of a
green good is a culprit. A lone suspect with nothing green under it is never blamed
before the bare base is gated: green blames it; red twice means the target itself is
broken and the plan finishes with ``hold``; red then green means a flaky gate, so the
suspect is gated once more before it is blamed. After a culprit, good + the untested
rest is gated. One culprit in a batch of n costs at most ``one_culprit_bound(n)`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GateStack:
    """Gate base + ``mrs`` (in this order). ``why``: batch, bisect, remainder or recheck."""

    mrs: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class GateBase:
    """Gate the bare base; ``attempt`` is 1, or 2 for the retry after a red base."""

    attempt: int


@dataclass(frozen=True)
class Blame:
    """``mr`` is a culprit; ``evidence`` is the red stack that convicted it."""

    mr: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Finish:
    """The round's verdict.

    ``merge``: the exact stack to push (gated green as is; may be empty);
    ``culprits``: MRs to fail; ``requeue``: MRs to put back (only with ``hold``);
    ``hold``: why the queue must stop (the base itself is red), else None.
    """

    merge: tuple[str, ...]
    culprits: tuple[Blame, ...]
    requeue: tuple[str, ...] = ()
    hold: str | None = None


Step = GateStack | GateBase | Finish


class BisectPlan:
    """What to gate next for a batch of ``candidates`` (MR ids in queue order).

    Drive it with ``step`` / ``record(ok)`` until ``step`` is a ``Finish``; call
    ``drop(mr)`` when an MR could not be stacked for the pending step (a conflict in
    that combination) and it is taken out of the round. ``runs`` counts gate runs.
    """

    def __init__(self, candidates: Sequence[str]) -> None:
        if len(set(candidates)) != len(candidates):
            raise ValueError("an MR appears twice in the batch")
        self.good: tuple[str, ...] = ()
        self.suspects: tuple[str, ...] = ()
        self.rest: tuple[str, ...] = ()
        self.culprits: list[Blame] = []
        self.runs = 0
        self.base_green = False
        self._base_red = 0
        self._red_stack: tuple[str, ...] = ()
        self.step: Step = GateStack(tuple(candidates), "batch") if candidates else self._finish()

    # -- driving -------------------------------------------------------------------------

    def record(self, ok: bool) -> None:
        """Report the outcome of the pending gate run."""
        step = self.step
        if isinstance(step, Finish):
            raise RuntimeError("the round is finished; nothing is waiting for a gate result")
        self.runs += 1
        if isinstance(step, GateBase):
            self._after_base(ok)
            return
        tested = step.mrs[len(self.good):]
        if ok:
            self.good = step.mrs
            if step.why == "batch" or step.why == "remainder":
                self.rest = ()
                self.step = self._finish()
            elif step.why == "bisect":
                self.suspects = self.suspects[len(tested):]  # good + these is the red stack we had
                self._narrow()
            else:  # recheck: the suspect was fine after all (the earlier red was the flaky gate)
                self.suspects = ()
                self._after_suspect()
            return
        self._red_stack = step.mrs
        if step.why == "bisect":
            self.rest = self.suspects[len(tested):] + self.rest
            self.suspects = tested
        elif step.why == "recheck":
            self._blame()
            return
        else:  # batch or remainder
            self.suspects = tested
            self.rest = ()
        self._narrow()

    def drop(self, mr: str) -> None:
        """Take ``mr`` out of the round (it conflicts in the stack just asked for)."""
        if mr in self.good:
            raise ValueError(f"{mr} is in the known-good stack, which is never rebuilt")
        if mr in self.suspects:
            # What was known about the suspects included ``mr``; test the others afresh.
            self.rest = tuple(s for s in self.suspects if s != mr) + self.rest
            self.suspects = ()
            self._after_suspect()
        elif mr in self.rest:
            self.rest = tuple(s for s in self.rest if s != mr)
            if isinstance(self.step, GateStack) and self.step.why == "remainder":
                self._after_suspect()
        else:
            raise ValueError(f"{mr} is not pending in this round")

    # -- rules ---------------------------------------------------------------------------

    def _narrow(self) -> None:
        """good is green, good + suspects is red: split, or convict a lone suspect."""
        if len(self.suspects) > 1:
            left = self.suspects[: len(self.suspects) // 2]
            self.step = GateStack(self.good + left, "bisect")
        elif not self.good and not self.base_green:
            self.step = GateBase(attempt=self._base_red + 1)
        else:
            self._blame()

    def _after_base(self, ok: bool) -> None:
        if ok:
            self.base_green = True
            if self._base_red:
                self.step = GateStack(self.good + self.suspects, "recheck")
            else:
                self._blame()
            return
        self._base_red += 1
        if self._base_red < 2:
            self.step = GateBase(attempt=2)
            return
        pending = self.good + self.suspects + self.rest
        self.step = Finish(
            merge=(), culprits=tuple(self.culprits), requeue=pending,
            hold="the target fails its gates with no merge request on it (checked twice)",
        )

    def _blame(self) -> None:
        self.culprits.append(Blame(self.suspects[0], self._red_stack))
        self.suspects = ()
        self._after_suspect()

    def _after_suspect(self) -> None:
        if self.rest:
            self.step = GateStack(self.good + self.rest, "remainder")
        else:
            self.step = self._finish()

    def _finish(self) -> Finish:
        return Finish(merge=self.good, culprits=tuple(self.culprits))



def one_culprit_bound(batch: int) -> int:
    """The most gate runs this plan takes for ``batch`` MRs holding one culprit.

    1 (the batch) + ⌈log2 n⌉ (bisection) + 1 (the bare base, when the culprit is first)
    + 1 (the untested rest after it). Within the 1 + 2·⌈log2 n⌉ budget for n ≥ 8.

    >>> one_culprit_bound(1), one_culprit_bound(8), one_culprit_bound(32)
    (2, 6, 8)
    """
    return 2 if batch <= 1 else 3 + (batch - 1).bit_length()

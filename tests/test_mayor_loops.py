"""Mayor loops: heartbeats, wake-ups, and the restart of a loop that hangs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gastown.context import Context
from gastown.roles.mayor import Loop, Mayor
from gastown.town import Town
from gastown.wake import wake
from tests.helpers import ledger_rows, retry_until


def test_a_hung_loop_goes_stale_and_is_restarted(town: Path) -> None:
    ctx = Context(Town(town))
    mayor = Mayor(ctx)
    release = threading.Event()
    runs: list[int] = []

    def step() -> None:
        runs.append(1)
        if len(runs) == 1:
            release.wait(30)  # the first run hangs

    loop = Loop("probe", step, lambda: 0.05, ctx)
    mayor.add_loops([loop])
    retry_until(lambda: runs, what="the first cycle")
    loop.last_beat = time.time() - 3600  # as if its heartbeat stopped an hour ago
    assert mayor.stale_loops(time.time()) == ["probe"]
    first_thread = loop.thread
    mayor.restart_loop("probe")
    retry_until(lambda: len(runs) >= 3, what="the restarted loop to cycle")
    assert loop.thread is not first_thread and loop.alive()
    assert ledger_rows(town, "SELECT loop FROM heartbeats WHERE loop = 'probe'")
    release.set()
    loop.stop()


def test_a_wake_file_starts_the_next_cycle_at_once(town: Path) -> None:
    ctx = Context(Town(town))
    cycles: list[float] = []
    loop = Loop("woken", lambda: cycles.append(time.monotonic()), lambda: 60.0, ctx, wake_topic="probe")
    loop.start()
    retry_until(lambda: cycles, what="the first cycle")
    time.sleep(0.1)
    woke = time.monotonic()
    wake(ctx.town, "probe")
    retry_until(lambda: len(cycles) >= 2, timeout=3, what="the woken cycle")
    assert cycles[1] - woke < 1.0
    loop.stop()


def test_stale_loops_read_the_time_they_are_given(rig_town: Path) -> None:
    """The Deacon asks with its clock's ``now``; the answer must not depend on the wall clock."""
    now = [1_000.0]
    ctx = Context(Town(rig_town), clock=lambda: now[0])
    mayor = Mayor(ctx)
    loop = Loop("witness:app", lambda: None, lambda: 2.0, ctx)
    loop.thread = threading.Thread(target=lambda: None)
    loop.thread.start()
    mayor.loops[loop.name] = loop
    loop._beat("waiting")
    loop.thread = threading.current_thread()  # alive for the question below
    assert mayor.stale_loops(now[0] + 30) == []
    assert mayor.stale_loops(now[0] + 61) == ["witness:app"]

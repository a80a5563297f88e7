"""Running a rig's gates on one stack, and keeping their output.

Each gate is a command line from ``gates = [...]``, run as ``sh -c <gate>`` in the
refinery worktree through ``gastown._internal.proc.run``, in order, stopping at the
first failure. Each gate gets ``gate_timeout`` seconds; on a timeout its whole process
group is killed and the run is red. Output of every run in a round is appended to the
round's log, ``<town>/.gastown/logs/<rig>/refinery/round-<id>.log``.

The gate command is the user's own configuration, so it runs through a shell; no
issue text or MR data ever reaches it (only ``GT_*`` variables naming the rig and round,
and ``GT_GATE``, the marker by which a gate a dead refinery left running is found).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gastown._internal import proc

EXCERPT_LINES = 40
_EXIT_LINE = re.compile(r"\[exit (-?\d+) after [\d.]+s\]")
_TIMEOUT_LINE = re.compile(r"\[timed out after (\S+); killed\]")
_DROP_ENV = ("GT_ISSUE", "GT_POLECAT", "GT_SPAWN", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")


@dataclass(frozen=True)
class GateRun:
    """The outcome of running all gates once on one stack.

    ``output`` is what this run wrote to the log (commands, their output, exit codes);
    ``failed_gate`` is the gate that went red, or None when green.
    """

    ok: bool
    output: str
    duration: float
    failed_gate: str | None = None
    timed_out: bool = False

    def excerpt(self, lines: int = EXCERPT_LINES) -> str:
        return tail_lines(self.output, lines)


GateRunner = Callable[..., GateRun]


def tail_lines(text: str, lines: int = EXCERPT_LINES) -> str:
    """The last ``lines`` lines of ``text``.

    >>> tail_lines("a\\nb\\nc\\n", 2)
    'b\\nc'
    """
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def verdict(output: str) -> str:
    r"""One line saying why a gate run went red, read from its log text: the failing gate's
    exit (or timeout), and the last line it printed.

    >>> verdict("=== round 3\n$ make test\nok 1\nFAILED (failures=1)\n[exit 1 after 0.05s]\n=== RED in 0.1s\n")
    'exit 1: FAILED (failures=1)'
    >>> verdict("=== round 4\n$ sleep 99\n[timed out after 5s; killed]\n=== RED in 5.0s\n")
    'timed out after 5s'
    """
    said, ending = "", ""
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("$ "):  # the next gate: what an earlier one said is not why this one failed
            said, ending = "", ""
        if not line or line.startswith(("===", "$ ")):
            continue
        if exit_line := _EXIT_LINE.fullmatch(line):
            ending = f"exit {exit_line[1]}"
        elif timeout_line := _TIMEOUT_LINE.fullmatch(line):
            said, ending = "", f"timed out after {timeout_line[1]}"
        else:
            said = line
    return f"{ending}: {said}" if said and ending else said or ending or "no output"


def gate_marker(town_root: Path, rig: str) -> str:
    """The value of ``GT_GATE`` in every gate process of ``rig`` (and everything a gate
    starts inherits it): how a gate left running by a refinery that died is found."""
    return f"gastown-gate:{town_root}:{rig};"


def gate_env(environ: Mapping[str, str], *, rig: str, round_id: int, marker: str) -> dict[str, str]:
    """The environment gates run with: the caller's, minus agent and git plumbing
    variables, plus ``GT_ROLE=refinery``, ``GT_RIG``, ``GT_ROUND`` and ``GT_GATE``."""
    env = {k: v for k, v in environ.items() if k not in _DROP_ENV}
    env.update({"GT_ROLE": "refinery", "GT_RIG": rig, "GT_ROUND": str(round_id), "GT_GATE": marker})
    return env


def stop_orphaned_gates(marker: str) -> int:
    """Stop every process still running a gate with ``marker``; returns how many.

    Only for a caller holding the rig's refinery lock: then no live refinery is running
    a gate of this rig, and any such process was left behind by one that died (a killed
    Mayor, or one that stopped while a long gate ran). Left alone, it could still be
    writing into the refinery worktree while the next round tests there.
    """
    from gastown._internal.processes import sweep

    return sweep(f"GT_GATE={marker}")


def run_gates(
    gates: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str],
    log_path: Path,
    header: str,
) -> GateRun:
    """Run ``gates`` in order in ``cwd``; append everything to ``log_path``.

    No gates at all is green (the rig asked for no verification). Blocks for as long as
    the gates take, at most ``timeout`` per gate.
    """
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [f"=== {header}\n"]
    ok, failed, timed_out = True, None, False
    for gate in gates:
        result = proc.run(["sh", "-c", gate], cwd=cwd, env=env, timeout=timeout, new_session=True)
        chunks.append(f"$ {gate}\n")
        if result.stdout:
            chunks.append(result.stdout if result.stdout.endswith("\n") else result.stdout + "\n")
        if result.stderr:
            chunks.append(result.stderr if result.stderr.endswith("\n") else result.stderr + "\n")
        if result.timed_out:
            chunks.append(f"[timed out after {timeout:g}s; killed]\n")
        else:
            chunks.append(f"[exit {result.returncode} after {result.duration:.2f}s]\n")
        if not result.ok:
            ok, failed, timed_out = False, gate, result.timed_out
            break
    duration = time.monotonic() - started
    chunks.append(f"=== {'GREEN' if ok else 'RED'} in {duration:.2f}s\n\n")
    output = "".join(chunks)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(output)
    return GateRun(ok=ok, output=output, duration=duration, failed_gate=failed, timed_out=timed_out)

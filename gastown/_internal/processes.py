"""Process trees: find an agent's descendants and stop them, deepest first.

Only pids under a pane gastown started are ever signalled: never a kill by process
name, never a blind process-group kill (a user's own processes must be safe).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) > 1:
            children.setdefault(int(rest[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """All descendants of ``pid``, deepest first (Linux /proc; empty elsewhere)."""
    if not Path("/proc").is_dir():
        return []
    tree = _children_map()
    order: list[int] = []

    def walk(p: int) -> None:
        for child in tree.get(p, []):
            walk(child)
            order.append(child)

    walk(pid)
    return order


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def terminate_tree(pid: int, *, grace: float = 5.0) -> None:
    """SIGTERM ``pid`` and its descendants (deepest first), wait up to ``grace``, then SIGKILL."""
    victims = [*descendants(pid), pid]
    for victim in victims:
        send_signal(victim, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(v) for v in victims):
        time.sleep(0.05)
    for victim in [*descendants(pid), *victims]:
        if alive(victim):
            send_signal(victim, signal.SIGKILL)


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid`` if it still exists; never pid 0/1 or this process."""
    if pid <= 1 or pid == os.getpid():
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def processes_referencing(marker: str, spare: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Live processes whose command line or environment mentions ``marker`` (a spawn's
    private home path): exactly what one agent run started, including daemons that
    re-parented to PID 1 (codex's app-server) or outlived their pane (gemini).

    Never this process, its ancestors, or the pids in ``spare`` (the tmux server).
    """
    if not marker or not Path("/proc").is_dir():
        return []
    needle = marker.encode()
    spared = _ancestors(os.getpid()) | set(spare)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def sweep(marker: str, *, grace: float = 2.0, spare: set[int] | frozenset[int] = frozenset()) -> int:
    """Stop every process that references ``marker`` (see above); returns how many there were."""
    victims = [p for p in processes_referencing(marker, spare) if alive(p)]
    for pid in victims:
        send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in victims):
        time.sleep(0.05)
    for pid in victims:
        if alive(pid):
            send_signal(pid, signal.SIGKILL)
    return len(victims)


def _ancestors(pid: int) -> set[int]:
    chain = {pid}
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat[stat.rfind(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            break
        chain.add(pid)
    return chain

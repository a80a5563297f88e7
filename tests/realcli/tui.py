"""The process sweep for what a real CLI leaves behind after its pane is gone."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path



def processes_referencing(marker: str) -> dict[int, str]:
    """Live processes whose command line or environment mentions ``marker`` (a spawn home path).

    Every process a CLI starts inherits the spawn home in HOME/CODEX_HOME/..., so this
    finds exactly what one spawn left behind: e.g. codex's ``app-server`` daemon, which
    re-parents to PID 1 after the TUI exits. Returns pid -> command line.
    """
    found: dict[int, str] = {}
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or needle in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return found


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

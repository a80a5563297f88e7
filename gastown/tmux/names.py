"""Pure tmux vocabulary: session names, the batched pane query and its parser.

Session names are restricted to ``[A-Za-z0-9_-]`` (dots and colons make tmux targets
fail silently); every target is exact (``=name``) or a pane id (``%12``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAYOR_SESSION = "mayor"
PANE_FIELDS = (
    "pane_id",
    "session_name",
    "window_name",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_current_command",
    "window_activity",
    "pane_in_mode",
    "@gt_spawn",
)
SEP = "\x1f"  # unit separator: cannot appear in names we create


def session_name(rig: str) -> str:
    """The tmux session holding a rig's polecats.

    >>> session_name("app"), session_name("my.app:1")
    ('app', 'my_app_1')
    """
    return re.sub(r"[^A-Za-z0-9_-]", "_", rig) or "_"


def exact(session: str) -> str:
    """An exact-match session target (``=app:``): never a prefix match on another session."""
    return f"={session}:"


def pane_format() -> str:
    """The ``-F`` format of the one batched query the patrols make.

    >>> pane_format().count(SEP)
    9
    """
    return SEP.join("#{%s}" % field for field in PANE_FIELDS)


@dataclass(frozen=True)
class PaneInfo:
    pane_id: str
    session: str
    window: str
    pid: int | None
    dead: bool
    dead_status: int | None
    command: str
    activity: float
    in_mode: bool
    spawn: str | None


def parse_panes(output: str) -> list[PaneInfo]:
    """Parse ``list-panes -a -F pane_format()`` output; malformed lines are skipped.

    >>> line = SEP.join(["%3", "app", "ace", "42", "1", "3", "env", "1700000000", "0", "sp-1"])
    >>> parse_panes(line)[0]
    PaneInfo(pane_id='%3', session='app', window='ace', pid=42, dead=True, dead_status=3, command='env', activity=1700000000.0, in_mode=False, spawn='sp-1')
    """
    panes = []
    for line in output.splitlines():
        parts = line.split(SEP)
        if len(parts) != len(PANE_FIELDS):
            continue
        pane_id, session, window, pid, dead, status, command, activity, in_mode, spawn = parts
        panes.append(
            PaneInfo(
                pane_id=pane_id,
                session=session,
                window=window,
                pid=int(pid) if pid.isdigit() else None,
                dead=dead == "1",
                dead_status=int(status) if status.lstrip("-").isdigit() else None,
                command=command,
                activity=float(activity) if activity.isdigit() else 0.0,
                in_mode=in_mode == "1",
                spawn=spawn or None,
            )
        )
    return panes

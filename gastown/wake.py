"""Cheap wake-ups between processes: touch a file; the Mayor notices within a fraction of a second.

``gt done`` calls ``wake(town, "refinery-<rig>")`` so the rig's refinery starts a round
at once instead of waiting for its next poll. A lost wake-up costs only latency: every
loop also polls on its own interval.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from gastown.town import Town


def wake_path(town: Town, topic: str) -> Path:
    return town.run_dir / "wake" / topic


def wake(town: Town, topic: str) -> None:
    path = wake_path(town, topic)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        now = time.time()
        os.utime(path, (now, now))
    except OSError:
        pass  # best effort; the loop's own poll picks the work up


def last_wake(town: Town, topic: str) -> float:
    """mtime of the topic's wake file, or 0.0 if it was never touched."""
    try:
        return wake_path(town, topic).stat().st_mtime
    except OSError:
        return 0.0

"""Backups of the ledger: a consistent copy every few hours, the last few kept.

The Deacon takes one (``take_backup``) when the newest is older than its
``backup_every``; a damaged ledger's error names the newest (``db.latest_backup``).
"""

from __future__ import annotations

import time
from pathlib import Path

from gastown.ledger.db import Ledger, backups_dir, latest_backup

KEEP = 4


def take_backup(ledger: Ledger, *, now: float, keep: int = KEEP) -> Path:
    """Copy the ledger to ``.gastown/backups/ledger-<local time>.db`` and keep only the
    newest ``keep`` copies; returns the new copy's path."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    dest = backups_dir(ledger.path) / f"ledger-{stamp}.db"
    ledger.backup_to(dest)
    for old in sorted(backups_dir(ledger.path).glob("ledger-*.db"))[:-keep]:
        old.unlink(missing_ok=True)
    return dest


def last_backup_time(ledger: Ledger) -> float | None:
    newest = latest_backup(ledger.path)
    if newest is None:
        return None
    try:
        return newest.stat().st_mtime
    except OSError:
        return None

"""Cross-process locks on files (flock), with a timeout so a hung holder cannot block forever.

A lock is released when its holder exits, however it exits, so a crash leaves no stale
lock behind; the lock files themselves are harmless and reused.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gastown.errors import Conflict

# flock() is per open file description, so threads of one process need their own guard.
_thread_guards: dict[str, threading.Lock] = {}
_guards_lock = threading.Lock()


def _guard_for(path: Path) -> threading.Lock:
    with _guards_lock:
        return _thread_guards.setdefault(str(path), threading.Lock())


@contextmanager
def file_lock(path: Path, *, timeout: float = 30.0, what: str = "lock") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    Waits up to ``timeout`` seconds (0 = try once) and then raises ``Conflict``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    guard = _guard_for(path)
    deadline = time.monotonic() + timeout
    if not guard.acquire(blocking=timeout > 0, timeout=timeout if timeout > 0 else -1):
        raise Conflict(f"{what} is held by another thread of this process", hint="retry in a moment")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise Conflict(f"{what} is held by another gt process", hint="retry in a moment") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        guard.release()


def try_lock_forever(path: Path) -> int | None:
    """Take a lock for the life of this process (single-instance guards); None if held elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd

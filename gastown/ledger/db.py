"""The SQLite ledger: connections, write transactions, schema upkeep, and its errors.

Safe under many writers (several ``gt`` processes plus the Mayor's threads):

- WAL mode, so readers never block the writer;
- one connection per thread, each with a generous busy timeout;
- every write runs in ``BEGIN IMMEDIATE``, taking the write lock before reading, so a
  read-modify-write can never lose an update to a concurrent writer;
- transactions are short: no subprocess, tmux or git call happens inside one.

Every ``sqlite3.Error`` is mapped here, at the boundary, to a ``LedgerError`` that says
what happened and what to do (``describe_error``): a locked ledger names the process
holding it, a full disk says so, a damaged file names the last backup. No caller ever
sees a ``sqlite3`` exception.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gastown.errors import LedgerBusy, LedgerCorrupt, LedgerError, LedgerFull, LedgerReadOnly
from gastown.ledger.migrations import LATEST_VERSION, apply_migrations

BUSY_TIMEOUT_S = 30.0
BUSY_TIMEOUT_ENV = "GT_LEDGER_TIMEOUT"  # seconds a command waits for the write lock


class Ledger:
    """Handle on ``<town>/.gastown/ledger.db``; cheap to create, one per process is enough.

    ``clock`` returns the current unix time; inject a fake one in tests. ``busy_timeout``
    is how long a statement waits for another writer (default: ``GT_LEDGER_TIMEOUT`` or
    30 s).
    """

    def __init__(
        self, path: Path, *, clock: Callable[[], float] = time.time, busy_timeout: float | None = None
    ) -> None:
        self.path = path
        self.clock = clock
        self.busy_timeout = busy_timeout if busy_timeout is not None else _env_timeout()
        self._local = threading.local()
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema brought up to date) on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def _open(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            raise LedgerError(
                f"the ledger directory {self.path.parent} is missing",
                hint="run `gt init` in the town to recreate it",
            )
        conn: _Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False,
                factory=_Connection,
            )
            conn.ledger_path = self.path
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            with self._migrate_lock:
                if not self._migrated:
                    self._ensure_schema(conn)
                    self._migrated = True
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise describe_error(exc, self.path, doing="open") from None
        except LedgerError:
            if conn is not None:
                conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == LATEST_VERSION:
            return
        if version > LATEST_VERSION:
            raise LedgerError(
                f"the ledger {self.path} was written by a newer gastown (schema {version})",
                hint="upgrade gastown to use this town",
            )
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        apply_migrations(conn, now=self.clock())

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the write lock from its first statement.

        Nested use on the same thread joins the outer transaction. Raises
        ``LedgerBusy`` if the lock cannot be had within the busy timeout.
        """
        conn = self.connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            self._local.depth = 0
            _quietly_roll_back(conn)
            raise
        self._local.depth = 0
        try:
            conn.execute("COMMIT")
        except LedgerError:
            _quietly_roll_back(conn)
            raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several reads (a deferred transaction)."""
        conn = self.connection()
        if self._local.depth:
            yield conn
            return
        conn.execute("BEGIN")
        self._local.depth = 1
        try:
            yield conn
        finally:
            self._local.depth = 0
            _quietly_roll_back(conn, "COMMIT")

    def backup_to(self, dest: Path) -> None:
        """Copy the ledger to ``dest`` (a consistent snapshot, taken while others write)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        try:
            target = sqlite3.connect(tmp)
            try:
                self.connection().backup(target)
            finally:
                target.close()
        except sqlite3.Error as exc:
            tmp.unlink(missing_ok=True)
            raise describe_error(exc, self.path, doing="back up") from None
        os.replace(tmp, dest)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def create_ledger(path: Path) -> Ledger:
    """Create (or bring up to date) the ledger file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(path)
    ledger.connection()
    return ledger


def _env_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get(BUSY_TIMEOUT_ENV) or BUSY_TIMEOUT_S))
    except ValueError:
        return BUSY_TIMEOUT_S


def _quietly_roll_back(conn: sqlite3.Connection, statement: str = "ROLLBACK") -> None:
    try:
        conn.execute(statement)
    except LedgerError:
        pass  # the transaction is gone with the error that ended it


# -- the error boundary -----------------------------------------------------------------


class _Cursor(sqlite3.Cursor):
    """A cursor whose every call maps ``sqlite3.Error`` to a ``LedgerError``."""

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise describe_error(exc, _path_of(self.connection)) from None
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _Cursor:
        try:
            super().executemany(sql, seq_of_parameters)
        except sqlite3.Error as exc:
            raise describe_error(exc, _path_of(self.connection)) from None
        return self

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise describe_error(exc, _path_of(self.connection)) from None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        try:
            return super().fetchmany(self.arraysize if size is None else size)
        except sqlite3.Error as exc:
            raise describe_error(exc, _path_of(self.connection)) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise describe_error(exc, _path_of(self.connection)) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise describe_error(exc, _path_of(self.connection)) from None


class _Connection(sqlite3.Connection):
    """A connection whose statements run on ``_Cursor``s."""

    ledger_path: Path | None = None

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> _Cursor:
        return self.cursor().executemany(sql, parameters)


def _path_of(conn: Any) -> Path | None:
    return getattr(conn, "ledger_path", None)


def describe_error(exc: sqlite3.Error, path: Path | None, *, doing: str = "use") -> LedgerError:
    """The ``LedgerError`` (one sentence and what to do) for a ``sqlite3`` error. Pure but
    for reading ``/proc/locks`` to name a lock's holder and listing the backups."""
    where = str(path) if path is not None else "the ledger"
    code = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        holders = lock_holders(path) if path is not None else []
        who = f" by {', '.join(holders)}" if holders else " by another process"
        return LedgerBusy(
            f"the ledger {where} is locked{who} and stayed locked past the wait",
            hint="retry when that process is done, or stop it; a gt command waits "
                 f"{BUSY_TIMEOUT_ENV} seconds (default {int(BUSY_TIMEOUT_S)})",
        )
    if code.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return LedgerReadOnly(
            f"the ledger {where} is read-only, so gastown cannot record anything",
            hint="make the file, its directory and the disk writable by this user (check permissions, "
                 "`lsattr`, and whether the disk is mounted read-only)",
        )
    if code.startswith("SQLITE_FULL") or "disk is full" in text or "database or disk is full" in text:
        return LedgerFull(
            f"the disk holding the ledger {where} is full",
            hint="free some space on it (old logs under .gastown/logs are safe to delete), then retry",
        )
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        backup = latest_backup(path) if path is not None else None
        restore = (f"the last backup is {backup}: stop the town (gt down), move the damaged file aside and "
                   f"copy the backup to {where}") if backup else "there is no backup in .gastown/backups yet"
        return LedgerCorrupt(f"the ledger {where} is damaged ({text})", hint=restore)
    if code.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM", "SQLITE_AUTH")):
        return LedgerError(f"cannot {doing} the ledger {where}: {text}",
                           hint="check that the file exists and is readable and writable by this user")
    return LedgerError(f"the ledger {where} failed: {text}", hint="retry; if it keeps failing, run `gt doctor`")


def lock_holders(path: Path) -> list[str]:
    """Processes (other than this one) holding a write lock on the ledger or its WAL index,
    as ``pid N (command line)``, read from ``/proc/locks``; empty where that is unreadable."""
    inodes: set[tuple[str, int]] = set()
    for candidate in (path, path.with_name(path.name + "-shm"), path.with_name(path.name + "-wal")):
        try:
            st = candidate.stat()
        except OSError:
            continue
        inodes.add((f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino))
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids: list[int] = []
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or parts[3] != "WRITE":
            continue
        dev, _, ino = parts[5].rpartition(":")
        try:
            pid, inode = int(parts[4]), int(ino)
        except ValueError:
            continue
        if (dev, inode) in inodes and pid != os.getpid() and pid not in pids:
            pids.append(pid)
    return [f"pid {pid} ({_cmdline(pid)})" for pid in pids]


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    words = raw.rstrip(b"\0").split(b"\0")
    text = " ".join(" ".join(w.decode("utf-8", "replace").split()) for w in words)
    return text if len(text) <= 80 else text[:79] + "…"


def backups_dir(path: Path) -> Path:
    return path.parent / "backups"


def latest_backup(path: Path) -> Path | None:
    """The newest backup of the ledger at ``path``, if any."""
    found = sorted(backups_dir(path).glob("ledger-*.db"))
    return found[-1] if found else None

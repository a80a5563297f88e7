"""The SQLite ledger: connections, write transactions and schema upkeep.

Safe under many writers (several ``gt`` processes plus the Mayor's threads):

- WAL mode, so readers never block the writer;
- one connection per thread, each with a generous busy timeout;
- every write runs in ``BEGIN IMMEDIATE``, taking the write lock before reading, so a
  read-modify-write can never lose an update to a concurrent writer;
- transactions are short: no subprocess, tmux or git call happens inside one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gastown.errors import LedgerError
from gastown.ledger.migrations import LATEST_VERSION, apply_migrations

BUSY_TIMEOUT_S = 30.0


class Ledger:
    """Handle on ``<town>/.gastown/ledger.db``; cheap to create, one per process is enough.

    ``clock`` returns the current unix time; inject a fake one in tests.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
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
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            with self._migrate_lock:
                if not self._migrated:
                    self._ensure_schema(conn)
                    self._migrated = True
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from None
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
        ``LedgerError`` if the lock cannot be had within the busy timeout.
        """
        conn = self.connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"the ledger is busy ({exc})", hint="retry in a moment") from None
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            self._local.depth = 0
            conn.execute("ROLLBACK")
            raise
        self._local.depth = 0
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            raise LedgerError(f"the ledger could not commit ({exc})", hint="retry in a moment") from None

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
            conn.execute("COMMIT")

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

"""A ledger that is locked, read-only, damaged or full gives one clear sentence, never a traceback."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gastown.errors import LedgerCorrupt, LedgerError, LedgerFull
from gastown.ledger import work
from gastown.ledger.backups import take_backup
from gastown.ledger.db import Ledger, describe_error
from gastown.ledger.holds import HoldScope, get_hold, list_holds
from gastown.ledger.migrations import MIGRATIONS, _statements
from gastown.roles import witness_policy as wp
from gastown.roles.witness import Witness
from tests.helpers import run_gt
from tests.refinery_support import open_ctx


def ledger_path(town: Path) -> Path:
    return town / ".gastown" / "ledger.db"


def assert_one_clear_sentence(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 1, result
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("gt: the ledger ") and all(p in first for p in phrases), result.stderr


@contextmanager
def lock_held(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the ledger's write lock until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE')\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    try:
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=10)


@pytest.fixture
def locked_ledger(rig_town: Path) -> Iterator[subprocess.Popen[str]]:
    with lock_held(ledger_path(rig_town)) as holder:
        yield holder


def test_a_locked_ledger_names_who_holds_it(rig_town: Path, locked_ledger: subprocess.Popen[str]) -> None:
    result = run_gt("issue", "create", "blocked by a lock", cwd=rig_town, env={"GT_LEDGER_TIMEOUT": "0.5"})
    assert_one_clear_sentence(result, "is locked by pid", str(locked_ledger.pid))
    assert "GT_LEDGER_TIMEOUT" in result.stderr
    # Reading still works while another process writes (WAL).
    assert run_gt("issue", "list", cwd=rig_town, env={"GT_LEDGER_TIMEOUT": "0.5"}).returncode == 0


def test_a_read_only_ledger_says_so(rig_town: Path) -> None:
    path = ledger_path(rig_town)
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if made.returncode != 0:  # no chattr on this filesystem: be a user for whom the file is read-only
        proc = subprocess.run(["unshare", "-Ur", sys.executable, "-m", "gastown", "issue", "create", "x"],
                              cwd=rig_town, capture_output=True, text=True, timeout=60)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, proc.stderr)
    else:
        try:
            result = run_gt("issue", "create", "x", cwd=rig_town, env={"GT_LEDGER_TIMEOUT": "0.5"})
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    assert_one_clear_sentence(result, "is read-only")
    assert run_gt("issue", "create", "now it works", cwd=rig_town).returncode == 0


def test_a_damaged_ledger_names_the_last_backup(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    backup = take_backup(ctx.ledger, now=ctx.now())
    ctx.ledger.close()
    path = ledger_path(rig_town)
    for extra in (path.with_name("ledger.db-wal"), path.with_name("ledger.db-shm")):
        extra.unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 512)
    result = run_gt("issue", "list", cwd=rig_town)
    assert_one_clear_sentence(result, "is damaged")
    assert f"the last backup is {backup}" in result.stderr
    shutil.copy(backup, path)  # the advice works
    assert run_gt("issue", "list", cwd=rig_town).returncode == 0


def test_backups_keep_the_newest_few(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    made = [take_backup(ctx.ledger, now=1_800_000_000.0 + n, keep=3) for n in range(5)]
    kept = sorted(p.name for p in made[0].parent.glob("ledger-*.db"))
    assert kept == sorted(p.name for p in made[-3:])
    with sqlite3.connect(made[-1]) as copy:
        assert copy.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_a_full_disk_is_said_plainly(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "tiny.db")
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 4000,)] * 10)
    error = describe_error(caught.value, tmp_path / "tiny.db")
    assert isinstance(error, LedgerFull) and error.message.startswith("the disk holding the ledger")


def test_sqlite_errors_never_leave_the_ledger(tmp_path: Path) -> None:
    (tmp_path / "town").mkdir()
    ledger = Ledger(tmp_path / "town" / "ledger.db")
    with pytest.raises(LedgerError):
        ledger.connection().execute("SELECT * FROM no_such_table")
    damaged = tmp_path / "town" / "damaged.db"
    damaged.write_bytes(b"garbage" * 1000)
    with pytest.raises(LedgerCorrupt):
        Ledger(damaged).connection()


def test_old_hold_scopes_are_migrated(tmp_path: Path) -> None:
    """Migration 5: ``budget:<rig>`` becomes ``budget:rig:<rig>``, ``town:polecats`` the pause."""
    path = tmp_path / "ledger.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
        for migration in MIGRATIONS[:4]:
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (migration.version, migration.name))
        conn.execute("PRAGMA user_version = 4")
        for scope in ("budget:town", "budget:app", "town:polecats", "runtime:claude", "refinery:app"):
            conn.execute("INSERT INTO holds (scope, until, reason, created_at) VALUES (?, NULL, 'r', 0)", (scope,))
    ledger = Ledger(path)
    scopes = {str(h.scope) for h in list_holds(ledger.connection())}
    assert scopes == {"budget:town", "budget:rig:app", "pause:polecats", "runtime:claude", "refinery:app"}
    assert get_hold(ledger.connection(), HoldScope.pause()) is not None


def test_a_ledger_error_in_one_witness_action_does_not_skip_the_rest(
    rig_town: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = open_ctx(rig_town)
    with ctx.ledger.write() as conn:
        spawns = [_insert_spawn(conn, n) for n in range(2)]
    ctx.__dict__["ledger"] = Ledger(ctx.town.ledger_path, clock=ctx.clock, busy_timeout=0.2)
    witness = Witness(ctx, "app")
    seen = [wp.AgentObs(spawn=s, current=True, pane_alive=False, exit_status=None, last_output_at=ctx.now(),
                        screen=None, idle_since=None, limited=None) for s in spawns]
    # A paused town only observes dead agents: two Observe actions, each needing a write.
    witness.gather = lambda now, panes=None: wp.Snapshot(  # type: ignore[method-assign]
        rig="app", agents=tuple(seen), orphan_hooks=(), paused=True)
    with lock_held(ledger_path(rig_town)), caplog.at_level(logging.WARNING, logger="gastown.roles.witness"):
        actions = witness.patrol()
    assert actions == [wp.Observe(s.id, "dead") for s in spawns]
    failed = [r.getMessage() for r in caplog.records if "Observe failed" in r.getMessage()]
    assert len(failed) == 2 and all("is locked by pid" in m for m in failed)


def _insert_spawn(conn: sqlite3.Connection, n: int) -> work.Spawn:
    return work.insert_spawn(
        conn, spawn_id=f"sp-test{n}", issue="app-00000", rig="app", polecat=f"p{n}", agent="demo", attempt=1,
        kind="fresh", log_path="/nonexistent.log", prompt_path="/nonexistent.md", now=0.0,
    )



"""The ledger: WAL mode, numbered migrations recorded in the DB, nested transactions."""

from __future__ import annotations

from pathlib import Path

import pytest

from gastown.ledger.db import Ledger, create_ledger
from gastown.ledger.migrations import LATEST_VERSION, MIGRATIONS
from gastown.ledger.events import list_events, record_event


def test_new_ledger_is_wal_and_records_every_migration(tmp_path: Path) -> None:
    ledger = create_ledger(tmp_path / "s" / "ledger.db")
    conn = ledger.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in MIGRATIONS]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    create_ledger(path).close()
    again = Ledger(path)
    count = again.connection().execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    assert count == len(MIGRATIONS)


def test_failed_write_rolls_back_everything(tmp_path: Path) -> None:
    ledger = create_ledger(tmp_path / "ledger.db")
    with pytest.raises(RuntimeError):
        with ledger.write() as conn:
            record_event(conn, "test", "one", now=1.0)
            with ledger.write() as inner:
                record_event(inner, "test", "two", now=2.0)
            raise RuntimeError("boom")
    assert list_events(ledger.connection()) == []


def test_event_messages_stay_on_one_line(tmp_path: Path) -> None:
    ledger = create_ledger(tmp_path / "ledger.db")
    with ledger.write() as conn:
        record_event(conn, "test", "first\nsecond", now=1.0, issue="app-aaaaa", data={"k": 1})
    [event] = list_events(ledger.connection())
    assert event.message == "first second" and event.data == {"k": 1} and event.issue == "app-aaaaa"


@pytest.mark.parametrize(
    "path,allowed",
    [
        pytest.param(["running", "done", "ended"], True, id="a run that finished"),
        pytest.param(["running", "ended"], True, id="a run stopped or replaced"),
        pytest.param(["failed"], True, id="a launch rolled back"),
        pytest.param(["done"], True, id="gt done before the prompt was confirmed"),
        pytest.param(["ended", "running"], False, id="an ended run never runs again"),
        pytest.param(["failed", "ended"], False, id="a failed launch stays failed"),
        pytest.param(["running", "starting"], False, id="no going back to starting"),
        pytest.param(["done", "running"], False, id="a finished run does not resume"),
    ],
)
def test_spawn_statuses_move_only_as_the_table_allows(tmp_path: Path, path: list[str], allowed: bool) -> None:
    from gastown.errors import Conflict
    from gastown.ledger import work
    from gastown.states import SpawnStatus

    ledger = create_ledger(tmp_path / "ledger.db")
    with ledger.write() as conn:
        work.insert_spawn(conn, spawn_id="sp-1", issue="app-00000", rig="app", polecat="rivet", agent="demo",
                          attempt=1, kind="fresh", log_path="l", prompt_path="p", now=0.0)
    try:
        with ledger.write() as conn:
            for status in path:
                work.update_spawn(conn, "sp-1", status=status)
    except Conflict as exc:
        assert not allowed, exc
        assert "cannot become" in exc.message
        assert work.get_spawn(ledger.connection(), "sp-1").status == SpawnStatus.STARTING  # rolled back whole
    else:
        assert allowed
        assert work.get_spawn(ledger.connection(), "sp-1").status == SpawnStatus(path[-1])

"""The lazy command table: `gt --help` lists every command without importing any command
module, each command loads only its own module, and the table says what the modules say."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command, get_group

from gastown.cli.root import COMMANDS, app, load_command

ROOT = Path(__file__).resolve().parents[1]
COMMAND_MODULES = sorted({f"gastown.cli.{entry.module}" for entry in COMMANDS})


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


@pytest.mark.parametrize("entry", COMMANDS, ids=[e.name for e in COMMANDS])
def test_the_table_tells_the_truth_about_each_command(entry) -> None:  # type: ignore[no-untyped-def]
    command = load_command(entry)
    assert command.name == entry.name
    assert bool(command.hidden) == entry.hidden
    assert first_line(command.help) == entry.help, "keep COMMANDS' help equal to the command's first line"
    assert hasattr(command, "commands") == entry.group


def test_every_registered_command_is_in_the_table() -> None:
    registered = set()
    for module_name in {f"gastown.cli.{e.module}" for e in COMMANDS if not e.group}:
        holder = typer.Typer()
        importlib.import_module(module_name).register(holder)
        registered |= set(get_group(holder).commands)
    groups = {e.name for e in COMMANDS if e.group}
    assert registered | groups == {e.name for e in COMMANDS}
    cli_modules = {p.stem for p in (ROOT / "gastown" / "cli").glob("*.py") if not p.stem.startswith("_")}
    not_commands = {"complete", "root", "fast", "bodies", "relay"}  # the app, the fast path, its bodies, the relay
    assert cli_modules - not_commands == {e.module for e in COMMANDS}, "a new command module must be in COMMANDS"


PROBE = """
import json, sys
from gastown._entry import main
code = main(sys.argv[1:])
wiring = ('root', 'fast', 'bodies', 'relay')
loaded = sorted(m for m in sys.modules if m.startswith('gastown.cli.') and not m.split('.')[-1].startswith('_')
                and m.split('.')[-1] not in wiring)
sys.stderr.write('LOADED=' + json.dumps(loaded) + '\\n')
"""


def loaded_modules(args: list[str], cwd: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True)
    line = next(l for l in result.stderr.splitlines() if l.startswith("LOADED="))
    return json.loads(line.removeprefix("LOADED="))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], []),
        (["issue", "show", "app-00000"], ["gastown.cli.complete", "gastown.cli.issue"]),
        (["mq", "show", "mr-000000"], ["gastown.cli.complete", "gastown.cli.mq"]),
        (["feed", "--plain", "--once"], ["gastown.cli.status"]),
        (["issue", "list"], []),  # the fast path (gastown.cli.fast): no command module at all
        (["status", "--json"], []),
    ],
    ids=["help", "issue-show", "mq-show", "feed", "issue-list", "status"],
)
def test_a_command_loads_only_its_own_module(rig_town: Path, args: list[str], expected: list[str]) -> None:
    assert loaded_modules(args, rig_town) == expected


def test_help_lists_every_visible_command_from_the_table(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "gastown", "--help"], cwd=tmp_path, capture_output=True, text=True).stdout
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.startswith("  ") and line.split()]
    assert listed == [e.name for e in COMMANDS if not e.hidden]
    assert "--install-completion" in out and "--show-completion" in out


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gastown", "slingg"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "No such command 'slingg'" in result.stderr and "Traceback" not in result.stderr


def test_root_command_still_parses_every_group() -> None:
    root = get_command(app)
    for entry in COMMANDS:
        assert root.get_command(None, entry.name) is not None  # type: ignore[attr-defined]

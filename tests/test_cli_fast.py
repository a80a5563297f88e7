"""The fast path (``gastown.cli.fast``): the everyday commands run without typer, and
nobody can tell the difference.

- its table declares exactly the options and arguments typer declares for each command;
- its parser takes the plain forms and hands everything else to typer (named rows);
- run both ways in one town (hostile titles included), each command prints the same
  bytes and exits with the same code;
- a real `gt` process running one of them never imports typer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gastown.cli import fast, root
from gastown.cli.root import load_command
from tests.helpers import create_issue

HOSTILE = "pwn \x1b]0;owned\x07 \x1b[2J \x9b31m red \u202eevil"


def click_command(words: tuple[str, ...]):  # type: ignore[no-untyped-def]
    command = load_command(next(entry for entry in root.COMMANDS if entry.name == words[0]))
    for word in words[1:]:
        command = command.commands[word]
    return command


@pytest.mark.parametrize("command", fast.FAST, ids=lambda c: " ".join(c.words))
def test_the_table_declares_what_typer_declares(command: fast.Fast) -> None:
    declared = click_command(command.words)
    typer_options = {
        (frozenset(p.opts + p.secondary_opts), "flag" if p.is_flag else "many" if p.multiple else "one")
        for p in declared.params if p.param_type_name == "option"
    }
    ours = {(frozenset(opt.flags), opt.takes) for opt in command.options}
    assert ours == typer_options
    arguments = [p for p in declared.params if p.param_type_name == "argument"]
    if command.argument is None:
        assert arguments == []
    else:
        assert len(arguments) == 1 and arguments[0].required
        assert (arguments[0].nargs == -1) == command.many


PARSE_ROWS = {
    "plain listing": (["issue", "list"], ("issue_list", None, {"rig": None, "status": None, "town": None, "json_out": False})),
    "long, short and = forms": (["issue", "list", "-r", "app", "--status=open", "--json"],
                                ("issue_list", None, {"rig": "app", "status": "open", "town": None, "json_out": True})),
    "town before the command": (["--town", "/t", "status"], ("status", Path("/t"), {"town": None, "json_out": False})),
    "town after it": (["status", "--town=/t"], ("status", None, {"town": Path("/t"), "json_out": False})),
    "repeatable option": (["mq", "list", "-s", "queued", "--state", "merged", "-a"],
                          ("mq_list", None, {"rig": None, "states": ["queued", "merged"], "all_": True, "town": None,
                                             "json_out": False})),
    "repeatable option not given is None": (["mq", "list"], ("mq_list", None, {"rig": None, "states": None,
                                                                               "all_": False, "town": None,
                                                                               "json_out": False})),
    "sling's words and options mixed": (["sling", "app-1", "--agent", "codex", "app-2", "app/ace"],
                                        ("sling", None, {"issues": ["app-1", "app-2", "app/ace"], "agent": "codex",
                                                         "convoy": None, "no_convoy": False, "town": None,
                                                         "json_out": False})),
    "float option": (["_end", "sp-1", "--after", "2.5"], ("end", None, {"spawn": "sp-1", "after": 2.5, "town": None})),
    "float default": (["_end", "sp-1"], ("end", None, {"spawn": "sp-1", "after": 0.0, "town": None})),
    "help is typer's": (["issue", "list", "--help"], None),
    "short help is typer's": (["status", "-h"], None),
    "unknown option": (["agents", "--bogus"], None),
    "attached short value": (["issue", "list", "-rapp"], None),
    "bad enum value": (["issue", "list", "--status", "bogus"], None),
    "bad float": (["_end", "sp-1", "--after", "soon"], None),
    "value missing": (["issue", "list", "--rig"], None),
    "value that looks like an option": (["issue", "list", "--rig", "--json"], None),
    "option given twice": (["issue", "list", "-r", "a", "-r", "b"], None),
    "flag with a value": (["status", "--json=yes"], None),
    "stray argument": (["status", "now"], None),
    "argument missing": (["_start"], None),
    "two arguments for one": (["_start", "a", "b"], None),
    "sling without an issue": (["sling"], None),
    "another command": (["issue", "show", "app-1"], None),
    "bare group": (["issue"], None),
    "unknown root option": (["--verbose", "status"], None),
    "end of options": (["sling", "--", "app-1"], None),
    "nothing": ([], None),
}


@pytest.mark.parametrize("args, expected", PARSE_ROWS.values(), ids=PARSE_ROWS.keys())
def test_parse(args: list[str], expected: tuple[str, Path | None, dict[str, object]] | None) -> None:
    parsed = fast.parse(args)
    if expected is None:
        assert parsed is None
        return
    assert parsed is not None
    body, root_town, values = expected
    assert (parsed.command.body, parsed.root_town) == (body, root_town)
    assert {k: str(v) if hasattr(v, "value") else v for k, v in parsed.values.items()} == values
    if "states" in values and values["states"]:
        assert [type(s).__name__ for s in parsed.values["states"]] == ["MRState"] * len(values["states"])


BOTH_WAYS = [
    ["issue", "list"],
    ["issue", "list", "--json"],
    ["issue", "list", "-r", "app", "--status", "open"],
    ["issue", "list", "--rig", "nope"],  # an error: the same sentence and code
    ["mq", "list"],
    ["mq", "list", "-a", "-s", "merged", "--json"],
    ["agents"],
    ["agents", "--json", "--rig", "app"],
    ["status", "--json"],
    ["sling", "app/ace"],  # typer's usage error, from both (the fast path hands it over)
    ["prime"],  # not an agent here: the same error both ways
    ["done", "--json"],
]


def test_both_ways_print_the_same(rig_town: Path, monkeypatch: pytest.MonkeyPatch,
                                  capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    monkeypatch.chdir(rig_town)
    create_issue(rig_town, HOSTILE, body="body " + HOSTILE, rig="app", priority=1)
    create_issue(rig_town, "second", rig="app")
    seen = []
    for args in BOTH_WAYS:
        code_fast = fast.run_fast(list(args))
        out_fast = capfdbinary.readouterr()
        code_typer = root.run(list(args))
        out_typer = capfdbinary.readouterr()
        if code_fast is None:  # handed to typer: run_fast printed nothing
            assert out_fast.out == out_fast.err == b""
            code_fast, out_fast = root.run(list(args)), capfdbinary.readouterr()
        else:
            seen.append(args)
        assert (code_fast, out_fast.err) == (code_typer, out_typer.err), args
        assert _timeless(args, out_fast.out) == _timeless(args, out_typer.out), args
        if args == ["issue", "list"]:
            assert b"\x1b" not in out_fast.out and b"\x07" not in out_fast.out and "\u202e".encode() not in out_fast.out
            assert "pwn" in out_fast.out.decode()
        if args == ["issue", "list", "--json"]:
            assert HOSTILE in [doc["title"] for doc in json.loads(out_fast.out)]
    assert len(seen) == len(BOTH_WAYS) - 1  # all but the usage error ran on the fast path


def _timeless(args: list[str], out: bytes) -> object:
    """`gt status --json` says when it looked ("at"): the one field two runs may not share."""
    if args[0] != "status":
        return out
    document = json.loads(out)
    assert document.pop("at")
    return document


PROBE = """
import sys
from gastown._entry import main
code = main(sys.argv[1:])
sys.stderr.write('TYPER=' + str('typer' in sys.modules) + '\\n')
sys.exit(code)
"""


@pytest.mark.parametrize("args, typer_loaded", [
    (["issue", "list"], False), (["status", "--json"], False), (["agents"], False), (["mq", "list"], False),
    (["issue", "list", "--help"], True),
])
def test_a_fast_command_never_imports_typer(rig_town: Path, args: list[str], typer_loaded: bool) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=rig_town, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"TYPER={typer_loaded}" in result.stderr.splitlines()

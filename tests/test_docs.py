"""The docs tell the truth: every `gt` command written in them parses, and the
getting-started walk-through runs as written, end to end."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from gastown.cli.root import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def shell_blocks(text: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang in ("sh", "bash", "shell", "console")]


OPERATORS = {";", "&&", "||", "|", "(", ")", "&", ";;", ">", "<", ">>", "<<"}


def commands_in(block: str) -> list[list[str]]:
    """Shell commands of a block as token lists (quotes and line continuations honoured)."""
    commands: list[list[str]] = []
    buffer = ""
    for line in block.splitlines():
        buffer += line + "\n"
        try:
            shlex.split(buffer, comments=True)
        except ValueError:
            continue  # a quote spans lines: read on
        lexer = shlex.shlex(buffer.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in OPERATORS:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
        buffer = ""
    return [c for c in commands if c]


def gt_invocations(path: Path) -> list[tuple[int, list[str]]]:
    """Every `gt ...` in the doc's shell blocks (also inside `$(...)`), as its arguments."""
    found = []
    for block in shell_blocks(path.read_text()):
        for command in commands_in(block):
            if command[0] == "$":
                command = command[1:]
            if command and command[0] in ("gt", ".venv/bin/gt"):
                found.append((0, command[1:]))
    return found


def parse(tokens: list[str]) -> str:
    """Parse like `gt` would, without running anything; returns the command's name."""
    root = get_command(app)

    def rest(ctx: object) -> list[str]:
        return [*getattr(ctx, "_protected_args", []), *ctx.args]  # type: ignore[attr-defined]

    ctx = root.make_context("gt", list(tokens))
    args, group, parent = rest(ctx), root, ctx
    while True:
        if not args:
            return group.name or "gt"
        name, args = args[0], args[1:]
        command = group.get_command(parent, name)  # type: ignore[attr-defined]
        assert command is not None, f"no command {name!r} in `gt {' '.join(tokens)}`"
        sub = command.make_context(name, list(args), parent=parent)
        if not hasattr(command, "commands"):
            return command.name
        args, group, parent = rest(sub), command, sub


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_gt_command_in_the_docs_parses(doc: Path) -> None:
    for _, tokens in gt_invocations(doc):
        if tokens and tokens[-1] in ("--help", "-h"):
            continue
        try:
            parse(tokens)
        except Exception as exc:  # noqa: BLE001 - report which line of which doc is wrong
            pytest.fail(f"{doc.name}: `gt {' '.join(tokens)}` does not parse: {exc}")


def test_the_docs_mention_commands_that_exist() -> None:
    assert sum(len(gt_invocations(d)) for d in DOCS) > 40


def runnable_blocks(path: Path, tag: str) -> str:
    text = path.read_text()
    blocks = re.findall(rf"<!-- runnable: {tag} -->\n```sh\n(.*?)^```", text, re.M | re.S)
    assert blocks, f"no runnable {tag} blocks in {path.name}"
    return "\n".join(blocks)


@pytest.mark.tmux
@pytest.mark.slow
def test_getting_started_walkthrough_runs_as_written(tmux_socket: str) -> None:
    script = runnable_blocks(ROOT / "docs" / "getting-started.md", "tutorial")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "GT_DEMO_THINK": "0.2"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    home = Path(os.environ["HOME"])
    log = subprocess.run(["git", "--git-dir", str(home / "gt-tutorial" / "project.git"), "show", "main:greeting.txt"],
                         capture_output=True, text=True)
    assert log.stdout == "Hello from a polecat!\n"


def test_readme_first_screen_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:30])
    assert "gt demo" in first_screen
    assert ".venv/bin/python -m pytest" in first_screen
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(line for line in readme.splitlines() if "python -m pytest" in line)
    assert test_command.strip() in ci, ".ci/run must run the README's test command"

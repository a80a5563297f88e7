"""The demo agent: directive parsing and conditions (tables), the key decoder and line
editor (tables), then the real program in a pipe and in real tmux panes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from gastown.demo_agent.agent import Options, parse_options
from gastown.demo_agent.script import (
    Attempt,
    Directive,
    applies,
    check_path,
    extract_title,
    is_task,
    parse_script,
    plan_task,
)
from gastown.demo_agent.terminal import Event, InputDecoder, Key, LineEditor, Quit, Text
from gastown.errors import InvalidInput
from tests.helpers import git, retry_until

READY = re.compile(r"^demo> $", re.MULTILINE)
BUSY = re.compile(r"^demo: thinking", re.MULTILINE)
RATE_LIMIT = re.compile(r"^demo: usage limit reached · resets in (\d+)s", re.MULTILINE)


def task(*blocks: str, title: str = "Add a greeting") -> str:
    """A prompt shaped like gastown's: prefix line, title, body fenced with backticks."""
    body = "\n".join(f"~~~demo\n{block}\n~~~" for block in blocks)
    head = f"[gastown] You are working on issue app-k3x9q.\nTitle: {title}\n\n"
    return f"{head}````\n{body}\n````\nCommit, then run `gt done`.\n"


# -- directives ------------------------------------------------------------------------


class ParseRow(NamedTuple):
    test_id: str
    text: str
    directives: tuple[Directive, ...]
    problems: tuple[str, ...]  # a substring of each expected problem, in order


PARSE_ROWS = [
    ParseRow(
        "write keeps content and adds the final newline",
        "~~~demo\nwrite src/a.txt\nhello\n\n  world\n~~~",
        (Directive("write", line=2, path="src/a.txt", content="hello\n\n  world\n"),),
        (),
    ),
    ParseRow(
        "write with no content makes an empty file",
        "~~~demo\nwrite empty.txt\n~~~",
        (Directive("write", line=2, path="empty.txt", content=""),),
        (),
    ),
    ParseRow(
        "append with a condition",
        "~~~demo\nappend notes.md @retry\nmore\n~~~",
        (Directive("append", line=2, condition="retry", path="notes.md", content="more\n"),),
        (),
    ),
    ParseRow(
        "quoted path with a space",
        "~~~demo\nwrite 'my file.txt'\nx\n~~~",
        (Directive("write", line=2, path="my file.txt", content="x\n"),),
        (),
    ),
    ParseRow(
        "path is normalised", "~~~demo\ndelete ./a/../b.txt\n~~~", (Directive("delete", line=2, path="b.txt"),), ()
    ),
    ParseRow(
        "several blocks in order",
        "~~~demo\nthink 2.5\n~~~\ntext\n~~~ demo\nnodone\n~~~\n~~~demo\nnocommit @fix\n~~~",
        (
            Directive("think", line=2, seconds=2.5),
            Directive("nodone", line=6),
            Directive("nocommit", line=9, condition="fix"),
        ),
        (),
    ),
    ParseRow(
        "crash default and explicit code",
        "~~~demo\ncrash\n~~~\n~~~demo\ncrash 7 @first\n~~~",
        (Directive("crash", line=2, code=3), Directive("crash", line=5, condition="first", code=7)),
        (),
    ),
    ParseRow(
        "ratelimit default and with seconds",
        "~~~demo\nratelimit\n~~~\n~~~demo\nratelimit 5s\n~~~",
        (Directive("ratelimit", line=2, seconds=8.0), Directive("ratelimit", line=5, seconds=5.0)),
        (),
    ),
    ParseRow(
        "blocked keeps the rest of the line, apostrophes included",
        "~~~demo\nblocked can't reach the API @first\n~~~",
        (Directive("blocked", line=2, condition="first", reason="can't reach the API"),),
        (),
    ),
    ParseRow(
        "blocked strips one pair of quotes",
        '~~~demo\nblocked "needs a key"\n~~~',
        (Directive("blocked", line=2, reason="needs a key"),),
        (),
    ),
    ParseRow("hang", "~~~demo\nhang\n~~~", (Directive("hang", line=2),), ()),
    ParseRow(
        "indented fence is dedented",
        "  ~~~demo\n  write a.txt\n    x\n  ~~~",
        (Directive("write", line=2, path="a.txt", content="  x\n"),),
        (),
    ),
    ParseRow(
        "longer fence holds a shorter one",
        "~~~~demo\nwrite doc.md\n~~~\n~~~~",
        (Directive("write", line=2, path="doc.md", content="~~~\n"),),
        (),
    ),
    ParseRow(
        "blank lines before the command are skipped", "~~~demo\n\nnodone\n~~~", (Directive("nodone", line=3),), ()
    ),
    ParseRow("other tilde fences are skipped whole", "~~~python\n~~~demo\n~~~\nnodone\n~~~", (), ()),
    ParseRow("backtick fences are transparent", "```\n~~~demo\nnodone\n~~~\n```", (Directive("nodone", line=3),), ()),
    ParseRow("no blocks at all", "[gastown] just do it", (), ()),
    ParseRow("absolute path refused", "~~~demo\nwrite /etc/passwd\nx\n~~~", (), ("absolute",)),
    ParseRow("escaping path refused", "~~~demo\ndelete ../outside.txt\n~~~", (), ("leaves the worktree",)),
    ParseRow("path into .git refused", "~~~demo\nwrite .git/hooks/pre-commit\n~~~", (), ("inside .git",)),
    ParseRow(
        "unknown command, the next block still parses",
        "~~~demo\nwirte a.txt\n~~~\n~~~demo\nhang\n~~~",
        (Directive("hang", line=5),),
        ("line 2: unknown command 'wirte'",),
    ),
    ParseRow("unknown condition", "~~~demo\nhang @sometimes\n~~~", (), ("unknown condition @sometimes",)),
    ParseRow("content on a command without content", "~~~demo\ndelete a.txt\noops\n~~~", (), ("takes no content",)),
    ParseRow(
        "bad numbers",
        "~~~demo\nthink soon\n~~~\n~~~demo\ncrash 300\n~~~\n~~~demo\nratelimit -1\n~~~",
        (),
        ("think takes one number", "crash takes an optional exit code", "ratelimit takes"),
    ),
    ParseRow("two paths", "~~~demo\nwrite a b\n~~~", (), ("exactly one path",)),
    ParseRow("blocked without a reason", "~~~demo\nblocked\n~~~", (), ("blocked needs a reason",)),
    ParseRow("empty block", "~~~demo\n~~~", (), ("empty ~~~demo block",)),
    ParseRow("unclosed block", "~~~demo\nwrite a.txt\nx", (), ("never closed",)),
    ParseRow("backtick demo fence is pointed out", "```demo\nnodone\n```", (), ("fence directives with ~~~demo",)),
]


@pytest.mark.parametrize(list(ParseRow._fields), PARSE_ROWS, ids=[row.test_id for row in PARSE_ROWS])
def test_parse_script(test_id: str, text: str, directives: tuple[Directive, ...], problems: tuple[str, ...]) -> None:
    script = parse_script(text)
    assert script.directives == directives
    assert len(script.problems) == len(problems), script.problems
    for problem, expected in zip(script.problems, problems, strict=True):
        assert expected in problem


class ConditionRow(NamedTuple):
    test_id: str
    condition: str | None
    env: dict[str, str]
    expected: bool


CONDITION_ROWS = [
    ConditionRow("no condition always", None, {"GT_ATTEMPT": "3", "GT_PROMPT_KIND": "fix"}, True),
    ConditionRow("first when unset", "first", {}, True),
    ConditionRow("first on attempt 1 fresh", "first", {"GT_ATTEMPT": "1", "GT_PROMPT_KIND": "fresh"}, True),
    ConditionRow("first not on attempt 2", "first", {"GT_ATTEMPT": "2"}, False),
    ConditionRow("first not on a resume", "first", {"GT_PROMPT_KIND": "resume"}, False),
    ConditionRow("first not on a fix", "first", {"GT_PROMPT_KIND": "fix"}, False),
    ConditionRow("retry not when unset", "retry", {}, False),
    ConditionRow("retry on attempt 2", "retry", {"GT_ATTEMPT": "2", "GT_PROMPT_KIND": "fresh"}, True),
    ConditionRow("retry on a resume", "retry", {"GT_ATTEMPT": "1", "GT_PROMPT_KIND": "resume"}, True),
    ConditionRow("retry not on a first fix", "retry", {"GT_PROMPT_KIND": "fix"}, False),
    ConditionRow("fix on a fix", "fix", {"GT_ATTEMPT": "1", "GT_PROMPT_KIND": "fix"}, True),
    ConditionRow("fix not on a resume", "fix", {"GT_ATTEMPT": "4", "GT_PROMPT_KIND": "resume"}, False),
    ConditionRow("garbage attempt counts as 1", "first", {"GT_ATTEMPT": "two"}, True),
]


@pytest.mark.parametrize(list(ConditionRow._fields), CONDITION_ROWS, ids=[row.test_id for row in CONDITION_ROWS])
def test_condition_applies(test_id: str, condition: str | None, env: dict[str, str], expected: bool) -> None:
    assert applies(condition, Attempt.from_env(env)) is expected


class PlanRow(NamedTuple):
    test_id: str
    text: str
    env: dict[str, str]
    issue: str | None
    title: str
    steps: list[tuple[str, str, str]]  # (command, path, content)
    skipped: list[str]


PLAN_ROWS = [
    PlanRow(
        "no blocks: a note per issue holding the title",
        task(),
        {},
        "app-k3x9q",
        "Add a greeting",
        [("write", "gastown-demo/app-k3x9q.md", "Add a greeting\n")],
        [],
    ),
    PlanRow(
        "no blocks, no issue, no Title line: first line",
        "[gastown] Fix the build\nmore",
        {},
        None,
        "Fix the build",
        [("write", "gastown-demo/task.md", "Fix the build\n")],
        [],
    ),
    PlanRow(
        "conditions filter on a first attempt",
        task("write a.txt @first\n1", "write a.txt @retry\n2", "nodone"),
        {},
        "app-k3x9q",
        "Add a greeting",
        [("write", "a.txt", "1\n"), ("nodone", "", "")],
        ["write"],
    ),
    PlanRow(
        "conditions filter on a resume",
        task("crash @first", "write a.txt @retry\n2"),
        {"GT_ATTEMPT": "2", "GT_PROMPT_KIND": "resume"},
        "app-k3x9q",
        "Add a greeting",
        [("write", "a.txt", "2\n")],
        ["crash"],
    ),
    PlanRow("only broken blocks: no default note", task("wirte a.txt"), {}, "app-k3x9q", "Add a greeting", [], []),
    PlanRow(
        "all blocks conditioned out: no default note",
        task("crash @fix"),
        {},
        "app-k3x9q",
        "Add a greeting",
        [],
        ["crash"],
    ),
    PlanRow(
        "control characters in the title are neutralised",
        "[gastown] x\nTitle: a\x1b[2Jb\n",
        {},
        None,
        "a?[2Jb",
        [("write", "gastown-demo/task.md", "a?[2Jb\n")],
        [],
    ),
]


@pytest.mark.parametrize(list(PlanRow._fields), PLAN_ROWS, ids=[row.test_id for row in PLAN_ROWS])
def test_plan_task(
    test_id: str,
    text: str,
    env: dict[str, str],
    issue: str | None,
    title: str,
    steps: list[tuple[str, str, str]],
    skipped: list[str],
) -> None:
    plan = plan_task(text, Attempt.from_env(env), issue)
    assert plan.title == title
    assert [(s.command, s.path, s.content) for s in plan.steps] == steps
    assert [s.command for s in plan.skipped] == skipped


class KindRow(NamedTuple):
    test_id: str
    text: str
    task: bool
    title: str


KIND_ROWS = [
    KindRow("prefixed prompt is a task", "[gastown] Work on app-k3x9q", True, "Work on app-k3x9q"),
    KindRow("leading newline tolerated", "\n[gastown] work\nTitle: x", True, "x"),
    KindRow(
        "nudge is a message", "Continue your work, or run `gt done`.", False, "Continue your work, or run `gt done`."
    ),
    KindRow("prefix later on is a message", "hello [gastown]", False, "hello [gastown]"),
    KindRow("empty Title falls back to first line", "[gastown] go\nTitle:\n", True, "go"),
]


@pytest.mark.parametrize(list(KindRow._fields), KIND_ROWS, ids=[row.test_id for row in KIND_ROWS])
def test_kind_and_title(test_id: str, text: str, task: bool, title: str) -> None:
    assert is_task(text) is task
    assert extract_title(text) == title


class PathRow(NamedTuple):
    test_id: str
    path: str
    problem: str | None


PATH_ROWS = [
    PathRow("plain", "src/app.py", None),
    PathRow("dot-dot that stays inside", "a/../b.txt", None),
    PathRow("dotfile", ".github/workflows/ci.yml", None),
    PathRow("absolute", "/tmp/x", "absolute"),
    PathRow("home", "~/x", "absolute"),
    PathRow("escape", "../x", "leaves the worktree"),
    PathRow("deep escape", "a/b/../../../x", "leaves the worktree"),
    PathRow("the worktree itself", "a/..", "worktree itself"),
    PathRow("git dir", ".git/config", "inside .git"),
    PathRow("empty", "", "empty path"),
]


@pytest.mark.parametrize(list(PathRow._fields), PATH_ROWS, ids=[row.test_id for row in PATH_ROWS])
def test_check_path(test_id: str, path: str, problem: str | None) -> None:
    found = check_path(path)
    assert (found is None) if problem is None else (found is not None and problem in found)


# -- keys and the line editor ----------------------------------------------------------


class DecodeRow(NamedTuple):
    test_id: str
    chunks: list[bytes]
    events: list[Event]


DECODE_ROWS = [
    DecodeRow("typed then Enter", [b"hi\r"], [Text("hi"), Key.ENTER]),
    DecodeRow("LF is Enter too", [b"a\nb\n"], [Text("a"), Key.ENTER, Text("b"), Key.ENTER]),
    DecodeRow("paste keeps newlines, no Enter", [b"\x1b[200~one\ntwo\n\x1b[201~"], [Text("one\ntwo\n", pasted=True)]),
    DecodeRow("paste CR and CRLF become LF", [b"\x1b[200~a\rb\r\nc\x1b[201~"], [Text("a\nb\nc", pasted=True)]),
    DecodeRow(
        "markers split across chunks",
        [b"\x1b", b"[20", b"0~x\x1b[20", b"1", b"~\r"],
        [Text("x", pasted=True), Key.ENTER],
    ),
    DecodeRow("utf-8 split across chunks", [b"\xc3", b"\xa9\xe6\x97", b"\xa5\r"], [Text("é"), Text("日"), Key.ENTER]),
    DecodeRow(
        "control keys",
        [b"ab\x7f\x08\x15\x03\x04"],
        [Text("ab"), Key.BACKSPACE, Key.BACKSPACE, Key.KILL_LINE, Key.INTERRUPT, Key.END],
    ),
    DecodeRow("arrows and function keys ignored", [b"a\x1b[A\x1b[1;5C\x1bOPb"], [Text("a"), Text("b")]),
    DecodeRow("Escape before a paste swallows nothing", [b"\x1b\x1b[200~x\x1b[201~"], [Text("x", pasted=True)]),
    DecodeRow("Escape before Enter swallows nothing", [b"\x1b", b"\r"], [Key.ENTER]),
    DecodeRow(
        "escape codes inside a paste are text", [b"\x1b[200~\x1b[31mred\x1b[201~"], [Text("\x1b[31mred", pasted=True)]
    ),
    DecodeRow("other controls dropped, tab kept", [b"a\x07\tb"], [Text("a"), Text("\tb")]),
]


@pytest.mark.parametrize(list(DecodeRow._fields), DECODE_ROWS, ids=[row.test_id for row in DECODE_ROWS])
def test_input_decoder(test_id: str, chunks: list[bytes], events: list[Event]) -> None:
    decoder = InputDecoder()
    assert [event for chunk in chunks for event in decoder.feed(chunk)] == events


def test_input_decoder_takes_a_megabyte_paste_in_small_chunks() -> None:
    text = ("line with $(rm -rf /) and 'quotes' \"too\" · ünïcode\n" * 20000)[:1_000_000]
    data = b"\x1b[200~" + text.encode() + b"\x1b[201~\r"
    decoder = InputDecoder()
    events = [event for start in range(0, len(data), 4093) for event in decoder.feed(data[start : start + 4093])]
    assert events == [Text(text, pasted=True), Key.ENTER]


class EditRow(NamedTuple):
    test_id: str
    events: list[Event]
    echo: str
    submitted: list[str]
    width: int | None = None  # the pane's width; None: unknown, so erase by backing over


EDIT_ROWS = [
    EditRow("typed text echoes and submits", [Text("hi"), Key.ENTER], "hi\n", ["hi"]),
    EditRow("short paste echoes verbatim", [Text("ok", pasted=True), Key.ENTER], "ok\n", ["ok"]),
    EditRow(
        "multi-line paste echoes a summary",
        [Text("a\nb\nc", pasted=True), Key.ENTER],
        "[pasted 3 lines, 5 chars]\n",
        ["a\nb\nc"],
    ),
    EditRow("long paste echoes a summary", [Text("x" * 150, pasted=True)], "[pasted 1 line, 150 chars]", []),
    EditRow("backspace edits typed text", [Text("ab"), Key.BACKSPACE, Text("c"), Key.ENTER], "ab\b\x1b[Kc\n", ["ac"]),
    EditRow(
        "backspace drops a summarised paste whole",
        [Text("x\ny", pasted=True), Key.BACKSPACE, Key.ENTER],
        "[pasted 2 lines, 3 chars]" + "\b" * 25 + "\x1b[K",
        [],
    ),
    EditRow("blank Enter submits nothing", [Key.ENTER, Text("  "), Key.ENTER], "  \b\b\x1b[K", []),
    EditRow("Ctrl-U clears the line", [Text("ab"), Key.KILL_LINE, Text("c"), Key.ENTER], "ab\b\b\x1b[Kc\n", ["c"]),
    EditRow("Ctrl-D on a non-empty line is ignored", [Text("a"), Key.END, Key.ENTER], "a\n", ["a"]),
    EditRow(
        "a line that fits is cleared whole and redrawn",
        [Text("ab"), Key.BACKSPACE, Key.KILL_LINE],
        "ab\r\x1b[2K> a\r\x1b[2K> ",
        [],
        10,
    ),
    EditRow("a wrapped line is backed over", [Text("abcdefghij"), Key.BACKSPACE], "abcdefghij\b\x1b[K", [], 10),
    EditRow(
        "paste then typed text form one input",
        [Text("p\nq", pasted=True), Text(" and more"), Key.ENTER],
        "[pasted 2 lines, 3 chars] and more\n",
        ["p\nq and more"],
    ),
]


@pytest.mark.parametrize(list(EditRow._fields), EDIT_ROWS, ids=[row.test_id for row in EDIT_ROWS])
def test_line_editor(test_id: str, events: list[Event], echo: str, submitted: list[str], width: int | None) -> None:
    editor = LineEditor("> ", width)
    outcomes = [editor.apply(event) for event in events]
    assert "".join(o.echo for o in outcomes) == echo
    assert [o.submitted for o in outcomes if o.submitted is not None] == submitted


@pytest.mark.parametrize(
    ("events", "code"),
    [([Key.INTERRUPT], 130), ([Key.END], 0), ([Text("a"), Key.INTERRUPT], 130)],
    ids=["ctrl-c", "ctrl-d on empty line", "ctrl-c with text"],
)
def test_line_editor_quits(events: list[Event], code: int) -> None:
    editor = LineEditor()
    with pytest.raises(Quit) as raised:
        for event in events:
            editor.apply(event)
    assert raised.value.code == code


# -- options ---------------------------------------------------------------------------


class OptionRow(NamedTuple):
    test_id: str
    argv: list[str]
    env: dict[str, str]
    expected: Options


OPTION_ROWS = [
    OptionRow("defaults", [], {}, Options(think=1.0, nudge_think=0.3)),
    OptionRow(
        "env",
        [],
        {"GT_DEMO_THINK": "0.2", "GT_DEMO_NUDGE_THINK": "0s", "GT_DEMO_RECORD": "r.jsonl", "GT_DEMO_ASK_TRUST": "1"},
        Options(0.2, 0.0, Path("r.jsonl"), True),
    ),
    OptionRow(
        "flags win",
        ["--think", "3", "--nudge-think", "0.1", "--record", "f", "--ask-trust"],
        {"GT_DEMO_THINK": "0.2", "GT_DEMO_RECORD": "r"},
        Options(3.0, 0.1, Path("f"), True),
    ),
]


@pytest.mark.parametrize(list(OptionRow._fields), OPTION_ROWS, ids=[row.test_id for row in OPTION_ROWS])
def test_parse_options(test_id: str, argv: list[str], env: dict[str, str], expected: Options) -> None:
    assert parse_options(argv, env) == expected


def test_bad_env_value_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="GT_DEMO_THINK must be a number of seconds"):
        parse_options([], {"GT_DEMO_THINK": "soon"})


# -- the real program ------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    """A git repo with one commit, a fake `gt` that logs its argv, and a record file."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# sample\n")
    (repo / "old.txt").write_text("to be deleted\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial commit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_gt = bin_dir / "gt"
    fake_gt.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['FAKE_GT_LOG'], 'a') as log:\n"
        "    log.write(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd()}) + '\\n')\n"
        "print('fake gt: submitted to the merge queue')\n"
    )
    fake_gt.chmod(0o755)
    return {"repo": repo, "bin": bin_dir, "gt_log": tmp_path / "gt.jsonl", "record": tmp_path / "record.jsonl"}


def agent_env(ws: dict[str, Path], **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{ws['bin']}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GT_LOG": str(ws["gt_log"]),
        "GT_DEMO_RECORD": str(ws["record"]),
        "GT_DEMO_THINK": "0.05",
        "GT_DEMO_NUDGE_THINK": "0.02",
        "GT_ISSUE": "app-k3x9q",
        **extra,
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_piped_stdin_submits_each_line(workspace: dict[str, Path]) -> None:
    repo = workspace["repo"]
    lines = "hello agent\n\n[gastown] Title: Write the note\nbye\n"
    proc = subprocess.run(
        [sys.executable, "-m", "gastown.demo_agent"],
        cwd=repo,
        input=lines,
        capture_output=True,
        text=True,
        env={**os.environ, **agent_env(workspace)},
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo: got message: hello agent" in proc.stdout
    assert (repo / "gastown-demo" / "app-k3x9q.md").read_text() == "Write the note\n"
    assert git(repo, "log", "-1", "--format=%s") == "app-k3x9q: Write the note"
    assert [r["argv"] for r in read_jsonl(workspace["gt_log"])] == [["done"]]
    records = read_jsonl(workspace["record"])
    assert [(r["kind"], r["text"]) for r in records] == [
        ("message", "hello agent"),
        ("task", "[gastown] Title: Write the note"),
        ("message", "bye"),
    ]


class Pane:
    """One demo agent in a pane of the test's own tmux server."""

    def __init__(self, socket: str, pane_id: str) -> None:
        self.socket = socket
        self.id = pane_id

    def tmux(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], input=input, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", self.id)

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float = 10.0) -> re.Match[str]:
        regex = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        found = retry_until(lambda: regex.search(self.screen()), timeout=timeout, what=f"{regex.pattern!r} in the pane")
        assert found is not None
        return found

    def wait_idle(self, timeout: float = 10.0) -> str:
        def idle() -> str | None:
            text = self.screen()
            return text if READY.search(text) and not BUSY.search(text) else None

        screen = retry_until(idle, timeout=timeout, what="the demo prompt with no busy line")
        assert screen is not None
        return screen

    def paste(self, text: str) -> None:
        buffer = f"t-{uuid.uuid4().hex[:8]}"
        self.tmux("load-buffer", "-b", buffer, "-", input=text)
        self.tmux("paste-buffer", "-p", "-d", "-r", "-b", buffer, "-t", self.id)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.id, *keys)

    def dead_status(self) -> int | None:
        """The exit status once the pane is dead, else None.

        tmux 3.3a can mark a pane dead (pty closed) yet miss the SIGCHLD, leaving the
        agent a zombie with no status (tmux/tmux#2679, #4841); any child of the server
        exiting makes it reap, so a dead pane without a status gets a `run-shell true`.
        """
        fmt = "#{pane_dead}:#{pane_dead_status}"
        dead, _, status = self.tmux("display-message", "-p", "-t", self.id, fmt).strip().partition(":")
        if dead == "1" and not status:
            self.tmux("run-shell", "true")
            dead, _, status = self.tmux("display-message", "-p", "-t", self.id, fmt).strip().partition(":")
        return int(status) if dead == "1" and status else None


def start_pane(socket: str, ws: dict[str, Path], *args: str, **env: str) -> Pane:
    """Start the agent in a new pane. tmux ignores ``-e PATH=`` from a client that is not
    attached and uses the client's own PATH, so PATH goes in the client's environment."""
    wanted = agent_env(ws, **env)
    env_args = [arg for key, value in wanted.items() if key != "PATH" for arg in ("-e", f"{key}={value}")]
    pane_id = subprocess.run(
        [
            "tmux",
            "-L",
            socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "150",
            "-y",
            "50",
            "-P",
            "-F",
            "#{pane_id}",
            "-c",
            str(ws["repo"]),
            *env_args,
            "--",
            sys.executable,
            "-m",
            "gastown.demo_agent",
            *args,
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ, "PATH": wanted["PATH"]},
    ).stdout.strip()
    return Pane(socket, pane_id)


@pytest.mark.tmux
def test_task_edits_commits_and_runs_gt_done(tmux_socket: str, workspace: dict[str, Path]) -> None:
    repo = workspace["repo"]
    pane = start_pane(tmux_socket, workspace, GT_DEMO_THINK="0.6")
    banner = pane.wait_idle()
    assert "no model, deterministic edits" in banner and "app-k3x9q" in banner and str(repo) in banner
    prompt = task(
        "write src/hello.py\ndef hello() -> str:\n    return \"hi $(whoami) 'q'\"",
        "append README.md\nMore text.",
        "delete old.txt",
        "write ../escape.txt\nnope",
        "write retry-only.txt @retry\nnope",
    )
    pane.paste(prompt)
    pane.wait_for(r"^demo> \[pasted \d+ lines, \d+ chars\]$")
    pane.keys("Enter")
    pane.wait_for(BUSY, timeout=5)
    screen = pane.wait_idle()

    assert (repo / "src" / "hello.py").read_text() == "def hello() -> str:\n    return \"hi $(whoami) 'q'\"\n"
    assert (repo / "README.md").read_text() == "# sample\nMore text.\n"
    assert not (repo / "old.txt").exists()
    assert not (repo.parent / "escape.txt").exists() and not (repo / "retry-only.txt").exists()
    assert git(repo, "log", "-1", "--format=%s") == "app-k3x9q: Add a greeting"
    assert git(repo, "status", "--porcelain") == ""
    assert read_jsonl(workspace["gt_log"]) == [{"argv": ["done"], "cwd": str(repo)}], screen
    assert [(r["kind"], r["text"]) for r in read_jsonl(workspace["record"])] == [("task", prompt)]
    assert "leaves the worktree" in screen and "skipped write @retry" in screen
    assert "fake gt: submitted to the merge queue" in screen
    assert re.search(r"^demo: committed [0-9a-f]{7,} · 3 files changed", screen, re.MULTILINE)


@pytest.mark.tmux
def test_nocommit_blocked_and_a_symlink_escape(tmux_socket: str, workspace: dict[str, Path]) -> None:
    repo = workspace["repo"]
    (repo / "outside").symlink_to(repo.parent, target_is_directory=True)
    pane = start_pane(tmux_socket, workspace)
    pane.wait_idle()
    pane.paste(
        task("write wip.txt\nhalf done", "write outside/evil.txt\nx", "nocommit", 'blocked can\'t reach the "API"')
    )
    pane.keys("Enter")
    retry_until(lambda: read_jsonl(workspace["gt_log"]), what="gt done to be called")
    screen = pane.wait_idle()
    assert read_jsonl(workspace["gt_log"])[0]["argv"] == ["done", "--blocked", 'can\'t reach the "API"']
    assert (repo / "wip.txt").read_text() == "half done\n"
    assert git(repo, "log", "-1", "--format=%s") == "initial commit"
    assert not (repo.parent / "evil.txt").exists()
    assert "outside/evil.txt resolves outside the worktree" in screen
    assert "uncommitted (nocommit)" in screen


@pytest.mark.tmux
def test_crash_exits_with_its_code(tmux_socket: str, workspace: dict[str, Path]) -> None:
    pane = start_pane(tmux_socket, workspace)
    pane.wait_idle()
    pane.paste(task("crash 7 @first"))
    pane.keys("Enter")
    assert retry_until(lambda: pane.dead_status() is not None, what="the pane to die")
    assert pane.dead_status() == 7
    assert re.search(r"^demo: crashing on purpose$", pane.screen(), re.MULTILINE)
    assert read_jsonl(workspace["gt_log"]) == []


@pytest.mark.tmux
def test_crash_at_first_is_skipped_on_a_retry(tmux_socket: str, workspace: dict[str, Path]) -> None:
    pane = start_pane(tmux_socket, workspace, GT_ATTEMPT="2", GT_PROMPT_KIND="resume")
    pane.wait_idle()
    pane.paste(task("crash @first", "write retried.txt @retry\nok"))
    pane.keys("Enter")
    retry_until(lambda: read_jsonl(workspace["gt_log"]), what="gt done to be called")
    assert (workspace["repo"] / "retried.txt").read_text() == "ok\n"
    assert pane.dead_status() is None


@pytest.mark.tmux
def test_rate_limit_waits_for_the_next_input(tmux_socket: str, workspace: dict[str, Path]) -> None:
    repo = workspace["repo"]
    pane = start_pane(tmux_socket, workspace)
    pane.wait_idle()
    pane.paste(task("write before.txt\n1", "ratelimit 5", "write after.txt\n2"))
    pane.keys("Enter")
    assert pane.wait_for(RATE_LIMIT).group(1) == "5"
    pane.wait_idle()
    assert (repo / "before.txt").exists() and not (repo / "after.txt").exists()
    assert read_jsonl(workspace["gt_log"]) == []

    pane.keys("-l", "keep going please")
    pane.keys("Enter")
    retry_until(lambda: read_jsonl(workspace["gt_log"]), what="gt done after the message")
    screen = pane.wait_idle()
    assert "demo: got message: keep going please" in screen
    assert (repo / "after.txt").read_text() == "2\n"
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["after.txt", "before.txt"]
    assert [r["kind"] for r in read_jsonl(workspace["record"])] == ["task", "message"]


@pytest.mark.tmux
def test_back_to_back_pastes_each_arrive_whole(tmux_socket: str, workspace: dict[str, Path]) -> None:
    pane = start_pane(tmux_socket, workspace, GT_DEMO_NUDGE_THINK="0.01")
    pane.wait_idle()
    messages = [f"nudge {i}: $(touch pwned) `x` 'q' \"dq\" ; | & ünï·code\nsecond line {i}" for i in range(20)]
    for message in messages:  # no waiting: later ones queue up while the agent is busy
        pane.paste(message)
        pane.keys("Enter")
    retry_until(lambda: len(read_jsonl(workspace["record"])) >= 20, what="20 records")
    pane.wait_idle()
    assert [(r["kind"], r["text"]) for r in read_jsonl(workspace["record"])] == [("message", m) for m in messages]
    assert "demo: got message: nudge 19: $(touch pwned)" in pane.screen()
    assert not (workspace["repo"] / "pwned").exists()


@pytest.mark.tmux
def test_megabyte_task_arrives_intact(tmux_socket: str, workspace: dict[str, Path]) -> None:
    pane = start_pane(tmux_socket, workspace)
    pane.wait_idle()
    filler = "".join(f"filler line {i} with `code` and ~tildes~\n" for i in range(25000))
    prompt = task("write big-task.txt\ndone") + filler
    assert len(prompt) > 1_000_000
    pane.paste(prompt)
    pane.wait_for(r"^demo> \[pasted \d+ lines, \d+ chars\]$", timeout=20)
    pane.keys("Enter")
    retry_until(lambda: read_jsonl(workspace["gt_log"]), timeout=20, what="gt done")
    assert read_jsonl(workspace["record"])[0]["text"] == prompt
    assert (workspace["repo"] / "big-task.txt").read_text() == "done\n"


@pytest.mark.tmux
@pytest.mark.parametrize(("answer", "status"), [("y", None), ("n", 1)], ids=["trusted", "refused"])
def test_trust_dialog(tmux_socket: str, workspace: dict[str, Path], answer: str, status: int | None) -> None:
    pane = start_pane(tmux_socket, workspace, "--ask-trust")
    pane.wait_for(r"Do you trust this folder\? \[y/n\]")
    assert not READY.search(pane.screen())
    pane.keys(answer, "Enter")
    if status is None:
        screen = pane.wait_idle()
        assert "Do you trust" not in screen  # answered dialogs leave the screen
    else:
        assert retry_until(lambda: pane.dead_status() is not None, what="the pane to die")
        assert pane.dead_status() == status


@pytest.mark.tmux
@pytest.mark.parametrize(("key", "status"), [("C-c", 130), ("C-d", 0)], ids=["ctrl-c", "ctrl-d"])
def test_quit_keys(tmux_socket: str, workspace: dict[str, Path], key: str, status: int) -> None:
    pane = start_pane(tmux_socket, workspace)
    pane.wait_idle()
    pane.keys(key)
    assert retry_until(lambda: pane.dead_status() is not None, what="the pane to die")
    assert pane.dead_status() == status


@pytest.mark.tmux
def test_erasing_input_leaves_a_ready_prompt(tmux_socket: str, workspace: dict[str, Path]) -> None:
    pane = start_pane(tmux_socket, workspace)
    pane.wait_idle()
    pane.keys("-l", "ab日")
    pane.wait_for(r"^demo> ab日$")
    pane.keys("BSpace", "BSpace", "BSpace")
    pane.wait_idle()
    pane.keys("-l", "typo")
    pane.keys("C-u", "Enter")  # a blank Enter submits nothing
    pane.wait_idle()
    pane.keys("-l", "real one")
    pane.keys("Enter")
    pane.wait_for(r"^demo: got message: real one$")
    assert [r["text"] for r in read_jsonl(workspace["record"])] == ["real one"]


@pytest.mark.tmux
def test_hang_shows_busy_and_takes_no_input(tmux_socket: str, workspace: dict[str, Path]) -> None:
    pane = start_pane(tmux_socket, workspace)
    pane.wait_idle()
    pane.paste(task("hang"))
    pane.keys("Enter")
    pane.wait_for(r"^demo: thinking\.\.\.$")
    pane.keys("-l", "wake up")
    pane.keys("Enter")
    with pytest.raises(AssertionError):  # stays hung: the message is never taken
        retry_until(lambda: len(read_jsonl(workspace["record"])) > 1, timeout=0.5)
    assert BUSY.search(pane.screen()) and pane.dead_status() is None

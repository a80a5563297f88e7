"""What a submitted input asks the demo agent to do. Pure: no I/O, no clock, no env reads.

A task prompt is any input whose first line starts with ``[gastown]``. Inside it, each
block fenced as ``~~~demo`` ... ``~~~`` holds one directive: a command line (optionally
ending in a condition ``@first``, ``@retry`` or ``@fix``) followed, for ``write`` and
``append``, by content lines. Backtick fences are transparent (gastown fences the issue
body with backticks), other tilde fences are skipped whole. A malformed block becomes a
*problem* (one sentence, with the line number) and is skipped; the rest still run.

>>> script = parse_script("[gastown] t\\n~~~demo\\nwrite a.txt @first\\nhello\\n~~~\\n")
>>> [(d.command, d.path, d.condition, d.content) for d in script.directives]
[('write', 'a.txt', 'first', 'hello\\n')]
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

TASK_PREFIX = "[gastown]"
COMMANDS = (
    "write", "append", "delete", "think", "crash", "hang", "ratelimit", "nocommit", "nodone", "blocked", "rebase",
)
CONDITIONS = ("first", "retry", "fix")
DEFAULT_CRASH_CODE = 3
DEFAULT_RATELIMIT_SECONDS = 8
NOTES_DIR = "gastown-demo"

_OPEN_DEMO = re.compile(r"^( {0,3})(~{3,})[ \t]*demo[ \t]*$")
_OPEN_OTHER = re.compile(r"^( {0,3})(~{3,})[^~]*$")
_BACKTICK_DEMO = re.compile(r"^ {0,3}`{3,}[ \t]*demo[ \t]*$")
_CONDITION = re.compile(r"\s+@(\S*)\s*$")
_TITLE = re.compile(r"^[ \t]*Title:[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Directive:
    """One parsed directive. Only the fields its command uses are set."""

    command: str
    line: int = 0
    condition: str | None = None
    path: str = ""
    content: str = ""
    seconds: float = 0.0
    code: int = DEFAULT_CRASH_CODE
    reason: str = ""


@dataclass(frozen=True)
class Script:
    """The directives of one prompt in order; ``blocks`` counts ``~~~demo`` fences,
    broken ones included, so a prompt whose only block is broken gets no default edit."""

    directives: tuple[Directive, ...] = ()
    problems: tuple[str, ...] = ()
    blocks: int = 0


@dataclass(frozen=True)
class Attempt:
    """Which run of the issue this is, from ``GT_ATTEMPT`` and ``GT_PROMPT_KIND``."""

    number: int = 1
    kind: str = "fresh"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Attempt:
        """Unset or unreadable values fall back to a first, fresh attempt.

        >>> Attempt.from_env({"GT_ATTEMPT": "2", "GT_PROMPT_KIND": "Resume"})
        Attempt(number=2, kind='resume')
        >>> Attempt.from_env({"GT_ATTEMPT": "x"})
        Attempt(number=1, kind='fresh')
        """
        raw = env.get("GT_ATTEMPT", "").strip()
        number = int(raw) if raw.isdigit() and int(raw) > 0 else 1
        kind = env.get("GT_PROMPT_KIND", "").strip().lower() or "fresh"
        return cls(number, kind)


@dataclass(frozen=True)
class TaskPlan:
    """What to do for one task: ``steps`` are the directives whose condition holds (or the
    default note when the prompt has no ``~~~demo`` block); ``skipped`` the ones that do not."""

    title: str
    steps: tuple[Directive, ...]
    skipped: tuple[Directive, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)


def is_task(text: str) -> bool:
    """A task prompt starts with the ``[gastown]`` prefix; anything else is a message.

    >>> is_task("[gastown] Work on app-k3x9q"), is_task("please continue")
    (True, False)
    """
    return text.lstrip("\r\n").startswith(TASK_PREFIX)


def applies(condition: str | None, attempt: Attempt) -> bool:
    """Whether a directive with ``condition`` runs in ``attempt`` (no condition: always)."""
    if condition is None:
        return True
    if condition == "first":
        return attempt.number == 1 and attempt.kind == "fresh"
    if condition == "retry":
        return attempt.number > 1 or attempt.kind == "resume"
    if condition == "fix":
        return attempt.kind == "fix"
    return False


def extract_title(text: str) -> str:
    """The first ``Title:`` line's value, else the first non-empty line without the
    ``[gastown]`` prefix (nor a ``Title:`` right after it); control characters become ``?``.

    >>> extract_title("[gastown] Work on it\\nTitle: Add a greeting\\n")
    'Add a greeting'
    >>> extract_title("[gastown] Fix the build")
    'Fix the build'
    """
    match = _TITLE.search(text)
    if match and match.group(1).strip():
        return printable(match.group(1).strip())
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(TASK_PREFIX):
            line = line[len(TASK_PREFIX) :].strip().removeprefix("Title:").strip()
        if line:
            return printable(line)
    return "demo task"


def check_path(path: str) -> str | None:
    """Why ``path`` may not be edited (absolute, escaping the worktree, inside ``.git``),
    or None when it is a plain relative path. Lexical only; the agent also resolves
    symlinks before writing.

    >>> check_path("src/app.py") is None, check_path("a/../../etc/passwd")
    (True, 'path a/../../etc/passwd leaves the worktree')
    """
    if not path or "\x00" in path:
        return "empty path"
    if path.startswith("/") or path.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", path):
        return f"path {path} is absolute; use a path relative to the worktree"
    normal = posixpath.normpath(path)
    if normal == ".":
        return f"path {path} is the worktree itself, not a file"
    if normal == ".." or normal.startswith("../"):
        return f"path {path} leaves the worktree"
    if normal.split("/")[0] == ".git":
        return f"path {path} is inside .git"
    return None


def parse_script(text: str) -> Script:
    """Every ``~~~demo`` block of ``text`` in order; never raises."""
    lines = text.splitlines()
    directives: list[Directive] = []
    problems: list[str] = []
    blocks = 0
    index = 0
    while index < len(lines):
        opener = _OPEN_DEMO.match(lines[index])
        other = None if opener else _OPEN_OTHER.match(lines[index])
        if _BACKTICK_DEMO.match(lines[index]):
            blocks += 1
            problems.append(f"line {index + 1}: ```demo blocks are not read; fence directives with ~~~demo")
        if not opener and not other:
            index += 1
            continue
        if other:
            end = _closing_fence(lines, index + 1, len(other.group(2)))
            index = len(lines) if end is None else end + 1
            continue
        assert opener is not None
        fence = opener.group(2)
        end = _closing_fence(lines, index + 1, len(fence))
        blocks += 1
        start_line = index + 1
        if end is None:
            problems.append(f"line {start_line}: the ~~~demo block is never closed; add a line with {fence}")
            break
        indent = len(opener.group(1))
        body = [_dedent(line, indent) for line in lines[index + 1 : end]]
        result = _parse_block(body, start_line)
        if isinstance(result, str):
            problems.append(result)
        else:
            directives.append(result)
        index = end + 1
    return Script(tuple(directives), tuple(problems), blocks)


def plan_task(text: str, attempt: Attempt, issue: str | None) -> TaskPlan:
    """The plan for a task prompt: its directives filtered by ``attempt``, or, when the
    prompt holds no ``~~~demo`` block at all, one ``write`` of the default note."""
    title = extract_title(text)
    script = parse_script(text)
    if script.blocks == 0:
        note = Directive("write", path=default_note_path(issue), content=title + "\n")
        return TaskPlan(title, (note,))
    steps = tuple(d for d in script.directives if applies(d.condition, attempt))
    skipped = tuple(d for d in script.directives if not applies(d.condition, attempt))
    return TaskPlan(title, steps, skipped, script.problems)


def default_note_path(issue: str | None) -> str:
    """One file per issue, so default edits of different issues never conflict.

    >>> default_note_path("app-k3x9q"), default_note_path(None), default_note_path("../x")
    ('gastown-demo/app-k3x9q.md', 'gastown-demo/task.md', 'gastown-demo/x.md')
    """
    name = _UNSAFE_NAME.sub("-", issue or "").strip(".-") or "task"
    return f"{NOTES_DIR}/{name}.md"


def commit_message(issue: str | None, title: str) -> str:
    """The agent's commit subject.

    >>> commit_message("app-k3x9q", "Add a greeting")
    'app-k3x9q: Add a greeting'
    """
    return f"{issue}: {title}" if issue else title


def one_line(text: str, limit: int) -> str:
    """``text`` with whitespace runs collapsed to one space, control characters shown
    as ``?``, cut to ``limit`` characters.

    >>> one_line("  keep\\n going\\tplease ", 10)
    'keep going'
    """
    return printable(" ".join(text.split()))[:limit]


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: tabs become spaces, other controls ``?``."""
    return "".join(c if c.isprintable() else (" " if c == "\t" else "?") for c in text)


def _closing_fence(lines: list[str], start: int, width: int) -> int | None:
    closing = re.compile(r"^ {0,3}~{" + str(width) + r",}[ \t]*$")
    for index in range(start, len(lines)):
        if closing.match(lines[index]):
            return index
    return None


def _dedent(line: str, indent: int) -> str:
    strip = len(line) - len(line.lstrip(" "))
    return line[min(strip, indent) :]


def _parse_block(body: list[str], opener_line: int) -> Directive | str:
    """A directive from a block's inner lines, or the problem with it."""
    offset = 0
    while offset < len(body) and not body[offset].strip():
        offset += 1
    if offset == len(body):
        return f"line {opener_line}: empty ~~~demo block; put a command such as `write PATH` on its first line"
    line_no = opener_line + 1 + offset
    command_line = body[offset].strip()
    content = body[offset + 1 :]
    condition = None
    match = _CONDITION.search(" " + command_line)
    if match:
        condition = match.group(1)
        command_line = (" " + command_line)[: match.start()].strip()
        if condition not in CONDITIONS:
            return f"line {line_no}: unknown condition @{condition}; use @first, @retry or @fix"
    parts = command_line.split(None, 1)
    if not parts:
        return f"line {line_no}: a condition needs a command before it"
    command, rest = parts[0], (parts[1] if len(parts) > 1 else "")
    if command not in COMMANDS:
        return f"line {line_no}: unknown command {printable(command)!r}; known: {', '.join(COMMANDS)}"
    if command not in ("write", "append") and any(line.strip() for line in content):
        return f"line {line_no}: {command} takes no content lines; only write and append do"
    base = Directive(command, line=line_no, condition=condition)
    return _parse_arguments(base, rest, content)


def _parse_arguments(base: Directive, rest: str, content: list[str]) -> Directive | str:
    where, command = f"line {base.line}", base.command
    if command in ("write", "append", "delete"):
        try:
            words = shlex.split(rest)
        except ValueError:
            return f"{where}: cannot read the path of {command} (an unbalanced quote?)"
        if len(words) != 1:
            return f"{where}: {command} takes exactly one path, got {len(words)}"
        problem = check_path(words[0])
        if problem:
            return f"{where}: {command} refused: {printable(problem)}"
        text = "\n".join(content) + "\n" if content else ""
        return replace(base, path=posixpath.normpath(words[0]), content=text if command != "delete" else "")
    words = rest.split()
    if command == "think":
        seconds = _number(words[0].removesuffix("s")) if len(words) == 1 else None
        if seconds is None or seconds < 0:
            return f"{where}: think takes one number of seconds, such as `think 2.5`"
        return replace(base, seconds=seconds)
    if command == "crash":
        if len(words) > 1 or (words and not (words[0].isdigit() and int(words[0]) <= 255)):
            return f"{where}: crash takes an optional exit code from 0 to 255"
        return replace(base, code=int(words[0]) if words else DEFAULT_CRASH_CODE)
    if command == "ratelimit":
        raw = words[0].removesuffix("s") if len(words) == 1 else ""
        if len(words) > 1 or (words and not raw.isdigit()):
            return f"{where}: ratelimit takes an optional whole number of seconds, such as `ratelimit 8`"
        return replace(base, seconds=float(int(raw)) if words else float(DEFAULT_RATELIMIT_SECONDS))
    if command == "blocked":
        reason = _unquote(rest.strip())
        if not reason:
            return f"{where}: blocked needs a reason, such as `blocked the API key is missing`"
        return replace(base, reason=reason)
    if words:
        return f"{where}: {command} takes no arguments"
    return base


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text
